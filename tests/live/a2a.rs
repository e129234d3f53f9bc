//! Live text on A2A streams: artifact updates appended to one artifact per message.

use serde_json::{json, Value};

use super::{go, worker, Messages};

/// The next artifact update of live text (not the final output artifact), within 60 s.
async fn next_piece(msgs: &mut Messages, v1: bool) -> Value {
    let wait = async {
        loop {
            let m = msgs.next().await.expect("a piece before the stream ended");
            let r = &m.data["result"];
            let u = if v1 {
                &r["artifactUpdate"]
            } else if r["kind"] == "artifact-update" {
                r
            } else {
                continue;
            };
            if u["artifact"]["name"] == "message" {
                return u.clone();
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), wait)
        .await
        .expect("a piece within 60 s")
}

#[tokio::test]
async fn a2a_streams_carry_live_text_as_appended_artifact_updates() {
    for (method, v1) in [("SendStreamingMessage", true), ("message/stream", false)] {
        let dir = tempfile::tempdir().unwrap();
        let w = worker(dir.path(), &["Hel", "lo"], &[]).await;
        let part = if v1 {
            json!({"text": "hi"})
        } else {
            json!({"kind": "text", "text": "hi"})
        };
        let role = if v1 { "ROLE_USER" } else { "user" };
        let body = json!({"jsonrpc": "2.0", "id": "r1", "method": method, "params": {
            "message": {"role": role, "messageId": "u-1", "parts": [part]},
            "metadata": {"framework": "talker"}}});
        let resp = w.rpc_response(&body).await;
        let mut msgs = Messages::new(resp);
        let first = next_piece(&mut msgs, v1).await;
        assert_eq!(first["append"], false, "{method}: {first}");
        assert_eq!(first["lastChunk"], false);
        assert_eq!(first["artifact"]["parts"][0]["text"], "Hel", "{method}");
        assert_eq!(first["artifact"]["metadata"]["messageId"], "m-1");
        go(dir.path(), 0);
        let second = next_piece(&mut msgs, v1).await;
        assert_eq!(second["append"], true, "{method}: {second}");
        assert_eq!(second["artifact"]["parts"][0]["text"], "lo", "{method}");
        assert_eq!(
            second["artifact"]["artifactId"],
            first["artifact"]["artifactId"]
        );
        go(dir.path(), 1);
        let mut rest = Vec::new();
        while let Some(m) = msgs.next().await {
            assert!(m.id.is_none());
            rest.push(m.data);
        }
        // Then the output artifact (the whole text) and the terminal status.
        let last: &Value = &rest.last().unwrap()["result"];
        let done = if v1 { &last["statusUpdate"] } else { last };
        let state = done["status"]["state"].as_str().unwrap();
        assert!(
            state.to_lowercase().ends_with("completed"),
            "{method}: {last}"
        );
    }
}
