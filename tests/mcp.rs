//! The MCP door (`POST /mcp`) through the binary, as raw HTTP: 2026-07-28 requests with no
//! handshake (per-request `_meta`, `server/discover`, `resultType`), the 2025 handshake's
//! negotiation, what the transport asks of headers (versions, `Mcp-Method`/`Mcp-Name`, Origin,
//! Accept), bad JSON-RPC, GET/DELETE, and the bounds every door has (body size, tasks at once,
//! `/ping` while a call runs). The official SDK clients run the same door in tests/clients/
//! (scripts/test-clients.sh py-mcp js-mcp).

mod common;

use common::*;
use serde_json::{json, Value};

#[path = "mcp/errors.rs"]
mod errors;

const MODERN: &str = "2026-07-28";

/// A 2026-07-28 request's `params`: `extra` with the version in `_meta`.
fn modern(mut extra: Value) -> Value {
    let meta = extra
        .as_object_mut()
        .unwrap()
        .entry("_meta")
        .or_insert_with(|| json!({}));
    meta["io.modelcontextprotocol/protocolVersion"] = json!(MODERN);
    meta["io.modelcontextprotocol/clientCapabilities"] = json!({});
    extra
}

fn request(id: Value, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// `POST /mcp` with `body` and headers; the response, unread.
async fn post(w: &Worker, body: impl Into<Vec<u8>>, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = w.client().post(format!("{}/mcp", w.url)).body(body.into());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// Posts a JSON body accepting only JSON; status and JSON answer.
async fn call(w: &Worker, body: &Value, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut all = vec![("accept", "application/json")];
    all.extend_from_slice(headers);
    let resp = post(w, serde_json::to_vec(body).unwrap(), &all).await;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, v)
}

fn error_code(v: &Value) -> i64 {
    v["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("no error: {v}"))
}

#[tokio::test]
async fn a_2026_07_28_client_calls_tools_without_a_handshake() {
    let w = WorkerBuilder::new().start().await;
    let h = [("mcp-protocol-version", MODERN)];
    let (s, d) = call(
        &w,
        &request(json!("d"), "server/discover", modern(json!({}))),
        &h,
    )
    .await;
    assert_eq!(s, 200, "{d}");
    let r = &d["result"];
    assert_eq!(r["resultType"], "complete");
    assert_eq!(
        r["supportedVersions"],
        json!([MODERN, "2025-11-25", "2025-06-18"])
    );
    assert!(r["capabilities"]["tools"].is_object(), "{d}");
    assert_eq!(
        r["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "agentdispatch-worker"
    );

    let (s, l) = call(&w, &request(json!(1), "tools/list", modern(json!({}))), &h).await;
    assert_eq!(s, 200, "{l}");
    assert_eq!(l["id"], 1);
    assert_eq!(l["result"]["resultType"], "complete");
    assert!(l["result"]["ttlMs"].as_u64().is_some() && l["result"]["cacheScope"] == "public");
    let names: Vec<&str> = l["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    // The builder allows every command: command_run is there.
    assert_eq!(
        names,
        ["run_echo", "command_run", "task_status", "task_cancel"]
    );

    // The call with the standard request headers, its name Base64-encoded as the spec allows.
    let body = request(
        json!("c-1"),
        "tools/call",
        modern(json!({"name": "run_echo", "arguments": {"instruction": "hi"}})),
    );
    let named = [
        ("mcp-protocol-version", MODERN),
        ("mcp-method", "tools/call"),
        ("mcp-name", "=?base64?cnVuX2VjaG8=?="),
    ];
    let (s, c) = call(&w, &body, &named).await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["id"], "c-1");
    let r = &c["result"];
    assert_eq!(r["resultType"], "complete");
    assert_eq!(r["isError"], false);
    assert_eq!(
        r["content"],
        json!([{"type": "text", "text": "Accepted instruction: hi"}])
    );
    assert_eq!(r["structuredContent"]["status"], "succeeded");
    assert!(r["structuredContent"].get("events").is_none(), "{r}");

    // task_status on that task, by the id the result names.
    let id = r["structuredContent"]["taskId"].as_str().unwrap();
    let body = request(
        json!(2),
        "tools/call",
        modern(json!({"name": "task_status", "arguments": {"taskId": id, "afterSeq": 1}})),
    );
    let (_, st) = call(&w, &body, &h).await;
    assert_eq!(st["result"]["isError"], false, "{st}");
    assert_eq!(st["result"]["structuredContent"]["taskId"], id);
    assert_eq!(st["result"]["structuredContent"]["events"][0]["seq"], 2);
}

#[tokio::test]
async fn a_progress_token_gets_a_stream_of_progress_then_the_response() {
    let w = WorkerBuilder::new().start().await;
    let body = request(
        json!(7),
        "tools/call",
        json!({"name": "command_run", "arguments": {"command": "echo streamed"},
               "_meta": {"progressToken": "tok"}}),
    );
    let both = [
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2025-06-18"),
    ];
    let resp = post(&w, serde_json::to_vec(&body).unwrap(), &both).await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let msgs = read_sse(resp, 100).await;
    let (last, notes) = msgs.split_last().unwrap();
    assert_eq!(last.data["id"], 7, "{:?}", last.data);
    assert_eq!(last.data["result"]["content"][0]["text"], "streamed\n");
    // 2025 results carry no resultType.
    assert!(last.data["result"].get("resultType").is_none());
    assert!(!notes.is_empty());
    for (i, n) in notes.iter().enumerate() {
        assert_eq!(n.data["method"], "notifications/progress");
        assert_eq!(n.data["params"]["progressToken"], "tok");
        assert_eq!(n.data["params"]["progress"], i as u64 + 1);
    }
    let first = notes[0].data["params"]["message"].as_str().unwrap();
    let task = last.data["result"]["structuredContent"]["taskId"]
        .as_str()
        .unwrap();
    assert_eq!(first, format!("accepted: task {task}"));

    // No token and a 2025 client: one JSON answer even when SSE is accepted.
    let body = request(
        json!(8),
        "tools/call",
        json!({"name": "run_echo", "arguments": {"instruction": "x"}}),
    );
    let resp = post(&w, serde_json::to_vec(&body).unwrap(), &both).await;
    assert_eq!(resp.headers()["content-type"], "application/json");
}

#[tokio::test]
async fn the_handshake_negotiates_and_issues_no_session() {
    let w = WorkerBuilder::new().start().await;
    let init = |v: &str| {
        request(
            json!(0),
            "initialize",
            json!({"protocolVersion": v, "capabilities": {},
                                               "clientInfo": {"name": "raw", "version": "1"}}),
        )
    };
    for (asked, got) in [
        ("2025-06-18", "2025-06-18"),
        ("2025-11-25", "2025-11-25"),
        ("2024-11-05", "2025-11-25"),
        ("2099-01-01", "2025-11-25"),
    ] {
        let resp = post(&w, serde_json::to_vec(&init(asked)).unwrap(), &[]).await;
        assert!(resp.headers().get("mcp-session-id").is_none());
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["result"]["protocolVersion"], got, "{asked}: {v}");
        assert_eq!(v["result"]["capabilities"]["tools"]["listChanged"], false);
        assert_eq!(v["result"]["serverInfo"]["name"], "agentdispatch-worker");
    }
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let resp = post(&w, serde_json::to_vec(&note).unwrap(), &[]).await;
    assert_eq!(resp.status(), 202);
    assert!(resp.bytes().await.unwrap().is_empty());
    let (s, p) = call(
        &w,
        &request(json!(1), "ping", json!({})),
        &[("mcp-protocol-version", "2025-11-25")],
    )
    .await;
    assert_eq!((s, &p["result"]), (200, &json!({})));

    // A platform's Mcp-Session-Id is taken, never required, and names the session: a task
    // started in one session is unknown to another.
    let run = request(
        json!(2),
        "tools/call",
        json!({"name": "run_echo", "arguments": {"instruction": "mine"}}),
    );
    let (_, r) = call(&w, &run, &[("mcp-session-id", "session-a")]).await;
    let id = r["result"]["structuredContent"]["taskId"]
        .as_str()
        .unwrap()
        .to_string();
    let status = request(
        json!(3),
        "tools/call",
        json!({"name": "task_status", "arguments": {"taskId": id}}),
    );
    let (_, mine) = call(&w, &status, &[("mcp-session-id", "session-a")]).await;
    assert_eq!(mine["result"]["isError"], false, "{mine}");
    let (_, theirs) = call(&w, &status, &[("mcp-session-id", "session-b")]).await;
    assert_eq!(theirs["result"]["isError"], true, "{theirs}");
    assert_eq!(
        theirs["result"]["structuredContent"]["errorCode"],
        "unknown_task"
    );
}

#[tokio::test]
async fn get_delete_origin_accept_and_size_are_answered_as_the_transport_says() {
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_MAX_PAYLOAD_BYTES", "2000")
        .start()
        .await;
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let resp = w
            .client()
            .request(method.clone(), format!("{}/mcp", w.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 405, "{method}");
        assert_eq!(resp.headers()["allow"], "POST");
        let v: Value = resp.json().await.unwrap();
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("stateless"),
            "{v}"
        );
    }
    let list = serde_json::to_vec(&request(json!(1), "tools/list", json!({}))).unwrap();
    // A loopback worker: a page's Origin is refused before the door (the HTTP guard).
    let resp = post(&w, list.clone(), &[("origin", "http://evil.example")]).await;
    assert_eq!(resp.status(), 403);
    let resp = post(
        &w,
        list.clone(),
        &[("origin", &format!("http://127.0.0.1:{}", w.port))],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let resp = post(&w, list.clone(), &[("accept", "text/html")]).await;
    assert_eq!(resp.status(), 406);
    let big = serde_json::to_vec(&request(
        json!(1),
        "tools/call",
        json!({"name": "run_echo", "arguments": {"instruction": "x".repeat(3000)}}),
    ))
    .unwrap();
    let resp = post(&w, big, &[]).await;
    assert_eq!(resp.status(), 413);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["errorCode"],
        "invalid_payload"
    );
}

#[tokio::test]
async fn on_any_listener_an_origin_must_name_the_host_it_was_sent_to() {
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_HOST", "0.0.0.0")
        .start()
        .await;
    let list = serde_json::to_vec(&request(json!(1), "tools/list", json!({}))).unwrap();
    let resp = post(&w, list.clone(), &[("origin", "http://evil.example")]).await;
    assert_eq!(resp.status(), 403);
    let v: Value = resp.json().await.unwrap();
    assert_eq!((error_code(&v), &v["id"]), (-32600, &Value::Null), "{v}");
    let own = format!("http://127.0.0.1:{}", w.port);
    assert_eq!(
        post(&w, list.clone(), &[("origin", &own)]).await.status(),
        200
    );
    assert_eq!(post(&w, list, &[]).await.status(), 200);
}

#[tokio::test]
async fn calls_are_bounded_like_any_task_and_ping_stays_free() {
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_MAX_CONCURRENT_TASKS", "1")
        .env("AGENTDISPATCH_KILL_GRACE_SECONDS", "1")
        .start()
        .await;
    let slow = request(
        json!("slow-1"),
        "tools/call",
        json!({"name": "command_run", "arguments": {"command": "sleep 30"},
                                                            "_meta": {"progressToken": 1}}),
    );
    let resp = post(
        &w,
        serde_json::to_vec(&slow).unwrap(),
        &[("accept", "application/json, text/event-stream")],
    )
    .await;
    let mut stream = Box::pin(resp.bytes_stream());
    // The first notification: the task runs.
    let mut buf = String::new();
    while !buf.contains("accepted: task") {
        use futures_util::StreamExt;
        buf.push_str(&String::from_utf8_lossy(
            &stream.next().await.unwrap().unwrap(),
        ));
    }
    assert_eq!(w.ping().await["status"], "HealthyBusy");
    // A second call while it runs: the worker's task bound, as a tool error.
    let again = request(
        json!(2),
        "tools/call",
        json!({"name": "run_echo", "arguments": {"instruction": "x"}}),
    );
    let (_, r) = call(&w, &again, &[]).await;
    assert_eq!(r["result"]["isError"], true, "{r}");
    assert_eq!(r["result"]["structuredContent"]["errorCode"], "at_capacity");
    // notifications/cancelled names the call by its request id: its task stops, and the
    // stream ends with the cancelled result.
    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "slow-1", "reason": "enough"}});
    assert_eq!(
        post(&w, serde_json::to_vec(&cancel).unwrap(), &[])
            .await
            .status(),
        202
    );
    let rest = {
        use futures_util::StreamExt;
        while let Some(chunk) = stream.next().await {
            buf.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
        buf
    };
    let last: Value =
        serde_json::from_str(rest.trim_end().rsplit("data: ").next().unwrap()).unwrap();
    assert_eq!(last["id"], "slow-1");
    assert_eq!(last["result"]["isError"], true, "{last}");
    assert!(
        last["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("cancelled: "),
        "{last}"
    );
    // Not busy once the task has ended (the status changes as it ends, not as it answers).
    assert!(
        eventually_async(std::time::Duration::from_secs(10), || async {
            w.ping().await["status"] == "Healthy"
        })
        .await
    );
}

#[tokio::test]
async fn at_2026_07_28_a_client_that_goes_away_cancels_its_call() {
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_KILL_GRACE_SECONDS", "1")
        .start()
        .await;
    let body = request(
        json!(1),
        "tools/call",
        modern(json!({"name": "command_run", "arguments": {"command": "sleep 30"}})),
    );
    // A JSON answer awaited: the client gives up once the task runs, closing the connection.
    let gone = w
        .client()
        .post(format!("{}/mcp", w.url))
        .header("accept", "application/json")
        .json(&body);
    let waiting = tokio::spawn(gone.send());
    let running = || async { w.get("/tasks").await.1["tasks"][0]["status"].clone() };
    assert!(
        eventually_async(std::time::Duration::from_secs(10), || async {
            running().await == "running"
        })
        .await
    );
    waiting.abort();
    assert!(
        eventually_async(std::time::Duration::from_secs(10), || async {
            running().await == "cancelled"
        })
        .await,
        "{}",
        w.get("/tasks").await.1
    );
}

#[tokio::test]
async fn a_call_hands_the_agent_the_request_as_invocations_do() {
    let dir = tempfile::tempdir().unwrap();
    // Answers with what its envelope's `request` holds (the token only as whether it came).
    let seer = script(
        dir.path(),
        "seer.py",
        "#!/usr/bin/env python3\nimport json, sys\nr = json.loads(sys.stdin.readline()).get('request', {})\nh = r.get('headers', {})\nprint(json.dumps({'type': 'task.result', 'output': json.dumps({'tenant': h.get('x-amzn-bedrock-agentcore-runtime-custom-tenant'), 'token': 'authorization' in h, 'session': r.get('sessionId')})}))\n",
    );
    let w = WorkerBuilder::new()
        .env(
            "AGENTDISPATCH_FRAMEWORK_COMMAND_SEER",
            seer.to_str().unwrap(),
        )
        .start()
        .await;
    let body = request(
        json!(1),
        "tools/call",
        json!({"name": "run_seer", "arguments": {"instruction": "x"}}),
    );
    let sent = [
        ("x-amzn-bedrock-agentcore-runtime-custom-tenant", "tenant-1"),
        ("authorization", "Bearer not-for-logs"),
        ("mcp-session-id", "platform-session"),
    ];
    let (s, r) = call(&w, &body, &sent).await;
    assert_eq!(s, 200, "{r}");
    let seen: Value =
        serde_json::from_str(r["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(
        seen,
        json!({"tenant": "tenant-1", "token": true, "session": "platform-session"})
    );
    assert!(!w
        .logs
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("not-for-logs")));
    // Past a bound of what is passed on: refused before any task, naming the bound.
    let long = "v".repeat(20_000);
    let (s, e) = call(&w, &body, &[("x-custom", long.as_str())]).await;
    assert_eq!((s, error_code(&e)), (400, -32600), "{e}");
    assert_eq!(e["error"]["data"]["errorCode"], "invalid_header");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("x-custom"),
        "{e}"
    );
}
