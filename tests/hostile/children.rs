//! Children: floods that must not starve heartbeats, FIFOs, huge files and links in the task
//! folder, the environment a child gets, and a task running when the worker is killed.

use super::*;

#[tokio::test]
async fn heartbeats_keep_their_interval_under_a_flood() {
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_HEARTBEAT_SECONDS", "0.25")
        .start()
        .await;
    let r = w
        .run(json!({"taskType":"command.run","taskId":"flood-hb","input":{"command":"yes","timeoutSeconds":3}}))
        .await;
    assert_eq!(r["status"], "timed_out", "{}", r["error"]);
    let log = std::fs::read_to_string(w.task_dir("flood-hb").join("events.ndjson")).unwrap();
    let beats: Vec<Value> = log
        .lines()
        .filter(|l| l.contains("\"task.heartbeat\""))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    // 3 s at 0.25 s: 12 and the one at the start; at least half of them, whatever the load.
    assert!(
        beats.len() >= 7,
        "{} heartbeats in 3 s of flood",
        beats.len()
    );
    let elapsed: Vec<u64> = beats
        .iter()
        .filter_map(|b| b["payload"]["elapsedMs"].as_u64())
        .collect();
    let gaps: Vec<u64> = elapsed.windows(2).map(|p| p[1] - p[0]).collect();
    assert!(
        gaps.iter().filter(|g| **g > 1000).count() <= 1,
        "heartbeat gaps: {gaps:?}"
    );
}

/// A `command.run` of `sh -c <script>` in the task folder (`$AGENTDISPATCH_TASK_DIR`).
pub(crate) fn sh(id: &str, script: &str) -> Value {
    json!({"taskType":"command.run","taskId":id,"input":{"command":format!("sh -c '{script}'")}})
}

#[tokio::test]
async fn fifos_huge_files_and_links_in_the_task_folder_never_stall_the_worker() {
    // Framework children declare artifacts; this one makes a FIFO, a sparse 6 GB file, a hard
    // link and a symlink out of the folder, and declares all of them and 5,000 more.
    let dir = tempfile::tempdir().unwrap();
    let child = script(
        dir.path(),
        "hostile.sh",
        r#"#!/bin/sh
d="$AGENTDISPATCH_TASK_DIR"
mkfifo "$d/pipe"
truncate -s 6G "$d/sparse.bin"
echo shared > "$d/one.txt"; ln "$d/one.txt" "$d/two.txt"
ln -s /etc/hostname "$d/link.txt"
echo fine > "$d/fine.txt"
decl=$(seq 1 5000 | sed 's/.*/"x&.txt"/' | paste -sd, -)
printf '{"type":"task.result","output":"done","artifacts":["pipe","sparse.bin","two.txt","link.txt","fine.txt","FILE:///etc/passwd",%s]}\n' "$decl"
"#,
    );
    let w = WorkerBuilder::new()
        .env(
            "AGENTDISPATCH_FRAMEWORK_COMMAND_HOSTILE",
            child.to_str().unwrap(),
        )
        .start()
        .await;
    let url = w.url.clone();
    let task = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("{url}/invocations"))
            .json(&json!({"taskId":"hostile-1","framework":"hostile"}))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    });
    // /ping answers all along.
    while !task.is_finished() {
        let started = std::time::Instant::now();
        assert_eq!(
            w.ping().await["status"]
                .as_str()
                .map(|s| s.starts_with("Healthy")),
            Some(true)
        );
        assert!(started.elapsed() < Duration::from_secs(5), "/ping stalled");
        // Paces the /ping probe while the task runs.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = task.await.unwrap();
    assert_eq!(r["ok"], true, "{r:#}");
    let uris: Vec<&str> = r["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["uri"].as_str())
        .collect();
    assert!(uris.iter().any(|u| u.ends_with("fine.txt")), "{uris:?}");
    for not in ["pipe", "two.txt", "one.txt", "link.txt", "passwd"] {
        assert!(
            !uris.iter().any(|u| u.ends_with(not)),
            "{not} listed: {uris:?}"
        );
    }
    let sparse = r["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["uri"].as_str().unwrap().ends_with("sparse.bin"))
        .expect("the sparse file is listed");
    assert_eq!(sparse["sizeBytes"], 6u64 << 30);
    assert!(
        sparse["sha256"].is_null() && sparse["note"].as_str().unwrap().contains("not hashed"),
        "{sparse}"
    );
    let warnings: Vec<&str> = events_of(&r, "task.log")
        .into_iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|m| m.contains("pipe") && m.contains("not a regular file")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|m| m.contains("hard links")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|m| m.contains("declared artifacts were ignored")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|m| m.contains("FILE:///etc/passwd") && m.contains("outside")),
        "{warnings:?}"
    );
}

#[tokio::test]
async fn links_a_child_plants_are_never_written_through() {
    let w = WorkerBuilder::new().start().await;
    let victim = w.artifacts.parent().unwrap().join("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    let v = victim.to_str().unwrap();
    // The worker's own files planted as links to a file outside the folder.
    let r = w
        .run(sh("planted", &format!(
            "for f in result.json manifest.json .result.json.tmp .manifest.json.tmp; do ln -s {v} \"$AGENTDISPATCH_TASK_DIR/$f\"; done; echo planted"
        )))
        .await;
    assert_eq!(r["output"], "planted\n", "{r:#}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    let result = w.task_dir("planted").join("result.json");
    assert!(!std::fs::symlink_metadata(&result)
        .unwrap()
        .file_type()
        .is_symlink());
    // An events.ndjson link in the folder of a reused task id is not truncated through.
    let reused = w.artifacts.join("reused");
    std::fs::create_dir_all(&reused).unwrap();
    std::os::unix::fs::symlink(&victim, reused.join("events.ndjson")).unwrap();
    let r = w.run(json!({"taskId":"reused","prompt":"x"})).await;
    assert_eq!(r["ok"], false, "{r:#}");
    assert_eq!(r["errorCode"], "artifact_write_failed");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert_eq!(w.ping().await["status"], "Healthy");
}

#[tokio::test]
async fn a_minimal_child_environment_keeps_only_what_is_named_cold_and_warm() {
    for kind in [Kind::Cold, Kind::Warm] {
        let w = fixture_worker(
            kind,
            WorkerBuilder::new()
                .env("AWS_SECRET_ACCESS_KEY", "do-not-leak")
                .env("KEEP_ME", "1")
                .env("AGENTDISPATCH_CHILD_ENV", "minimal")
                .env("AGENTDISPATCH_CHILD_ENV_PASS", "KEEP_ME"),
        )
        .await;
        let r = w
            .fixture_task(kind, &format!("env-{kind:?}"), "environ")
            .await;
        let names: Vec<String> = serde_json::from_str(r["output"].as_str().unwrap()).unwrap();
        for want in [
            "PATH",
            "KEEP_ME",
            "FIXTURE_ENV",
            "AGENTDISPATCH_TASK_ID",
            "AGENTDISPATCH_TASK_DIR",
        ] {
            assert!(
                names.iter().any(|n| n == want),
                "{kind:?}: {want} missing from {names:?}"
            );
        }
        for not in [
            "AWS_SECRET_ACCESS_KEY",
            "AGENTDISPATCH_COMMAND_ALLOWLIST",
            "AGENTDISPATCH_WARM_FD",
        ] {
            assert!(
                !names.iter().any(|n| n == not),
                "{kind:?}: {not} leaked: {names:?}"
            );
        }
        let r = w.run(json!({"taskType":"command.run","taskId":format!("envcmd-{kind:?}"),"input":{"command":"env"}})).await;
        let out = r["output"].as_str().unwrap();
        assert!(
            out.contains("KEEP_ME=1") && !out.contains("do-not-leak"),
            "{out}"
        );
    }
    // The default inherits everything, as the reference worker does.
    let w = fixture_worker(
        Kind::Warm,
        WorkerBuilder::new().env("AWS_SECRET_ACCESS_KEY", "inherited"),
    )
    .await;
    let r = w.fixture_task(Kind::Warm, "env-inherit", "environ").await;
    assert!(r["output"]
        .as_str()
        .unwrap()
        .contains("AWS_SECRET_ACCESS_KEY"));
    // A bad value stops start-up naming the variable.
    let out = worker_command()
        .env("AGENTDISPATCH_CHILD_ENV", "some")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("AGENTDISPATCH_CHILD_ENV"));
}

#[tokio::test]
async fn a_task_running_when_the_worker_was_killed_is_answered_as_interrupted_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let art = dir.path().join("artifacts");
    let builder = || WorkerBuilder::new().env("AGENTDISPATCH_ARTIFACT_DIR", art.to_str().unwrap());
    let mut w = builder().start().await;
    let r = w
        .run(json!({"taskType":"command.run","taskId":"crashed","async":true,"input":{"command":"sh -c 'echo started; sleep 60'"}}))
        .await;
    assert_eq!(r["status"], "running");
    // Its first line is in events.ndjson before the worker is killed.
    let log = art.join("crashed").join("events.ndjson");
    assert!(
        eventually(Duration::from_secs(10), || std::fs::read_to_string(&log)
            .is_ok_and(|t| t.contains(r#""message":"started""#)))
        .await
    );
    w.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = w.wait_exit(Duration::from_secs(10));
    // The child dies with the worker (parent-death signal). Its own children are not the
    // worker's to reach once the worker is gone (no cgroup here): clean them up.
    let comm = |p: &i32| std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
    let shell_left = || {
        task_processes("crashed")
            .iter()
            .any(|p| comm(p).trim() == "sh")
    };
    assert!(
        eventually(Duration::from_secs(5), || !shell_left()).await,
        "the task's child outlived the worker's SIGKILL: {:?}",
        task_processes("crashed")
    );
    for p in task_processes("crashed") {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let before = std::fs::read_to_string(&log).unwrap();
    assert!(before.contains(r#""message":"started""#), "{before}");
    let w = builder().start().await;
    let s = w
        .run(json!({"taskType":"task.status","taskId":"crashed"}))
        .await;
    assert_eq!(s["status"], "failed", "{s:#}");
    assert_eq!(s["errorCode"], "interrupted", "{s:#}");
    assert!(
        events_of(&s, "task.log")
            .iter()
            .any(|e| e["message"] == "started"),
        "{s:#}"
    );
    // Sending the same task id again answers the same, and keeps the earlier run's log.
    let again = w
        .run(json!({"taskType":"command.run","taskId":"crashed","input":{"command":"sh -c 'echo second'"}}))
        .await;
    assert_eq!(again["errorCode"], "interrupted", "{again:#}");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), before);
}
