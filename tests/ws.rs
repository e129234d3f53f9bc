//! `GET /ws` (SPEC §13) through the real binary and a real client, the Python `websockets`
//! package (tests/clients/ws/driver.py, from `scripts/setup-clients.sh ws`): tasks streamed as
//! text messages, one after another on one socket, cancel, clients that leave, bad input and
//! close codes, pings, frame sizes, and the connection limit.

mod common;

#[path = "ws/client.rs"]
mod client;
#[path = "ws/interrupts.rs"]
mod interrupts;
#[path = "ws/limits.rs"]
mod limits;

use client::{python, Client, Got};
use common::talker::{go, worker};
use common::{fixture_worker, forked_from, Kind, WorkerBuilder};
use serde_json::{json, Value};

const SESSION: &str = "x-amzn-bedrock-agentcore-runtime-session-id";

/// A worker whose framework `name` is the Python script `body` (a child of the test's own).
pub async fn script_worker(dir: &std::path::Path, name: &str, body: &str) -> common::Worker {
    let path = common::script(dir, &format!("{name}.py"), body);
    WorkerBuilder::new()
        .env(
            &format!("AGENTDISPATCH_FRAMEWORK_COMMAND_{}", name.to_uppercase()),
            path.to_str().unwrap(),
        )
        .start()
        .await
}

fn is_delta(m: &Value) -> bool {
    m["type"] == "task.delta"
}

/// Messages until the delta holding `text` (merged pieces may hold more than one).
async fn until_delta_with(c: &mut Client, text: &str, seen: &mut Vec<Value>) {
    loop {
        let m = c.recv().await;
        let hit = is_delta(&m) && m["payload"]["text"].as_str().unwrap().contains(text);
        seen.push(m);
        if hit {
            return;
        }
    }
}

#[tokio::test]
async fn a_task_streams_deltas_as_they_are_written_then_a_second_task_runs_on_the_same_socket() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let w = worker(dir.path(), &["Hel", "lo ", "world"], &[]).await;
    let mut c = Client::open(&py, &w.url, json!({SESSION: "s-ws"})).await;
    c.send_json(&json!({"framework": "talker", "prompt": "hi"}))
        .await;
    // Each piece arrives before the model may write the next: nothing is held back.
    let mut seen = Vec::new();
    for (i, piece) in ["Hel", "lo ", "world"].iter().enumerate() {
        until_delta_with(&mut c, piece, &mut seen).await;
        go(dir.path(), i);
    }
    let (rest, result) = c.until_result().await;
    seen.extend(rest);
    assert_eq!(result["status"], "succeeded", "{result}");
    assert_eq!(result["output"], "Hello world");
    let id = result["taskId"].as_str().unwrap().to_string();
    // Deltas carry no seq; the events are the record's, in order, the same as the folder's.
    let events: Vec<&Value> = seen.iter().filter(|m| !is_delta(m)).collect();
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|p| p[1] == p[0] + 1), "{seqs:?}");
    assert!(seen
        .iter()
        .filter(|m| is_delta(m))
        .all(|d| d.get("seq").is_none()));
    let folder = w.folder_events(&id);
    assert_eq!(folder.last().unwrap()["type"], "task.result");
    assert_eq!(
        events.len() + 1,
        folder.len(),
        "every event but task.result"
    );
    for (got, want) in events.iter().zip(&folder) {
        assert_eq!(*got, want);
    }
    // The session header of the upgrade request is the task's session.
    for (session, want) in [("s-ws", 200), ("another", 404)] {
        let resp = w
            .client()
            .get(format!("{}/tasks/{id}", w.url))
            .header(SESSION, session)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), want, "seen from session {session}");
    }

    // A second task on the same socket.
    let second = c.command("echo second").await;
    assert_eq!(second["status"], "succeeded", "{second}");
    assert_eq!(second["output"], "second\n");
    // Control payloads are answered as on /invocations.
    c.send_json(&json!({"taskType": "task.status", "taskId": id}))
        .await;
    let status = c.recv().await;
    assert_eq!(status["status"], "succeeded");
    assert_eq!(
        c.close(1000).await,
        Some(1000),
        "the client's close is echoed"
    );
}

#[tokio::test]
async fn cancel_stops_the_running_task_and_a_payload_meanwhile_is_refused() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let w = worker(dir.path(), &["one", "two"], &[]).await;
    let mut c = Client::open(&py, &w.url, json!({})).await;
    c.send_json(&json!({"type": "task.cancel"})).await;
    let idle = c.recv().await;
    assert_eq!(idle["errorCode"], "unknown_task", "{idle}");
    c.send_json(&json!({"framework": "talker", "prompt": "hi"}))
        .await;
    until_delta_with(&mut c, "one", &mut Vec::new()).await;
    assert_eq!(w.ping().await["status"], "HealthyBusy");
    c.send_json(&json!({"prompt": "another"})).await;
    let busy = c.recv().await;
    assert_eq!(busy["errorCode"], "socket_busy", "{busy}");
    c.send_json(&json!({"type": "task.cancel"})).await;
    let (_, result) = c.until_result().await;
    assert_eq!(result["status"], "cancelled", "{result}");
    assert_eq!(result["errorCode"], "cancelled");
    // An open socket with no task running does not make the worker busy.
    assert_eq!(w.ping().await["status"], "Healthy");
}

#[tokio::test]
async fn a_client_that_drops_leaves_its_task_running_and_answerable() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let w = worker(dir.path(), &["a", "b"], &[]).await;
    let mut c = Client::open(&py, &w.url, json!({})).await;
    c.send_json(&json!({"taskId": "ws-dropped", "framework": "talker"}))
        .await;
    until_delta_with(&mut c, "a", &mut Vec::new()).await;
    c.drop_connection().await;
    go(dir.path(), 0);
    go(dir.path(), 1);
    let done = w.wait_done("ws-dropped").await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["output"], "ab");
    let (code, by_id) = w.get("/tasks/ws-dropped").await;
    assert_eq!((code, &by_id["status"]), (200, &json!("succeeded")));
}

#[tokio::test]
async fn cold_and_warm_tasks_answer_over_the_socket() {
    let Some(py) = python() else { return };
    for kind in [Kind::Cold, Kind::Warm] {
        let w = fixture_worker(kind, WorkerBuilder::new()).await;
        let mut c = Client::open(&py, &w.url, json!({})).await;
        let id = format!("ws-{kind:?}");
        c.send_json(&common::fixture(&id, "state")).await;
        let (events, result) = c.until_result().await;
        assert_eq!(result["status"], "succeeded", "{kind:?}: {result}");
        assert_eq!(result["taskId"], id.as_str());
        assert!(!events.is_empty());
        assert_eq!(
            forked_from(&result).is_some(),
            kind == Kind::Warm,
            "{result}"
        );
    }
}

#[tokio::test]
async fn bad_input_gets_the_error_then_close_1003_naming_it() {
    let Some(py) = python() else { return };
    let w = WorkerBuilder::new().start().await;
    for (text, says) in [
        ("{not json", "not valid JSON"),
        (r#"{"type":"dance"}"#, "\"dance\""),
        (r#"{"taskType":"agent.run","input":5}"#, "input"),
    ] {
        let mut c = Client::open(&py, &w.url, json!({})).await;
        c.send(text).await;
        let err = c.recv().await;
        assert_eq!(err["errorCode"], "invalid_payload", "{text}: {err}");
        assert!(err["error"].as_str().unwrap().contains(says), "{err}");
        let (code, reason) = c.closed().await;
        assert_eq!(code, Some(1003), "{text}");
        assert!(reason.contains(says), "{text}: {reason}");
    }
    assert_eq!(w.ping().await["status"], "Healthy");
}

#[tokio::test]
async fn a_quiet_socket_is_pinged_and_stays_open() {
    let Some(py) = python() else { return };
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_WS_PING_SECONDS", "0.2")
        .start()
        .await;
    let mut c = Client::open(&py, &w.url, json!({})).await;
    let mut pings = 0;
    for _ in 0..50 {
        assert!(matches!(c.recv_within(0.1).await, Got::Nothing));
        pings += c.frames().await.iter().filter(|f| f.0 == "PING").count();
        if pings >= 3 {
            break;
        }
    }
    assert!(pings >= 3, "{pings} pings");
    // The client answered each (the library does): the socket is still open for a task.
    assert_eq!(c.command("echo up").await["output"], "up\n");
}

#[tokio::test]
async fn the_readme_example_runs_as_written() {
    let Some(py) = python() else { return };
    let w = WorkerBuilder::new().start().await;
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = &readme[readme.find("### WebSocket `/ws`").unwrap()..];
    let start = section.find("```python\n").unwrap() + "```python\n".len();
    let code = &section[start..start + section[start..].find("```").unwrap()];
    let code = code.replace("localhost:8080", &format!("localhost:{}", w.port));
    let out = tokio::process::Command::new(&py)
        .arg("-c")
        .arg(&code)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("succeeded "), "{stdout}");
}

#[tokio::test]
async fn every_task_on_a_socket_carries_the_upgrade_requests_context() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    // A child that answers with the `request` of the envelope it read on stdin.
    let w = script_worker(
        dir.path(),
        "teller",
        "#!/usr/bin/env python3\nimport json, sys\nenvelope = json.loads(sys.stdin.readline())\nprint(json.dumps({\"type\": \"task.result\", \"output\": json.dumps(envelope[\"request\"])}))\n",
    )
    .await;
    let headers = json!({
        SESSION: "s-ctx",
        "x-amzn-bedrock-agentcore-runtime-request-id": "r-ctx",
        "x-amzn-bedrock-agentcore-runtime-custom-flavour": "mint",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    });
    let mut c = Client::open(&py, &w.url, headers).await;
    for _ in 0..2 {
        c.send_json(&json!({"framework": "teller"})).await;
        let (_, r) = c.until_result().await;
        assert_eq!(r["status"], "succeeded", "{r}");
        let request: Value = serde_json::from_str(r["output"].as_str().unwrap()).unwrap();
        assert_eq!(request["sessionId"], "s-ctx", "{request}");
        assert_eq!(request["requestId"], "r-ctx");
        assert_eq!(
            request["headers"]["x-amzn-bedrock-agentcore-runtime-custom-flavour"],
            "mint"
        );
        assert_eq!(
            request["traceparent"],
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        );
    }
}
