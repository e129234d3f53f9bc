//! `/ws` bounds: frames within AgentCore's quota, messages within the payload limit, sockets
//! within the connection limit (with `/ping` still answered), upgrade checks, and shutdown.

use std::time::Duration;

use serde_json::json;

use super::client::{python, Client};
use super::common::talker::worker;
use super::common::WorkerBuilder;
use super::until_delta_with;

/// The largest frame payload the worker sends (src/http/ws/socket.rs): under AgentCore's
/// 32 KB frame quota with the frame's header.
const MAX_FRAME_PAYLOAD: u64 = 31 * 1024;

#[tokio::test]
async fn a_long_message_goes_out_in_frames_within_the_quota() {
    let Some(py) = python() else { return };
    let w = WorkerBuilder::new().start().await;
    let mut c = Client::open(&py, &w.url, json!({})).await;
    let r = c.command("sh -c 'yes abcdefghi | head -n 10000'").await;
    assert_eq!(
        r["output"].as_str().unwrap().len(),
        100_000,
        "{}",
        r["error"]
    );
    let frames = c.frames().await;
    let data: Vec<_> = frames.iter().filter(|f| f.0 != "PING").collect();
    assert!(data.iter().any(|f| f.0 == "CONT"), "{data:?}");
    assert!(
        data.iter().all(|f| f.1 <= MAX_FRAME_PAYLOAD),
        "a frame over the quota: {data:?}"
    );
}

#[tokio::test]
async fn a_message_over_the_payload_limit_closes_1009_naming_it() {
    let Some(py) = python() else { return };
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_MAX_PAYLOAD_BYTES", "1000")
        .start()
        .await;
    let mut c = Client::open(&py, &w.url, json!({})).await;
    c.send_json(&json!({"prompt": "x".repeat(5000)})).await;
    let (code, reason) = c.closed().await;
    assert_eq!(code, Some(1009), "{reason}");
    assert!(
        reason.contains("AGENTDISPATCH_MAX_PAYLOAD_BYTES"),
        "{reason}"
    );
    // Within the limit, another socket works.
    let mut c = Client::open(&py, &w.url, json!({})).await;
    assert_eq!(c.command("echo ok").await["output"], "ok\n");
}

#[tokio::test]
async fn sockets_take_connection_places_and_ping_answers_past_the_limit() {
    let Some(py) = python() else { return };
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_MAX_CONNECTIONS", "16")
        .start()
        .await;
    let mut c = Client::new(&py);
    let url = format!("{}/ws", w.url.replacen("http://", "ws://", 1));
    let r = c
        .call(json!({"op": "open_many", "url": url, "n": 40}))
        .await;
    let opened = r["opened"].as_u64().unwrap();
    assert!((8..=16).contains(&opened), "{r}");
    assert_eq!(r["status"], 503, "{r}");
    assert!(r["body"].as_str().unwrap().contains("too_many_connections"));
    // Every place is taken by an open socket; /ping is still answered, and not busy.
    let ping: serde_json::Value = reqwest::get(format!("{}/ping", w.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ping["status"], "Healthy");
}

#[tokio::test]
async fn a_request_to_ws_that_is_no_upgrade_is_told_so() {
    let w = WorkerBuilder::new().start().await;
    let (code, body) = w.get("/ws").await;
    assert_eq!(code, 426, "{body}");
    assert!(body["error"].as_str().unwrap().contains("WebSocket"));
    let resp = w
        .client()
        .post(format!("{}/ws", w.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
}

#[tokio::test]
async fn on_sigterm_a_running_task_is_answered_then_every_socket_closes_1001() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut w = worker(dir.path(), &["one", "two"], &[]).await;
    let mut busy = Client::open(&py, &w.url, json!({})).await;
    let mut idle = Client::open(&py, &w.url, json!({})).await;
    busy.send_json(&json!({"framework": "talker"})).await;
    until_delta_with(&mut busy, "one", &mut Vec::new()).await;
    w.signal(nix::sys::signal::Signal::SIGTERM);
    let (_, result) = busy.until_result().await;
    assert_eq!(result["status"], "cancelled", "{result}");
    assert_eq!(busy.closed().await.0, Some(1001));
    assert_eq!(idle.closed().await.0, Some(1001));
    assert_eq!(w.wait_exit(Duration::from_secs(20)), Some(0));
}

#[tokio::test]
async fn a_cancel_is_heard_while_a_task_floods_the_socket() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    // A model that writes deltas as fast as it can, for ever: only a cancel ends it.
    let w = super::script_worker(
        dir.path(),
        "gusher",
        "#!/usr/bin/env python3\nimport json, sys\nline = json.dumps({\"type\": \"task.delta\", \"payload\": {\"messageId\": \"m\", \"text\": \"x\" * 64}}) + \"\\n\"\nwhile True:\n    sys.stdout.write(line)\n    sys.stdout.flush()\n",
    )
    .await;
    let mut c = Client::open(&py, &w.url, json!({})).await;
    c.send_json(&json!({"framework": "gusher"})).await;
    until_delta_with(&mut c, "x", &mut Vec::new()).await;
    c.send_json(&json!({"type": "task.cancel"})).await;
    // The client keeps reading (as a chat client does); the result must come.
    let result = tokio::time::timeout(Duration::from_secs(30), c.until_result())
        .await
        .expect("the cancel was not heard within 30 s while the task streamed")
        .1;
    assert_eq!(result["status"], "cancelled", "{result}");
}
