//! ListTasks: pages, filters, and artifacts left out unless asked for.

use super::*;

#[tokio::test]
async fn list_tasks_pages_filters_and_leaves_artifacts_out_unless_asked() {
    let w = WorkerBuilder::new().start().await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let ctx = if n == 2 { "ctx-b" } else { "ctx-a" };
        let r = w
            .rpc(send(
                "SendMessage",
                &format!("t{n}"),
                "echo",
                json!({"message": {"contextId": ctx}}),
            ))
            .await;
        ids.push(r["result"]["task"]["id"].clone());
    }
    let page = w.rpc(rpc("ListTasks", json!({"pageSize": 2}))).await;
    let r = &page["result"];
    assert_eq!(r["tasks"].as_array().unwrap().len(), 2, "{page:#}");
    assert_eq!(r["totalSize"], 3);
    assert_eq!(r["pageSize"], 2);
    assert!(r["tasks"][0].get("artifacts").is_none());
    // The most recently updated first.
    assert_eq!(r["tasks"][0]["id"], ids[2]);
    assert_eq!(r["tasks"][1]["id"], ids[1]);
    let token = r["nextPageToken"].as_str().unwrap();
    assert!(!token.is_empty());
    let rest = w
        .rpc(rpc(
            "ListTasks",
            json!({"pageSize": 2, "pageToken": token, "includeArtifacts": true}),
        ))
        .await;
    assert_eq!(rest["result"]["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(rest["result"]["nextPageToken"], "");
    assert!(rest["result"]["tasks"][0]["artifacts"].is_array());
    let a = w.rpc(rpc("ListTasks", json!({"contextId": "ctx-a"}))).await;
    assert_eq!(a["result"]["totalSize"], 2);
    let done = w
        .rpc(rpc("ListTasks", json!({"status": "TASK_STATE_WORKING"})))
        .await;
    assert_eq!(done["result"]["totalSize"], 0);
    let bad = w.rpc(rpc("ListTasks", json!({"status": "DONE"}))).await;
    assert_eq!(bad["error"]["code"], -32602);
}
