//! Sessions as a boundary: a request of session B neither sees nor controls session A's tasks,
//! through any entry point, and cannot tell them from tasks that do not exist.

use serde_json::{json, Value};

use crate::common::*;

const HEADER: &str = "x-amzn-bedrock-agentcore-runtime-session-id";

/// `POST /invocations` as session `session` (the AgentCore header).
async fn invoke_as(w: &Worker, session: &str, body: Value) -> Value {
    let body = serde_json::to_vec(&body).unwrap();
    let (status, v) = w.invoke_raw(body, &[(HEADER, session)]).await;
    assert_eq!(status, 200, "{v}");
    v
}

/// `GET <path>` as session `session`: status and body (JSON, or the raw text).
async fn get_as(w: &Worker, session: &str, path: &str) -> (u16, String) {
    let r = w
        .client()
        .get(format!("{}{path}", w.url))
        .header(HEADER, session)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// An A2A call as session `session`.
async fn rpc_as(w: &Worker, session: &str, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    w.rpc_with(body, &[(HEADER, session)]).await
}

/// An answer with the task id in it replaced, to compare with an unknown task's.
fn without(id: &str, v: impl ToString) -> String {
    v.to_string().replace(id, "<id>")
}

fn listed(v: &Value, id: &str) -> bool {
    v.to_string().contains(id)
}

#[tokio::test]
async fn a_session_sees_and_controls_only_its_own_tasks() {
    // One retained task: "a-old" leaves memory when "a-done" finishes, and answers from its
    // folder.
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_MAX_RETAINED_TASKS", "1")
        .start()
        .await;
    let echo = |id: &str| json!({"taskType": "agent.run", "taskId": id, "input": {"instruction": "private"}});
    invoke_as(&w, "A", echo("a-old")).await;
    invoke_as(&w, "A", echo("a-done")).await;
    let mut sleep = cmd("sleep 30");
    sleep["taskId"] = json!("a-running");
    sleep["async"] = json!(true);
    assert_eq!(invoke_as(&w, "A", sleep).await["status"], "running");
    let ids = ["a-old", "a-done", "a-running"];
    let nobody = "nobody-at-all";

    // task.status and task.cancel, by header or by the payload's sessionId.
    for op in ["task.status", "task.cancel"] {
        let unknown = invoke_as(&w, "B", json!({"taskType": op, "taskId": nobody})).await;
        assert_eq!(unknown["errorCode"], "unknown_task", "{unknown}");
        for id in ids {
            let by_header = invoke_as(&w, "B", json!({"taskType": op, "taskId": id})).await;
            let (_, by_payload) = w
                .invoke(&json!({"taskType": op, "taskId": id, "sessionId": "B"}))
                .await;
            for r in [by_header, by_payload] {
                assert_eq!(without(id, &r), without(nobody, &unknown), "{op} {id}");
            }
        }
    }
    // task.list.
    let list = invoke_as(&w, "B", json!({"taskType": "task.list"})).await;
    let (_, list_payload) = w
        .invoke(&json!({"taskType": "task.list", "sessionId": "B"}))
        .await;
    for id in ids {
        assert!(
            !listed(&list, id) && !listed(&list_payload, id),
            "{id}: {list} {list_payload}"
        );
    }
    // GET /tasks, /tasks/{id}, /tasks/{id}/events.
    let (_, tasks) = get_as(&w, "B", "/tasks").await;
    assert!(ids.iter().all(|id| !tasks.contains(id)), "{tasks}");
    for suffix in ["", "/events"] {
        let (code, unknown) = get_as(&w, "B", &format!("/tasks/{nobody}{suffix}")).await;
        assert_eq!(code, 404);
        for id in ids {
            let (c, body) = get_as(&w, "B", &format!("/tasks/{id}{suffix}")).await;
            assert_eq!((c, without(id, &body)), (code, without(nobody, &unknown)));
        }
    }
    // A2A, both versions.
    for (get, cancel) in [("GetTask", "CancelTask"), ("tasks/get", "tasks/cancel")] {
        for method in [get, cancel] {
            let unknown = rpc_as(&w, "B", method, json!({"id": nobody})).await;
            assert!(unknown.get("error").is_some(), "{unknown}");
            for id in ids {
                let r = rpc_as(&w, "B", method, json!({"id": id})).await;
                assert_eq!(without(id, &r), without(nobody, &unknown), "{method} {id}");
            }
        }
    }
    let list = rpc_as(&w, "B", "ListTasks", json!({})).await;
    assert!(list["result"]["tasks"].as_array().is_some(), "{list}");
    assert!(ids.iter().all(|id| !listed(&list, id)), "{list}");
    // Its id given again by session B: refused, nothing of A's shown, A's task untouched.
    for id in ["a-old", "a-done"] {
        let r = invoke_as(&w, "B", echo(id)).await;
        assert_eq!(r["errorCode"], "task_id_unavailable", "{r}");
        assert!(!r.to_string().contains("private"), "{r}");
    }

    // Or named by an A2A message of another context.
    let message = json!({"role": "ROLE_USER", "messageId": "m-1", "parts": [{"text": "again"}],
        "taskId": "a-done", "contextId": "B"});
    let r = rpc_as(&w, "B", "SendMessage", json!({"message": message})).await;
    assert!(r.to_string().contains("cannot be used"), "{r}");
    assert!(!r.to_string().contains("private"), "{r}");

    // Session A still has all of it, and so has a request with no session (local use).
    let mine = invoke_as(&w, "A", json!({"taskType": "task.list"})).await;
    let all = w.run(json!({"taskType": "task.list"})).await;
    for id in ["a-done", "a-running"] {
        assert!(listed(&mine, id) && listed(&all, id), "{id}: {mine} {all}");
    }
    assert!(!listed(&all, "a-old"), "a-old is still in memory: {all}");
    for id in ids {
        let r = invoke_as(&w, "A", json!({"taskType": "task.status", "taskId": id})).await;
        assert_ne!(r["errorCode"], "unknown_task", "{id}: {r}");
    }
    let (code, _) = get_as(&w, "A", "/tasks/a-old").await;
    assert_eq!(code, 200);
    let r = rpc_as(&w, "A", "GetTask", json!({"id": "a-running"})).await;
    assert!(r.get("result").is_some(), "{r}");
    let r = invoke_as(
        &w,
        "A",
        json!({"taskType": "task.cancel", "taskId": "a-running"}),
    )
    .await;
    assert_eq!(r["status"], "cancelled", "{r}");
}
