//! What the door refuses: versions and request headers that do not fit, and bad JSON-RPC,
//! each with an error naming what is wrong.

use super::*;

/// Asserts that the error `e` says `text` in its message.
#[track_caller]
fn says(e: &Value, text: &str) {
    let message = e["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(text), "{text:?} not in {e}");
}

#[tokio::test]
async fn versions_and_request_headers_that_do_not_fit_are_refused() {
    let w = WorkerBuilder::new().start().await;
    let list = |meta_version: &str| {
        request(
            json!(1),
            "tools/list",
            json!({"_meta": {"io.modelcontextprotocol/protocolVersion": meta_version}}),
        )
    };
    // A version not served: 400 naming the versions that are (the client retries with one).
    let (s, e) = call(&w, &list("1900-01-01"), &[]).await;
    assert_eq!((s, error_code(&e)), (400, -32022), "{e}");
    assert_eq!(
        e["error"]["data"]["supported"],
        json!([MODERN, "2025-11-25", "2025-06-18"])
    );
    assert_eq!(e["error"]["data"]["requested"], "1900-01-01");
    assert_eq!(e["id"], 1);
    let (s, e) = call(
        &w,
        &request(json!(1), "tools/list", json!({})),
        &[("mcp-protocol-version", "2024-01-01")],
    )
    .await;
    assert_eq!((s, error_code(&e)), (400, -32022), "{e}");
    // Header and body disagree: HeaderMismatch.
    let (s, e) = call(&w, &list(MODERN), &[("mcp-protocol-version", "2025-11-25")]).await;
    assert_eq!((s, error_code(&e)), (400, -32020), "{e}");
    let (s, e) = call(&w, &list(MODERN), &[("mcp-method", "tools/call")]).await;
    assert_eq!((s, error_code(&e)), (400, -32020), "{e}");
    says(&e, "Mcp-Method");
    let named = request(
        json!(2),
        "tools/call",
        modern(json!({"name": "run_echo", "arguments": {"instruction": "x"}})),
    );
    let (s, e) = call(&w, &named, &[("mcp-name", "task_cancel")]).await;
    assert_eq!((s, error_code(&e)), (400, -32020), "{e}");
    // A 2026-07-28 header with no _meta: the request does not say its version where it must.
    let (s, e) = call(
        &w,
        &request(json!(3), "tools/list", json!({})),
        &[("mcp-protocol-version", MODERN)],
    )
    .await;
    assert_eq!((s, error_code(&e)), (400, -32602), "{e}");
    // Methods: 2026-07-28 answers one it does not serve 404 (ping is gone), 2025 answers 200.
    let (s, e) = call(&w, &request(json!(4), "ping", modern(json!({}))), &[]).await;
    assert_eq!((s, error_code(&e)), (404, -32601), "{e}");
    let (s, e) = call(&w, &request(json!(5), "resources/list", json!({})), &[]).await;
    assert_eq!((s, error_code(&e)), (200, -32601), "{e}");
    says(&e, "tools/call");
}

#[tokio::test]
async fn bad_json_rpc_gets_an_error_naming_what_is_wrong() {
    let w = WorkerBuilder::new().start().await;
    for (body, status, code, text) in [
        (&b"{"[..], 400, -32700, "Parse error"),
        (b"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}]", 400, -32600, "batches"),
        (b"\"tools/list\"", 400, -32600, "JSON-RPC 2.0 object"),
        (b"{\"id\":1,\"method\":\"tools/list\"}", 400, -32600, "jsonrpc"),
        (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":5}", 400, -32600, "method must be a string"),
        (b"{\"jsonrpc\":\"2.0\",\"id\":1}", 400, -32600, "needs a method"),
        (b"{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"tools/list\"}", 400, -32600, "id must be"),
        (b"{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"tools/list\"}", 400, -32600, "id must be"),
        (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":[]}", 200, -32602, "params must be an object"),
        (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{}}", 200, -32602, "params.name"),
        (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"run_echo\",\"arguments\":[]}}", 200, -32602, "arguments must be an object"),
        (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"run_nope\"}}", 200, -32602, "Unknown tool: run_nope"),
        (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{}}", 200, -32602, "protocolVersion"),
    ] {
        let resp = post(&w, body.to_vec(), &[("accept", "application/json")]).await;
        let got = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap();
        let shown = String::from_utf8_lossy(body);
        assert_eq!((got, error_code(&v)), (status, code), "{shown}: {v}");
        says(&v, text);
    }
    // A tool's own arguments: a result with isError, so that a model can correct itself.
    let body = request(
        json!(1),
        "tools/call",
        json!({"name": "run_echo", "arguments": {"instruction": "x", "input": 3}}),
    );
    let (s, r) = call(&w, &body, &[]).await;
    assert_eq!(s, 200);
    assert_eq!(r["result"]["isError"], true);
    assert_eq!(
        r["result"]["content"][0]["text"],
        "invalid_payload: Tool run_echo: argument input must be an object, not a number."
    );
    // A client's response and other notifications: taken, nothing to answer.
    for body in [
        json!({"jsonrpc": "2.0", "id": 9, "result": {}}),
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 404}}),
    ] {
        assert_eq!(
            post(&w, serde_json::to_vec(&body).unwrap(), &[])
                .await
                .status(),
            202
        );
    }
    assert_eq!(w.ping().await["status"], "Healthy");
}
