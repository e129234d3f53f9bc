//! Sending messages in both versions: blocking and streaming answers, non-blocking sends, a
//! failed run, and one contextId throughout (also from a task's folder after a restart).

use super::*;

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
