//! What callers put in headers and request lines: id headers bounded as the payload's ids,
//! request lines the HTTP stack must not panic on, values echoed only clipped, and a local
//! worker that answers only local pages.

use super::*;

const REQUEST_ID: &str = "X-Amzn-Bedrock-AgentCore-Runtime-Request-Id";
const SESSION_ID: &str = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id";

#[tokio::test]
async fn long_id_headers_and_ids_with_control_characters_are_400_naming_them() {
    let w = WorkerBuilder::new().start().await;
    let body = || serde_json::to_vec(&json!({"taskId":"with-ids","prompt":"x"})).unwrap();
    let long = "r".repeat(300_000);
    for (name, value) in [
        (REQUEST_ID, long.as_str()),
        (SESSION_ID, long.as_str()),
        (SESSION_ID, "tab\there"),
    ] {
        let (status, r) = w.invoke_raw(body(), &[(name, value)]).await;
        assert_eq!(status, 400, "{name}: {r}");
        assert_eq!(r["errorCode"], "invalid_header");
        let error = r["error"].as_str().unwrap_or_default();
        assert!(error.contains(&name.to_lowercase()), "{error}");
        assert!(error.len() < 500, "{} bytes of error", error.len());
    }
    // Refused before anything used them: no task was started.
    assert!(!w.task_dir("with-ids").exists());
    // The same bound as A2A: a 300 KB session header on a message is refused as well.
    let resp = w
        .client()
        .post(format!("{}/", w.url))
        .header(SESSION_ID, &long)
        .json(&json!({"jsonrpc":"2.0","id":1,"method":"message/send","params":{"message":{"role":"user","parts":[{"kind":"text","text":"hi"}],"messageId":"m1"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // A NUL (or any control character) in a payload's session id, or an A2A context id.
    let (status, r) = w.invoke(&json!({"prompt":"x","sessionId":"a\u{0}b"})).await;
    assert_eq!(status, 400, "{r}");
    let error = r["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("sessionId") && error.contains("U+0000"),
        "{error}"
    );
    let r = w
        .rpc(json!({"jsonrpc":"2.0","id":1,"method":"message/send","params":{"message":{"role":"user","parts":[{"kind":"text","text":"hi"}],"messageId":"m2","contextId":"c\u{1}d"}}}))
        .await;
    assert_eq!(r["error"]["code"], -32602, "{r}");
    // Ids at the bound still work.
    let at_bound = "s".repeat(1024);
    let (status, r) = w.invoke_raw(body(), &[(SESSION_ID, &at_bound)]).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["ok"], true);
}

#[tokio::test]
async fn a_connect_request_and_a_target_with_no_path_are_answered_without_a_panic() {
    let w = WorkerBuilder::new().start().await;
    let send = |request: &'static str| {
        let port = w.port;
        tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(request.as_bytes()).unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out
        })
    };
    let answer =
        send("CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert!(answer.contains("\"ok\":false"), "{answer}");
    let answer = send("OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    assert_eq!(w.ping().await["status"], "Healthy");
    // Every line of the log is one JSON object (a panic would be logged as one, too).
    let raw = w.logs.lock().unwrap().clone();
    for line in &raw {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert_ne!(v["message"], "panicked", "{line}");
    }
}

#[tokio::test]
async fn refused_commands_and_unknown_task_types_are_echoed_clipped() {
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_COMMAND_ALLOWLIST", "true")
        .start()
        .await;
    let huge = "x".repeat(5_000_000);
    let r = w
        .run(json!({"taskType":"command.run","taskId":"long-argv0","input":{"command":format!("{huge} arg")}}))
        .await;
    assert_eq!(r["errorCode"], "command_rejected");
    let refused = w
        .folder_events("long-argv0")
        .into_iter()
        .find(|e| e["payload"]["refused"] == true)
        .expect("a refusal event");
    assert!(
        refused.to_string().len() < 2_000,
        "a refusal event of {} bytes",
        refused.to_string().len()
    );
    let longest = w.logs.lock().unwrap().iter().map(String::len).max();
    assert!(longest < Some(10_000), "a log line of {longest:?} bytes");
    let (_, r) = w.invoke(&json!({"taskType": huge})).await;
    assert_eq!(r["errorCode"], "unsupported_task_type");
    assert!(
        r.to_string().len() < 2_000,
        "an answer of {} bytes",
        r.to_string().len()
    );
}

#[tokio::test]
async fn a_loopback_worker_answers_only_loopback_hosts_and_origins() {
    let w = WorkerBuilder::new().start().await;
    let post = |headers: Vec<(&'static str, String)>| {
        let mut req = w
            .client()
            .post(format!("{}/invocations", w.url))
            .header("content-type", "text/plain")
            .body(r#"{"prompt":"from a page"}"#);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let port = w.port;
    for (header, value) in [
        ("host", format!("evil.example:{port}")),
        ("host", format!("10.0.0.1:{port}")),
        ("origin", "http://evil.example".to_string()),
        ("origin", "null".to_string()),
    ] {
        let (status, r) = post(vec![(header, value.clone())]).await;
        assert_eq!(status, 403, "{header}: {value}: {r}");
        let error = r["error"].as_str().unwrap_or_default();
        let named = if header == "host" { "Host" } else { "Origin" };
        assert!(error.starts_with(named), "{error}");
    }
    for ok in [
        vec![("host", format!("localhost:{port}"))],
        vec![("host", format!("[::1]:{port}"))],
        vec![("origin", format!("http://localhost:{port}"))],
        vec![("origin", "http://127.0.0.1:3000".to_string())],
    ] {
        let (status, r) = post(ok.clone()).await;
        assert_eq!(status, 200, "{ok:?}: {r}");
    }
    // A worker on every address (as in AgentCore) leaves Host and Origin to its network.
    let open = WorkerBuilder::new()
        .env("AGENTDISPATCH_HOST", "0.0.0.0")
        .start()
        .await;
    let resp = open
        .client()
        .post(format!("{}/invocations", open.url))
        .header("host", "runtime.example")
        .header("origin", "https://console.example")
        .json(&json!({"prompt":"x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_fork_request_too_large_for_the_warm_parent_fails_its_task_not_the_parent() {
    // pyfixture with 240 KB of environment from its manifest: more than one control-channel
    // message holds (~208 KB), though each value is within what exec allows.
    let dir = tempfile::tempdir().unwrap();
    let fw = dir.path().join("pyfixture");
    std::fs::create_dir(&fw).unwrap();
    let from = fixture_frameworks().join("pyfixture");
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(from.join("framework.json")).unwrap()).unwrap();
    // The runner where it is (it finds the shared helper from there).
    manifest["command"] = json!(["python3", from.join("runner.py")]);
    manifest["env"]["BIG_ONE"] = json!("a".repeat(120_000));
    manifest["env"]["BIG_TWO"] = json!("b".repeat(120_000));
    std::fs::write(fw.join("framework.json"), manifest.to_string()).unwrap();
    let w = WorkerBuilder::new()
        .fixtures(Kind::Warm)
        .env("AGENTDISPATCH_FRAMEWORKS_DIR", dir.path().to_str().unwrap())
        .start()
        .await;
    let parent = w.warm_ready("pyfixture", 1).await;
    let r = w.run(fixture("too-large", "hi")).await;
    assert_eq!(r["status"], "failed", "{r:#}");
    assert_eq!(r["errorCode"], "spawn_failed");
    let error = r["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("fork request") && error.contains("65536"),
        "{error}"
    );
    // The parent was not taken for broken: the same one, never restarted.
    let restarted = |l: &Value| {
        l["message"] == "warm parent ready" && l["pid"].as_u64() != Some(parent)
            || l.to_string().contains("failed a fork request")
    };
    assert!(!w.log_lines().iter().any(restarted), "the parent restarted");
    assert!(state(parent as i32).is_some(), "the parent is gone");
}
