//! What a warm task is: a fresh process of the worker's own each time, failing, cancelled and
//! timed out like a cold one, and outliving the worker thread that started it.

use super::*;

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
        assert_eq!(r["errorCode"], "agent_failed", "{kind:?}: {r:#}");
        let error = r["error"].as_str().unwrap();
        assert!(
            error.starts_with(
                "the agent failed: ValueError: unknown fixture instruction 'nonsense' (runner.py:"
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
