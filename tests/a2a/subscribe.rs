//! Joining a running task's stream (1.0 subscribe, 0.3 resubscribe), refusing a finished one,
//! and the keep-alive comments of a quiet stream.

use std::time::Duration;

use super::*;

/// An open event stream, read message by message.
struct Sse {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

impl Sse {
    async fn open(w: &Worker, body: &Value) -> Sse {
        Sse {
            body: Box::pin(open_stream(w, body).await.bytes_stream()),
            buf: String::new(),
        }
    }

    /// The next message's data, or `None` once the stream has ended.
    async fn next(&mut self) -> Option<Value> {
        use futures_util::StreamExt;
        loop {
            if let Some((_, data)) = sse::next_message(&mut self.buf) {
                return Some(serde_json::from_str(&data).unwrap());
            }
            let chunk = self.body.next().await?.unwrap();
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Every message up to the end of the stream.
    async fn rest(mut self) -> Vec<Value> {
        let mut out = Vec::new();
        while let Some(m) = self.next().await {
            out.push(m);
        }
        out
    }
}

#[tokio::test]
async fn resubscribe_and_subscribe_join_a_running_task_and_refuse_a_finished_one() {
    let dir = tempfile::tempdir().unwrap();
    let w = worker(dir.path(), WorkerBuilder::new()).await;
    let r = w
        .rpc(send(
            "message/send",
            "x",
            "slow",
            json!({"configuration": {"blocking": false}, "message": {"contextId": "ctx-join"}}),
        ))
        .await;
    let id = r["result"]["id"].as_str().unwrap().to_string();
    assert!(
        eventually(Duration::from_secs(10), || !task_processes(&id).is_empty()).await,
        "the slow task never started"
    );
    // Both streams: the task first (working, same context), then updates until the cancel.
    let mut old = Sse::open(&w, &rpc("tasks/resubscribe", json!({"id": id}))).await;
    let mut new = Sse::open(&w, &rpc("SubscribeToTask", json!({"id": id}))).await;
    let first = old.next().await.expect("a first message");
    assert_eq!(first["result"]["kind"], "task", "{first:#}");
    assert_eq!(first["result"]["status"]["state"], "working");
    assert_eq!(first["result"]["contextId"], "ctx-join");
    let first = new.next().await.expect("a first message");
    assert_eq!(
        first["result"]["task"]["status"]["state"],
        "TASK_STATE_WORKING"
    );
    assert_eq!(first["result"]["task"]["contextId"], "ctx-join");
    let c = w.rpc(rpc("tasks/cancel", json!({"id": id}))).await;
    assert_eq!(c["result"]["status"]["state"], "canceled", "{c:#}");
    let old = old.rest().await;
    let last = &old.last().unwrap()["result"];
    assert_eq!(last["final"], true);
    assert_eq!(last["status"]["state"], "canceled");
    assert!(old.iter().all(|m| m["result"]["contextId"] == "ctx-join"));
    let new = new.rest().await;
    let last = &new.last().unwrap()["result"]["statusUpdate"];
    assert_eq!(last["status"]["state"], "TASK_STATE_CANCELED");
    // Finished: 0.3 answers -32602 (as an event stream), 1.0 -32004 with an ErrorInfo.
    let again = stream(&w, &rpc("tasks/resubscribe", json!({"id": id}))).await;
    assert_eq!(again[0]["error"]["code"], -32602, "{again:?}");
    let again = w.rpc(rpc("SubscribeToTask", json!({"id": id}))).await;
    assert_eq!(again["error"]["code"], -32004, "{again:#}");
    assert_eq!(again["error"]["data"][0]["reason"], "UNSUPPORTED_OPERATION");
    // Cancel of a finished task: -32002 in both.
    for method in ["tasks/cancel", "CancelTask"] {
        let no = w.rpc(rpc(method, json!({"id": id}))).await;
        assert_eq!(no["error"]["code"], -32002, "{method}: {no:#}");
    }
}

#[tokio::test]
async fn a_quiet_stream_carries_keep_alive_comments() {
    let dir = tempfile::tempdir().unwrap();
    let w = worker(dir.path(), WorkerBuilder::new()).await;
    let body = send(
        "SendStreamingMessage",
        "x",
        "slow",
        json!({"message": {"taskId": "quiet"}}),
    );
    let resp = w.rpc_response(&body).await;
    let mut bytes = resp.bytes_stream();
    let mut seen = String::new();
    use futures_util::StreamExt;
    // The slow task prints one line, then nothing (heartbeats every 10 s by default).
    while !seen.contains("\n: keep-alive\n\n") {
        let chunk = bytes.next().await.expect("the stream goes on").unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let c = w.rpc(rpc("CancelTask", json!({"id": "quiet"}))).await;
    assert_eq!(c["result"]["status"]["state"], "TASK_STATE_CANCELED");
}
