//! A task that asks (SPEC §14) with a framework's own mechanism, through the real binary:
//! LangGraph's example agent's `refund` tool calls `interrupt()`; the question survives a
//! worker restart (its checkpoint is in the session folder) and the answer runs the tool once.

use super::*;

fn refunds(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .map(|s| s.lines().map(String::from).collect())
        .unwrap_or_default()
}

async fn langgraph_worker(warm: bool, sessions: &Path, log: &Path) -> Worker {
    require_venv("langgraph");
    let w = WorkerBuilder::new()
        .env(
            "AGENTDISPATCH_FRAMEWORKS_DIR",
            frameworks_dir().to_str().unwrap(),
        )
        .env("AGENTDISPATCH_SESSION_DIR", sessions.to_str().unwrap())
        .env(
            "AGENTDISPATCH_WARM",
            if warm { "langgraph" } else { "none" },
        )
        .env("EXAMPLE_REFUND_LOG", log.to_str().unwrap())
        .start()
        .await;
    if warm {
        w.warm_ready("langgraph", 1).await;
    }
    w
}

fn refund(id: &str, session: Option<&str>, resume: Option<Value>) -> Value {
    let mut body = json!({"taskId": id, "framework": "langgraph",
                          "input": {"instruction": "refund 5 for order 42"}});
    if let Some(s) = session {
        body["sessionId"] = json!(s);
    }
    if let Some(r) = resume {
        body["input"]["resume"] = r;
    }
    body
}

#[tokio::test]
async fn langgraph_asks_for_approval_and_the_answer_after_a_restart_runs_the_tool_once() {
    for warm in [false, true] {
        let sessions = tempfile::tempdir().unwrap();
        let log = sessions.path().join("refunds.log");
        let asked = unique_id(&format!("lg-ask-{warm}"));
        // Sent without a session (a stateless run): the worker names the one to answer in.
        let session = {
            let w = langgraph_worker(warm, sessions.path(), &log).await;
            let r = w.run(refund(&asked, None, None)).await;
            assert_eq!(r["status"], "input_required", "warm={warm}: {r:#}");
            let q = &r["interrupts"][0];
            assert_eq!(q["kind"], "approval", "{r:#}");
            assert_eq!(q["tool"], "refund", "{r:#}");
            assert_eq!(q["args"]["text"], "refund 5 for order 42", "{r:#}");
            assert!(refunds(&log).is_empty(), "asking runs no refund");
            r["sessionId"].as_str().unwrap().to_string()
        };
        let w = langgraph_worker(warm, sessions.path(), &log).await;
        let answer = unique_id(&format!("lg-answer-{warm}"));
        let r = w
            .run(refund(&answer, Some(&session), Some(json!(true))))
            .await;
        assert_eq!(r["status"], "succeeded", "warm={warm}: {r:#}");
        assert_eq!(r["resumes"], asked.as_str());
        assert_eq!(
            r["output"], "Shouted: refunded (refund 5 for order 42)",
            "{r:#}"
        );
        assert_eq!(refunds(&log), vec!["refund 5 for order 42"]);
        let again = w
            .run(refund(
                &unique_id("lg-again"),
                Some(&session),
                Some(json!(true)),
            ))
            .await;
        assert_eq!(again["errorCode"], "interrupt_not_open", "{again:#}");
        assert_eq!(
            refunds(&log).len(),
            1,
            "answering twice runs no second refund"
        );
    }
}

#[tokio::test]
async fn langgraph_rejection_takes_the_agents_rejection_path_in_a_session() {
    let sessions = tempfile::tempdir().unwrap();
    let log = sessions.path().join("refunds.log");
    let w = langgraph_worker(true, sessions.path(), &log).await;
    let session = format!("lg-reject-{}", std::process::id());
    let r = w
        .run(refund(&unique_id("lg-rj-1"), Some(&session), None))
        .await;
    assert_eq!(r["status"], "input_required", "{r:#}");
    assert_eq!(r["sessionId"], session.as_str());
    let r = w
        .run(refund(
            &unique_id("lg-rj-2"),
            Some(&session),
            Some(json!({"approved": false, "message": "over the limit"})),
        ))
        .await;
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert_eq!(
        r["output"], "Shouted: refund rejected: over the limit",
        "{r:#}"
    );
    assert!(refunds(&log).is_empty());
}

/// A 2026-07-28 `tools/call` of `run_langgraph`, JSON answer; `extra` joins its params.
async fn mcp_call(w: &Worker, id: u64, caps: Value, extra: Value) -> Value {
    let mut params = json!({
        "name": "run_langgraph",
        "arguments": {"instruction": "refund 5 for order 42"},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": caps},
    });
    for (k, v) in extra.as_object().unwrap() {
        params[k] = v.clone();
    }
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params});
    let resp = w
        .client()
        .post(format!("{}/mcp", w.url))
        .header("accept", "application/json")
        .json(&body)
        .send()
        .await
        .unwrap();
    resp.json().await.unwrap()
}

#[tokio::test]
async fn over_mcp_2026_07_28_the_question_is_an_input_required_result_the_retry_answers() {
    let sessions = tempfile::tempdir().unwrap();
    let log = sessions.path().join("refunds.log");
    let w = langgraph_worker(true, sessions.path(), &log).await;
    let caps = json!({"elicitation": {"form": {}}});
    let asked = mcp_call(&w, 1, caps.clone(), json!({})).await;
    let r = &asked["result"];
    assert_eq!(r["resultType"], "input_required", "{asked:#}");
    let requests = r["inputRequests"].as_object().unwrap();
    assert_eq!(requests.len(), 1, "{asked:#}");
    let (key, req) = requests.iter().next().unwrap();
    assert_eq!(req["method"], "elicitation/create");
    assert_eq!(
        req["params"]["requestedSchema"]["properties"]["approved"]["type"],
        "boolean"
    );
    assert!(
        req["params"]["message"]
            .as_str()
            .unwrap()
            .contains("refund"),
        "{req}"
    );
    assert!(refunds(&log).is_empty(), "asking runs no refund");
    let state = r["requestState"].clone();
    let answers = json!({key.clone(): {"action": "accept", "content": {"approved": true}}});
    let retry = json!({"inputResponses": answers, "requestState": state});
    let done = mcp_call(&w, 2, caps.clone(), retry.clone()).await;
    let r = &done["result"];
    assert_eq!(r["resultType"], "complete", "{done:#}");
    assert_eq!(r["isError"], false, "{done:#}");
    assert_eq!(
        r["content"][0]["text"], "Shouted: refunded (refund 5 for order 42)",
        "{done:#}"
    );
    assert_eq!(refunds(&log), vec!["refund 5 for order 42"]);
    // The same retry again answers nothing: the question is closed, no second refund.
    let again = mcp_call(&w, 3, caps, retry).await;
    assert_eq!(again["result"]["isError"], true, "{again:#}");
    assert!(
        again["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("interrupt_not_open"),
        "{again:#}"
    );
    assert_eq!(refunds(&log).len(), 1);
    // A client without elicitation gets the question as a tool result naming the session.
    let plain = mcp_call(&w, 4, json!({}), json!({})).await;
    let r = &plain["result"];
    assert_eq!(r["resultType"], "complete", "{plain:#}");
    assert_eq!(r["structuredContent"]["status"], "input_required");
    let text = r["content"][0]["text"].as_str().unwrap();
    let session = r["structuredContent"]["sessionId"].as_str().unwrap();
    assert!(
        text.starts_with("input_required") && text.contains(session),
        "{text}"
    );
}
