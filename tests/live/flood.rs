//! A flood of deltas with a subscriber that does not read: the worker's memory stays bounded,
//! `/ping` answers, and a reading subscriber still gets every byte.

use std::io::{Read, Write};

use serde_json::json;

use super::{go, worker, Messages};
use crate::common::{script, status_kb};

const DELTAS: usize = 100_000;
const PIECE: usize = 200;

/// Piece `i`: its number, then filler up to [`PIECE`] bytes.
fn piece(i: usize) -> String {
    format!("{i:07}{}", "y".repeat(PIECE - 7))
}

#[tokio::test]
async fn a_flood_of_deltas_with_a_subscriber_that_does_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let flood = script(
        dir.path(),
        "flood.py",
        &format!(
            r#"#!/usr/bin/env python3
import json, os, sys, time
out = sys.stdout
out.write(json.dumps({{"type": "task.progress", "message": "waiting"}}) + "\n")
out.flush()
while not os.path.exists(os.path.join({dir:?}, "go0")):
    time.sleep(0.01)
fill = "y" * ({PIECE} - 7)
for i in range({DELTAS}):
    out.write(json.dumps({{"type": "task.delta", "payload": {{"messageId": "m-1", "text": "%07d%s" % (i, fill)}}}}) + "\n")
out.write(json.dumps({{"type": "task.progress", "message": "model_turn", "payload": {{"messageId": "m-1"}}}}) + "\n")
out.write(json.dumps({{"type": "task.result", "output": "flooded"}}) + "\n")
"#,
            dir = dir.path().to_str().unwrap()
        ),
    );
    let w = worker(dir.path(), &[], &[("flood", &flood)]).await;
    let resp = w
        .client()
        .post(format!("{}/invocations", w.url))
        .header("accept", "text/event-stream")
        .json(&json!({"framework": "flood", "instruction": "go"}))
        .send()
        .await
        .unwrap();
    let mut reader = Messages::new(resp);
    let accepted = reader.next().await.unwrap();
    let id = accepted.data["taskId"].as_str().unwrap().to_string();
    // The idle subscriber reads up to its first event (so it has joined), then never again.
    let mut idle = std::net::TcpStream::connect(("127.0.0.1", w.port)).unwrap();
    write!(
        idle,
        "GET /tasks/{id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\n\n") || !String::from_utf8_lossy(&head).contains("data: ") {
        idle.read_exact(&mut byte)
            .unwrap_or_else(|e| panic!("{e} after {:?}", String::from_utf8_lossy(&head)));
        head.push(byte[0]);
    }
    let before = status_kb(w.pid(), "VmRSS").unwrap();
    go(dir.path(), 0);
    let mut text = String::with_capacity(DELTAS * PIECE);
    let mut pinged = false;
    let mut end = None;
    while let Some(m) = reader.next().await {
        if m.data["type"] == "task.delta" {
            text.push_str(m.data["payload"]["text"].as_str().unwrap());
            if !pinged {
                // Mid-flood: the worker still answers.
                assert!(w.ping().await["status"].is_string());
                pinged = true;
            }
        } else if m.data.get("output").is_some() {
            end = Some(m.data);
        }
    }
    assert_eq!(end.unwrap()["output"], "flooded");
    assert!(pinged);
    assert_eq!(text.len(), DELTAS * PIECE, "every byte reached the reader");
    for (i, chunk) in text.as_bytes().chunks(PIECE).enumerate() {
        assert_eq!(chunk, piece(i).as_bytes(), "piece {i} in order");
    }
    // 20 MB of text went by: the idle subscriber's queue and the text kept for late joiners
    // are bounded (16 MB and 1 MB), so the peak stays below twice the text.
    let peak = status_kb(w.pid(), "VmHWM").unwrap();
    eprintln!("worker RSS before the flood {before} kB, peak {peak} kB");
    assert!(
        peak.saturating_sub(before) < 32 * 1024,
        "peak RSS grew by {} kB (from {before} kB)",
        peak - before
    );
    assert_eq!(w.ping().await["status"], "Healthy");
    drop(idle);
}
