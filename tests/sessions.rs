//! Sessions (SPEC §7.1) through the real binary on the `pyfixture` framework, cold and warm:
//! session folders from the AgentCore header, a payload's `sessionId` or `run --session`; one
//! turn at a time per session; a restart keeps the conversation; bad folders fail clearly.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const SESSION_HEADER: &str = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id";

fn turn(r: &Value) -> Value {
    serde_json::from_str(r["output"].as_str().unwrap_or("")).unwrap_or_else(|_| panic!("{r:#}"))
}

async fn in_session(w: &Worker, session: &str, id: &str, instruction: &str) -> Value {
    let body = serde_json::to_vec(&fixture(id, instruction)).unwrap();
    let (status, r) = w.invoke_raw(body, &[(SESSION_HEADER, session)]).await;
    assert_eq!(status, 200);
    r
}

#[tokio::test]
async fn a_session_keeps_its_turns_in_its_folder_and_another_session_sees_nothing() {
    for kind in [Kind::Cold, Kind::Warm] {
        let sessions = tempfile::tempdir().unwrap();
        let w = session_worker(kind, sessions.path()).await;
        let a = format!("chat-{kind:?}");
        let t1 = turn(&in_session(&w, &a, &format!("{a}-1"), "turn").await);
        assert_eq!(t1["earlier"], json!([]), "{kind:?}: {t1}");
        assert_eq!(t1["folder"], sessions.path().join(&a).to_str().unwrap());
        assert_eq!(t1["envSessionDir"], t1["folder"]);
        let t2 = turn(&in_session(&w, &a, &format!("{a}-2"), "turn").await);
        assert_eq!(t2["earlier"], json!([format!("{a}-1")]), "{kind:?}: {t2}");
        // Another session starts from nothing.
        let b = turn(&in_session(&w, "other", &format!("{a}-other"), "turn").await);
        assert_eq!(b["earlier"], json!([]), "{kind:?}: {b}");
        // The payload's sessionId, for local use, is the same session.
        let mut body = fixture(&format!("{a}-3"), "turn");
        body["sessionId"] = json!(a);
        let t3 = turn(&w.run(body).await);
        assert_eq!(t3["earlier"].as_array().unwrap().len(), 2, "{t3}");
        // No session: stateless, and the worker's own AGENTDISPATCH_SESSION_DIR is not shown.
        let none = turn(&w.run(fixture(&format!("{a}-none"), "turn")).await);
        assert_eq!(none["session"], Value::Null, "{none}");
        assert_eq!(none["envSessionDir"], Value::Null, "{none}");
    }
}

#[tokio::test]
async fn turns_of_one_session_run_one_at_a_time_in_arrival_order_and_sessions_in_parallel() {
    for kind in [Kind::Cold, Kind::Warm] {
        let sessions = tempfile::tempdir().unwrap();
        let w = fixture_worker(
            kind,
            WorkerBuilder::new().env(
                "AGENTDISPATCH_SESSION_DIR",
                sessions.path().to_str().unwrap(),
            ),
        )
        .await;
        let s = format!("serial-{kind:?}");
        let mut ids = Vec::new();
        for i in 0..3 {
            let id = format!("{s}-{i}");
            let mut body = fixture(&id, "turn 0.4");
            body["async"] = json!(true);
            body["sessionId"] = json!(s);
            assert_eq!(w.run(body).await["status"], "running");
            ids.push(id);
            // Arrival order is the order the worker accepted them.
            let first = ids[0].clone();
            assert!(
                eventually(Duration::from_secs(10), || !task_processes(&first)
                    .is_empty())
                .await
            );
        }
        // Another session is not held behind them.
        let mut other = fixture(&format!("{s}-other"), "turn");
        other["sessionId"] = json!("someone-else");
        let o = w.run(other).await;
        assert_eq!(turn(&o)["earlier"], json!([]));
        let mut turns = Vec::new();
        for id in &ids {
            w.wait_done(id).await;
            let r = w.run(json!({"taskType":"task.status","taskId":id})).await;
            assert_eq!(r["status"], "succeeded", "{r:#}");
            turns.push((r.clone(), turn(&r)));
        }
        for (i, (r, t)) in turns.iter().enumerate() {
            assert_eq!(t["earlier"], json!(ids[..i]), "{kind:?}: turn {i}: {t}");
            let waited = events_of(r, "task.progress")
                .iter()
                .any(|e| e["payload"]["waiting"] == true);
            assert_eq!(waited, i > 0, "{kind:?}: turn {i} waiting event: {r:#}");
            if i > 0 {
                let prev = &turns[i - 1].1;
                assert!(
                    t["started"].as_f64() >= prev["ended"].as_f64(),
                    "{kind:?}: overlap {prev} {t}"
                );
            }
        }
        assert_eq!(o["ok"], true);
    }
}

#[tokio::test]
async fn a_waiting_turn_can_be_cancelled_and_the_next_one_still_runs() {
    let sessions = tempfile::tempdir().unwrap();
    let w = fixture_worker(
        Kind::Warm,
        WorkerBuilder::new().env(
            "AGENTDISPATCH_SESSION_DIR",
            sessions.path().to_str().unwrap(),
        ),
    )
    .await;
    let start = |id: &str, what: &str| {
        let mut body = fixture(id, what);
        body["async"] = json!(true);
        body["sessionId"] = json!("cancel-queue");
        body
    };
    w.run(start("cq-1", "turn 1")).await;
    assert!(
        eventually(Duration::from_secs(10), || !task_processes("cq-1")
            .is_empty())
        .await
    );
    w.run(start("cq-2", "turn")).await;
    w.run(start("cq-3", "turn")).await;
    let c = w
        .run(json!({"taskType":"task.cancel","taskId":"cq-2"}))
        .await;
    assert_eq!(c["status"], "cancelled", "{c:#}");
    w.wait_done("cq-3").await;
    let r = w
        .run(json!({"taskType":"task.status","taskId":"cq-3"}))
        .await;
    assert_eq!(turn(&r)["earlier"], json!(["cq-1"]), "{r:#}");
}

#[tokio::test]
async fn a_session_survives_a_worker_restart() {
    let sessions = tempfile::tempdir().unwrap();
    let root = sessions.path().to_str().unwrap().to_string();
    {
        let w = fixture_worker(
            Kind::Warm,
            WorkerBuilder::new().env("AGENTDISPATCH_SESSION_DIR", &root),
        )
        .await;
        in_session(&w, "long-lived", "ll-1", "turn").await;
    }
    let w = fixture_worker(
        Kind::Warm,
        WorkerBuilder::new().env("AGENTDISPATCH_SESSION_DIR", &root),
    )
    .await;
    let t = turn(&in_session(&w, "long-lived", "ll-2", "turn").await);
    assert_eq!(t["earlier"], json!(["ll-1"]), "{t}");
}

#[tokio::test]
async fn unsafe_session_ids_are_hashed_and_a_bad_session_folder_fails_clearly() {
    let sessions = tempfile::tempdir().unwrap();
    let w = fixture_worker(
        Kind::Cold,
        WorkerBuilder::new().env(
            "AGENTDISPATCH_SESSION_DIR",
            sessions.path().to_str().unwrap(),
        ),
    )
    .await;
    let t = turn(&in_session(&w, "../../etc/passwd", "unsafe-1", "turn").await);
    let folder = std::path::PathBuf::from(t["folder"].as_str().unwrap());
    assert_eq!(folder.parent().unwrap(), sessions.path());
    let name = folder.file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with("h-") && name.len() == 34, "{name}");
    // A session whose folder is a file: the task fails naming it, the worker serves on.
    std::fs::write(sessions.path().join("broken"), "not a folder").unwrap();
    let r = in_session(&w, "broken", "broken-1", "turn").await;
    assert_eq!(r["ok"], false);
    assert_eq!(r["errorCode"], "session_unavailable");
    assert!(
        r["error"].as_str().unwrap().contains("broken")
            && r["error"].as_str().unwrap().contains("not a directory"),
        "{r:#}"
    );
    assert_eq!(w.ping().await["status"], "Healthy");
    // A too-long sessionId is a bad payload.
    let mut body = fixture("long-session", "turn");
    body["sessionId"] = json!("x".repeat(2000));
    let (status, r) = w.invoke(&body).await;
    assert_eq!(status, 400, "{r}");
    assert!(r["error"].as_str().unwrap().contains("sessionId"), "{r}");
}

#[tokio::test]
async fn run_session_carries_the_conversation_between_runs() {
    let sessions = tempfile::tempdir().unwrap();
    let run = |id: &str| {
        let out = worker_command()
            .args([
                "run",
                "--framework",
                "pyfixture",
                "--instruction",
                "turn",
                "--session",
                "cli-chat",
                "--json",
            ])
            .env("AGENTDISPATCH_FRAMEWORKS_DIR", fixture_frameworks())
            .env("AGENTDISPATCH_SESSION_DIR", sessions.path())
            .env(
                "AGENTDISPATCH_ARTIFACT_DIR",
                sessions.path().join(format!("art-{id}")),
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let last = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap()
            .to_string();
        let v: Value = serde_json::from_str(&last).unwrap();
        v
    };
    run("1");
    let v = run("2");
    // `run --json` ends with the answer as result.json holds it.
    assert_eq!(v["ok"], true, "{v:#}");
    let folder = sessions.path().join("cli-chat").join("turns.json");
    let turns: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(folder).unwrap()).unwrap();
    assert_eq!(turns.len(), 2);
}

#[tokio::test]
async fn an_a2a_follow_up_with_the_same_context_id_continues_the_conversation() {
    let sessions = tempfile::tempdir().unwrap();
    let w = fixture_worker(
        Kind::Warm,
        WorkerBuilder::new().env(
            "AGENTDISPATCH_SESSION_DIR",
            sessions.path().to_str().unwrap(),
        ),
    )
    .await;
    let send = |message_id: &str, context: Option<&str>| {
        let mut message =
            json!({"role":"user","messageId":message_id,"parts":[{"kind":"text","text":"turn"}]});
        if let Some(c) = context {
            message["contextId"] = json!(c);
        }
        json!({"jsonrpc":"2.0","id":1,"method":"message/send",
               "params":{"message":message,"metadata":{"framework":"pyfixture"}}})
    };
    // No contextId: the worker makes one, and the answer carries it.
    let first = w.rpc(send("m1", None)).await;
    let context = first["result"]["contextId"]
        .as_str()
        .expect("a context id")
        .to_string();
    let text = |r: &Value| -> Value {
        serde_json::from_str(r["result"]["parts"][0]["text"].as_str().unwrap()).unwrap()
    };
    assert_eq!(text(&first)["earlier"], json!([]), "{first:#}");
    let first_task = first["result"]["metadata"]["taskId"]
        .as_str()
        .unwrap()
        .to_string();
    let second = w.rpc(send("m2", Some(&context))).await;
    assert_eq!(second["result"]["contextId"], context.as_str());
    assert_eq!(text(&second)["earlier"], json!([first_task]), "{second:#}");
    assert_eq!(text(&second)["session"], context.as_str());
    // Another context starts from nothing.
    let other = w.rpc(send("m3", Some("another-context"))).await;
    assert_eq!(text(&other)["earlier"], json!([]), "{other:#}");
}
