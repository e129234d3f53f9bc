//! The supervisor run in-process on real children (`sh`), with a recording [`Observer`] and a
//! 10 ms TERM → KILL grace: what it did is read from what it told the observer.

use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio_util::sync::CancellationToken;

use super::*;

/// What the supervisor told the observer, in order (heartbeats and flushes left out).
#[derive(Debug, Default)]
struct Record {
    started: Option<u32>,
    lines: Vec<(Stream, String)>,
    notes: Vec<String>,
    /// Cancelled at the first line, when set: the child is running by then.
    cancel_on_line: Option<CancellationToken>,
}

impl Observer for Record {
    fn started(&mut self, pid: u32) {
        self.started = Some(pid);
    }
    fn line(&mut self, stream: Stream, line: Line) {
        self.lines.push((stream, line.into_text().0));
        if let Some(token) = &self.cancel_on_line {
            token.cancel();
        }
    }
    fn heartbeat(&mut self, _: Heartbeat) {}
    fn flush(&mut self) {}
    fn note(&mut self, message: String) {
        self.notes.push(message);
    }
}

/// A spec for `sh -c script`, with a 10 ms grace.
fn spec(name: &str, script: &str, deadline: Duration) -> Spec {
    Spec {
        argv: vec!["sh".into(), "-c".into(), script.into()],
        cwd: None,
        env: Vec::new(),
        unset: Vec::new(),
        base_env: None,
        marker: (
            "AGENTDISPATCH_TASK_ID".into(),
            format!("unit-{name}-{}", std::process::id()),
        ),
        stdin: Vec::new(),
        deadline,
        heartbeat: Duration::from_secs(60),
        kill_grace: Duration::from_millis(10),
        max_line: 1024,
    }
}

const LONG: Duration = Duration::from_secs(120);
const BOUNDS: Bounds = Bounds {
    drain: Duration::from_millis(50),
};

/// Whether `pid` is gone (or a zombie nobody reaped yet: no longer running).
fn gone(pid: u32) -> bool {
    crate::procfs::read_stat(pid as i32).is_none_or(|s| s.state == 'Z')
}

/// A script whose processes ignore SIGTERM (an ignored signal stays ignored across exec).
const DEAF: &str = "trap '' TERM; echo ready; exec sleep 30";

/// Runs [`DEAF`] until `deadline` or, with `cancel`, until its first line cancels it; checks
/// that SIGTERM was sent with `why`, SIGKILL after the grace, and that the child is gone.
async fn stop_a_deaf_child(name: &str, deadline: Duration, cancel: bool, why: &str) -> Outcome {
    let spec = spec(name, DEAF, deadline);
    let child = Child::spawn(&spec, None);
    let token = CancellationToken::new();
    let mut rec = Record {
        cancel_on_line: cancel.then(|| token.clone()),
        ..Record::default()
    };
    let outcome = supervise(spec, child, token, &mut rec, BOUNDS).await;
    let pid = rec.started.unwrap();
    assert_eq!(
        rec.notes,
        [
            format!("{why}: SIGTERM to process group {pid}"),
            format!("grace of 10ms passed: SIGKILL to process group {pid}"),
        ]
    );
    assert!(gone(pid));
    outcome
}

#[tokio::test]
async fn a_child_that_ignores_term_on_cancel_is_killed_after_the_grace() {
    let outcome = stop_a_deaf_child("cancel", LONG, true, "cancelled").await;
    assert!(matches!(outcome, Outcome::Cancelled), "{outcome:?}");
}

#[tokio::test]
async fn the_deadline_stops_a_child_the_same_way() {
    // Long enough for `sh` to set its trap first, even on a loaded machine.
    let deadline = Duration::from_millis(500);
    let outcome = stop_a_deaf_child("deadline", deadline, false, "deadline of 500ms passed").await;
    assert!(matches!(outcome, Outcome::TimedOut), "{outcome:?}");
}

#[tokio::test]
async fn lines_of_both_pipes_arrive_with_their_stream_and_the_exit_status() {
    let spec = spec("lines", "echo out; echo err >&2; printf last; exit 3", LONG);
    let child = Child::spawn(&spec, None);
    let mut rec = Record::default();
    let outcome = supervise(spec, child, CancellationToken::new(), &mut rec, BOUNDS).await;
    match outcome {
        Outcome::Exited(status) => assert_eq!(status.code(), Some(3)),
        other => panic!("{other:?}"),
    }
    let mut lines = rec.lines.clone();
    lines.sort_by_key(|(s, l)| (*s == Stream::Stderr, l.clone()));
    assert_eq!(
        lines,
        [
            (Stream::Stdout, "last".to_string()),
            (Stream::Stdout, "out".to_string()),
            (Stream::Stderr, "err".to_string()),
        ]
    );
    assert!(rec.notes.is_empty(), "{:?}", rec.notes);
}

#[tokio::test]
async fn the_drain_bound_ends_a_run_whose_escaped_grandchild_keeps_the_pipe_open() {
    // The grandchild leaves the group and the session and drops the marker: nothing can find
    // it (no cgroup here, and this test process is no subreaper), and it holds stdout open.
    // The leader says its pid once it has left (through a FIFO), then exits.
    let script = r#"d=$(mktemp -d) && mkfifo "$d/f" || exit 9
        setsid sh -c 'echo $$ > "$0"; exec env -u AGENTDISPATCH_TASK_ID sleep 30' "$d/f" &
        read pid < "$d/f"; rm -r "$d"; echo "$pid"; echo leader done"#;
    let spec = spec("drain", script, LONG);
    let child = Child::spawn(&spec, None);
    let mut rec = Record::default();
    let outcome = supervise(spec, child, CancellationToken::new(), &mut rec, BOUNDS).await;
    let escaped: Vec<i32> = rec
        .lines
        .iter()
        .filter_map(|(_, l)| l.parse().ok())
        .collect();
    for pid in &escaped {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    match outcome {
        Outcome::Exited(status) => assert!(status.success(), "{status:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(escaped.len(), 1, "{:?}", rec.lines);
    assert!(rec.lines.iter().any(|(_, l)| l == "leader done"));
    assert_eq!(
        rec.notes,
        ["output pipes still open after every process ended; stopped reading"]
    );
}

#[tokio::test]
async fn a_failed_wait_is_reported_and_the_process_is_still_killed() {
    // A process that is not the worker's child cannot be waited for: adopted as if a warm
    // parent had forked it, its wait fails. It leads a session (and group) of its own, so the
    // supervisor's kills reach it and nothing else.
    let (ends, pipes) = crate::child::pipes().unwrap();
    let mut outer = std::process::Command::new("sh")
        .args(["-c", "setsid sleep 30 >/dev/null & echo $!"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    crate::reaper::Owned::lock().insert(outer.id() as i32);
    let mut out = String::new();
    std::io::Read::read_to_string(&mut outer.stdout.take().unwrap(), &mut out).unwrap();
    outer.wait().unwrap();
    crate::reaper::release(outer.id() as i32);
    let pid: u32 = out.trim().parse().unwrap();
    // Its session id is its pid once setsid ran: wait for that before treating it as a group.
    while crate::procfs::read_stat(pid as i32).is_some_and(|s| s.pgid != pid as i32) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    drop(ends);
    let child = Child::adopt(pid, pipes, std::process::id(), None, 0);
    let mut rec = Record::default();
    let spec = spec("wait", "", LONG);
    let outcome = supervise(spec, Ok(child), CancellationToken::new(), &mut rec, BOUNDS).await;
    assert!(matches!(outcome, Outcome::WaitFailed(_)), "{outcome:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !gone(pid) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(gone(pid), "the process whose wait failed is still running");
}
