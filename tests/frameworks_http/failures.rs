//! The failures of a frameworks directory (a missing or raising entrypoint, broken manifests)
//! answered clearly while the worker keeps serving.

use super::*;

/// The first line of an error (the runner's one clear line).
pub(crate) fn first_line(r: &Value) -> &str {
    r["error"]
        .as_str()
        .unwrap_or("")
        .lines()
        .next()
        .unwrap_or("")
}

#[tokio::test]
async fn a_missing_or_raising_entrypoint_fails_clearly_and_the_worker_keeps_serving() {
    require_venv("langgraph");
    let app = tempfile::tempdir().unwrap();
    std::fs::write(
        app.path().join("broken_agent.py"),
        "raise RuntimeError(\"agent construction failed: 42\")\n",
    )
    .unwrap();
    let w = WorkerBuilder::new()
        .env(
            "AGENTDISPATCH_FRAMEWORKS_DIR",
            frameworks_dir().to_str().unwrap(),
        )
        .env("AGENTDISPATCH_APP_DIR", app.path().to_str().unwrap())
        .env("AGENTDISPATCH_ENTRYPOINT_ALLOWLIST", "langgraph=*")
        .start()
        .await;
    let run = |entrypoint: &str| json!({"framework":"langgraph","input":{"instruction":"hello world","entrypoint":entrypoint}});
    let (missing, raising) =
        tokio::join!(w.run(run("nosuch:agent")), w.run(run("broken_agent:agent")));

    // The one line that says what failed: first (own_agent.rs has each kind's code and line).
    assert_eq!(missing["ok"], false, "{missing:#}");
    assert_eq!(missing["status"], "failed");
    assert_eq!(missing["errorCode"], "agent_import_failed");
    assert_eq!(missing["exitCode"], 1);
    let line = first_line(&missing);
    assert!(
        line.contains("no module 'nosuch'") && line.contains("AGENTDISPATCH_APP_DIR="),
        "{missing:#}"
    );

    assert_eq!(raising["ok"], false, "{raising:#}");
    assert_eq!(raising["errorCode"], "agent_import_failed");
    let line = first_line(&raising);
    assert!(
        line.contains("'broken_agent'")
            && line.contains("RuntimeError: agent construction failed: 42"),
        "{raising:#}"
    );
    assert_still_serving(&w).await;
}

/// A temporary frameworks directory: a runner killed by a signal, a manifest with bad JSON, one
/// without a command, one naming a missing program, one overridden from the environment.
pub(crate) fn broken_frameworks() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let folder = |name: &str, manifest: &str| {
        let f = dir.path().join(name);
        std::fs::create_dir(&f).unwrap();
        std::fs::write(f.join("framework.json"), manifest).unwrap();
        f
    };
    let killed = folder(
        "killed",
        r#"{"name":"killed","description":"dies by SIGKILL","command":["./run.sh"]}"#,
    );
    script(
        &killed,
        "run.sh",
        "#!/bin/sh\n\
         echo '{\"type\":\"task.progress\",\"message\":\"about to die\"}'\n\
         echo 'runner: giving up' >&2\n\
         kill -9 $$\n",
    );
    folder("badjson", "{\"name\": \"badjson\", \"command\": [oops");
    folder("nocommand", r#"{"name":"nocommand"}"#);
    folder("novenv", r#"{"command":[".venv/bin/python","runner.py"]}"#);
    folder("shadowed", r#"{"command":["./not-here"]}"#);
    // Folders starting with `_` or `.` are not frameworks.
    let shared = dir.path().join("_shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("framework.json"), "{oops").unwrap();
    dir
}

#[tokio::test]
async fn broken_frameworks_are_answered_clearly_and_the_worker_keeps_serving() {
    let dir = broken_frameworks();
    let root = dir.path().canonicalize().unwrap();
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_FRAMEWORKS_DIR", root.to_str().unwrap())
        .start()
        .await;
    let run = |fw: &str| json!({"framework":fw,"input":{"instruction":"hi"}});

    // A runner killed by a signal: the signal in words, then its last stderr line.
    let r = w.run(run("killed")).await;
    assert_eq!(r["ok"], false, "{r:#}");
    assert_eq!(r["status"], "failed");
    assert_eq!(r["errorCode"], "killed");
    assert_eq!(
        r["error"],
        "Framework command was killed by signal SIGKILL.\nrunner: giving up"
    );
    assert!(events_of(&r, "task.progress")
        .iter()
        .any(|e| e["message"] == "about to die"));
    assert_still_serving(&w).await;

    // A manifest naming a missing program: the program and the OS error in words.
    let r = w.run(run("novenv")).await;
    assert_eq!(r["ok"], false, "{r:#}");
    assert_eq!(r["errorCode"], "spawn_failed");
    let err = r["error"].as_str().unwrap();
    let program = root.join("novenv/.venv/bin/python");
    assert!(
        err.starts_with(&format!("Cannot start {}", program.display()))
            && err.contains("No such file or directory")
            && err.contains("scripts/setup-frameworks.sh"),
        "{err}"
    );
    assert_still_serving(&w).await;

    // Broken manifests: skipped (unknown framework), each a warning naming its file.
    for name in ["badjson", "nocommand", "_shared"] {
        let r = w.run(run(name)).await;
        assert_eq!(r["ok"], false, "{r:#}");
        assert_eq!(r["errorCode"], "unknown_framework");
        assert_eq!(r["error"], format!("Unsupported agent framework: {name}"));
    }
    let warnings: Vec<String> = w
        .log_lines()
        .iter()
        .filter(|l| l["level"] == "WARN")
        .filter_map(|l| l["message"].as_str().map(str::to_string))
        .collect();
    let warned = |file: &str, words: &str| {
        let path = root.join(file);
        assert!(
            warnings
                .iter()
                .any(|m| m.contains(&*path.to_string_lossy()) && m.contains(words)),
            "no warning naming {} with {words:?}: {warnings:#?}",
            path.display()
        );
    };
    warned("badjson/framework.json", "not valid JSON");
    warned("nocommand/framework.json", "has no \"command\"");
    assert!(
        !warnings.iter().any(|m| m.contains("_shared")),
        "{warnings:#?}"
    );
    assert_still_serving(&w).await;
}
