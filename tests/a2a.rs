//! A2A through the binary, as raw JSON-RPC: the hybrid card, the 1.0 methods and shapes beside
//! the 0.3 ones (the method name picks the version), non-blocking sends, subscribe/resubscribe,
//! failed runs, one contextId throughout (also from a task's folder after a restart), errors,
//! ListTasks. The real SDK clients run the same surface in tests/clients/ (scripts/test-clients.sh).

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const SLOW: &str =
    "#!/bin/sh\necho '{\"type\":\"task.progress\",\"message\":\"started\"}'\nexec sleep 30\n";
const FAILS: &str = "#!/bin/sh\necho 'it went boom' >&2\nexit 3\n";

/// A worker with a `slow` framework (prints one progress line, then sleeps 30 s) and a `fails`
/// one (exit 3 with a line on stderr).
async fn worker(dir: &std::path::Path, builder: WorkerBuilder) -> Worker {
    let slow = script(dir, "slow.sh", SLOW);
    let fails = script(dir, "fails.sh", FAILS);
    builder
        .env(
            "AGENTDISPATCH_FRAMEWORK_COMMAND_SLOW",
            slow.to_str().unwrap(),
        )
        .env(
            "AGENTDISPATCH_FRAMEWORK_COMMAND_FAILS",
            fails.to_str().unwrap(),
        )
        .env("AGENTDISPATCH_KILL_GRACE_SECONDS", "1")
        .start()
        .await
}

fn rpc(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": "req-1", "method": method, "params": params})
}

/// A `SendMessage` / `message/send` request: 1.0 parts have no `kind`.
fn send(method: &str, text: &str, framework: &str, extra: Value) -> Value {
    let v1 = method.chars().next().is_some_and(char::is_uppercase);
    let part = if v1 {
        json!({"text": text})
    } else {
        json!({"kind": "text", "text": text})
    };
    let role = if v1 { "ROLE_USER" } else { "user" };
    let mut message = json!({"role": role, "messageId": "m-1", "parts": [part]});
    if let Some(m) = extra.get("message").and_then(Value::as_object) {
        for (k, v) in m {
            message[k] = v.clone();
        }
    }
    let mut params = json!({"message": message, "metadata": {"framework": framework}});
    if let Some(c) = extra.get("configuration") {
        params["configuration"] = c.clone();
    }
    rpc(method, params)
}

/// An open event stream, read message by message.
struct Sse {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

impl Sse {
    async fn open(w: &Worker, body: &Value) -> Sse {
        let resp = w
            .client()
            .post(format!("{}/", w.url))
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        Sse {
            body: Box::pin(resp.bytes_stream()),
            buf: String::new(),
        }
    }

    /// The next message's data, or `None` once the stream has ended.
    async fn next(&mut self) -> Option<Value> {
        use futures_util::StreamExt;
        loop {
            if let Some((_, data)) = sse::next_message(&mut self.buf) {
                return Some(serde_json::from_str(&data).unwrap());
            }
            let chunk = self.body.next().await?.unwrap();
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Every message up to the end of the stream.
    async fn rest(mut self) -> Vec<Value> {
        let mut out = Vec::new();
        while let Some(m) = self.next().await {
            out.push(m);
        }
        out
    }
}

async fn stream(w: &Worker, body: &Value) -> Vec<Value> {
    let resp = w
        .client()
        .post(format!("{}/", w.url))
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    read_sse(resp, usize::MAX)
        .await
        .into_iter()
        .map(|m| m.data)
        .collect()
}

/// Every key anywhere in `v` (to check that 1.0 answers carry no 0.3 `kind`/`final`).
fn keys(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k != "metadata" {
                    out.push(k.clone());
                    keys(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| keys(x, out)),
        _ => {}
    }
}

fn no_03_keys(v: &Value) {
    let mut all = Vec::new();
    keys(v, &mut all);
    assert!(
        !all.iter().any(|k| k == "kind" || k == "final"),
        "0.3 keys in a 1.0 answer: {v:#}"
    );
}

#[tokio::test]
async fn the_card_serves_1_0_and_0_3_on_the_url_from_the_configuration() {
    let w = WorkerBuilder::new()
        .env("AGENTCORE_RUNTIME_URL", "https://runtime.example/agent/")
        .env("AGENTDISPATCH_PUBLIC_URL", "https://public.example/a2a/")
        .start()
        .await;
    let card = w.get("/.well-known/agent-card.json").await.1;
    let url = "https://public.example/a2a/";
    assert_eq!(
        card["supportedInterfaces"],
        json!([
            {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
            {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
        ])
    );
    assert_eq!(card["url"], url);
    assert_eq!(card["preferredTransport"], "JSONRPC");
    assert_eq!(card["protocolVersion"], "0.3.0");
    assert_eq!(card["capabilities"]["streaming"], true);
    for key in ["name", "description", "version"] {
        assert!(card[key].is_string(), "{key}");
    }
    let skill = &card["skills"][0];
    assert_eq!(skill["id"], "agentdispatch.agent.run");
    for key in ["name", "description"] {
        assert!(skill[key].is_string(), "{key}");
    }
    assert!(skill["tags"].is_array());
    assert!(card["defaultInputModes"].is_array() && card["defaultOutputModes"].is_array());
}

#[tokio::test]
async fn send_message_1_0_answers_a_completed_task_in_proto_json() {
    let dir = tempfile::tempdir().unwrap();
    let w = worker(dir.path(), WorkerBuilder::new()).await;
    let r = w.rpc(send("SendMessage", "hello", "echo", json!({}))).await;
    assert_eq!(r["id"], "req-1");
    let task = &r["result"]["task"];
    assert_eq!(task["status"]["state"], "TASK_STATE_COMPLETED", "{r:#}");
    assert_eq!(task["status"]["message"]["role"], "ROLE_AGENT");
    assert_eq!(
        task["artifacts"][0]["parts"][0]["text"],
        "Accepted instruction: hello"
    );
    assert!(task["contextId"].as_str().is_some_and(|c| !c.is_empty()));
    // The reference worker's keys stay in the metadata for the AgentDispatch adapter.
    assert_eq!(task["metadata"]["ok"], true);
    assert!(task["metadata"]["events"].as_array().unwrap().len() >= 2);
    no_03_keys(&r);
    // GetTask: the same context; historyLength 0 leaves history out, 1 keeps the last one.
    let id = task["id"].as_str().unwrap();
    let got = w
        .rpc(rpc("GetTask", json!({"id": id, "historyLength": 0})))
        .await;
    assert_eq!(got["result"]["contextId"], task["contextId"]);
    assert!(got["result"].get("history").is_none());
    let one = w
        .rpc(rpc("GetTask", json!({"id": id, "historyLength": 1})))
        .await;
    assert_eq!(one["result"]["history"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn send_streaming_message_1_0_wraps_each_update_and_closes_at_the_terminal_state() {
    let dir = tempfile::tempdir().unwrap();
    let w = worker(dir.path(), WorkerBuilder::new()).await;
    let msgs = stream(&w, &send("SendStreamingMessage", "hi", "echo", json!({}))).await;
    let kinds: Vec<String> = msgs
        .iter()
        .map(|m| {
            assert_eq!(m["jsonrpc"], "2.0");
            assert_eq!(m["id"], "req-1");
            let result = m["result"].as_object().unwrap();
            assert_eq!(
                result.len(),
                1,
                "one of task/statusUpdate/artifactUpdate: {m}"
            );
            result.keys().next().unwrap().clone()
        })
        .collect();
    assert_eq!(kinds[0], "task");
    assert_eq!(kinds[kinds.len() - 2..], ["artifactUpdate", "statusUpdate"]);
    let context = &msgs[0]["result"]["task"]["contextId"];
    for m in &msgs[1..] {
        let update = m["result"].as_object().unwrap().values().next().unwrap();
        assert_eq!(&update["contextId"], context);
    }
    let last = &msgs.last().unwrap()["result"]["statusUpdate"];
    assert_eq!(last["status"]["state"], "TASK_STATE_COMPLETED");
    for m in &msgs {
        no_03_keys(m);
    }
}

#[tokio::test]
async fn a_non_blocking_send_answers_a_working_task_at_once_in_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let w = worker(dir.path(), WorkerBuilder::new()).await;
    let r03 = w
        .rpc(send(
            "message/send",
            "x",
            "slow",
            json!({"configuration": {"blocking": false}}),
        ))
        .await;
    let task = &r03["result"];
    assert_eq!(task["kind"], "task", "{r03:#}");
    assert_eq!(task["status"]["state"], "working");
    let r1 = w
        .rpc(send(
            "SendMessage",
            "x",
            "slow",
            json!({"configuration": {"returnImmediately": true}}),
        ))
        .await;
    assert_eq!(
        r1["result"]["task"]["status"]["state"],
        "TASK_STATE_WORKING"
    );
    // Both still run: the answers did not wait for them.
    for id in [&task["id"], &r1["result"]["task"]["id"]] {
        let got = w.rpc(rpc("tasks/get", json!({"id": id}))).await;
        assert_eq!(got["result"]["status"]["state"], "working");
        let c = w.rpc(rpc("CancelTask", json!({"id": id}))).await;
        assert_eq!(
            c["result"]["status"]["state"], "TASK_STATE_CANCELED",
            "{c:#}"
        );
    }
}

#[tokio::test]
async fn resubscribe_and_subscribe_join_a_running_task_and_refuse_a_finished_one() {
    let dir = tempfile::tempdir().unwrap();
    let w = worker(dir.path(), WorkerBuilder::new()).await;
    let r = w
        .rpc(send(
            "message/send",
            "x",
            "slow",
            json!({"configuration": {"blocking": false}, "message": {"contextId": "ctx-join"}}),
        ))
        .await;
    let id = r["result"]["id"].as_str().unwrap().to_string();
    assert!(
        eventually(Duration::from_secs(10), || !task_processes(&id).is_empty()).await,
        "the slow task never started"
    );
    // Both streams: the task first (working, same context), then updates until the cancel.
    let mut old = Sse::open(&w, &rpc("tasks/resubscribe", json!({"id": id}))).await;
    let mut new = Sse::open(&w, &rpc("SubscribeToTask", json!({"id": id}))).await;
    let first = old.next().await.expect("a first message");
    assert_eq!(first["result"]["kind"], "task", "{first:#}");
    assert_eq!(first["result"]["status"]["state"], "working");
    assert_eq!(first["result"]["contextId"], "ctx-join");
    let first = new.next().await.expect("a first message");
    assert_eq!(
        first["result"]["task"]["status"]["state"],
        "TASK_STATE_WORKING"
    );
    assert_eq!(first["result"]["task"]["contextId"], "ctx-join");
    let c = w.rpc(rpc("tasks/cancel", json!({"id": id}))).await;
    assert_eq!(c["result"]["status"]["state"], "canceled", "{c:#}");
    let old = old.rest().await;
    let last = &old.last().unwrap()["result"];
    assert_eq!(last["final"], true);
    assert_eq!(last["status"]["state"], "canceled");
    assert!(old.iter().all(|m| m["result"]["contextId"] == "ctx-join"));
    let new = new.rest().await;
    let last = &new.last().unwrap()["result"]["statusUpdate"];
    assert_eq!(last["status"]["state"], "TASK_STATE_CANCELED");
    // Finished: 0.3 answers -32602 (as an event stream), 1.0 -32004 with an ErrorInfo.
    let again = stream(&w, &rpc("tasks/resubscribe", json!({"id": id}))).await;
    assert_eq!(again[0]["error"]["code"], -32602, "{again:?}");
    let again = w.rpc(rpc("SubscribeToTask", json!({"id": id}))).await;
    assert_eq!(again["error"]["code"], -32004, "{again:#}");
    assert_eq!(again["error"]["data"][0]["reason"], "UNSUPPORTED_OPERATION");
    // Cancel of a finished task: -32002 in both.
    for method in ["tasks/cancel", "CancelTask"] {
        let no = w.rpc(rpc(method, json!({"id": id}))).await;
        assert_eq!(no["error"]["code"], -32002, "{method}: {no:#}");
    }
}

#[tokio::test]
async fn a_quiet_stream_carries_keep_alive_comments() {
    let dir = tempfile::tempdir().unwrap();
    let w = worker(dir.path(), WorkerBuilder::new()).await;
    let body = send(
        "SendStreamingMessage",
        "x",
        "slow",
        json!({"message": {"taskId": "quiet"}}),
    );
    let resp = w
        .client()
        .post(format!("{}/", w.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    let mut bytes = resp.bytes_stream();
    let mut seen = String::new();
    use futures_util::StreamExt;
    // The slow task prints one line, then nothing (heartbeats every 10 s by default).
    while !seen.contains("\n: keep-alive\n\n") {
        let chunk = bytes.next().await.expect("the stream goes on").unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let c = w.rpc(rpc("CancelTask", json!({"id": "quiet"}))).await;
    assert_eq!(c["result"]["status"]["state"], "TASK_STATE_CANCELED");
}

#[tokio::test]
async fn a_failed_run_is_failed_with_its_error_never_an_empty_success() {
    let dir = tempfile::tempdir().unwrap();
    let w = worker(dir.path(), WorkerBuilder::new()).await;
    // 0.3 blocking send: the reference worker's message, its text the error.
    let r = w.rpc(send("message/send", "x", "fails", json!({}))).await;
    let m = &r["result"];
    assert_eq!(m["kind"], "message");
    let text = m["parts"][0]["text"].as_str().unwrap();
    assert!(text.contains("boom"), "{r:#}");
    assert_eq!(m["metadata"]["ok"], false);
    assert_eq!(m["metadata"]["state"], "failed");
    let got = w.rpc(rpc("tasks/get", json!({"id": m["taskId"]}))).await;
    assert_eq!(got["result"]["status"]["state"], "failed");
    assert!(got["result"]["status"]["message"]["parts"][0]["text"]
        .as_str()
        .unwrap()
        .contains("boom"));
    // 1.0: a failed task.
    let r = w.rpc(send("SendMessage", "x", "fails", json!({}))).await;
    assert_eq!(r["result"]["task"]["status"]["state"], "TASK_STATE_FAILED");
    // A stream ends on the failed state.
    let msgs = stream(&w, &send("message/stream", "x", "fails", json!({}))).await;
    let last = &msgs.last().unwrap()["result"];
    assert_eq!(last["final"], true);
    assert_eq!(last["status"]["state"], "failed");
}

#[tokio::test]
async fn one_context_id_in_the_stream_in_get_and_after_a_restart_from_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let art = dir.path().join("artifacts");
    let builder = || WorkerBuilder::new().env("AGENTDISPATCH_ARTIFACT_DIR", art.to_str().unwrap());
    let w = worker(dir.path(), builder()).await;
    let msgs = stream(&w, &send("message/stream", "x", "echo", json!({}))).await;
    let context = msgs[0]["result"]["contextId"].as_str().unwrap().to_string();
    let id = msgs[0]["result"]["id"].as_str().unwrap().to_string();
    for m in &msgs {
        assert_eq!(m["result"]["contextId"], context.as_str(), "{m}");
    }
    for method in ["tasks/get", "GetTask"] {
        let got = w.rpc(rpc(method, json!({"id": id}))).await;
        assert_eq!(got["result"]["contextId"], context.as_str(), "{got:#}");
    }
    drop(w);
    let w = worker(dir.path(), builder()).await;
    let got = w.rpc(rpc("tasks/get", json!({"id": id}))).await;
    assert_eq!(got["result"]["status"]["state"], "completed", "{got:#}");
    assert_eq!(got["result"]["contextId"], context.as_str());
}

#[tokio::test]
async fn errors_name_what_is_wrong_in_each_version() {
    let w = WorkerBuilder::new().start().await;
    let other = w.rpc(rpc("tasks/list", json!({}))).await;
    assert_eq!(other["error"]["code"], -32601);
    let named = other["error"]["message"].as_str().unwrap();
    for method in [
        "SendMessage",
        "SendStreamingMessage",
        "GetTask",
        "ListTasks",
        "CancelTask",
        "SubscribeToTask",
        "message/send",
        "message/stream",
        "tasks/get",
        "tasks/cancel",
        "tasks/resubscribe",
    ] {
        assert!(named.contains(method), "{method}: {named}");
    }
    for (method, v1) in [
        ("GetTask", true),
        ("tasks/get", false),
        ("CancelTask", true),
    ] {
        let r = w.rpc(rpc(method, json!({"id": "no-such-task"}))).await;
        assert_eq!(r["error"]["code"], -32001, "{method}: {r:#}");
        assert_eq!(r["error"]["data"][0]["reason"].is_string(), v1, "{r:#}");
    }
    let r = w
        .rpc(rpc("SubscribeToTask", json!({"id": "no-such-task"})))
        .await;
    assert_eq!(r["error"]["code"], -32001);
    let r = w
        .rpc(rpc(
            "CreateTaskPushNotificationConfig",
            json!({"taskId": "x"}),
        ))
        .await;
    assert_eq!(r["error"]["code"], -32003);
    let r = w.rpc(rpc("GetTask", json!({}))).await;
    assert_eq!(r["error"]["code"], -32602);
    let r = w.rpc(rpc("SendMessage", json!({"message": 3}))).await;
    assert_eq!(r["error"]["code"], -32602);
    let long = "c".repeat(2000);
    let r = w
        .rpc(send(
            "message/send",
            "x",
            "echo",
            json!({"message": {"contextId": long}}),
        ))
        .await;
    assert_eq!(r["error"]["code"], -32602, "{r:#}");
}

#[tokio::test]
async fn list_tasks_pages_filters_and_leaves_artifacts_out_unless_asked() {
    let w = WorkerBuilder::new().start().await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let ctx = if n == 2 { "ctx-b" } else { "ctx-a" };
        let r = w
            .rpc(send(
                "SendMessage",
                &format!("t{n}"),
                "echo",
                json!({"message": {"contextId": ctx}}),
            ))
            .await;
        ids.push(r["result"]["task"]["id"].clone());
    }
    let page = w.rpc(rpc("ListTasks", json!({"pageSize": 2}))).await;
    let r = &page["result"];
    assert_eq!(r["tasks"].as_array().unwrap().len(), 2, "{page:#}");
    assert_eq!(r["totalSize"], 3);
    assert_eq!(r["pageSize"], 2);
    assert!(r["tasks"][0].get("artifacts").is_none());
    // The most recently updated first.
    assert_eq!(r["tasks"][0]["id"], ids[2]);
    assert_eq!(r["tasks"][1]["id"], ids[1]);
    let token = r["nextPageToken"].as_str().unwrap();
    assert!(!token.is_empty());
    let rest = w
        .rpc(rpc(
            "ListTasks",
            json!({"pageSize": 2, "pageToken": token, "includeArtifacts": true}),
        ))
        .await;
    assert_eq!(rest["result"]["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(rest["result"]["nextPageToken"], "");
    assert!(rest["result"]["tasks"][0]["artifacts"].is_array());
    let a = w.rpc(rpc("ListTasks", json!({"contextId": "ctx-a"}))).await;
    assert_eq!(a["result"]["totalSize"], 2);
    let done = w
        .rpc(rpc("ListTasks", json!({"status": "TASK_STATE_WORKING"})))
        .await;
    assert_eq!(done["result"]["totalSize"], 0);
    let bad = w.rpc(rpc("ListTasks", json!({"status": "DONE"}))).await;
    assert_eq!(bad["error"]["code"], -32602);
}
