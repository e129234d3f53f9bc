//! Supervision with real children: TERM-ignoring shells, grandchildren holding stdout, setsid
//! escapees, huge lines, invalid UTF-8, unbuffered Python, many tasks, PID 1, SIGTERM.

mod common;

use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;
use serde_json::{json, Value};

#[tokio::test]
async fn a_term_ignoring_shell_and_its_background_sleeps_are_killed_at_the_deadline() {
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_KILL_GRACE_SECONDS", "0.5")
        .start()
        .await;
    let started = Instant::now();
    let r = w
        .run(json!({"taskType":"command.run","taskId":"stubborn","input":{
            "command":"sh -c \"trap '' TERM; sleep 100 & sleep 100 & echo started; while true; do sleep 1; done\"",
            "timeoutSeconds": 1}}))
        .await;
    assert_eq!(r["status"], "timed_out");
    assert!(started.elapsed() < Duration::from_secs(10));
    let notes: Vec<_> = events_of(&r, "task.log")
        .into_iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(notes.iter().any(|m| m.contains("SIGTERM")), "{notes:?}");
    assert!(notes.iter().any(|m| m.contains("SIGKILL")), "{notes:?}");
    assert!(
        task_processes("stubborn").is_empty(),
        "processes left: {:?}",
        task_processes("stubborn")
    );
    assert!(
        eventually(Duration::from_secs(3), || zombie_children(w.pid())
            .is_empty())
        .await
    );
}

#[tokio::test]
async fn a_grandchild_holding_stdout_does_not_hold_the_task_and_is_killed() {
    let w = WorkerBuilder::new().start().await;
    let started = Instant::now();
    let r = w
        .run(json!({"taskType":"command.run","taskId":"holder","input":{"command":"sh -c 'sleep 60 & echo leader done'"}}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["output"], "leader done\n");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(task_processes("holder").is_empty());
    assert!(
        eventually(Duration::from_secs(3), || zombie_children(w.pid())
            .is_empty())
        .await
    );
}

#[tokio::test]
async fn a_setsid_escapee_is_found_and_killed() {
    let w = WorkerBuilder::new().start().await;
    let r = w
        .run(json!({"taskType":"command.run","taskId":"escapee","input":{
            "command":"sh -c 'setsid sleep 60 >/dev/null 2>&1 < /dev/null & sleep 0.3; echo spawned'"}}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    assert!(
        task_processes("escapee").is_empty(),
        "left: {:?}",
        task_processes("escapee")
    );
    // Also when the escapee's parent is still alive at a cancel.
    let r = w
        .run(
            json!({"taskType":"command.run","taskId":"escapee2","async":true,"input":{
            "command":"sh -c 'setsid sh -c \"sleep 60\" & sleep 60'"}}),
        )
        .await;
    assert_eq!(r["status"], "running");
    assert!(
        eventually(Duration::from_secs(3), || task_processes("escapee2").len()
            >= 3)
        .await
    );
    let c = w
        .run(json!({"taskType":"task.cancel","taskId":"escapee2"}))
        .await;
    assert_eq!(c["status"], "cancelled");
    assert!(
        eventually(Duration::from_secs(2), || task_processes("escapee2")
            .is_empty())
        .await
    );
    assert!(
        eventually(Duration::from_secs(3), || zombie_children(w.pid())
            .is_empty())
        .await
    );
}

#[tokio::test]
async fn a_3mb_line_and_invalid_utf8_are_marked_and_the_next_line_still_arrives() {
    let w = WorkerBuilder::new().start().await;
    let r = w
        .run(cmd(r#"python3 -c "import sys; o=sys.stdout.buffer; o.write(b'x'*3000000+b'\n'); o.write(b'bad \xff\xfe bytes\n'); o.write(b'normal line\n')""#))
        .await;
    assert_eq!(r["ok"], true, "{}", r["error"]);
    let logs = events_of(&r, "task.log");
    assert_eq!(logs.len(), 3, "{}", logs.len());
    assert_eq!(logs[0]["payload"]["truncated"], true);
    assert_eq!(logs[0]["message"].as_str().unwrap().len(), 1_048_576);
    assert_eq!(logs[1]["payload"]["invalidUtf8"], true);
    assert_eq!(logs[1]["message"], "bad \u{fffd}\u{fffd} bytes");
    assert_eq!(logs[2]["message"], "normal line");
    assert!(logs[2]["payload"].get("truncated").is_none());
}

#[tokio::test]
async fn python_streams_line_by_line_without_pythonunbuffered_in_the_worker_env() {
    let w = WorkerBuilder::new()
        .env_remove("PYTHONUNBUFFERED")
        .start()
        .await;
    let body = cmd("python3 -c \"import time\nprint('first')\ntime.sleep(1.5)\nprint('second')\"");
    let started = Instant::now();
    let msgs = w.stream(&body).await;
    let first = msgs
        .iter()
        .find(|m| m.data["message"] == "first")
        .expect("first line");
    let last = msgs.last().unwrap();
    assert_eq!(last.data["ok"], true);
    assert!(
        last.at.duration_since(first.at) > Duration::from_millis(1000),
        "first line arrived {:?} after start, end {:?}",
        first.at.duration_since(started),
        last.at.duration_since(started)
    );
}

#[tokio::test]
async fn two_hundred_tasks_from_four_clients_leak_no_fd_and_no_zombie() {
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_MAX_CONCURRENT_TASKS", "16")
        .start()
        .await;
    w.run(cmd("true")).await;
    let fds_before = fd_count(w.pid());
    let url = w.url.clone();
    let mut clients = Vec::new();
    for c in 0..4 {
        let url = url.clone();
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for i in 0..50 {
                let body = match i % 3 {
                    0 => json!({"prompt": format!("c{c}-{i}")}),
                    1 => cmd(&format!("echo c{c}-{i}")),
                    _ => cmd(&format!("sh -c 'echo c{c}-{i} >&2; exit {}'", i % 5)),
                };
                let r: serde_json::Value = client
                    .post(format!("{url}/invocations"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                match i % 3 {
                    0 => assert_eq!(r["output"], format!("Accepted instruction: c{c}-{i}")),
                    1 => assert_eq!(r["output"], format!("c{c}-{i}\n")),
                    _ => {
                        assert_eq!(r["ok"], i % 5 == 0, "{r}");
                        assert_eq!(r["exitCode"], i % 5);
                        assert_eq!(events_of(&r, "task.log")[0]["message"], format!("c{c}-{i}"));
                    }
                }
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    assert!(
        eventually(Duration::from_secs(3), || zombie_children(w.pid())
            .is_empty())
        .await
    );
    // Keep-alive connections of the four clients are closed with their clients.
    assert!(
        eventually(Duration::from_secs(3), || fd_count(w.pid())
            <= fds_before + 1)
        .await,
        "fds {} -> {}",
        fds_before,
        fd_count(w.pid())
    );
}

#[tokio::test]
async fn as_pid_1_in_a_fresh_pid_namespace_the_worker_reaps_orphans() {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self").unwrap().uid() != 0 {
        panic!("this test needs root for unshare --pid (CI runs as root)");
    }
    // Without task cgroups: the unmarked orphan below must outlive its task (a task cgroup
    // would kill it with the task), so that PID 1's own reaping of it is what is tested.
    let mut w = WorkerBuilder::new()
        .env("AGENTDISPATCH_TASK_CGROUPS", "off")
        .wrapper(&["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"])
        .start()
        .await;
    // Orphans: the leader exits while a double-forked grandchild keeps running briefly.
    for i in 0..5 {
        let r = w
            .run(cmd(&format!(
                "sh -c '(sh -c \"sleep 0.2; exit {i}\" &) ; echo parent-{i}'"
            )))
            .await;
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["exitCode"], 0);
    }
    // An orphan the task machinery cannot recognise (new session, empty environment) outlives
    // its task, exits later, and must still be reaped by PID 1.
    let r = w
        .run(cmd("sh -c '(env -i setsid sh -c \"sleep 1.5\" >/dev/null 2>&1 &) ; sleep 0.3; echo unmarked'"))
        .await;
    assert_eq!(r["output"], "unmarked\n");
    let r = w.run(cmd("sh -c 'exit 7'")).await;
    assert_eq!(
        r["exitCode"], 7,
        "the worker's own child status is never stolen"
    );
    // The worker is PID 1 of its namespace: its pid there is 1 and zombies never pile up.
    let inner = std::fs::read_to_string("/proc/self/status").unwrap();
    assert!(inner.contains("Pid:"));
    let worker_pid = find_child_pid(w.pid()).expect("worker inside unshare");
    let nspid = std::fs::read_to_string(format!("/proc/{worker_pid}/status")).unwrap();
    let nspid_line = nspid
        .lines()
        .find(|l| l.starts_with("NSpid:"))
        .unwrap()
        .to_string();
    assert!(nspid_line.trim_end().ends_with("\t1"), "{nspid_line}");
    let sleepers = || children_with_state(worker_pid).len();
    assert!(
        sleepers() >= 1,
        "the unmarked orphan should still be sleeping"
    );
    assert!(
        eventually(Duration::from_secs(3), || sleepers() == 0).await,
        "orphans left: {}",
        sleepers()
    );
    assert!(zombie_children(worker_pid).is_empty());
    // unshare does not forward signals: SIGTERM goes to the worker itself, and unshare exits
    // with the worker's status.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(worker_pid), Signal::SIGTERM).unwrap();
    assert_eq!(w.wait_exit(Duration::from_secs(10)), Some(0));
}

/// The first child of `pid` (the worker under `unshare --fork`).
fn find_child_pid(pid: i32) -> Option<i32> {
    children_with_state(pid).first().map(|(p, _)| *p)
}

#[tokio::test]
async fn sigterm_cancels_running_tasks_writes_their_results_answers_and_exits_0() {
    let mut w = WorkerBuilder::new()
        .env("AGENTDISPATCH_SHUTDOWN_GRACE_SECONDS", "4")
        .env("AGENTDISPATCH_KILL_GRACE_SECONDS", "1")
        .start()
        .await;
    let url = w.url.clone();
    let pending = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("{url}/invocations"))
            .json(&json!({"taskType":"command.run","taskId":"inflight","input":{"command":"sh -c \"trap '' TERM; sleep 60\""}}))
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    });
    assert!(
        eventually(Duration::from_secs(5), || !task_processes("inflight")
            .is_empty())
        .await
    );
    let started = Instant::now();
    w.signal(Signal::SIGTERM);
    let answer = pending.await.unwrap();
    assert_eq!(answer["status"], "cancelled");
    assert_eq!(answer["errorCode"], "cancelled");
    let code = w.wait_exit(Duration::from_secs(8));
    assert_eq!(code, Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let result = std::fs::read_to_string(w.task_dir("inflight").join("result.json")).unwrap();
    assert!(result.contains("\"cancelled\""), "{result}");
    assert!(task_processes("inflight").is_empty());
}

// The same supervision for a framework task spawned cold and one forked by a warm parent: the
// `pyfixture` framework execs the shell given after `sh` with the protocol pipe as its stdout.

/// Runs `script` as a `pyfixture` shell task of `kind`; asserts that it started as `kind`.
async fn shell_task(w: &Worker, kind: Kind, id: &str, script: &str, timeout: Option<u64>) -> Value {
    let mut body = fixture(id, &format!("sh {script}"));
    if let Some(t) = timeout {
        body["input"]["timeoutSeconds"] = json!(t);
    }
    let r = w.run(body).await;
    match kind {
        Kind::Warm => assert!(forked_from(&r).is_some(), "not warm: {r:#}"),
        Kind::Cold => assert!(forked_from(&r).is_none(), "not cold: {r:#}"),
    }
    r
}

#[tokio::test]
async fn cold_and_warm_a_term_ignoring_shell_and_its_sleeps_are_killed_at_the_deadline() {
    for kind in [Kind::Cold, Kind::Warm] {
        let w = fixture_worker(
            kind,
            WorkerBuilder::new().env("AGENTDISPATCH_KILL_GRACE_SECONDS", "0.5"),
        )
        .await;
        let id = format!("stubborn-{kind:?}-{}", std::process::id());
        let r = shell_task(
            &w,
            kind,
            &id,
            "trap '' TERM; sleep 100 & sleep 100 & echo started; while true; do sleep 1; done",
            Some(3),
        )
        .await;
        assert_eq!(r["status"], "timed_out", "{kind:?}: {r:#}");
        let notes: Vec<_> = events_of(&r, "task.log")
            .into_iter()
            .filter_map(|e| e["message"].as_str())
            .collect();
        assert!(notes.iter().any(|m| m.contains("SIGTERM")), "{notes:?}");
        assert!(notes.iter().any(|m| m.contains("SIGKILL")), "{notes:?}");
        assert!(
            task_processes(&id).is_empty(),
            "{kind:?}: left {:?}",
            task_processes(&id)
        );
        assert!(
            eventually(Duration::from_secs(3), || zombie_children(w.pid())
                .is_empty())
            .await
        );
    }
}

#[tokio::test]
async fn cold_and_warm_a_grandchild_holding_stdout_is_killed_and_output_kept() {
    for kind in [Kind::Cold, Kind::Warm] {
        let w = fixture_worker(kind, WorkerBuilder::new()).await;
        let id = format!("holder-{kind:?}-{}", std::process::id());
        let r = shell_task(&w, kind, &id, "sleep 60 & echo leader done", None).await;
        assert_eq!(r["ok"], true, "{kind:?}: {r:#}");
        assert_eq!(r["output"], "leader done\n", "{kind:?}");
        // Killed by the time of the answer; gone from /proc once the kernel has torn it down
        // (and, warm, once the task's memory holder, which carries the task's id, has exited
        // right after the task): well before the holder's `sleep 60` would end.
        assert!(
            eventually(Duration::from_secs(3), || task_processes(&id).is_empty()).await,
            "{kind:?}: left {:?}",
            task_processes(&id)
        );
        assert!(
            eventually(Duration::from_secs(3), || zombie_children(w.pid())
                .is_empty())
            .await
        );
    }
}

#[tokio::test]
async fn cold_and_warm_setsid_escapees_are_found_and_killed() {
    for kind in [Kind::Cold, Kind::Warm] {
        let w = fixture_worker(kind, WorkerBuilder::new()).await;
        // A shell escapee (exec'd, so its environment is the task's).
        let id = format!("escapee-{kind:?}-{}", std::process::id());
        let r = shell_task(
            &w,
            kind,
            &id,
            "setsid sleep 60 >/dev/null 2>&1 < /dev/null & sleep 0.3; echo spawned",
            None,
        )
        .await;
        assert_eq!(r["ok"], true, "{kind:?}: {r:#}");
        assert!(
            task_processes(&id).is_empty(),
            "{kind:?}: left {:?}",
            task_processes(&id)
        );
        // A Python escapee that never execs: fork, setsid, fork, no pipes. Warm, it is found
        // only through the task id the forked child wrote over its environment block.
        let id = format!("pyescape-{kind:?}-{}", std::process::id());
        let r = w.fixture_task(kind, &id, "pyescape").await;
        assert_eq!(r["output"], "spawned", "{kind:?}: {r:#}");
        let notes: Vec<_> = events_of(&r, "task.log")
            .into_iter()
            .filter_map(|e| e["message"].as_str())
            .collect();
        assert!(
            notes.iter().any(|m| m.contains("left behind")),
            "{kind:?}: the escapee was not found: {notes:?}"
        );
        // A warm task's memory holder shows its marker until it has torn the memory down,
        // which it does after the answer: it is no task process, but it must end too.
        let holder = holder_of(&r);
        let left: Vec<i32> = task_processes(&id)
            .into_iter()
            .filter(|p| Some(*p) != holder)
            .collect();
        assert!(left.is_empty(), "{kind:?}: left {left:?}");
        if let Some(holder) = holder {
            assert!(
                eventually(Duration::from_secs(10), || state(holder).is_none()).await,
                "{kind:?}: the holder {holder} outlived its task"
            );
        }
        assert!(
            eventually(Duration::from_secs(3), || zombie_children(w.pid())
                .is_empty())
            .await
        );
    }
}

#[tokio::test]
async fn cold_and_warm_a_3mb_line_and_invalid_utf8_are_marked() {
    for kind in [Kind::Cold, Kind::Warm] {
        let w = fixture_worker(kind, WorkerBuilder::new()).await;
        let id = format!("lines-{kind:?}-{}", std::process::id());
        let r = shell_task(
            &w,
            kind,
            &id,
            r"head -c 3000000 /dev/zero | tr '\0' x; echo; printf 'bad \377\376 bytes\n'; echo normal line",
            None,
        )
        .await;
        assert_eq!(r["ok"], true, "{kind:?}: {}", r["error"]);
        let logs: Vec<_> = events_of(&r, "task.log")
            .into_iter()
            .filter(|e| e["payload"]["stream"] == "stdout")
            .collect();
        assert_eq!(logs.len(), 3, "{kind:?}");
        assert_eq!(logs[0]["payload"]["truncated"], true);
        assert_eq!(logs[0]["message"].as_str().unwrap().len(), 1_048_576);
        assert_eq!(logs[1]["payload"]["invalidUtf8"], true);
        assert_eq!(logs[1]["message"], "bad \u{fffd}\u{fffd} bytes");
        assert_eq!(logs[2]["message"], "normal line");
    }
}
