//! A task that asks (SPEC §14) over A2A, 1.0 and 0.3: the task is `input-required` with its
//! questions in the status message, and a follow-up message with the same taskId and contextId
//! (a data part `{"resume": …}`, or text) answers it under the same task id.

use super::*;

async fn asking_worker(sessions: &std::path::Path) -> Worker {
    fixture_worker(
        Kind::Cold,
        WorkerBuilder::new().env("AGENTDISPATCH_SESSION_DIR", sessions.to_str().unwrap()),
    )
    .await
}

#[tokio::test]
async fn input_required_is_answered_by_a_follow_up_with_the_same_task_id_in_both_versions() {
    let sessions = tempfile::tempdir().unwrap();
    let w = asking_worker(sessions.path()).await;
    for (method, state, answer_part) in [
        (
            "SendMessage",
            "TASK_STATE_INPUT_REQUIRED",
            json!({"data": {"resume": true}}),
        ),
        (
            "message/send",
            "input-required",
            json!({"kind": "text", "text": "yes"}),
        ),
    ] {
        let r = w.rpc(send(method, "ask", "pyfixture", json!({}))).await;
        let task = if method == "SendMessage" {
            r["result"]["task"].clone()
        } else {
            r["result"].clone()
        };
        assert_eq!(task["status"]["state"], state, "{r:#}");
        let parts = task["status"]["message"]["parts"]
            .as_array()
            .unwrap()
            .clone();
        assert!(
            parts[0]["text"].as_str().unwrap().contains("refund"),
            "{r:#}"
        );
        assert_eq!(parts[1]["data"]["interrupts"][0]["id"], "refund-1", "{r:#}");
        let (id, context) = (task["id"].clone(), task["contextId"].clone());
        let follow = send(
            method,
            "",
            "pyfixture",
            json!({"message": {"taskId": id, "contextId": context, "parts": [answer_part]}}),
        );
        let r = w.rpc(follow).await;
        let done = if method == "SendMessage" {
            r["result"]["task"].clone()
        } else {
            r["result"].clone()
        };
        let text = if method == "SendMessage" {
            done["status"]["message"]["parts"][0]["text"].clone()
        } else {
            done["parts"][0]["text"].clone()
        };
        assert_eq!(
            done["taskId"].as_str().or(done["id"].as_str()),
            id.as_str(),
            "{r:#}"
        );
        let out: Value = serde_json::from_str(text.as_str().unwrap_or(""))
            .unwrap_or_else(|_| panic!("{method}: {r:#}"));
        assert_eq!(out["refunded"], true, "{method}: {r:#}");
        // Get with the task's id: the run that answered it, under that id.
        let get = if method == "SendMessage" {
            "GetTask"
        } else {
            "tasks/get"
        };
        let got = w.rpc(rpc(get, json!({"id": id}))).await;
        let completed = if method == "SendMessage" {
            "TASK_STATE_COMPLETED"
        } else {
            "completed"
        };
        assert_eq!(got["result"]["status"]["state"], completed, "{got:#}");
        assert_eq!(got["result"]["id"], id, "{got:#}");
        let folder = sessions.path().join(context.as_str().unwrap());
        let refunds = std::fs::read_to_string(folder.join("refunds.log")).unwrap();
        assert_eq!(refunds.lines().count(), 1);
    }
}

/// The id each message of an A2A stream names its task by (1.0: under its kind; 0.3: `id` of a
/// Task, `taskId` of an update).
fn streamed_task_id(m: &Value) -> String {
    let r = &m["result"];
    let inner = r.as_object().filter(|o| o.len() == 1).and_then(|o| {
        ["task", "statusUpdate", "artifactUpdate"]
            .iter()
            .find_map(|k| o.get(*k))
    });
    let r = inner.unwrap_or(r);
    r["taskId"]
        .as_str()
        .or(r["id"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_streamed_follow_up_shows_the_answering_run_under_the_asking_tasks_id() {
    let sessions = tempfile::tempdir().unwrap();
    let w = asking_worker(sessions.path()).await;
    for (ask, stream_method, completed) in [
        (
            "SendMessage",
            "SendStreamingMessage",
            "TASK_STATE_COMPLETED",
        ),
        ("message/send", "message/stream", "completed"),
    ] {
        let r = w.rpc(send(ask, "ask", "pyfixture", json!({}))).await;
        let task = r["result"].get("task").unwrap_or(&r["result"]).clone();
        let (id, context) = (task["id"].clone(), task["contextId"].clone());
        let follow = send(
            stream_method,
            "yes",
            "pyfixture",
            json!({"message": {"taskId": id, "contextId": context}}),
        );
        let msgs = stream(&w, &follow).await;
        assert!(msgs.len() >= 3, "{msgs:#?}");
        for m in &msgs {
            assert_eq!(
                streamed_task_id(m),
                id.as_str().unwrap(),
                "{stream_method}: {m:#}"
            );
        }
        let last = &msgs.last().unwrap()["result"];
        let last = last.get("statusUpdate").unwrap_or(last);
        assert_eq!(last["status"]["state"], completed, "{last:#}");
        let folder = sessions.path().join(context.as_str().unwrap());
        let refunds = std::fs::read_to_string(folder.join("refunds.log")).unwrap();
        assert_eq!(refunds.lines().count(), 1, "{stream_method}");
    }
}
