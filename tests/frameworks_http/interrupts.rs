//! A task that asks (SPEC §14) with a framework's own mechanism, through the real binary: the
//! cases every framework's example agent goes through (used by interrupts_each.rs), LangGraph's
//! (its `refund` tool calls `interrupt()`), and the question over MCP.

use super::*;

pub(crate) fn refunds(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .map(|s| s.lines().map(String::from).collect())
        .unwrap_or_default()
}

/// What each example agent's `refund` tool gives once approved (the scripted models answer
/// "Shouted: <tool result>"), and the person's message on a rejection, which reaches the agent
/// through its framework's own denial (a tool result, a denial message) and so its answer.
pub(crate) const REFUNDED: &str = "refunded (refund 5 for order 42)";
pub(crate) const REJECTED: &str = "over the limit";

pub(crate) async fn asking_worker(fw: &str, warm: bool, sessions: &Path, log: &Path) -> Worker {
    require_venv(fw);
    let w = WorkerBuilder::new()
        .env(
            "AGENTDISPATCH_FRAMEWORKS_DIR",
            frameworks_dir().to_str().unwrap(),
        )
        .env("AGENTDISPATCH_SESSION_DIR", sessions.to_str().unwrap())
        .env("AGENTDISPATCH_WARM", if warm { fw } else { "none" })
        .env("EXAMPLE_REFUND_LOG", log.to_str().unwrap())
        .start()
        .await;
    if warm {
        w.warm_ready(fw, 1).await;
    }
    w
}

pub(crate) fn refund(fw: &str, id: &str, session: Option<&str>, resume: Option<Value>) -> Value {
    let mut body = json!({"taskId": id, "framework": fw,
                          "input": {"instruction": "refund 5 for order 42"}});
    if let Some(s) = session {
        body["sessionId"] = json!(s);
    }
    if let Some(r) = resume {
        body["input"]["resume"] = r;
    }
    body
}

/// Asks (no session: the worker names one) on a fresh worker, checks the question, and returns
/// the session to answer in once that worker is gone.
async fn ask(fw: &str, warm: bool, sessions: &Path, log: &Path, asked: &str) -> String {
    let w = asking_worker(fw, warm, sessions, log).await;
    let r = w.run(refund(fw, asked, None, None)).await;
    assert_eq!(r["status"], "input_required", "{fw} warm={warm}: {r:#}");
    assert_eq!(forked_from(&r).is_some(), warm, "{fw} warm={warm}: {r:#}");
    let q = &r["interrupts"][0];
    assert_eq!(q["kind"], "approval", "{fw}: {r:#}");
    assert_eq!(q["tool"], "refund", "{fw}: {r:#}");
    assert_eq!(q["args"]["text"], "refund 5 for order 42", "{fw}: {r:#}");
    assert!(refunds(log).is_empty(), "{fw}: asking runs no refund");
    r["sessionId"].as_str().unwrap().to_string()
}

/// SPEC §14 with `fw`'s example agent, cold and warm: ask, restart the worker, approve: the
/// refund runs once and the answer says so; answering again is `interrupt_not_open`.
pub(crate) async fn approval_after_a_restart_runs_the_tool_once(fw: &str) {
    for warm in [false, true] {
        let sessions = tempfile::tempdir().unwrap();
        let log = sessions.path().join("refunds.log");
        let asked = unique_id(&format!("{fw}-ask-{warm}"));
        let session = ask(fw, warm, sessions.path(), &log, &asked).await;
        let w = asking_worker(fw, warm, sessions.path(), &log).await;
        let answer = unique_id(&format!("{fw}-answer-{warm}"));
        let r = w
            .run(refund(fw, &answer, Some(&session), Some(json!(true))))
            .await;
        assert_eq!(r["status"], "succeeded", "{fw} warm={warm}: {r:#}");
        assert_eq!(r["resumes"], asked.as_str());
        // Warm means forked: a runner that cannot fork its agent falls back to a cold start.
        assert_eq!(forked_from(&r).is_some(), warm, "{fw} warm={warm}: {r:#}");
        let out = r["output"].as_str().unwrap();
        assert!(out.contains(REFUNDED), "{fw} warm={warm}: {r:#}");
        assert_eq!(refunds(&log), vec!["refund 5 for order 42"], "{fw}");
        let again = w
            .run(refund(
                fw,
                &unique_id(&format!("{fw}-again")),
                Some(&session),
                Some(json!(true)),
            ))
            .await;
        assert_eq!(again["errorCode"], "interrupt_not_open", "{fw}: {again:#}");
        assert_eq!(
            refunds(&log).len(),
            1,
            "{fw}: answering twice runs no second refund"
        );
    }
}

/// A rejection (with a message) takes the example agent's rejection path: no refund.
pub(crate) async fn rejection_takes_the_rejection_path(fw: &str) {
    let sessions = tempfile::tempdir().unwrap();
    let log = sessions.path().join("refunds.log");
    let w = asking_worker(fw, true, sessions.path(), &log).await;
    let session = unique_id(&format!("{fw}-reject"));
    let r = w
        .run(refund(fw, &unique_id("rj-1"), Some(&session), None))
        .await;
    assert_eq!(r["status"], "input_required", "{fw}: {r:#}");
    assert_eq!(r["sessionId"], session.as_str());
    let no = json!({"approved": false, "message": "over the limit"});
    let r = w
        .run(refund(fw, &unique_id("rj-2"), Some(&session), Some(no)))
        .await;
    assert_eq!(r["status"], "succeeded", "{fw}: {r:#}");
    assert!(
        r["output"].as_str().unwrap().contains(REJECTED),
        "{fw}: {r:#}"
    );
    assert!(refunds(&log).is_empty(), "{fw}: a rejection runs no refund");
}

/// The open question of `session` as `task.list` shows it.
async fn open_question(w: &Worker, session: &str) -> Value {
    let list = w
        .run(json!({"taskType": "task.list", "sessionId": session}))
        .await;
    list["openQuestions"].clone()
}

/// The saved state made unusable two ways, each a `resume_state_invalid` naming what is wrong
/// with nothing run and the question still open: the framework's versions changed since it
/// asked (the record says another), then mended, the answer runs the refund once; and
/// `framework_file` (the framework's own saved run, in the session folder; `{session}` in it
/// stands for the session's id, the folder's name, for a framework that files its run under it)
/// corrupted.
pub(crate) async fn unusable_saved_state_is_named_and_keeps_the_question_open(
    fw: &str,
    framework_file: &str,
) {
    let sessions = tempfile::tempdir().unwrap();
    let log = sessions.path().join("refunds.log");
    let w = asking_worker(fw, true, sessions.path(), &log).await;
    let session = unique_id(&format!("{fw}-state"));
    let asked = unique_id(&format!("{fw}-st-1"));
    let r = w.run(refund(fw, &asked, Some(&session), None)).await;
    assert_eq!(r["status"], "input_required", "{fw}: {r:#}");
    let folder = sessions.path().join(&session);

    // Another version of the framework wrote it.
    let record = folder.join(".agentdispatch-asked.json");
    let kept = std::fs::read_to_string(&record).unwrap();
    let mut older: Value = serde_json::from_str(&kept).unwrap();
    let versions = older["versions"].as_object_mut().unwrap();
    let package = versions
        .keys()
        .next()
        .expect("the record names the framework's packages")
        .clone();
    versions.insert(package.clone(), json!("0.0.1"));
    std::fs::write(&record, older.to_string()).unwrap();
    let r = w
        .run(refund(
            fw,
            &unique_id("st-2"),
            Some(&session),
            Some(json!(true)),
        ))
        .await;
    assert_eq!(r["errorCode"], "resume_state_invalid", "{fw}: {r:#}");
    let error = r["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("{package} 0.0.1")) && error.contains(&format!("{package}==0.0.1")),
        "{fw}: {error}"
    );
    assert!(error.contains("still open"), "{fw}: {error}");
    assert!(refunds(&log).is_empty(), "{fw}: nothing ran");
    assert_eq!(open_question(&w, &session).await["taskId"], asked.as_str());

    // Mended (the versions the question was asked under): the answer is taken, once.
    std::fs::write(&record, &kept).unwrap();
    let r = w
        .run(refund(
            fw,
            &unique_id("st-3"),
            Some(&session),
            Some(json!(true)),
        ))
        .await;
    assert_eq!(r["status"], "succeeded", "{fw}: {r:#}");
    assert_eq!(refunds(&log).len(), 1, "{fw}");

    // The framework's own saved run corrupted: named, nothing run, still open.
    let asked = unique_id(&format!("{fw}-st-4"));
    let r = w.run(refund(fw, &asked, Some(&session), None)).await;
    assert_eq!(r["status"], "input_required", "{fw}: {r:#}");
    let framework_file = framework_file.replace("{session}", &session);
    let file = folder.join(&framework_file);
    assert!(file.exists(), "{fw}: no {}", file.display());
    // Not what the framework wrote, past any header it checks; a SQLite file's write-ahead log
    // (where its last pages are) goes with it.
    std::fs::write(&file, "this is not what the framework wrote\n".repeat(256)).unwrap();
    for log in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(folder.join(format!("{framework_file}{log}")));
    }
    let r = w
        .run(refund(
            fw,
            &unique_id("st-5"),
            Some(&session),
            Some(json!(true)),
        ))
        .await;
    assert_eq!(r["errorCode"], "resume_state_invalid", "{fw}: {r:#}");
    assert!(
        r["error"].as_str().unwrap().contains(&framework_file),
        "{fw}: {r:#}"
    );
    assert_eq!(refunds(&log).len(), 1, "{fw}: nothing ran");
    assert_eq!(open_question(&w, &session).await["taskId"], asked.as_str());
}

#[tokio::test]
async fn langgraph_asks_for_approval_and_the_answer_after_a_restart_runs_the_tool_once() {
    approval_after_a_restart_runs_the_tool_once("langgraph").await;
}

#[tokio::test]
async fn langgraph_rejection_takes_the_agents_rejection_path_in_a_session() {
    rejection_takes_the_rejection_path("langgraph").await;
}

#[tokio::test]
async fn langgraph_unusable_saved_state_is_named_and_keeps_the_question_open() {
    unusable_saved_state_is_named_and_keeps_the_question_open("langgraph", "langgraph.sqlite")
        .await;
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
    let w = asking_worker("langgraph", true, sessions.path(), &log).await;
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
