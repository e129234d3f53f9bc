//! The artifact directory over time: finished task folders past the retention go, nothing
//! else does.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::common::*;

/// Sets the modification time of `path` itself (not a link's target) two hours back.
fn age(path: &Path) {
    let ok = Command::new("touch")
        .args(["-h", "-d", "2 hours ago"])
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "touch {}", path.display());
}

/// An old finished task folder: its log and result, all two hours old.
fn old_folder(art: &Path, id: &str) {
    let dir = art.join(id);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["events.ndjson", "result.json"] {
        std::fs::write(dir.join(f), "{}\n").unwrap();
        age(&dir.join(f));
    }
    age(&dir);
}

#[tokio::test]
async fn finished_task_folders_past_the_retention_are_deleted_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let art = tmp.path().join("art");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("keep.txt"), "not the worker's").unwrap();
    old_folder(&art, "old-done");
    // An old folder holding a link out, and an old link to a folder outside.
    old_folder(&art, "old-with-link");
    std::os::unix::fs::symlink(&outside, art.join("old-with-link/out")).unwrap();
    age(&art.join("old-with-link/out"));
    age(&art.join("old-with-link"));
    std::os::unix::fs::symlink(&outside, art.join("old-link")).unwrap();
    age(&art.join("old-link"));
    // Not a task id: not the worker's to delete.
    std::fs::create_dir_all(art.join("..hidden")).ok();
    std::fs::create_dir_all(art.join("not a task id")).unwrap();
    age(&art.join("not a task id"));

    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_ARTIFACT_DIR", art.to_str().unwrap())
        .env("AGENTDISPATCH_ARTIFACT_RETENTION_SECONDS", "3")
        // No heartbeat touches the running task's log while the test looks.
        .env("AGENTDISPATCH_HEARTBEAT_SECONDS", "600")
        .start()
        .await;
    assert!(
        eventually(Duration::from_secs(10), || !art.join("old-done").exists()
            && !art.join("old-with-link").exists())
        .await,
        "old folders kept"
    );
    assert!(outside.join("keep.txt").exists(), "a link was followed");
    assert!(
        art.join("old-link").symlink_metadata().is_ok(),
        "a link was deleted"
    );
    assert!(art.join("not a task id").exists());

    // A running task whose folder looks old is kept; a finished one goes.
    let mut running = cmd("sleep 30");
    running["taskId"] = json!("still-running");
    running["async"] = json!(true);
    assert_eq!(w.run(running).await["status"], "running");
    let done = w
        .run(json!({"taskType": "agent.run", "taskId": "just-done"}))
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let dir = art.join("still-running");
    for f in ["events.ndjson", ""] {
        age(&dir.join(f));
    }
    // A sweep has passed since once a folder planted now (and aged) is gone.
    old_folder(&art, "sweep-mark");
    assert!(eventually(Duration::from_secs(10), || !art.join("sweep-mark").exists()).await);
    assert!(
        dir.join("events.ndjson").exists(),
        "a running task's folder was deleted"
    );
    assert!(
        eventually(Duration::from_secs(15), || !art.join("just-done").exists()).await,
        "a finished task's folder outlived the retention"
    );
    let r = w
        .run(json!({"taskType": "task.cancel", "taskId": "still-running"}))
        .await;
    assert_eq!(r["status"], "cancelled", "{r}");
}

/// A small tmpfs mounted over `dir` for the test's life (the test runs as root, as the full
/// disk test in faults.rs); lazily unmounted when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &Path) -> SmallDisk {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
            .arg(dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "cannot mount a tmpfs on {}", dir.display());
        SmallDisk(dir.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_task_that_failed_on_a_full_disk_says_so_after_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let art = tmp.path().join("art");
    let _disk = SmallDisk::mount(&art);
    let start = || {
        WorkerBuilder::new()
            .env("AGENTDISPATCH_ARTIFACT_DIR", art.to_str().unwrap())
            .start()
    };
    let w = start().await;
    let mut flood = cmd("seq 1 100000");
    flood["taskId"] = json!("filled-the-disk");
    let r = w.run(flood).await;
    assert_eq!(r["errorCode"], "artifact_write_failed", "{}", r["error"]);
    drop(w);
    let w = start().await;
    let r = w
        .run(json!({"taskType": "task.status", "taskId": "filled-the-disk"}))
        .await;
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["errorCode"], "artifact_write_failed", "{r}");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("could not be written"),
        "{r}"
    );
}
