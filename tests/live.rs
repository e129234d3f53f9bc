//! Live text (SPEC §4.1) through the real binary: `task.delta` lines of a child reach every live
//! stream at once, with no `seq` and no SSE `id:`, and never the record.
//!
//! The scripted model writes its next piece only once the test has seen the previous one
//! arrive (a signal file per piece), so a worker that held pieces back could not pass.

mod common;

#[path = "live/a2a.rs"]
mod a2a;
#[path = "live/cli.rs"]
mod cli;
#[path = "live/flood.rs"]
mod flood;

use std::time::Duration;

pub use common::talker::{go, talker, worker};
use common::{read_sse, script, sse, SseMessage};
use futures_util::StreamExt;
use serde_json::json;

/// An SSE response read one message at a time. Merged deltas can be megabytes long, so the
/// search for a message's end resumes where the last one stopped (never rescans the buffer).
pub struct Messages {
    stream: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: Vec<u8>,
    scanned: usize,
}

impl Messages {
    pub fn new(resp: reqwest::Response) -> Self {
        Messages {
            stream: resp.bytes_stream().boxed(),
            buf: Vec::new(),
            scanned: 0,
        }
    }

    /// The next message, or `None` at the end of the stream.
    pub async fn next(&mut self) -> Option<SseMessage> {
        loop {
            let from = self.scanned.saturating_sub(1);
            if let Some(at) = self.buf[from..].windows(2).position(|w| w == b"\n\n") {
                let end = from + at + 2;
                let block: Vec<u8> = self.buf.drain(..end).collect();
                self.scanned = 0;
                let mut text = String::from_utf8(block).unwrap();
                if let Some((id, data)) = sse::next_message(&mut text) {
                    return Some(SseMessage {
                        id,
                        data: serde_json::from_str(&data).unwrap(),
                        at: std::time::Instant::now(),
                    });
                }
                continue;
            }
            self.scanned = self.buf.len();
            let chunk = tokio::time::timeout(Duration::from_secs(60), self.stream.next())
                .await
                .expect("a message within 60 s")?;
            self.buf.extend_from_slice(&chunk.unwrap());
        }
    }

    /// Reads until a delta arrives (within 60 s: heartbeats alone do not keep it waiting);
    /// returns it, and adds every message before it to `seen`.
    pub async fn until_delta(&mut self, seen: &mut Vec<SseMessage>) -> SseMessage {
        let wait = async {
            loop {
                let m = self.next().await.expect("a delta before the stream ended");
                if m.data["type"] == "task.delta" {
                    return m;
                }
                seen.push(m);
            }
        };
        tokio::time::timeout(Duration::from_secs(60), wait)
            .await
            .expect("a delta within 60 s")
    }
}

fn is_delta(m: &SseMessage) -> bool {
    m.data["type"] == "task.delta"
}

fn text_of(msgs: &[SseMessage]) -> String {
    msgs.iter()
        .filter(|m| is_delta(m))
        .map(|m| m.data["payload"]["text"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn deltas_reach_every_sse_stream_at_once_and_stay_out_of_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let pieces = ["Hel", "lo, ", "wor", "ld"];
    let w = worker(dir.path(), &pieces, &[]).await;
    let resp = w
        .client()
        .post(format!("{}/invocations", w.url))
        .header("accept", "text/event-stream")
        .json(&json!({"framework": "talker", "instruction": "hi"}))
        .send()
        .await
        .unwrap();
    let mut main = Messages::new(resp);
    let mut got = Vec::new();
    let first = main.until_delta(&mut got).await;
    let id = first.data["taskId"].as_str().unwrap().to_string();
    got.push(first);
    // A second subscriber joins mid-message: the text so far comes first, as one delta.
    let resp = w
        .client()
        .get(format!("{}/tasks/{id}/events", w.url))
        .send()
        .await
        .unwrap();
    let mut late = Messages::new(resp);
    let mut late_got = Vec::new();
    let so_far = late.until_delta(&mut late_got).await;
    assert_eq!(so_far.data["payload"]["text"], "Hel", "{:?}", so_far.data);
    late_got.push(so_far);
    // Each next piece is written only once both streams have the one before.
    for i in 0..pieces.len() - 1 {
        go(dir.path(), i);
        let d = main.until_delta(&mut got).await;
        assert_eq!(d.data["payload"]["text"], pieces[i + 1]);
        got.push(d);
        let d = late.until_delta(&mut late_got).await;
        assert_eq!(d.data["payload"]["text"], pieces[i + 1]);
        late_got.push(d);
    }
    go(dir.path(), pieces.len() - 1);
    while let Some(m) = main.next().await {
        got.push(m);
    }
    while let Some(m) = late.next().await {
        late_got.push(m);
    }
    for msgs in [&got, &late_got] {
        assert_eq!(text_of(msgs), "Hello, world");
        assert_eq!(msgs.last().unwrap().data["output"], "Hello, world");
        let mut last_id = 0;
        for m in msgs.iter() {
            if is_delta(m) {
                // No id (Last-Event-ID stays on the record), no seq, after the events before it.
                assert_eq!(m.id, None, "{:?}", m.data);
                assert!(m.data.get("seq").is_none(), "{:?}", m.data);
                assert_eq!(m.data["afterSeq"], last_id, "{:?}", m.data);
                assert_eq!(m.data["payload"]["messageId"], "m-1");
                assert!(m.data["ts"].is_string());
            } else if let Some(i) = m.id {
                last_id = i;
            }
        }
    }
    assert_eq!(got.iter().filter(|m| is_delta(m)).count(), pieces.len());
    // The record: the closing step holds the text; no delta in the log, the answer, task.status.
    let record = w.folder_events(&id);
    assert!(record.iter().all(|e| e["type"] != "task.delta"));
    assert!(record
        .iter()
        .any(|e| e["payload"]["messageId"] == "m-1" && e["payload"]["text"] == "Hello, world"));
    let answer = &got.last().unwrap().data;
    let status = w
        .run(json!({"taskType": "task.status", "taskId": id}))
        .await;
    for r in [answer, &status] {
        let events = r["events"].as_array().unwrap();
        assert_eq!(events.len(), record.len(), "{r}");
        assert!(events.iter().all(|e| e["type"] != "task.delta"), "{r}");
    }
    // A resumed stream carries the record after the id, with no delta: the message is closed.
    let resp = w
        .client()
        .get(format!("{}/tasks/{id}/events", w.url))
        .header("last-event-id", "2")
        .send()
        .await
        .unwrap();
    let resumed = read_sse(resp, usize::MAX).await;
    let ids: Vec<u64> = resumed.iter().map(|m| m.id.unwrap()).collect();
    let last = record.len() as u64;
    assert_eq!(ids, (3..last).chain([last]).collect::<Vec<_>>());
    assert!(!resumed.iter().any(is_delta));
}

#[tokio::test]
async fn bad_delta_lines_are_refused_with_a_bounded_number_of_warnings() {
    let dir = tempfile::tempdir().unwrap();
    // 1 MB of text in one delta fits the default line limit (1 MiB) with its envelope.
    let bad = script(
        dir.path(),
        "bad.py",
        r#"#!/usr/bin/env python3
import json, sys
def out(o):
    sys.stdout.write(json.dumps(o) + "\n")
for p in [{"messageId": "m"}, {"messageId": "m", "text": 5}, {"messageId": "m", "text": "a", "kind": "poem"},
          {"text": "a"}]:
    out({"type": "task.delta", "payload": p})
out({"type": "task.delta"})
for i in range(1000):
    out({"type": "task.delta", "payload": {"messageId": "m"}})
out({"type": "task.delta", "payload": {"messageId": "big", "text": "x" * 1000000}})
out({"type": "task.result", "output": "done"})
"#,
    );
    let w = worker(dir.path(), &[], &[("bad", &bad)]).await;
    let msgs = w
        .stream(&json!({"framework": "bad", "instruction": "hi"}))
        .await;
    let result = &msgs.last().unwrap().data;
    assert_eq!(result["ok"], true, "{result}");
    let warnings: Vec<&str> = result["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "task.log" && e["payload"]["level"] == "warning")
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(warnings.len(), 11, "{warnings:#?}");
    for (w, says) in warnings.iter().zip([
        "no \"text\"",
        "\"text\" must be a string, not a number",
        "\"poem\" is not one of",
        "no \"messageId\"",
        "no \"payload\" object",
    ]) {
        assert!(
            w.contains("task.delta line was refused") && w.contains(says),
            "{w}"
        );
    }
    assert!(warnings[10].starts_with("1005 task.delta lines were refused"));
    let big: Vec<&SseMessage> = msgs.iter().filter(|m| is_delta(m)).collect();
    assert_eq!(big.len(), 1);
    assert_eq!(
        big[0].data["payload"]["text"].as_str().unwrap().len(),
        1_000_000
    );
    assert_eq!(w.ping().await["status"], "Healthy");
}
