//! A2A through the binary, as raw JSON-RPC: the hybrid card, the 1.0 methods and shapes beside
//! the 0.3 ones (the method name picks the version), non-blocking sends, subscribe/resubscribe,
//! failed runs, one contextId throughout (also from a task's folder after a restart), errors,
//! ListTasks. The real SDK clients run the same surface in tests/clients/ (scripts/test-clients.sh).

mod common;

use common::*;
use serde_json::{json, Value};

#[path = "a2a/card.rs"]
mod card;
#[path = "a2a/errors.rs"]
mod errors;
#[path = "a2a/interrupts.rs"]
mod interrupts;
#[path = "a2a/list.rs"]
mod list;
#[path = "a2a/messages.rs"]
mod messages;
#[path = "a2a/subscribe.rs"]
mod subscribe;

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

/// Posts a request whose answer is an event stream (checked), returned unread.
async fn open_stream(w: &Worker, body: &Value) -> reqwest::Response {
    let resp = w.rpc_response(body).await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    resp
}

async fn stream(w: &Worker, body: &Value) -> Vec<Value> {
    read_sse(open_stream(w, body).await, usize::MAX)
        .await
        .into_iter()
        .map(|m| m.data)
        .collect()
}
