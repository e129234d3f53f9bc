//! A task against the processes around it: the worker, its warm parent, its memory holder.

use std::time::Duration;

use serde_json::json;

use crate::common::*;

/// A secret in the worker's environment that no child may see.
const SECRET: &str = "AGENTDISPATCH_TEST_SECRET";
const SECRET_VALUE: &str = "s3cret-value-of-the-worker";

/// The worker as in a default container: root or not, its children have the same uid and the
/// same capabilities, none of those that read any process's /proc files (CAP_SYS_PTRACE, and
/// on recent kernels CAP_SYS_ADMIN or CAP_PERFMON: Docker keeps none of them). `setpriv` takes
/// them out of the bounding set, so that neither the worker nor anything it starts has them.
fn without_ptrace(b: WorkerBuilder) -> WorkerBuilder {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { nix::libc::geteuid() } != 0 {
        return b; // a user's processes have none of them already
    }
    b.wrapper(&[
        "setpriv",
        "--bounding-set=-sys_ptrace,-sys_admin,-perfmon",
        "--",
    ])
}

#[tokio::test]
async fn a_child_with_a_minimal_environment_cannot_read_the_worker_or_its_warm_parent() {
    let b = without_ptrace(WorkerBuilder::new())
        .env(SECRET, SECRET_VALUE)
        .env("AGENTDISPATCH_CHILD_ENV", "minimal");
    let w = fixture_worker(Kind::Warm, b).await;
    let parent = w.warm_ready("pyfixture", 1).await;
    // The test's own view: the worker does hold the secret.
    let own = std::fs::read(format!("/proc/{}/environ", w.pid())).unwrap();
    assert!(String::from_utf8_lossy(&own).contains(SECRET_VALUE));
    let read = format!(
        "for p in $PPID {parent}; do echo \"== $p\"; tr '\\0' '\\n' < /proc/$p/environ; done 2>&1"
    );
    let cold = w.run(cmd(&format!("sh -c '{read}'"))).await;
    let warm = w
        .fixture_task(Kind::Warm, "reads-parents", &format!("sh {read}"))
        .await;
    for (what, r) in [("a command", &cold), ("a warm task", &warm)] {
        let out = r["output"].as_str().unwrap_or_default();
        assert!(out.contains("== "), "{what} did not run: {r:#}");
        assert!(
            !out.contains(SECRET_VALUE),
            "{what} read the worker's secret:\n{out}"
        );
    }
    // The worker's own environment is refused, not merely empty.
    let out = cold["output"].as_str().unwrap_or_default();
    assert!(out.contains("Permission denied"), "{out}");
}

#[tokio::test]
async fn descriptors_the_worker_inherits_reach_none_of_its_children() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("inherited-by-the-worker");
    std::fs::write(&marker, "").unwrap();
    // The worker is started with fd 9 open on `marker`, not close-on-exec.
    let open = format!("exec 9<'{}'; exec \"$@\"", marker.display());
    let b = WorkerBuilder::new().wrapper(&["sh", "-c", &open, "sh"]);
    let w = fixture_worker(Kind::Warm, b).await;
    let parent = w.warm_ready("pyfixture", 1).await as i32;
    let holds = |pid: i32| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| {
                d.flatten()
                    .any(|e| std::fs::read_link(e.path()).is_ok_and(|t| t == marker))
            })
            .unwrap_or(false)
    };
    assert!(
        holds(w.pid()),
        "the worker was not started with the descriptor"
    );
    let list = "ls -l /proc/self/fd/";
    let cold = w.run(cmd(list)).await;
    let warm = w
        .fixture_task(Kind::Warm, "lists-fds", &format!("sh {list}"))
        .await;
    for (what, r) in [("a command", &cold), ("a warm task", &warm)] {
        let out = r["output"].as_str().unwrap_or_default();
        assert!(
            out.contains("/dev/") || out.contains("pipe"),
            "{what}: {r:#}"
        );
        assert!(
            !out.contains("inherited-by-the-worker"),
            "{what} inherited the worker's descriptor:\n{out}"
        );
    }
    assert!(!holds(parent), "the warm parent inherited it");
}

#[tokio::test]
async fn a_warm_task_that_stops_its_memory_holder_leaves_no_holder_behind() {
    // The holder shares the task's address space and lives outside its cgroup: a task that
    // stops it and exits would pin all of its memory until the worker stops.
    let w = fixture_worker(Kind::Warm, WorkerBuilder::new()).await;
    let mut stopped = None;
    for n in 0..6 {
        let r = w
            .fixture_task(Kind::Warm, &format!("stops-holder-{n}"), "stopholder")
            .await;
        assert_eq!(r["status"], "succeeded", "{r:#}");
        if let Some(holder) = holder_of(&r) {
            let pids: Vec<i32> = serde_json::from_str(r["output"].as_str().unwrap()).unwrap();
            assert!(pids.contains(&holder), "{holder} not stopped: {r:#}");
            stopped = Some(holder);
            break;
        }
    }
    let holder = stopped.expect("no warm task had a memory holder");
    assert!(
        eventually(Duration::from_secs(10), || state(holder).is_none()).await,
        "the stopped holder {holder} outlived its task ({:?})",
        state(holder)
    );
    // The worker serves on, and a later task's holder is a new one.
    let r = w.fixture_task(Kind::Warm, "after-stopped", "state").await;
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert!(json!(holder_of(&r)) != json!(holder));
}
