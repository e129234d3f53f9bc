//! A payload's `input.entrypoint` is code the child would import: the worker runs one only where
//! `AGENTDISPATCH_ENTRYPOINT_ALLOWLIST` lists it, and refuses any other before a child starts,
//! cold or warm, over `/invocations` and A2A. (`cgi:print_environ` once made the strands and
//! openai-agents runners answer with the worker's whole environment.)

use super::*;

/// The two runners that used to call any zero-argument callable they were given.
const FRAMEWORKS: [&str; 2] = ["strands", "openai-agents"];

/// An app folder with a factory per framework returning its example agent (the runner's folder
/// is on `sys.path`), the one shape besides an agent object a runner calls.
fn app_with_factories() -> tempfile::TempDir {
    let app = tempfile::tempdir().unwrap();
    std::fs::write(
        app.path().join("my_agents.py"),
        "def build():\n    import example_agent\n    return example_agent.agent\n",
    )
    .unwrap();
    app
}

/// A2A 0.3 `message/send` carrying `input` in the message's metadata, as an A2A client would.
fn a2a_send(framework: &str, input: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": "req-1", "method": "message/send", "params": {
        "message": {"role": "user", "messageId": "m-1",
                    "parts": [{"kind": "text", "text": "hello world"}]},
        "metadata": {"framework": framework, "input": input},
    }})
}

async fn payload_entrypoints(kind: Kind) {
    for name in FRAMEWORKS {
        require_venv(name);
    }
    let app = app_with_factories();
    // Every child inherits the worker's environment: this would show in a leaked one.
    let canary = format!("canary-{}", clock_suffix());
    let w = WorkerBuilder::new()
        .env(
            "AGENTDISPATCH_FRAMEWORKS_DIR",
            frameworks_dir().to_str().unwrap(),
        )
        .env("AGENTDISPATCH_APP_DIR", app.path().to_str().unwrap())
        .env(
            "AGENTDISPATCH_ENTRYPOINT_ALLOWLIST",
            "strands=my_agents:build, openai-agents=my_agents:build",
        )
        .env("AGENTDISPATCH_TEST_SECRET", &canary)
        .env(
            "AGENTDISPATCH_WARM",
            match kind {
                Kind::Cold => "none",
                Kind::Warm => "strands,openai-agents",
            },
        )
        .start()
        .await;
    if kind == Kind::Warm {
        for name in FRAMEWORKS {
            w.warm_ready(name, 1).await;
        }
    }
    let hostile = json!({"instruction": "hello world", "entrypoint": "cgi:print_environ"});
    let allowed = json!({"instruction": "hello world", "entrypoint": "my_agents:build"});
    for name in FRAMEWORKS {
        // Refused over /invocations: the code, the entrypoint, the setting; no child started.
        let r = w.run(json!({"framework": name, "input": hostile})).await;
        assert_eq!(r["ok"], false, "{name}: {r:#}");
        assert_eq!(r["status"], "failed", "{name}");
        assert_eq!(r["errorCode"], "entrypoint_not_allowed", "{name}: {r:#}");
        let error = r["error"].as_str().unwrap();
        assert!(
            error.contains("\"cgi:print_environ\"")
                && error.contains(&format!("framework {name}"))
                && error.contains("AGENTDISPATCH_ENTRYPOINT_ALLOWLIST"),
            "{name}: {error}"
        );
        assert!(!r.to_string().contains(&canary), "{name} leaked: {r:#}");
        assert!(
            forked_from(&r).is_none() && events_of(&r, "task.heartbeat").is_empty(),
            "{name}: a child started: {r:#}"
        );

        // Refused over A2A, the same way.
        let a = w.rpc(a2a_send(name, hostile.clone())).await;
        let m = &a["result"];
        assert_eq!(m["metadata"]["ok"], false, "{name}: {a:#}");
        assert_eq!(m["metadata"]["state"], "failed", "{name}: {a:#}");
        assert_eq!(
            m["metadata"]["errorCode"], "entrypoint_not_allowed",
            "{name}"
        );
        assert!(
            m["parts"][0]["text"]
                .as_str()
                .unwrap_or("")
                .starts_with("Entrypoint refused"),
            "{name}: {a:#}"
        );
        assert!(!a.to_string().contains(&canary), "{name} leaked: {a:#}");

        // An allowlisted entrypoint (a factory of the user's own) runs, over both.
        let r = w.run(json!({"framework": name, "input": allowed})).await;
        assert_eq!(r["ok"], true, "{name}: {r:#}");
        assert_eq!(r["output"], ANSWER, "{name}");
        assert_eq!(
            forked_from(&r).is_some(),
            kind == Kind::Warm,
            "{name}: {r:#}"
        );
        let a = w.rpc(a2a_send(name, allowed.clone())).await;
        let m = &a["result"];
        assert_eq!(m["metadata"]["ok"], true, "{name}: {a:#}");
        assert_eq!(m["parts"][0]["text"], ANSWER, "{name}: {a:#}");
    }
    assert_still_serving(&w).await;
}

#[tokio::test]
async fn a_payload_entrypoint_runs_only_when_allowlisted_cold() {
    payload_entrypoints(Kind::Cold).await;
}

#[tokio::test]
async fn a_payload_entrypoint_runs_only_when_allowlisted_warm() {
    payload_entrypoints(Kind::Warm).await;
}

/// Allowed by mistake (`*`), a library function is still not a factory: the runner refuses to
/// call it, saying what it expected, and the environment stays out of the answer.
#[tokio::test]
async fn a_library_function_allowed_by_mistake_is_not_called() {
    require_venv("strands");
    let canary = format!("canary-{}", clock_suffix());
    let w = WorkerBuilder::new()
        .env(
            "AGENTDISPATCH_FRAMEWORKS_DIR",
            frameworks_dir().to_str().unwrap(),
        )
        .env("AGENTDISPATCH_ENTRYPOINT_ALLOWLIST", "strands=*")
        .env("AGENTDISPATCH_TEST_SECRET", &canary)
        .env("AGENTDISPATCH_WARM", "none")
        .start()
        .await;
    let r = w
        .run(json!({"framework": "strands",
                    "input": {"instruction": "hi", "entrypoint": "cgi:print_environ"}}))
        .await;
    assert_eq!(r["ok"], false, "{r:#}");
    assert!(!r.to_string().contains(&canary), "leaked: {r:#}");
    let line = super::failures::first_line(&r);
    assert_eq!(r["errorCode"], "invalid_entrypoint", "{r:#}");
    assert!(
        line.contains("is the function cgi.print_environ from outside your code")
            && line.contains("expected a strands.Agent or a factory returning one"),
        "{r:#}"
    );
    let warned = w.log_lines().iter().any(|l| {
        l["level"] == "WARN"
            && l["message"]
                .as_str()
                .is_some_and(|m| m.contains("any entrypoint for strands"))
    });
    assert!(warned, "no start-up warning for strands=*");
}
