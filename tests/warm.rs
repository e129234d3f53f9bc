//! Warm starts (SPEC §6.3) through the real binary, on the `pyfixture` framework: a warm task is
//! a fresh process each time, cancel and deadline leave nothing, a warm parent killed from
//! outside is restarted, a parent that is not fork-safe falls back to cold with the reason, the
//! `AGENTDISPATCH_WARM` policies, and nothing is left after SIGTERM or SIGKILL of the worker.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

fn output_json(r: &Value) -> Value {
    serde_json::from_str(r["output"].as_str().unwrap_or("")).unwrap_or_else(|_| panic!("{r:#}"))
}

fn alive(pid: i32) -> bool {
    state(pid).is_some_and(|s| s != 'Z')
}

/// The field `key` of the `warm parent ready` line of `framework`.
fn ready_field(w: &Worker, framework: &str, key: &str) -> Option<String> {
    w.log_lines()
        .into_iter()
        .find(|l| l["message"] == "warm parent ready" && l["framework"] == framework)
        .and_then(|l| l[key].as_str().map(str::to_string))
}

/// The fork mode the warm parent of `framework` reported ready with.
fn fork_mode(w: &Worker, framework: &str) -> String {
    ready_field(w, framework, "fork").unwrap_or_default()
}

/// Why the warm parent of `framework` makes spares with two forks, if it said.
fn fork_why(w: &Worker, framework: &str) -> Option<String> {
    ready_field(w, framework, "forkWhy")
}

#[tokio::test]
async fn a_warm_task_is_a_fresh_process_of_its_own_each_time_with_the_task_environment() {
    // Both ways a spare becomes the worker's child: one clone(CLONE_PARENT) (the default where
    // the architecture is known), and two forks (AGENTDISPATCH_WARM_CLONE=0, the fallback).
    for (clone, mode) in [("1", "clone"), ("0", "double")] {
        let w = fixture_worker(
            Kind::Warm,
            WorkerBuilder::new().env("AGENTDISPATCH_WARM_CLONE", clone),
        )
        .await;
        let got = fork_mode(&w, "pyfixture");
        if mode == "clone" && std::env::var_os("AGENTDISPATCH_TEST_WORKER").is_some() && got != mode
        {
            // Under an emulated worker (scripts/test-arm64.sh) the fallback must say why.
            eprintln!(
                "fork mode {got} under emulation: {:?}",
                fork_why(&w, "pyfixture")
            );
            assert!(fork_why(&w, "pyfixture").is_some());
        } else {
            assert_eq!(got, mode, "{:?}", fork_why(&w, "pyfixture"));
        }
        a_warm_task_is_a_fresh_process(&w, mode).await;
    }
}

async fn a_warm_task_is_a_fresh_process(w: &Worker, mode: &str) {
    let parent = w.warm_ready("pyfixture", 1).await;
    let mut pids = HashSet::new();
    let mut draws = HashSet::new();
    for i in 0..4 {
        let id = format!("fresh-{mode}-{i}-{}", std::process::id());
        let r = w.fixture_task(Kind::Warm, &id, "state").await;
        assert_eq!(r["ok"], true, "{r:#}");
        assert_eq!(forked_from(&r), Some(parent));
        let s = output_json(&r);
        let pid = s["pid"].as_u64().unwrap();
        assert!(pids.insert(pid), "pid {pid} served two tasks");
        assert_ne!(pid, parent);
        // Its own session and group, a child of the worker, no state from other tasks.
        assert_eq!(s["pgid"], s["pid"], "{s}");
        assert_eq!(s["sid"], s["pid"], "{s}");
        assert_eq!(s["ppid"], w.pid(), "{s}");
        assert_eq!(s["runs"], 1, "module state leaked between tasks: {s}");
        // Python's at-fork hooks ran (random reseeds), and glibc knows the process's own tid.
        assert!(
            draws.insert(s["random"].to_string()),
            "the same random draw twice: {s}"
        );
        assert_eq!(s["mainThreadReachable"], true, "{s}");
        assert_eq!(s["taskIdEnv"], id.as_str());
        assert_eq!(s["taskDirEnv"], w.task_dir(&id).to_str().unwrap());
        assert_eq!(s["fixtureEnv"], "from-manifest");
        assert_eq!(s["warmFd"], Value::Null, "the control channel leaked: {s}");
        assert_eq!(
            s["cwd"],
            fixture_frameworks().join("pyfixture").to_str().unwrap()
        );
        // Heartbeats name the task's own pid; the exit status is its own.
        let hb = events_of(&r, "task.heartbeat");
        assert_eq!(hb[0]["payload"]["pid"], pid, "{hb:?}");
        assert_eq!(r["exitCode"], 0);
        assert!(w.task_dir(&id).join("result.json").is_file());
    }
    // Only the warm parent (and its spare) remain: not tasks, not busy, not listed.
    assert!(alive(parent as i32));
    assert_eq!(w.ping().await["status"], "Healthy");
    let list = w.run(json!({"taskType":"task.list"})).await;
    assert_eq!(list["tasks"].as_array().map(Vec::len), Some(4), "{list:#}");

    assert!(
        eventually(Duration::from_secs(3), || zombie_children(w.pid())
            .is_empty())
        .await
    );
}

#[tokio::test]
async fn a_failing_warm_task_reports_its_exit_status_and_error_like_a_cold_one() {
    for kind in [Kind::Cold, Kind::Warm] {
        let w = fixture_worker(kind, WorkerBuilder::new()).await;
        let r = w
            .fixture_task(kind, &format!("fail-{kind:?}"), "nonsense")
            .await;
        assert_eq!(r["ok"], false, "{kind:?}: {r:#}");
        assert_eq!(r["exitCode"], 1, "{kind:?}");
        assert_eq!(r["errorCode"], "exit_nonzero");
        let error = r["error"].as_str().unwrap();
        assert!(
            error.ends_with(
                "pyfixture runner failed: ValueError: unknown fixture instruction 'nonsense'"
            ),
            "{kind:?}: {error}"
        );
        let r = w
            .fixture_task(kind, &format!("kill-{kind:?}"), "sh kill -9 $$")
            .await;
        assert_eq!(r["errorCode"], "killed", "{kind:?}: {r:#}");
        assert!(r["error"].as_str().unwrap().contains("SIGKILL"), "{r:#}");
    }
}

#[tokio::test]
async fn cancel_and_deadline_stop_a_warm_child_and_leave_nothing() {
    let w = fixture_worker(
        Kind::Warm,
        WorkerBuilder::new().env("AGENTDISPATCH_KILL_GRACE_SECONDS", "0.5"),
    )
    .await;
    let id = format!("warm-cancel-{}", std::process::id());
    let mut body = fixture(&id, "sleep 60");
    body["async"] = json!(true);
    let r = w.run(body).await;
    assert_eq!(r["status"], "running", "{r:#}");
    // The forked child carries the task id in /proc/<pid>/environ, as a spawned one does.
    assert!(
        eventually(Duration::from_secs(10), || !task_processes(&id).is_empty()).await,
        "no process carries the marker of {id}"
    );
    let r = w.run(json!({"taskType":"task.cancel","taskId":id})).await;
    assert_eq!(r["status"], "cancelled", "{r:#}");
    assert!(forked_from(&r).is_some(), "{r:#}");
    assert!(task_processes(&id).is_empty(), "{:?}", task_processes(&id));

    let id = format!("warm-deadline-{}", std::process::id());
    let mut body = fixture(
        &id,
        "sh trap '' TERM; sleep 100 & sleep 100 & echo started; while true; do sleep 1; done",
    );
    body["input"]["timeoutSeconds"] = json!(1);
    let r = w.run(body).await;
    assert_eq!(r["status"], "timed_out", "{r:#}");
    assert!(forked_from(&r).is_some());
    let notes: Vec<&str> = events_of(&r, "task.log")
        .into_iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(notes.iter().any(|m| m.contains("SIGKILL")), "{notes:?}");
    assert!(task_processes(&id).is_empty(), "{:?}", task_processes(&id));
    assert!(
        eventually(Duration::from_secs(3), || zombie_children(w.pid())
            .is_empty())
        .await
    );
}

#[tokio::test]
async fn a_warm_parent_killed_from_outside_is_restarted_and_tasks_go_on_meanwhile() {
    let w = fixture_worker(Kind::Warm, WorkerBuilder::new()).await;
    let first = w.warm_ready("pyfixture", 1).await;
    let r = w.fixture_task(Kind::Warm, "before-kill", "state").await;
    assert_eq!(forked_from(&r), Some(first));
    kill(Pid::from_raw(first as i32), Signal::SIGKILL).unwrap();
    // The next task succeeds at once, cold (or warm already, from the new parent).
    let r = w.run(fixture("right-after-kill", "state")).await;
    assert_eq!(r["ok"], true, "{r:#}");
    match forked_from(&r) {
        Some(p) => assert_ne!(p, first, "forked by a dead parent: {r:#}"),
        None => {
            let why = cold_reason(&r).expect("a cold start of a warm framework says why");
            assert!(why.contains("pyfixture"), "{why}");
        }
    }
    let second = w.warm_ready("pyfixture", 2).await;
    assert_ne!(second, first);
    assert!(
        w.log_lines()
            .iter()
            .any(|l| l["message"] == "warm parent exited; restarting"
                && l["framework"] == "pyfixture")
    );
    let r = w.fixture_task(Kind::Warm, "after-restart", "state").await;
    assert_eq!(forked_from(&r), Some(second));
    assert!(
        eventually(Duration::from_secs(3), || zombie_children(w.pid())
            .is_empty())
        .await
    );
}

#[tokio::test]
async fn a_warm_parent_that_is_not_single_threaded_falls_back_to_cold_with_the_reason() {
    let w = WorkerBuilder::new()
        .fixtures(Kind::Cold)
        .env("AGENTDISPATCH_WARM", "pyfixture-threaded")
        .start()
        .await;
    w.warm_ready("pyfixture-threaded", 1).await;
    let r = w
        .run(json!({"taskId":"threaded","framework":"pyfixture-threaded","input":{"instruction":"state"}}))
        .await;
    assert_eq!(r["ok"], true, "{r:#}");
    assert!(forked_from(&r).is_none(), "{r:#}");
    let why = cold_reason(&r).expect("the reason is logged");
    assert!(
        why.contains("threads") && why.contains("fixture-bg") && why.contains("fork is unsafe"),
        "{why}"
    );
    // The task folder says so too.
    let log = std::fs::read_to_string(w.task_dir("threaded").join("events.ndjson")).unwrap();
    assert!(
        log.contains("starting cold") && log.contains("fork is unsafe"),
        "{log}"
    );
    let s = output_json(&r);
    assert_eq!(s["runs"], 1);
}

#[tokio::test]
async fn auto_warms_the_default_framework_at_start_up_and_another_after_its_first_task() {
    let w = WorkerBuilder::new()
        .env(
            "AGENTDISPATCH_FRAMEWORKS_DIR",
            fixture_frameworks().to_str().unwrap(),
        )
        .env("AGENTDISPATCH_AGENT_FRAMEWORK", "pyfixture")
        .start()
        .await;
    // The default framework's parent starts with the worker; /ping does not wait for it.
    assert_eq!(w.ping().await["status"], "Healthy");
    w.warm_ready("pyfixture", 1).await;
    let r = w
        .run(json!({"taskId":"auto-default","input":{"instruction":"state"}}))
        .await;
    assert!(forked_from(&r).is_some(), "{r:#}");
    // Another warm framework: its first task is cold and starts its parent.
    let b =
        |id: &str| json!({"taskId":id,"framework":"pyfixture-b","input":{"instruction":"state"}});
    let r = w.run(b("auto-b-1")).await;
    assert_eq!(r["ok"], true, "{r:#}");
    assert!(forked_from(&r).is_none());
    assert!(cold_reason(&r).unwrap().contains("first task"), "{r:#}");
    w.warm_ready("pyfixture-b", 1).await;
    let r = w.run(b("auto-b-2")).await;
    assert!(forked_from(&r).is_some(), "{r:#}");
    assert_eq!(output_json(&r)["fixtureEnv"], "from-manifest-b");
    // A framework without "warm": true is never warm, and says nothing about it.
    let r = w
        .run(json!({"taskId":"auto-echo","framework":"echo"}))
        .await;
    assert!(forked_from(&r).is_none() && cold_reason(&r).is_none());
}

#[tokio::test]
async fn warm_none_runs_every_task_cold_without_a_word() {
    let w = fixture_worker(Kind::Cold, WorkerBuilder::new()).await;
    for i in 0..2 {
        let r = w
            .fixture_task(Kind::Cold, &format!("none-{i}"), "state")
            .await;
        assert!(cold_reason(&r).is_none(), "{r:#}");
        assert_eq!(output_json(&r)["ppid"], w.pid());
    }
    assert!(!w
        .log_lines()
        .iter()
        .any(|l| l["message"] == "warm parent starting"));
}

/// The worker's whole process tree while a warm parent and its spare exist.
async fn warm_tree(w: &Worker) -> Vec<i32> {
    let parent = w.warm_ready("pyfixture", 1).await as i32;
    w.fixture_task(Kind::Warm, "tree", "state").await;
    let tree = || descendants(w.pid());
    // The parent and, once it is forked, the next spare (a child of the worker).
    assert!(
        eventually(Duration::from_secs(10), || tree().len() >= 2).await,
        "{:?}",
        tree()
    );
    let t = tree();
    assert!(t.contains(&parent), "{t:?}");
    t
}

#[tokio::test]
async fn sigterm_stops_the_warm_parents_with_the_worker_and_leaves_no_process() {
    let mut w = fixture_worker(Kind::Warm, WorkerBuilder::new()).await;
    let tree = warm_tree(&w).await;
    w.signal(Signal::SIGTERM);
    assert_eq!(w.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(
        eventually(Duration::from_secs(5), || tree.iter().all(|p| !alive(*p))).await,
        "left after SIGTERM: {:?}",
        tree.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
    );
    assert!(w
        .log_lines()
        .iter()
        .any(|l| l["message"] == "warm parent stopped"));
}

#[tokio::test]
async fn sigkill_of_the_worker_takes_its_warm_parents_and_spares_down() {
    let mut w = fixture_worker(Kind::Warm, WorkerBuilder::new()).await;
    let tree = warm_tree(&w).await;
    w.signal(Signal::SIGKILL);
    let _ = w.wait_exit(Duration::from_secs(10));
    assert!(
        eventually(Duration::from_secs(5), || tree.iter().all(|p| !alive(*p))).await,
        "left after SIGKILL: {:?}",
        tree.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn as_pid_1_a_warm_worker_runs_tasks_and_leaves_nothing_on_sigterm() {
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata("/proc/self").unwrap().uid(),
        0,
        "this test needs root for unshare --pid (CI runs as root)"
    );
    let mut w = WorkerBuilder::new()
        .fixtures(Kind::Warm)
        .wrapper(&["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"])
        .start()
        .await;
    w.warm_ready("pyfixture", 1).await;
    for i in 0..3 {
        let r = w
            .fixture_task(Kind::Warm, &format!("pid1-{i}"), "state")
            .await;
        assert_eq!(r["ok"], true, "{r:#}");
    }
    let worker = children_with_state(w.pid())[0].0;
    let tree = descendants(worker);
    assert!(!tree.is_empty());
    kill(Pid::from_raw(worker), Signal::SIGTERM).unwrap();
    assert_eq!(w.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(
        eventually(Duration::from_secs(5), || tree.iter().all(|p| !alive(*p))).await,
        "left: {tree:?}"
    );
}

/// Whether the kernel may back memory with transparent huge pages at all.
fn thp_possible() -> bool {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .is_ok_and(|t| !t.contains("[never]"))
}

/// AnonHugePages of a process, in kB.
fn anon_huge_kb(pid: u64) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("AnonHugePages:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_warm_parents_heap_goes_to_huge_pages_and_its_tasks_still_copy_only_what_they_write() {
    // 48 MB of the parent's heap in 2 MB pages: a spare's clone copies an entry per huge page,
    // and a task that writes into one gets its own copy of only the 4 KB it wrote.
    let expected: u64 = (0..48u64).map(|i| 2 * (i % 251)).sum();
    for huge in ["1", "0"] {
        let w = fixture_worker(
            Kind::Warm,
            WorkerBuilder::new()
                .env("FIXTURE_BIG_HEAP", "48")
                .env("AGENTDISPATCH_WARM_HUGE", huge),
        )
        .await;
        let parent = w.warm_ready("pyfixture", 1).await;
        let said = w
            .log_lines()
            .into_iter()
            .find(|l| l["message"] == "warm parent ready")
            .and_then(|l| l["hugeMB"].as_f64())
            .expect("the ready line says how much is in huge pages");
        if huge == "0" {
            assert_eq!(said, 0.0);
        } else if thp_possible() {
            assert!(said >= 16.0, "only {said} MB in huge pages");
            assert!(
                anon_huge_kb(parent) >= 16 * 1024,
                "{}",
                anon_huge_kb(parent)
            );
        } else {
            eprintln!("SKIPPED: transparent huge pages are off here; only the tasks were checked");
        }
        for i in 0..3 {
            let r = w
                .fixture_task(Kind::Warm, &format!("huge-{huge}-{i}"), "heap")
                .await;
            assert_eq!(r["ok"], true, "{r:#}");
            let s = output_json(&r);
            assert_eq!(s["blocks"], 48);
            assert_eq!(s["sum"].as_u64(), Some(expected), "{s}");
            // Its own copies: the pages it and the runner wrote, far from the 48 MB it shares.
            assert!(
                s["privateDirtyKb"].as_u64().unwrap() < 24 * 1024,
                "huge={huge}: the task holds {s} of its own"
            );
        }
    }
}

/// The fork event's payload of the warm task `id`, from its task folder.
fn fork_event(w: &Worker, id: &str) -> Value {
    w.folder_events(id)
        .into_iter()
        .find(|e| e["type"] == "task.log" && e["payload"]["warm"] == true)
        .map(|e| e["payload"].clone())
        .unwrap_or_else(|| panic!("{id}: no fork event"))
}

/// How many pages the spare of the warm task `id` copied ahead (its fork event); checks that
/// it had a memory holder exactly when it copied pages ahead (both only for a task alone).
fn pages_ahead(w: &Worker, id: &str) -> u64 {
    let fork = fork_event(w, id);
    let n = fork["pagesAhead"]
        .as_u64()
        .unwrap_or_else(|| panic!("{id}: no pagesAhead: {fork}"));
    if n > 0 {
        assert!(
            fork["holderPid"].is_u64(),
            "{id}: alone without a holder: {fork}"
        );
    } else if fork["holderPid"].is_u64() {
        // A learning task ran alone too, with nothing learnt to copy yet.
        assert!(
            id.contains("learn"),
            "{id}: a holder beside other tasks: {fork}"
        );
    }
    n
}

#[tokio::test]
async fn a_spare_copies_pages_ahead_only_for_a_task_likely_to_run_alone() {
    // A spare forked after a request that ran alone copies the learnt pages before its task and
    // has a memory holder; one forked after a request that had other tasks beside it has
    // neither (copies idle in it, and finished tasks' memory in holders, while the others run).
    let w = fixture_worker(Kind::Warm, WorkerBuilder::new()).await;
    w.warm_ready("pyfixture", 1).await;
    // The first three tasks learn (their spares had nothing to copy yet); the spare made after
    // the fourth request, which ran alone, copies what they wrote.
    for i in 0..4 {
        let r = w
            .fixture_task(Kind::Warm, &format!("ahead-learn-{i}"), "state")
            .await;
        assert_eq!(r["ok"], true, "{r:#}");
    }
    w.fixture_task(Kind::Warm, "ahead-alone", "state").await;
    assert!(pages_ahead(&w, "ahead-alone") > 0);
    // Three tasks at once. Their fork requests go in any order; the one forked last had a
    // spare made while another ran, so at least one of them got nothing ahead.
    let mut ids = Vec::new();
    for i in 0..3 {
        let id = format!("ahead-busy-{i}");
        let mut body = fixture(&id, "sleep 4");
        body["async"] = json!(true);
        assert_eq!(w.run(body).await["status"], "running");
        ids.push(id);
    }
    let forked = |id: &String| {
        w.folder_events(id)
            .iter()
            .any(|e| e["type"] == "task.log" && e["payload"]["warm"] == true)
    };
    assert!(eventually(Duration::from_secs(20), || ids.iter().all(forked)).await);
    // A task started while those run: its spare was made after a request beside others.
    w.fixture_task(Kind::Warm, "ahead-beside", "state").await;
    assert_eq!(pages_ahead(&w, "ahead-beside"), 0);
    assert_eq!(fork_event(&w, "ahead-beside")["holderPid"], Value::Null);
    let mut ahead = Vec::new();
    for id in &ids {
        let r = w.wait_done(id).await;
        assert_eq!(r["status"], "succeeded", "{r:#}");
        ahead.push(pages_ahead(&w, id));
    }
    assert!(ahead.contains(&0), "{ahead:?}");
    // Alone again: copied ahead again (the spare after the next request that runs alone).
    w.fixture_task(Kind::Warm, "ahead-again-0", "state").await;
    w.fixture_task(Kind::Warm, "ahead-again-1", "state").await;
    assert!(pages_ahead(&w, "ahead-again-1") > 0);
}

#[tokio::test]
async fn a_warm_up_prompt_runs_the_agent_in_the_parent_and_every_task_starts_from_there() {
    let w = fixture_worker(
        Kind::Warm,
        WorkerBuilder::new().env("AGENTDISPATCH_WARMUP_PROMPT", "state"),
    )
    .await;
    for i in 0..3 {
        let r = w
            .fixture_task(Kind::Warm, &format!("warmup-{i}"), "state")
            .await;
        // The parent's three warm-up runs (AGENTDISPATCH_WARMUP_RUNS' default) and this
        // task's own: never another task's.
        assert_eq!(output_json(&r)["runs"], 4, "{r:#}");
    }
    // A warm-up that fails is logged, and the parent still serves.
    let w = fixture_worker(
        Kind::Warm,
        WorkerBuilder::new().env("AGENTDISPATCH_WARMUP_PROMPT", "nonsense"),
    )
    .await;
    let r = w.fixture_task(Kind::Warm, "warmup-failed", "state").await;
    // The failed run is not tried again.
    assert_eq!(output_json(&r)["runs"], 2, "{r:#}");
    assert!(
        eventually(Duration::from_secs(5), || w
            .log_lines()
            .iter()
            .any(|l| l["message"]
                .as_str()
                .is_some_and(|m| m.contains("the warm-up run failed"))))
        .await
    );
}

#[tokio::test]
async fn a_warm_framework_whose_program_is_missing_gets_no_warm_parent_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let fw = dir.path().join("gone");
    std::fs::create_dir(&fw).unwrap();
    std::fs::write(
        fw.join("framework.json"),
        r#"{"command": [".venv/bin/python", "runner.py"], "warm": true}"#,
    )
    .unwrap();
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_FRAMEWORKS_DIR", dir.path().to_str().unwrap())
        .env("AGENTDISPATCH_WARM", "all")
        .start()
        .await;
    assert!(
        eventually(Duration::from_secs(5), || w.log_lines().iter().any(|l| l
            ["level"]
            == "WARN"
            && l["message"]
                .as_str()
                .is_some_and(|m| m.contains("no warm parent"))))
        .await
    );
    let r = w.run(json!({"framework":"gone","prompt":"hi"})).await;
    assert_eq!(r["errorCode"], "spawn_failed", "{r:#}");
    assert!(cold_reason(&r).is_none(), "{r:#}");
    assert!(!w
        .log_lines()
        .iter()
        .any(|l| l["message"] == "warm parent starting"));
}

/// The worker's runtime threads (`tokio-rt-worker`), by thread id.
fn runtime_threads(pid: i32) -> HashSet<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.flatten()
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|c| c.trim() == "tokio-rt-worker")
                })
                .map(|t| t.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn children_outlive_the_worker_threads_that_started_them() {
    // A child's parent-death signal fires when the *thread* that forked it exits (prctl(2)).
    // A runtime thread that ran `block_in_place` (every task's finish does) joins the blocking
    // pool and exits after 10 s idle: warm parents and long cold tasks spawned from one of them
    // were SIGKILLed then.
    let w = fixture_worker(Kind::Warm, WorkerBuilder::new()).await;
    let parent = w.warm_ready("pyfixture", 1).await;
    let before = runtime_threads(w.pid());
    let mut long = Vec::new();
    for i in 0..3 {
        let id = format!("outlives-{i}-{}", std::process::id());
        let body = json!({"taskId": id, "framework": "pyfixture-b", "async": true,
            "input": {"instruction": "sleep 120"}});
        let r = w.run(body).await;
        assert_eq!(r["status"], "running", "{r:#}");
        long.push(id);
    }
    for id in &long {
        assert!(
            eventually(Duration::from_secs(30), || !task_processes(id).is_empty()).await,
            "{id} has no process"
        );
    }
    // Finish tasks on every runtime thread, then let them idle, until one that existed at the
    // start is gone (an idle blocking thread exits after 10 s).
    let mut gone = false;
    for _ in 0..4 {
        let burst: Vec<_> = (0..16)
            .map(|_| w.run(json!({"prompt": "churn", "framework": "echo"})))
            .collect();
        futures_util::future::join_all(burst).await;
        if eventually(Duration::from_secs(20), || {
            !before.is_subset(&runtime_threads(w.pid()))
        })
        .await
        {
            gone = true;
            break;
        }
    }
    assert!(gone, "no runtime thread exited: {before:?}");
    for id in &long {
        let r = w
            .run(json!({"taskType": "task.status", "taskId": id}))
            .await;
        assert_eq!(r["status"], "running", "{id}: {r:#}");
        assert!(!task_processes(id).is_empty(), "{id} was killed");
    }
    assert!(alive(parent as i32), "the warm parent was killed");
    assert!(
        !w.log_lines()
            .iter()
            .any(|l| l["message"] == "warm parent exited; restarting"),
        "the warm parent was restarted"
    );
    for id in &long {
        w.run(json!({"taskType": "task.cancel", "taskId": id}))
            .await;
    }
}

#[tokio::test]
async fn a_warm_tasks_memory_holder_is_no_task_process_and_ends_with_the_task() {
    // The holder shares the task's memory so that the task's exit does not wait for its
    // tear-down; it must never count as (or outlive) the task.
    let w = fixture_worker(Kind::Warm, WorkerBuilder::new()).await;
    let id = format!("holder-{}", std::process::id());
    let mut body = fixture(&id, "sleep 60");
    body["async"] = json!(true);
    assert_eq!(w.run(body).await["status"], "running");
    let status = || w.run(json!({"taskType": "task.status", "taskId": id}));
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            holder_of(&status().await).is_some()
        })
        .await,
        "no holderPid in {:#}",
        status().await
    );
    let holder = holder_of(&status().await).unwrap();
    let task = task_processes(&id);
    assert_eq!(
        task.len(),
        2,
        "the task and its holder carry the marker: {task:?}"
    );
    let leader = *task.iter().find(|p| **p != holder).unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{holder}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    assert_ne!(
        fields[2],
        leader.to_string(),
        "the holder is in the task's group: {stat}"
    );
    assert_ne!(
        fields[3],
        leader.to_string(),
        "the holder is in the task's session: {stat}"
    );
    let r = w
        .run(json!({"taskType": "task.cancel", "taskId": id}))
        .await;
    assert_eq!(r["status"], "cancelled", "{r:#}");
    let notes: Vec<&str> = events_of(&r, "task.log")
        .into_iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        !notes.iter().any(|m| m.contains("outside")),
        "the holder was signalled as the task's: {notes:?}"
    );
    assert!(
        eventually(Duration::from_secs(10), || state(holder).is_none()).await,
        "the holder {holder} outlived its task ({:?})",
        state(holder)
    );
    // A task that ends by itself: its holder goes too, and nothing is left to reap.
    let r = w.fixture_task(Kind::Warm, "holder-done", "state").await;
    let holder = holder_of(&r).expect("a holder");
    assert!(eventually(Duration::from_secs(10), || state(holder).is_none()).await);
    assert!(
        eventually(Duration::from_secs(3), || zombie_children(w.pid())
            .is_empty())
        .await
    );
}
