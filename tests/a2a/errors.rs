//! JSON-RPC errors in each version: unknown methods and tasks, unsupported operations, bad
//! params, each naming what is wrong.

use super::*;

#[tokio::test]
async fn errors_name_what_is_wrong_in_each_version() {
    let w = WorkerBuilder::new().start().await;
    let other = w.rpc(rpc("tasks/list", json!({}))).await;
    assert_eq!(other["error"]["code"], -32601);
    let named = other["error"]["message"].as_str().unwrap();
    for method in [
        "SendMessage",
        "SendStreamingMessage",
        "GetTask",
        "ListTasks",
        "CancelTask",
        "SubscribeToTask",
        "message/send",
        "message/stream",
        "tasks/get",
        "tasks/cancel",
        "tasks/resubscribe",
    ] {
        assert!(named.contains(method), "{method}: {named}");
    }
    for (method, v1) in [
        ("GetTask", true),
        ("tasks/get", false),
        ("CancelTask", true),
    ] {
        let r = w.rpc(rpc(method, json!({"id": "no-such-task"}))).await;
        assert_eq!(r["error"]["code"], -32001, "{method}: {r:#}");
        assert_eq!(r["error"]["data"][0]["reason"].is_string(), v1, "{r:#}");
    }
    let r = w
        .rpc(rpc("SubscribeToTask", json!({"id": "no-such-task"})))
        .await;
    assert_eq!(r["error"]["code"], -32001);
    let r = w
        .rpc(rpc(
            "CreateTaskPushNotificationConfig",
            json!({"taskId": "x"}),
        ))
        .await;
    assert_eq!(r["error"]["code"], -32003);
    let r = w.rpc(rpc("GetTask", json!({}))).await;
    assert_eq!(r["error"]["code"], -32602);
    let r = w.rpc(rpc("SendMessage", json!({"message": 3}))).await;
    assert_eq!(r["error"]["code"], -32602);
    let long = "c".repeat(2000);
    let r = w
        .rpc(send(
            "message/send",
            "x",
            "echo",
            json!({"message": {"contextId": long}}),
        ))
        .await;
    assert_eq!(r["error"]["code"], -32602, "{r:#}");
}
