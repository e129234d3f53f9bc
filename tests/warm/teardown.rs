//! Nothing left: the warm parents and spares go with the worker on SIGTERM, on SIGKILL, and as
//! PID 1.

use super::*;

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
