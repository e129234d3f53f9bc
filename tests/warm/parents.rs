//! A warm parent's life: restarted when killed, refused when not single-threaded, started by
//! the `AGENTDISPATCH_WARM` policies, none for a missing program, warmed up by a prompt.

use super::*;

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
async fn a_framework_defined_in_the_environment_may_be_warm() {
    // AGENTDISPATCH_FRAMEWORK_COMMANDS takes "warm" as a manifest does: a runner on the shared
    // helper, defined without a folder, is forked from its warm parent.
    let runner = fixture_frameworks().join("pyfixture").join("runner.py");
    let commands = json!({"envwarm": {"command": ["python3", runner], "warm": true}});
    let w = WorkerBuilder::new()
        .env(
            "AGENTDISPATCH_FRAMEWORKS_DIR",
            fixture_frameworks().to_str().unwrap(),
        )
        .env("AGENTDISPATCH_FRAMEWORK_COMMANDS", &commands.to_string())
        .env("AGENTDISPATCH_AGENT_FRAMEWORK", "envwarm")
        .start()
        .await;
    w.warm_ready("envwarm", 1).await;
    let r = w
        .run(json!({"taskId":"env-warm","input":{"instruction":"state"}}))
        .await;
    assert_eq!(r["ok"], true, "{r:#}");
    assert!(forked_from(&r).is_some(), "{r:#}");
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

    // By default only the default framework is warmed at start-up: a framework the deployment
    // never asked for (here not the default) is not warned about; its task says what is missing.
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_FRAMEWORKS_DIR", dir.path().to_str().unwrap())
        .start()
        .await;
    let ping = w.ping().await;
    assert_eq!(ping["status"], "Healthy", "{ping}");
    let warnings: Vec<Value> = w
        .log_lines()
        .into_iter()
        .filter(|l| l["level"] == "WARN")
        .collect();
    assert!(warnings.is_empty(), "{warnings:#?}");
    let r = w.run(json!({"framework":"gone","prompt":"hi"})).await;
    assert_eq!(r["errorCode"], "spawn_failed", "{r:#}");
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
        w.logged(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.contains("the warm-up run failed")))
            .await
    );
}
