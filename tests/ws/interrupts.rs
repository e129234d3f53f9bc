//! A task that asks (SPEC §14) on `/ws`: the LangGraph example agent asks before its `refund`
//! tool; the result message holds the questions and the session, and a `task.resume` on the
//! same socket answers them (the tool runs once; answering again is refused).

use super::*;

fn refunds(log: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .map(|s| s.lines().map(String::from).collect())
        .unwrap_or_default()
}

async fn langgraph(dir: &std::path::Path) -> common::Worker {
    let frameworks = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("frameworks");
    assert!(
        frameworks.join("langgraph/.venv/bin/python").exists(),
        "frameworks/langgraph/.venv is missing: run scripts/setup-frameworks.sh langgraph"
    );
    WorkerBuilder::new()
        .env("AGENTDISPATCH_FRAMEWORKS_DIR", frameworks.to_str().unwrap())
        .env("AGENTDISPATCH_SESSION_DIR", dir.to_str().unwrap())
        .env("AGENTDISPATCH_WARM", "none")
        .env(
            "EXAMPLE_REFUND_LOG",
            dir.join("refunds.log").to_str().unwrap(),
        )
        .start()
        .await
}

#[tokio::test]
async fn a_task_that_asks_is_answered_on_its_socket_and_runs_its_tool_once() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("refunds.log");
    let w = langgraph(dir.path()).await;
    let mut c = Client::open(&py, &w.url, json!({})).await;
    // Nothing asked yet on this socket: an answer names what is missing, the socket stays.
    c.send_json(&json!({"type": "task.resume", "resume": true}))
        .await;
    let m = c.recv().await;
    assert_eq!(m["errorCode"], "interrupt_not_open", "{m}");
    c.send_json(&json!({"framework": "langgraph",
                         "input": {"instruction": "refund 5 for order 42"}}))
        .await;
    let (_, asked) = c.until_result().await;
    assert_eq!(asked["status"], "input_required", "{asked:#}");
    assert_eq!(asked["interrupts"][0]["kind"], "approval", "{asked:#}");
    assert!(asked["sessionId"].is_string(), "{asked:#}");
    assert!(refunds(&log).is_empty(), "asking runs no refund");
    c.send_json(&json!({"type": "task.resume"})).await;
    let m = c.recv().await;
    assert_eq!(m["errorCode"], "invalid_resume", "{m}");
    c.send_json(&json!({"type": "task.resume", "resume": true}))
        .await;
    let (_, done) = c.until_result().await;
    assert_eq!(done["status"], "succeeded", "{done:#}");
    assert_eq!(done["resumes"], asked["taskId"], "{done:#}");
    assert_eq!(done["output"], "Shouted: refunded (refund 5 for order 42)");
    assert_eq!(refunds(&log), vec!["refund 5 for order 42"]);
    // The same answer again, and from another socket naming the session: no second refund.
    c.send_json(&json!({"type": "task.resume", "resume": true}))
        .await;
    let (_, again) = c.until_result().await;
    assert_eq!(again["errorCode"], "interrupt_not_open", "{again:#}");
    let mut other = Client::open(&py, &w.url, json!({})).await;
    other
        .send_json(&json!({"type": "task.resume", "resume": true,
                            "sessionId": asked["sessionId"], "framework": "langgraph"}))
        .await;
    let (_, again) = other.until_result().await;
    assert_eq!(again["errorCode"], "interrupt_not_open", "{again:#}");
    assert_eq!(refunds(&log).len(), 1);
}
