//! Long-running work through the real binary: live SSE, disconnects, async tasks with
//! status/cancel/list, retention, /tasks routes with Last-Event-ID, A2A, shutdown.

mod common;

use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;
use serde_json::{json, Value};

#[tokio::test]
async fn streaming_sends_events_as_they_happen_and_ends_with_the_result() {
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_HEARTBEAT_SECONDS", "0.5")
        .start()
        .await;
    let msgs = w
        .stream(&cmd("sh -c 'echo first; sleep 2; echo last'"))
        .await;
    let first = &msgs[0];
    let last = msgs.last().unwrap();
    assert_eq!(first.data["type"], "task.progress");
    assert_eq!(first.id, Some(1));
    assert!(
        last.at.duration_since(first.at) >= Duration::from_millis(1500),
        "first event came only {:?} before the end",
        last.at.duration_since(first.at)
    );
    assert!(
        msgs.iter()
            .filter(|m| m.data["type"] == "task.heartbeat")
            .count()
            >= 3
    );
    let ids: Vec<u64> = msgs.iter().map(|m| m.id.unwrap()).collect();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
    assert_eq!(last.data["ok"], true);
    assert_eq!(last.data["output"], "first\nlast\n");
    assert_eq!(last.data["events"].as_array().unwrap().len(), msgs.len());

    // "stream": true does the same without the header.
    let resp = w
        .client()
        .post(format!("{}/invocations", w.url))
        .json(&json!({"prompt":"x","stream":true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let msgs = read_sse(resp, usize::MAX).await;
    assert_eq!(
        msgs.last().unwrap().data["output"],
        "Accepted instruction: x"
    );

    // A failure before the task starts is a 200 stream with one result message.
    let msgs = w.stream(&json!({"taskType":"dance"})).await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].data["ok"], false);
    assert_eq!(msgs[0].data["error"], "Unsupported taskType: dance");
}

#[tokio::test]
async fn a_client_that_disconnects_does_not_stop_or_lose_the_task() {
    let w = WorkerBuilder::new().start().await;
    // JSON: the client gives up after 300 ms.
    let short = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = short
        .post(format!("{}/invocations", w.url))
        .json(&json!({"taskType":"command.run","taskId":"gone-json","input":{"command":"sh -c 'sleep 1; echo done'"}}))
        .send()
        .await;
    assert!(err.is_err());
    // SSE: read the first message, then hang up.
    let resp = w
        .client()
        .post(format!("{}/invocations", w.url))
        .header("accept", "text/event-stream")
        .json(&json!({"taskType":"command.run","taskId":"gone-sse","input":{"command":"sh -c 'sleep 1; echo done'"}}))
        .send()
        .await
        .unwrap();
    let first = read_sse(resp, 1).await;
    assert_eq!(first[0].data["message"], "accepted");
    for id in ["gone-json", "gone-sse"] {
        let s = w.wait_done(id).await;
        assert_eq!(s["status"], "succeeded", "{s}");
        assert_eq!(s["output"], "done\n");
        let dir = w.task_dir(id);
        for f in ["result.json", "manifest.json", "events.ndjson"] {
            assert!(dir.join(f).exists(), "{id}/{f}");
        }
    }
}

#[tokio::test]
async fn async_tasks_answer_at_once_and_are_followed_cancelled_and_listed() {
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_KILL_GRACE_SECONDS", "0.5")
        .start()
        .await;
    let started = Instant::now();
    let r = w
        .run(json!({"taskType":"command.run","taskId":"bg-1","async":true,"input":{"command":"sh -c 'echo one; sleep 1; echo two'"}}))
        .await;
    assert!(started.elapsed() < Duration::from_millis(800));
    assert_eq!(r["ok"], true);
    assert_eq!(r["status"], "running");
    assert_eq!(r["events"][0]["message"], "accepted");
    assert_eq!(w.ping().await["status"], "HealthyBusy");
    w.wait_done("bg-1").await;
    let done = w
        .run(json!({"taskType":"task.status","taskId":"bg-1"}))
        .await;
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["output"], "one\ntwo\n");
    let last_seq = done["events"].as_array().unwrap().last().unwrap()["seq"]
        .as_u64()
        .unwrap();
    let tail = w
        .run(json!({"taskType":"task.status","taskId":"bg-1","afterSeq":last_seq - 1}))
        .await;
    assert_eq!(tail["events"].as_array().unwrap().len(), 1);
    assert_eq!(tail["events"][0]["type"], "task.result");
    let none = w
        .run(json!({"taskType":"task.status","taskId":"bg-1","afterSeq":last_seq}))
        .await;
    assert_eq!(none["events"].as_array().unwrap().len(), 0);
    assert_eq!(none["status"], "succeeded");

    // Cancel a running task: nothing of it is left.
    w.run(json!({"taskType":"command.run","taskId":"bg-2","async":true,"input":{"command":"sh -c 'sleep 30 & sleep 30'"}}))
        .await;
    assert!(eventually(Duration::from_secs(3), || task_processes("bg-2").len() >= 2).await);
    let c = w
        .run(json!({"taskType":"task.cancel","taskId":"bg-2"}))
        .await;
    assert_eq!(c["status"], "cancelled");
    assert_eq!(c["ok"], false);
    assert!(task_processes("bg-2").is_empty());
    let list = w.run(json!({"taskType":"task.list"})).await;
    let tasks = list["tasks"].as_array().unwrap();
    let bg2 = tasks.iter().find(|t| t["taskId"] == "bg-2").unwrap();
    assert_eq!(bg2["status"], "cancelled");
    assert_eq!(bg2["command"], "sh -c 'sleep 30 & sleep 30'");
    assert!(bg2["startedAt"].as_str().unwrap().ends_with('Z'));
    assert!(bg2["durationMs"].as_u64().is_some());
    assert!(tasks.iter().any(|t| t["taskId"] == "bg-1"));

    for kind in ["task.status", "task.cancel"] {
        let u = w.run(json!({"taskType":kind,"taskId":"nope"})).await;
        assert_eq!(u["ok"], false);
        assert_eq!(u["errorCode"], "unknown_task");
    }
}

#[tokio::test]
async fn a_fourth_async_task_is_refused_when_the_limit_is_three() {
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_MAX_CONCURRENT_TASKS", "3")
        .start()
        .await;
    for i in 0..3 {
        let r = w
            .run(json!({"taskType":"command.run","taskId":format!("cap-{i}"),"async":true,"input":{"command":"sleep 10"}}))
            .await;
        assert_eq!(r["status"], "running");
    }
    let r = w
        .run(json!({"taskType":"command.run","async":true,"input":{"command":"sleep 10"}}))
        .await;
    assert_eq!(r["errorCode"], "at_capacity");
    for i in 0..3 {
        w.run(json!({"taskType":"task.cancel","taskId":format!("cap-{i}")}))
            .await;
    }
}

#[tokio::test]
async fn finished_tasks_leave_memory_after_retention_and_are_answered_from_disk() {
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_TASK_RETENTION_SECONDS", "0.5")
        .start()
        .await;
    let r = w
        .run(json!({"taskType":"command.run","taskId":"old-1","input":{"command":"echo kept"}}))
        .await;
    assert_eq!(r["ok"], true);
    let w = &w;
    let listed = || async move {
        let list = w.run(json!({"taskType":"task.list"})).await;
        list["tasks"].as_array().unwrap().is_empty()
    };
    assert!(
        eventually_async(Duration::from_secs(5), listed).await,
        "still listed: {}",
        w.run(json!({"taskType":"task.list"})).await
    );
    let s = w
        .run(json!({"taskType":"task.status","taskId":"old-1","afterSeq":1}))
        .await;
    assert_eq!(s["status"], "succeeded");
    assert_eq!(s["output"], "kept\n");
    assert_eq!(s["events"][0]["seq"], 2);
    assert_eq!(s["artifacts"][0]["kind"], "json");
    // The same id again is answered from disk, not run twice.
    let again = w
        .run(json!({"taskType":"command.run","taskId":"old-1","input":{"command":"echo twice"}}))
        .await;
    assert_eq!(again["output"], "kept\n");
}

#[tokio::test]
async fn tasks_routes_list_show_and_follow_with_last_event_id() {
    let w = WorkerBuilder::new().start().await;
    w.run(json!({"taskType":"command.run","taskId":"route-1","async":true,"input":{"command":"sh -c 'for i in 1 2 3 4 5; do echo $i; sleep 0.2; done'"}}))
        .await;
    let list: Value = w.get("/tasks").await.1;
    assert_eq!(list["tasks"][0]["taskId"], "route-1");
    // Live follow from the start ends with the result.
    let live = w
        .client()
        .get(format!("{}/tasks/route-1/events", w.url))
        .send()
        .await
        .unwrap();
    let all = read_sse(live, usize::MAX).await;
    assert_eq!(all.last().unwrap().data["status"], "succeeded");
    // Resume after id 3: exactly the events after it.
    let resumed = w
        .client()
        .get(format!("{}/tasks/route-1/events", w.url))
        .header("last-event-id", "3")
        .send()
        .await
        .unwrap();
    let rest = read_sse(resumed, usize::MAX).await;
    let ids: Vec<u64> = rest.iter().map(|m| m.id.unwrap()).collect();
    let expected: Vec<u64> = all
        .iter()
        .map(|m| m.id.unwrap())
        .filter(|i| *i > 3)
        .collect();
    assert_eq!(ids, expected);
    let one: Value = w.get("/tasks/route-1").await.1;
    assert_eq!(one["output"], "1\n2\n3\n4\n5\n");
    let missing = w
        .client()
        .get(format!("{}/tasks/none", w.url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn ping_is_busy_during_sync_and_streaming_tasks() {
    let w = WorkerBuilder::new().start().await;
    let url = w.url.clone();
    let sync = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("{url}/invocations"))
            .json(&cmd("sleep 1"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    let busy = || async { w.ping().await["status"] == "HealthyBusy" };
    assert!(
        eventually_async(Duration::from_secs(1), busy).await,
        "not HealthyBusy while a task runs"
    );
    sync.await.unwrap();
    assert_eq!(w.ping().await["status"], "Healthy");
    let resp = w
        .client()
        .post(format!("{}/invocations", w.url))
        .header("accept", "text/event-stream")
        .json(&cmd("sleep 1"))
        .send()
        .await
        .unwrap();
    assert!(
        eventually_async(Duration::from_secs(1), busy).await,
        "not HealthyBusy while a streamed task runs"
    );
    read_sse(resp, usize::MAX).await;
    assert_eq!(w.ping().await["status"], "Healthy");
}

const A2A_CHILD: &str = r#"#!/usr/bin/env python3
import json, sys
env = json.loads(sys.stdin.readline())
print(json.dumps({"type": "task.progress", "message": "working on it"}), flush=True)
print(json.dumps({"type": "task.result", "output": "did: " + env["instruction"] + " ctx=" + json.dumps(env["context"], sort_keys=True)}))
"#;

#[tokio::test]
async fn a2a_card_and_json_rpc_methods() {
    let dir = tempfile::tempdir().unwrap();
    let child = script(dir.path(), "a2a.py", A2A_CHILD);
    let w = WorkerBuilder::new()
        .env(
            "AGENTDISPATCH_FRAMEWORK_COMMAND_A2A_AGENT",
            child.to_str().unwrap(),
        )
        .env("AGENTDISPATCH_AGENT_NAME", "Test Worker")
        .start()
        .await;
    let card: Value = w.get("/.well-known/agent-card.json").await.1;
    assert_eq!(card["name"], "Test Worker");
    assert_eq!(card["skills"][0]["id"], "agentdispatch.agent.run");
    assert_eq!(card["capabilities"]["streaming"], true);
    assert!(card["url"].as_str().unwrap().starts_with("http://"));
    for key in ["description", "version", "protocolVersion"] {
        assert!(card[key].is_string(), "{key}");
    }

    let send = json!({"jsonrpc":"2.0","id":7,"method":"message/send","params":{
        "message":{"role":"user","messageId":"m1","parts":[{"kind":"text","text":"line one"},{"kind":"text","text":"line two"}]},
        "metadata":{"framework":"a2a-agent","context":{"k":"v"}}}});
    let r = w.rpc(send.clone()).await;
    assert_eq!(r["jsonrpc"], "2.0");
    assert_eq!(r["id"], 7);
    let m = &r["result"];
    assert_eq!(m["kind"], "message");
    assert_eq!(m["role"], "agent");
    assert!(m["messageId"].is_string());
    assert_eq!(m["parts"][0]["kind"], "text");
    assert_eq!(
        m["parts"][0]["text"],
        "did: line one\nline two ctx={\"k\": \"v\"}"
    );
    assert_eq!(m["metadata"]["ok"], true);
    assert!(m["metadata"]["events"].as_array().unwrap().len() >= 3);
    assert!(m["metadata"]["artifacts"][0]["uri"]
        .as_str()
        .unwrap()
        .ends_with("result.json"));
    assert!(m["metadata"]["error"].is_null());

    let other = w
        .rpc(json!({"jsonrpc":"2.0","id":1,"method":"agent/dance","params":{}}))
        .await;
    assert_eq!(other["error"]["code"], -32601);
    let named = other["error"]["message"].as_str().unwrap();
    for method in [
        "SendMessage",
        "message/stream",
        "tasks/get",
        "tasks/resubscribe",
    ] {
        assert!(named.contains(method), "{named}");
    }

    // tasks/get on the finished task, tasks/cancel refused for it, unknown ids.
    let task_id = m["metadata"]["taskId"].as_str().unwrap();
    let got = w
        .rpc(json!({"jsonrpc":"2.0","id":2,"method":"tasks/get","params":{"id":task_id}}))
        .await;
    assert_eq!(got["result"]["kind"], "task");
    assert_eq!(got["result"]["status"]["state"], "completed");
    let no = w
        .rpc(json!({"jsonrpc":"2.0","id":3,"method":"tasks/cancel","params":{"id":task_id}}))
        .await;
    assert_eq!(no["error"]["code"], -32002);
    let unknown = w
        .rpc(json!({"jsonrpc":"2.0","id":4,"method":"tasks/get","params":{"id":"nope"}}))
        .await;
    assert_eq!(unknown["error"]["code"], -32001);

    // message/stream: a task, working updates, the output artifact, a final status.
    let mut stream_req = send.clone();
    stream_req["method"] = json!("message/stream");
    let resp = w.rpc_response(&stream_req).await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let msgs = read_sse(resp, usize::MAX).await;
    let kinds: Vec<&str> = msgs
        .iter()
        .map(|m| m.data["result"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds[0], "task");
    assert!(kinds.contains(&"status-update"));
    assert_eq!(kinds[kinds.len() - 2], "artifact-update");
    let last = &msgs.last().unwrap().data["result"];
    assert_eq!(last["final"], true);
    assert_eq!(last["status"]["state"], "completed");
    assert!(msgs
        .iter()
        .any(|m| m.data["result"]["status"]["message"]["parts"][0]["text"] == "working on it"));

    // tasks/cancel of a running task maps onto task.cancel.
    let slow = script(dir.path(), "slow.sh", "#!/bin/sh\nexec sleep 30\n");
    drop(w);
    let w = WorkerBuilder::new()
        .env(
            "AGENTDISPATCH_FRAMEWORK_COMMAND_SLOW",
            slow.to_str().unwrap(),
        )
        .start()
        .await;
    let url = w.url.clone();
    tokio::spawn(async move {
        let _ = reqwest::Client::new()
            .post(format!("{url}/"))
            .json(&json!({"jsonrpc":"2.0","id":9,"method":"message/send","params":{
                "message":{"role":"user","taskId":"a2a-slow","parts":[{"kind":"text","text":"x"}]},"metadata":{"framework":"slow"}}}))
            .send()
            .await;
    });
    assert!(
        eventually(Duration::from_secs(5), || !task_processes("a2a-slow")
            .is_empty())
        .await
    );
    let c = w
        .rpc(json!({"jsonrpc":"2.0","id":5,"method":"tasks/cancel","params":{"id":"a2a-slow"}}))
        .await;
    assert_eq!(c["result"]["status"]["state"], "canceled", "{c}");
    assert!(task_processes("a2a-slow").is_empty());
    let bad = w
        .client()
        .post(format!("{}/", w.url))
        .body("{oops")
        .send()
        .await
        .unwrap();
    let bad: Value = bad.json().await.unwrap();
    assert_eq!(bad["error"]["code"], -32700);
}

#[tokio::test]
async fn shutdown_ends_open_streams_with_a_result_and_cancels_async_tasks() {
    let mut w = WorkerBuilder::new()
        .env("AGENTDISPATCH_SHUTDOWN_GRACE_SECONDS", "3")
        .env("AGENTDISPATCH_KILL_GRACE_SECONDS", "1")
        .start()
        .await;
    w.run(json!({"taskType":"command.run","taskId":"sd-async","async":true,"input":{"command":"sleep 60"}}))
        .await;
    let resp = w
        .client()
        .post(format!("{}/invocations", w.url))
        .header("accept", "text/event-stream")
        .json(&json!({"taskType":"command.run","taskId":"sd-stream","input":{"command":"sh -c \"trap '' TERM; sleep 60\""}}))
        .send()
        .await
        .unwrap();
    let reader = tokio::spawn(read_sse(resp, usize::MAX));
    assert!(
        eventually(Duration::from_secs(3), || !task_processes("sd-stream")
            .is_empty())
        .await
    );
    let started = Instant::now();
    w.signal(Signal::SIGTERM);
    let msgs = reader.await.unwrap();
    let last = &msgs.last().unwrap().data;
    assert_eq!(last["status"], "cancelled", "{last}");
    assert_eq!(w.wait_exit(Duration::from_secs(6)), Some(0));
    assert!(
        started.elapsed() < Duration::from_millis(3500),
        "{:?}",
        started.elapsed()
    );
    for id in ["sd-async", "sd-stream"] {
        let result = std::fs::read_to_string(w.task_dir(id).join("result.json")).unwrap();
        assert!(result.contains("\"cancelled\""), "{id}: {result}");
        assert!(task_processes(id).is_empty());
    }
}
