//! A cgroup per task (SPEC §8), through the real binary: an escapee that leaves the process
//! group, the session and the marker behind is still killed, cold and warm, at the end, on
//! cancel and at the deadline; task cgroups are removed; a killed worker's tree is removed by
//! the next start; without a writable cgroup2 everything runs as before and the worker says why.
//!
//! These tests need a writable cgroup v2 hierarchy. Where the worker finds none, they fail
//! saying so, unless `AGENTDISPATCH_TEST_WITHOUT_CGROUPS=1` is set: then each prints that it
//! checked nothing.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use nix::sys::signal::Signal;
use serde_json::{json, Value};

/// The worker's tree of task cgroups, from its start-up line; `None` (said on stderr) where
/// it has none and the environment allows that.
#[track_caller]
fn tree_of(w: &Worker) -> Option<PathBuf> {
    let line = w
        .log_lines()
        .into_iter()
        .find(|l| l.get("taskCgroups").is_some())
        .expect("the worker says at start-up whether tasks get cgroups");
    if line["taskCgroups"] == true {
        return Some(PathBuf::from(line["cgroup"].as_str().unwrap()));
    }
    let reason = line["reason"].as_str().unwrap_or("?");
    if std::env::var_os("AGENTDISPATCH_TEST_WITHOUT_CGROUPS").is_some() {
        eprintln!("SKIPPED: no task cgroups on this machine ({reason}); nothing was checked");
        return None;
    }
    panic!(
        "the worker gives tasks no cgroup here ({reason}), so these tests cannot run; \
         set AGENTDISPATCH_TEST_WITHOUT_CGROUPS=1 to let them pass without checking anything"
    );
}

/// The cgroups directly in `dir`, by name.
fn cgroups_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The cgroups in `tree` that tasks use: all but the one made ahead for a warm parent's idle
/// spare, which moves itself in while it waits (docs/cgroups.md). Waits for that spare to
/// be in it, and says if more than one such cgroup exists (one per warm parent).
async fn cgroups_in_use(tree: &Path) -> Vec<String> {
    let in_use = || {
        let all = cgroups_in(tree);
        let spares = all
            .iter()
            .filter(|n| holds_only_a_spare(&tree.join(n)))
            .count();
        assert!(spares <= 1, "more than one spare's cgroup: {all:?}");
        all.into_iter()
            .filter(|n| !holds_only_a_spare(&tree.join(n)))
            .collect::<Vec<_>>()
    };
    // A spare's cgroup is empty for the moment between its making and the spare's move.
    eventually(Duration::from_secs(5), || in_use() == ["worker"]).await;
    in_use()
}

/// Whether the only processes in the cgroup `dir` are idle warm spares: they carry the marker
/// placeholder (underscores), not a task's id.
fn holds_only_a_spare(dir: &Path) -> bool {
    let pids = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    let pids: Vec<&str> = pids.split_whitespace().collect();
    !pids.is_empty()
        && pids.iter().all(|pid| {
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            env.split(|b| *b == 0).any(|e| {
                e.strip_prefix(b"AGENTDISPATCH_TASK_ID=")
                    .is_some_and(|v| !v.is_empty() && v.iter().all(|b| *b == b'_'))
            })
        })
}

/// Writes the escapee scripts into `dir`; returns the shell line that runs the task.
///
/// The task forks twice (a subshell, then a background job), the grandchild calls `setsid`,
/// points its descriptors at `/dev/null`, drops `AGENTDISPATCH_TASK_ID` from its environment,
/// and only then writes its pid into the task folder and execs a loop that ignores SIGTERM (so
/// that the leader cannot end while the escapee still carries the marker). Then
/// the leader prints `spawned` and runs `then` (`true` to end at once). `first` runs before
/// all that.
fn escapee_task(dir: &Path, first: &str, then: &str) -> String {
    let escapee = script(
        dir,
        "escapee.sh",
        "#!/bin/sh\ntrap '' TERM\nwhile :; do sleep 1; done\n",
    );
    let task = script(
        dir,
        "task.sh",
        &format!(
            r#"#!/bin/sh
{first}
d="$AGENTDISPATCH_TASK_DIR"
( setsid env -u AGENTDISPATCH_TASK_ID sh -c 'echo $$ > "$1/escapee.pid"; exec sh "$2"' escapee "$d" "{}" </dev/null >/dev/null 2>&1 & )
while [ ! -s "$d/escapee.pid" ]; do sleep 0.01; done
echo spawned
{then}
"#,
            escapee.display()
        ),
    );
    format!("sh {}", task.display())
}

/// The escapee's pid, once it wrote it and (if the task still runs) exec'd its loop.
async fn escapee_pid(w: &Worker, id: &str) -> i32 {
    let file = w.task_dir(id).join("escapee.pid");
    let pid = || {
        std::fs::read_to_string(&file)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
    };
    assert!(
        eventually(Duration::from_secs(10), || pid().is_some()).await,
        "{id}: the escapee never wrote its pid"
    );
    let pid = pid().unwrap();
    eventually(Duration::from_secs(5), || {
        escapee_alive(pid) || state(pid).is_none_or(|s| s == 'Z')
    })
    .await;
    pid
}

/// Whether the escapee `pid` runs (not a zombie, and `sh …/escapee.sh`: past its `env`).
fn escapee_alive(pid: i32) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    state(pid).is_some_and(|s| s != 'Z')
        && args.len() >= 2
        && args[0] == b"sh"
        && args[1].ends_with(b"escapee.sh")
}

/// The escapee really has no marker: only its cgroup can find it.
#[track_caller]
fn assert_unmarked(pid: i32, id: &str) {
    let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    let marker = format!("AGENTDISPATCH_TASK_ID={id}");
    assert!(
        !env.split(|b| *b == 0).any(|e| e == marker.as_bytes()),
        "the escapee kept {marker}"
    );
}

/// The task's `task.log` messages, from its answer.
fn notes(r: &Value) -> Vec<String> {
    events_of(r, "task.log")
        .into_iter()
        .filter_map(|e| e["message"].as_str().map(str::to_string))
        .collect()
}

/// The task's `task.log` messages, from `events.ndjson` in its folder.
fn folder_notes(w: &Worker, id: &str) -> Vec<String> {
    w.folder_events(id)
        .into_iter()
        .filter(|e| e["type"] == "task.log")
        .filter_map(|e| e["message"].as_str().map(str::to_string))
        .collect()
}

/// A payload that runs `line` as a `command.run` (cold) or a `pyfixture` shell task.
fn task_payload(kind: Option<Kind>, id: &str, line: &str) -> Value {
    match kind {
        None => json!({"taskType":"command.run","taskId":id,"input":{"command":line}}),
        // `exec`: the task's script is the leader, as in a command.run.
        Some(_) => fixture(id, &format!("sh exec {line}")),
    }
}

#[tokio::test]
async fn the_start_up_line_says_whether_tasks_get_cgroups_and_the_worker_is_in_its_tree() {
    let w = WorkerBuilder::new().start().await;
    let Some(tree) = tree_of(&w) else { return };
    assert!(tree.is_dir(), "{}", tree.display());
    let own = std::fs::read_to_string(format!("/proc/{}/cgroup", w.pid())).unwrap();
    let name = tree.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        own.lines()
            .any(|l| l.starts_with("0::") && l.ends_with(&format!("/{name}/worker"))),
        "the worker is not in its tree's worker leaf: {own}"
    );
    assert_eq!(cgroups_in(&tree), vec!["worker".to_string()]);

    let off = WorkerBuilder::new()
        .env("AGENTDISPATCH_TASK_CGROUPS", "off")
        .start()
        .await;
    let line = cgroups_line(&off);
    assert_eq!(line["taskCgroups"], false, "{line}");
    assert_eq!(line["reason"], "AGENTDISPATCH_TASK_CGROUPS=off", "{line}");
    let own = std::fs::read_to_string(format!("/proc/{}/cgroup", off.pid())).unwrap();
    assert!(!own.contains("/agentdispatch."), "{own}");
}

#[tokio::test]
async fn cold_and_warm_a_double_forked_setsid_escapee_without_the_marker_is_killed_with_its_task() {
    let dir = tempfile::tempdir().unwrap();
    let line = escapee_task(dir.path(), "", "true");
    for kind in [None, Some(Kind::Cold), Some(Kind::Warm)] {
        let w = match kind {
            None => WorkerBuilder::new().start().await,
            Some(k) => fixture_worker(k, WorkerBuilder::new()).await,
        };
        let Some(tree) = tree_of(&w) else { return };
        let id = format!("unmarked-{kind:?}-{}", std::process::id()).replace(['(', ')'], "");
        let r = w.run(task_payload(kind, &id, &line)).await;
        assert_eq!(r["status"], "succeeded", "{kind:?}: {r:#}");
        assert_eq!(r["output"], "spawned\n", "{kind:?}");
        if kind == Some(Kind::Warm) {
            assert!(forked_from(&r).is_some(), "not forked warm: {r:#}");
        }
        let pid = escapee_pid(&w, &id).await;
        // The answer comes only once no process of the task is left.
        assert!(
            !escapee_alive(pid),
            "{kind:?}: the escapee {pid} outlived its task"
        );
        let notes = notes(&r);
        assert!(
            notes
                .iter()
                .any(|m| m.contains("found only through the task's cgroup")),
            "{kind:?}: the events do not say the cgroup found it: {notes:?}"
        );
        // Its cgroup is gone; only the worker's own leaf is left in the tree.
        assert_eq!(cgroups_in_use(&tree).await, ["worker"], "{kind:?}");
        assert!(
            eventually(Duration::from_secs(3), || zombie_children(w.pid())
                .is_empty())
            .await
        );
    }
}

#[tokio::test]
async fn a_warm_task_runs_in_the_cgroup_its_spare_entered_before_the_request() {
    // The first warm task's process was forked before any request (no cgroup was made for it
    // yet): the worker moves it into a cgroup named after the task. Every later one is a spare
    // that moved itself into a cgroup made for it with the request before: the task finds
    // itself there, and the fork event names it.
    let w = fixture_worker(Kind::Warm, WorkerBuilder::new()).await;
    let Some(tree) = tree_of(&w) else { return };
    let mut seen = Vec::new();
    for n in 0..4 {
        let id = format!("cg-ahead-{n}");
        let r = w.run(fixture(&id, "cgroup")).await;
        assert_eq!(r["status"], "succeeded", "{r:#}");
        assert!(forked_from(&r).is_some(), "not forked warm: {r:#}");
        let fork = events_of(&r, "task.log")
            .into_iter()
            .find(|e| e["payload"]["warm"] == true)
            .unwrap();
        let name = fork["payload"]["cgroup"]
            .as_str()
            .expect("the fork event names the cgroup");
        let own = r["output"].as_str().unwrap();
        assert!(
            own.ends_with(&format!(
                "/{}/{name}",
                tree.file_name().unwrap().to_string_lossy()
            )),
            "task {n} runs in {own}, not in the cgroup {name} its fork event names"
        );
        if n == 0 {
            assert!(name.ends_with(&format!(".{id}")), "{name}");
        } else {
            assert!(
                name.starts_with("task.") && name[5..].bytes().all(|b| b.is_ascii_digit()),
                "task {n} was not in the cgroup made ahead for its spare: {name}"
            );
        }
        assert!(!seen.contains(&name.to_string()), "{name} used twice");
        seen.push(name.to_string());
    }
    assert_eq!(cgroups_in_use(&tree).await, ["worker"]);
}

#[tokio::test]
async fn without_task_cgroups_that_escapee_outlives_its_task() {
    // What holds where cgroup v2 is not writable (docs/cgroups.md): the same task
    // succeeds and its unmarked escapee keeps running.
    let dir = tempfile::tempdir().unwrap();
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_TASK_CGROUPS", "off")
        .start()
        .await;
    let id = "unmarked-off";
    let r = w
        .run(task_payload(
            None,
            id,
            &escapee_task(dir.path(), "", "true"),
        ))
        .await;
    assert_eq!(r["status"], "succeeded", "{r:#}");
    let pid = escapee_pid(&w, id).await;
    let alive = escapee_alive(pid);
    assert_unmarked(pid, id);
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
    assert!(
        alive,
        "without cgroups the unmarked escapee was found after all"
    );
}

#[tokio::test]
async fn cold_and_warm_cancel_and_deadline_kill_the_whole_cgroup() {
    let dir = tempfile::tempdir().unwrap();
    // The leader ignores SIGTERM too: the grace passes and SIGKILL goes to the cgroup.
    let line = escapee_task(dir.path(), "trap '' TERM", "sleep 60");
    for kind in [Kind::Cold, Kind::Warm] {
        let w = fixture_worker(
            kind,
            WorkerBuilder::new().env("AGENTDISPATCH_KILL_GRACE_SECONDS", "0.5"),
        )
        .await;
        let Some(tree) = tree_of(&w) else { return };

        // Cancel: SIGTERM to the group and the cgroup; the escapee ignores it; SIGKILL after
        // the grace.
        let id = format!("cg-cancel-{kind:?}-{}", std::process::id());
        let mut body = task_payload(Some(kind), &id, &line);
        body["async"] = json!(true);
        let r = w.run(body).await;
        assert_eq!(r["status"], "running", "{kind:?}: {r:#}");
        let pid = escapee_pid(&w, &id).await;
        assert_unmarked(pid, &id);
        assert!(escapee_alive(pid));
        let tasks = || -> Vec<String> {
            cgroups_in(&tree)
                .into_iter()
                .filter(|n| n != "worker" && !holds_only_a_spare(&tree.join(n)))
                .collect()
        };
        // The next spare's cgroup is empty between its making and the spare's move (a loaded
        // machine saw it so): wait for that move, as `cgroups_in_use` does.
        eventually(Duration::from_secs(5), || tasks().len() == 1).await;
        let tasks = tasks();
        assert_eq!(tasks.len(), 1, "{kind:?}: the task's cgroup: {tasks:?}");
        let c = w.run(json!({"taskType":"task.cancel","taskId":id})).await;
        assert_eq!(c["status"], "cancelled", "{c:#}");
        let r = w.wait_done(&id).await;
        assert_eq!(r["status"], "cancelled", "{kind:?}: {r:#}");
        assert!(
            !escapee_alive(pid),
            "{kind:?}: the escapee survived a cancel"
        );
        let notes = folder_notes(&w, &id);
        assert!(
            notes
                .iter()
                .any(|m| m.starts_with("cancelled: SIGTERM to process group")
                    && m.contains("and cgroup task.")),
            "{kind:?}: {notes:?}"
        );
        assert!(
            notes.iter().any(
                |m| m.starts_with("grace of 500ms passed: SIGKILL to process group")
                    && m.contains("and cgroup task.")
            ),
            "{kind:?}: {notes:?}"
        );
        assert_eq!(cgroups_in_use(&tree).await, ["worker"], "{kind:?}");

        // Deadline.
        let id = format!("cg-deadline-{kind:?}-{}", std::process::id());
        let mut body = task_payload(Some(kind), &id, &line);
        body["input"]["timeoutSeconds"] = json!(1);
        let r = w.run(body).await;
        assert_eq!(r["status"], "timed_out", "{kind:?}: {r:#}");
        let pid = escapee_pid(&w, &id).await;
        assert!(
            !escapee_alive(pid),
            "{kind:?}: the escapee survived the deadline"
        );
        assert_eq!(cgroups_in_use(&tree).await, ["worker"], "{kind:?}");
    }
}

#[tokio::test]
async fn the_tree_is_removed_at_exit_and_a_killed_worker_s_tree_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let line = escapee_task(dir.path(), "", "sleep 60");

    // A clean exit: SIGTERM cancels the task, and the tree goes with the worker.
    let mut w = WorkerBuilder::new()
        .env("AGENTDISPATCH_KILL_GRACE_SECONDS", "0.5")
        .start()
        .await;
    let Some(tree) = tree_of(&w) else { return };
    let mut body = task_payload(None, "at-exit", &line);
    body["async"] = json!(true);
    assert_eq!(w.run(body).await["status"], "running");
    let pid = escapee_pid(&w, "at-exit").await;
    w.signal(Signal::SIGTERM);
    assert_eq!(w.wait_exit(Duration::from_secs(15)), Some(0));
    assert!(
        !escapee_alive(pid),
        "the escapee outlived the worker's exit"
    );
    assert!(!tree.exists(), "{} is still there", tree.display());

    // kill -9: the task leader dies with the worker (parent-death signal), the escapee (no
    // such signal after its forks) runs on in the dead worker's tree...
    let mut w = WorkerBuilder::new().start().await;
    let Some(tree) = tree_of(&w) else { return };
    let mut body = task_payload(None, "killed", &line);
    body["async"] = json!(true);
    assert_eq!(w.run(body).await["status"], "running");
    let pid = escapee_pid(&w, "killed").await;
    assert!(cgroups_in(&tree).iter().any(|n| n.starts_with("task.")));
    w.signal(Signal::SIGKILL);
    w.wait_exit(Duration::from_secs(5));

    // ...until the next worker starts beside it: the tree's worker leaf is empty, so its
    // task cgroups are killed and it is removed. (Any worker starting now removes it, so the
    // escapee is not checked in between: tests run side by side.)
    let next = WorkerBuilder::new().start().await;
    if tree_of(&next).is_none() {
        return;
    }
    assert!(
        eventually(Duration::from_secs(5), || !escapee_alive(pid)).await,
        "the escapee of the killed worker is still running"
    );
    assert!(
        eventually(Duration::from_secs(5), || !tree.exists()).await,
        "{} is still there",
        tree.display()
    );
}

#[tokio::test]
async fn on_a_read_only_cgroup2_tasks_run_as_before_and_the_worker_says_why() {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self").unwrap().uid() != 0 {
        panic!("this test needs root for unshare --mount (CI runs as root)");
    }
    // The cgroup2 mount, bind-remounted read-only in a private mount namespace of the worker.
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let Some(point) = mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        right
            .starts_with("cgroup2 ")
            .then(|| left.split(' ').nth(4).map(str::to_string))?
    }) else {
        eprintln!("SKIPPED: no cgroup2 mount here; nothing was checked");
        return;
    };
    let w = WorkerBuilder::new()
        .wrapper(&[
            "unshare",
            "--mount",
            "sh",
            "-c",
            r#"mount -o remount,bind,ro "$0" && exec "$@""#,
            &point,
        ])
        .start()
        .await;
    let line = cgroups_line(&w);
    assert_eq!(line["taskCgroups"], false, "{line}");
    assert!(
        line["reason"].as_str().unwrap().contains("read-only"),
        "{line}"
    );
    let r = w
        .run(json!({"taskType":"command.run","input":{"command":"sh -c 'sleep 60 & echo ok'"}}))
        .await;
    assert_eq!(r["output"], "ok\n", "{r:#}");
    assert_eq!(r["status"], "succeeded");
}

/// The start-up log line that says whether tasks get cgroups.
fn cgroups_line(w: &Worker) -> Value {
    w.log_lines()
        .into_iter()
        .find(|l| l.get("taskCgroups").is_some())
        .expect("a taskCgroups line at start-up")
}
