//! One supervised child: spawned without a shell in its own process group, both pipes read
//! concurrently line by line, a heartbeat timer, a deadline, cancellation, and the stop
//! sequence (SIGTERM to the group, the grace period, SIGKILL), after which no process of the
//! child is left and every one is reaped.
//!
//! The supervisor knows nothing of payloads or events: it reports to an [`Observer`].

pub mod child;
pub mod kill;
pub mod lines;

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};
use nix::sys::signal::Signal;
use tokio::io::AsyncWriteExt;
use tokio::time::{sleep_until, Instant as TokioInstant};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::reaper;
use crate::wire::Stream;
pub use child::{Child, Pipes};
use kill::TaskProcesses;
pub use lines::Line;

/// What to run and how to watch it.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Program and arguments (no shell).
    pub argv: Vec<String>,
    /// Working directory.
    pub cwd: Option<PathBuf>,
    /// Environment added to the worker's own.
    pub env: Vec<(String, String)>,
    /// Variables of the worker's environment the child must not see.
    pub unset: Vec<String>,
    /// When set, the child's environment starts from these instead of the worker's.
    pub base_env: Option<Vec<(String, String)>>,
    /// `NAME=value` set in the child's environment and looked for in escaped processes.
    pub marker: (String, String),
    /// Bytes written to stdin before it is closed.
    pub stdin: Vec<u8>,
    /// When to stop the child.
    pub deadline: Duration,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// SIGTERM → SIGKILL grace.
    pub kill_grace: Duration,
    /// Longest line kept whole.
    pub max_line: usize,
}

/// A heartbeat's facts.
#[derive(Debug, Clone, Copy)]
pub struct Heartbeat {
    /// Since spawn.
    pub elapsed: Duration,
    /// The child's pid.
    pub pid: u32,
    /// Since the last output line, if any came.
    pub since_output: Option<Duration>,
}

/// Receives what the child does.
pub trait Observer: Send {
    /// The child is running with this pid.
    fn started(&mut self, pid: u32);
    /// One line of output.
    fn line(&mut self, stream: Stream, line: Line);
    /// The heartbeat timer fired (also once at start).
    fn heartbeat(&mut self, hb: Heartbeat);
    /// A batch of lines ended: a good moment to flush.
    fn flush(&mut self);
    /// Something the supervisor did (a kill), worth a log line and an event.
    fn note(&mut self, message: String);
}

/// Why the supervision ended.
#[derive(Debug)]
pub enum Outcome {
    /// The child exited by itself.
    Exited(ExitStatus),
    /// The deadline passed; the child was stopped.
    TimedOut,
    /// Cancelled; the child was stopped.
    Cancelled,
    /// The program could not be started.
    SpawnFailed(std::io::Error),
    /// Its exit status could not be had (the process is gone; how it ended is not known).
    WaitFailed(std::io::Error),
}

/// Lines handled before the observer is told to flush.
const BATCH: usize = 512;
/// How long to wait for pipes to close once every process of the task is gone or killed.
const DRAIN_BOUND: Duration = Duration::from_secs(2);
/// Batches read at most, at the drain bound, from pipes whose writers are all gone.
const DRAIN_BATCHES: usize = 4096;

/// Runs the child to its end. Returns only when no process of the task is left (or the drain
/// bound passed with pipes still open from a process that could not be killed).
pub async fn run(
    spec: Spec,
    child: std::io::Result<Child>,
    cancel: CancellationToken,
    obs: &mut dyn Observer,
) -> Outcome {
    let started = Instant::now();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => return Outcome::SpawnFailed(e),
    };
    let pid = child.pid();
    let Some(pipes) = child.pipes.take() else {
        return Outcome::SpawnFailed(std::io::Error::other("the child's pipes were taken"));
    };
    let marker = format!("{}={}", spec.marker.0, spec.marker.1).into_bytes();
    let mut cgroup = child.cgroup.take();
    if let Some(cg) = cgroup.take_if(|cg| !cg.holds(pid)) {
        obs.note(format!(
            "the task's process {pid} is not in its cgroup {}; its processes are found by process group, descendants and AGENTDISPATCH_TASK_ID only",
            cg.dir().display()
        ));
    }
    let Some(mut procs) = TaskProcesses::new(pid as i32, marker, cgroup) else {
        // Cannot happen for a fresh child; refuse to signal an unsafe group.
        child.start_kill();
        let status = child.wait().await;
        reaper::release(pid as i32);
        child.kill_holder();
        return match status {
            Ok(s) => Outcome::Exited(s),
            Err(e) => Outcome::SpawnFailed(e),
        };
    };
    if let Some(holder) = child.holder {
        procs.exempt(holder as i32);
    }
    let Pipes {
        stdin: mut stdin_pipe,
        stdout,
        stderr,
    } = pipes;
    let input = spec.stdin;
    let sent = child.stdin_sent.min(input.len());
    tokio::spawn(async move {
        // A child that exits without reading its stdin is not an error.
        let _ = stdin_pipe.write_all(&input[sent..]).await;
    });
    let mut stdout = Some(FramedRead::new(
        stdout,
        lines::LineDecoder::new(spec.max_line),
    ));
    let mut stderr = Some(FramedRead::new(
        stderr,
        lines::LineDecoder::new(spec.max_line),
    ));

    obs.started(pid);
    let mut last_output: Option<Instant> = None;
    let heartbeat = |last: Option<Instant>| Heartbeat {
        elapsed: started.elapsed(),
        pid,
        since_output: last.map(|t| t.elapsed()),
    };
    obs.heartbeat(heartbeat(last_output));
    obs.flush();
    let mut ticker = tokio::time::interval_at(TokioInstant::now() + spec.heartbeat, spec.heartbeat);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let deadline = TokioInstant::now() + spec.deadline;
    let mut stop: Option<Outcome> = None;
    let mut kill_at: Option<TokioInstant> = None;
    let mut exit: Option<ExitStatus> = None;
    let mut drain_until: Option<TokioInstant> = None;
    let mut wait_error: Option<std::io::Error> = None;
    let far = TokioInstant::now() + Duration::from_secs(86400 * 365);
    // What a stop signals, for the notes.
    let whom = match procs.cgroup() {
        Some(cg) => format!("process group {pid} and cgroup {}", cg.name()),
        None => format!("process group {pid}"),
    };

    loop {
        if exit.is_some() && stdout.is_none() && stderr.is_none() {
            break;
        }
        tokio::select! {
            biased;
            // First: a flood on the pipes never delays a heartbeat.
            _ = ticker.tick(), if exit.is_none() => {
                obs.heartbeat(heartbeat(last_output));
                obs.flush();
            }
            _ = cancel.cancelled(), if stop.is_none() && exit.is_none() => {
                stop = Some(Outcome::Cancelled);
                obs.note(format!("cancelled: SIGTERM to {whom}"));
                procs.signal_all(Signal::SIGTERM, true);
                kill_at = Some(TokioInstant::now() + spec.kill_grace);
            }
            _ = sleep_until(deadline), if stop.is_none() && exit.is_none() => {
                stop = Some(Outcome::TimedOut);
                obs.note(format!(
                    "deadline of {}ms passed: SIGTERM to {whom}",
                    spec.deadline.as_millis()
                ));
                procs.signal_all(Signal::SIGTERM, true);
                kill_at = Some(TokioInstant::now() + spec.kill_grace);
            }
            _ = sleep_until(kill_at.unwrap_or(far)), if kill_at.is_some() => {
                kill_at = None;
                obs.note(format!("grace of {}ms passed: SIGKILL to {whom}", spec.kill_grace.as_millis()));
                procs.signal_all(Signal::SIGKILL, exit.is_none());
            }
            status = child.wait(), if exit.is_none() => {
                reaper::release(pid as i32);
                child.kill_holder();
                match status {
                    Ok(s) => exit = Some(s),
                    Err(e) => {
                        tracing::warn!(pid, error = %e, "waiting for the child failed");
                        wait_error = Some(e);
                        exit = Some(ExitStatus::default());
                    }
                }
                // The leader is gone: whatever it left behind is killed now.
                let left = procs.signal_all(Signal::SIGKILL, false);
                if left.total > 0 {
                    let mut note = format!("killed {} process(es) left behind outside process group {pid}", left.total);
                    if left.by_cgroup > 0 {
                        note.push_str(&format!(
                            " ({} found only through the task's cgroup: no AGENTDISPATCH_TASK_ID, not a descendant)",
                            left.by_cgroup
                        ));
                    }
                    obs.note(note);
                }
                kill_at = None;
                drain_until = Some(TokioInstant::now() + DRAIN_BOUND);
            }
            _ = sleep_until(drain_until.unwrap_or(far)), if drain_until.is_some() => {
                if procs.any_left(false) {
                    procs.signal_all(Signal::SIGKILL, false);
                    drain_until = Some(TokioInstant::now() + DRAIN_BOUND);
                    continue;
                }
                // Every process is gone: what the pipes still buffer is the task's output
                // (this timer can fire before the pipes were read, on a loaded machine).
                for _ in 0..DRAIN_BATCHES {
                    let n = drain_ready(&mut stdout, Stream::Stdout, obs)
                        + drain_ready(&mut stderr, Stream::Stderr, obs);
                    if n == 0 {
                        break;
                    }
                }
                obs.flush();
                if stdout.is_some() || stderr.is_some() {
                    obs.note("output pipes still open after every process ended; stopped reading".into());
                    break;
                }
            }
            line = next_line(&mut stdout) => {
                if let Some(line) = line {
                    last_output = Some(Instant::now());
                    take_batch(line, &mut stdout, Stream::Stdout, obs).await;
                }
            }
            line = next_line(&mut stderr) => {
                if let Some(line) = line {
                    last_output = Some(Instant::now());
                    take_batch(line, &mut stderr, Stream::Stderr, obs).await;
                }
            }
        }
    }
    // Group members killed above are our children (as a subreaper). Signals land
    // asynchronously: reap and re-check until none is left, so that the result is only
    // answered once no process of the task exists.
    let settle_until = TokioInstant::now() + DRAIN_BOUND;
    loop {
        reaper::reap_orphans();
        if !procs.any_left(false) || TokioInstant::now() >= settle_until {
            break;
        }
        procs.signal_all(Signal::SIGKILL, false);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if let Err(e) = procs.remove_cgroup() {
        obs.note(format!("the task's cgroup cannot be removed: {e}"));
    }
    match (stop, wait_error) {
        (Some(outcome), _) => outcome,
        (None, Some(e)) => Outcome::WaitFailed(e),
        (None, None) => Outcome::Exited(exit.unwrap_or_default()),
    }
}

type Lines = FramedRead<tokio::net::unix::pipe::Receiver, lines::LineDecoder>;

/// A line read from `pipe`, then the lines it has ready behind it, then the thread handed
/// back: tokio's budget counts pipe reads, not lines, so /ping and other tasks never wait
/// behind a flood.
async fn take_batch(first: Line, pipe: &mut Option<Lines>, stream: Stream, obs: &mut dyn Observer) {
    obs.line(stream, first);
    drain_ready(pipe, stream, obs);
    obs.flush();
    tokio::task::yield_now().await;
}

/// The next line of a pipe; sets the pipe to `None` at its end (or on a read error).
async fn next_line(pipe: &mut Option<Lines>) -> Option<Line> {
    let Some(stream) = pipe.as_mut() else {
        return std::future::pending().await;
    };
    match stream.next().await {
        Some(Ok(line)) => Some(line),
        Some(Err(_)) | None => {
            *pipe = None;
            None
        }
    }
}

/// Hands over lines that are already buffered, up to a batch, without waiting; how many.
fn drain_ready(pipe: &mut Option<Lines>, stream: Stream, obs: &mut dyn Observer) -> usize {
    let mut n = 0;
    for _ in 0..BATCH {
        match next_line(pipe).now_or_never() {
            Some(Some(line)) => {
                obs.line(stream, line);
                n += 1;
            }
            _ => break,
        }
    }
    n
}
