//! AG-UI on `POST /invocations` (SPEC §13) through the real binary with the built-in echo
//! framework: a `RunAgentInput` recognised by its shape (or any body under
//! `AGENTDISPATCH_WORKER_PROTOCOL=agui`) answered with AG-UI events over SSE, the bad inputs
//! answered 400 as AWS's `AGUIApp` answers them, and the worker's own requests untouched; a task
//! that asks (the `pyfixture` framework) ends with AG-UI's interrupt outcome and a `resume` answers
//! it. The six Python frameworks through AG-UI's own clients, over SSE and `/ws`:
//! tests/clients/agui/ (scripts/test-clients.sh agui-py, agui-ws).

mod common;

use common::*;
use serde_json::{json, Value};

fn run_input(thread: &str, text: &str) -> Value {
    json!({
        "threadId": thread, "runId": "run-1", "state": {"mood": "calm"},
        "messages": [
            {"id": "u0", "role": "user", "content": "an earlier turn"},
            {"id": "a0", "role": "assistant", "content": "an earlier answer"},
            {"id": "u1", "role": "user", "content": text},
        ],
        "tools": [], "context": [{"description": "who", "value": "a tester"}],
        "forwardedProps": {},
    })
}

fn types(msgs: &[SseMessage]) -> Vec<&str> {
    msgs.iter()
        .map(|m| m.data["type"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_run_agent_input_runs_the_last_user_message_in_its_thread_as_ag_ui_events() {
    let w = WorkerBuilder::new().start().await;
    let msgs = w.stream(&run_input("thread-a", "hello there")).await;
    assert_eq!(
        types(&msgs),
        [
            "RUN_STARTED",
            "TEXT_MESSAGE_START",
            "TEXT_MESSAGE_CONTENT",
            "TEXT_MESSAGE_END",
            "RUN_FINISHED"
        ],
        "{msgs:#?}"
    );
    assert!(msgs.iter().all(|m| m.id.is_none()), "no id: lines");
    assert_eq!(
        msgs[0].data,
        json!({"type": "RUN_STARTED", "threadId": "thread-a", "runId": "run-1"})
    );
    assert_eq!(msgs[2].data["delta"], "Accepted instruction: hello there");
    assert_eq!(msgs[1].data["role"], "assistant");
    let finished = &msgs[4].data;
    assert_eq!(finished["threadId"], "thread-a");
    assert_eq!(finished["result"]["status"], "succeeded");
    // The task is the worker's own: in the thread's session, with its folder and record.
    let id = finished["result"]["taskId"].as_str().unwrap();
    let r = w
        .run(json!({"taskType": "task.status", "taskId": id, "sessionId": "thread-a"}))
        .await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["result"]["instruction"], "hello there");
    assert_eq!(r["result"]["context"]["state"], json!({"mood": "calm"}));
    assert_eq!(
        r["result"]["context"]["agUiContext"][0]["value"],
        "a tester"
    );
    assert!(w.task_dir(id).join("result.json").exists());
}

#[tokio::test]
async fn a_failed_run_ends_with_run_error_naming_the_code() {
    let w = WorkerBuilder::new().start().await;
    let mut body = run_input("thread-b", "hi");
    body["forwardedProps"] = json!({"framework": "no-such-framework"});
    let msgs = w.stream(&body).await;
    assert_eq!(types(&msgs), ["RUN_STARTED", "RUN_ERROR"], "{msgs:#?}");
    assert_eq!(msgs[1].data["code"], "unknown_framework");
    assert!(
        msgs[1].data["message"]
            .as_str()
            .unwrap()
            .contains("no-such-framework"),
        "{msgs:#?}"
    );
}

#[tokio::test]
async fn bad_input_is_a_400_naming_what_is_wrong_and_the_worker_stays_up() {
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_WORKER_PROTOCOL", "agui")
        .start()
        .await;
    let (status, v) = w.invoke_raw(b"{not json".to_vec(), &[]).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"], "Invalid JSON");
    assert_eq!(v["errorCode"], "invalid_payload");
    assert!(v["details"].as_str().unwrap().contains("line 1"), "{v}");
    let cases = [
        (json!([1]), "RunAgentInput must be an object"),
        (
            json!({"runId": "r", "messages": []}),
            "threadId is required",
        ),
        (
            {
                let mut b = run_input("t", "x");
                b.as_object_mut().unwrap().remove("tools");
                b
            },
            "tools is required",
        ),
        (
            {
                let mut b = run_input("t", "x");
                b["messages"][1]["role"] = json!("wizard");
                b
            },
            "messages[1].role \"wizard\"",
        ),
        (
            {
                let mut b = run_input("t", "x");
                b["messages"] = json!([]);
                b
            },
            "no user message",
        ),
    ];
    for (body, says) in cases {
        let (status, v) = w.invoke(&body).await;
        assert_eq!(status, 400, "{body}: {v}");
        assert_eq!(v["error"], "Invalid RunAgentInput", "{v}");
        assert!(
            v["details"].as_str().unwrap().contains(says),
            "{body}: {v} should say {says}"
        );
    }
    // A control request of the worker's own still is one; the worker still serves.
    let (status, v) = w.invoke(&json!({"taskType": "task.list"})).await;
    assert_eq!((status, v["ok"].clone()), (200, json!(true)), "{v}");
    assert_eq!(w.ping().await["status"], "Healthy");
}

#[tokio::test]
async fn without_agui_protocol_only_the_shape_makes_a_run_agent_input() {
    let w = WorkerBuilder::new().start().await;
    // threadId and runId but no messages array: the worker's own payload (echo).
    let (status, v) = w
        .invoke(&json!({"threadId": "t", "runId": "r", "input": {"instruction": "plain"}}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["output"], "Accepted instruction: plain");
    let (status, v) = w.invoke_raw(b"{not json".to_vec(), &[]).await;
    assert_eq!(status, 400);
    assert!(
        v["error"].as_str().unwrap().contains("not valid JSON"),
        "{v}"
    );
}

#[tokio::test]
async fn the_readme_example_runs_as_written() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = &readme[readme.find("### AG-UI").expect("an AG-UI section")..];
    let start = section.find("```sh\n").expect("an sh block") + "```sh\n".len();
    let block = &section[start..start + section[start..].find("```").unwrap()];
    let w = WorkerBuilder::new().start().await;
    let host = w.url.trim_start_matches("http://").to_string();
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(block.replace("localhost:8080", &host))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let events: Vec<Value> = text
        .split("\n\n")
        .filter_map(|m| m.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(events.first().unwrap()["type"], "RUN_STARTED", "{text}");
    assert_eq!(events.last().unwrap()["type"], "RUN_FINISHED", "{text}");
    assert_eq!(
        events.last().unwrap()["result"]["output"],
        "Accepted instruction: hello"
    );
}

#[tokio::test]
async fn a_task_that_asks_finishes_with_the_interrupt_outcome_and_resume_answers_it_once() {
    for kind in [Kind::Cold, Kind::Warm] {
        let sessions = tempfile::tempdir().unwrap();
        let w = session_worker(kind, sessions.path()).await;
        let thread = format!("agui-ask-{kind:?}");
        let mut body = run_input(&thread, "ask");
        body["forwardedProps"] = json!({"framework": "pyfixture"});
        let msgs = w.stream(&body).await;
        let finished = &msgs.last().unwrap().data;
        assert_eq!(finished["type"], "RUN_FINISHED", "{kind:?}: {msgs:#?}");
        assert_eq!(finished["outcome"]["type"], "interrupt", "{finished:#}");
        let q = &finished["outcome"]["interrupts"][0];
        assert_eq!(
            (q["id"].as_str(), q["reason"].as_str()),
            (Some("refund-1"), Some("approval"))
        );
        assert_eq!(finished["result"]["status"], "input_required");
        let refunds = || {
            std::fs::read_to_string(sessions.path().join(&thread).join("refunds.log"))
                .map_or(0, |s| s.lines().count())
        };
        assert_eq!(refunds(), 0);
        // AG-UI's answer: a run of the thread whose `resume` answers the interrupt by its id.
        body["runId"] = json!("run-2");
        body["resume"] =
            json!([{"interruptId": "refund-1", "status": "resolved", "payload": true}]);
        let msgs = w.stream(&body).await;
        let done = &msgs.last().unwrap().data;
        assert_eq!(done["type"], "RUN_FINISHED", "{msgs:#?}");
        assert!(done.get("outcome").is_none(), "{done:#}");
        assert_eq!(done["result"]["status"], "succeeded", "{done:#}");
        assert_eq!(refunds(), 1);
        // Answered once: the second answer is a RUN_ERROR naming why, and nothing runs.
        body["runId"] = json!("run-3");
        let msgs = w.stream(&body).await;
        let again = &msgs.last().unwrap().data;
        assert_eq!(again["type"], "RUN_ERROR", "{msgs:#?}");
        assert_eq!(again["code"], "interrupt_not_open", "{again:#}");
        assert_eq!(refunds(), 1);
    }
}
