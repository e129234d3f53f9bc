//! A task's events as an A2A stream: each `data:` a whole JSON-RPC response holding a status
//! update (a progress event's message becomes the status message), then the output artifact
//! and the terminal status, after which the stream closes.

use bytes::{Bytes, BytesMut};
use serde_json::{json, Value};

use super::shape::{self, Version};
use crate::http::sse::{self, Framing};
use crate::wire::{EventJson, TaskResult};

/// A comment line after this long without a message.
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(2);

/// One JSON-RPC response line.
pub fn rpc_line(id: &Value, result: &Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string()
}

/// Frames task events as A2A status and artifact updates.
pub struct A2aFraming {
    /// The JSON-RPC request id every message answers.
    pub id: Value,
    /// The task's context.
    pub context_id: String,
    /// The version asked for.
    pub version: Version,
}

impl Framing for A2aFraming {
    fn event(&mut self, _seq: u64, event: &EventJson, out: &mut BytesMut) {
        let Ok(ev) = serde_json::from_str::<Value>(event.get()) else {
            return;
        };
        let v = self.version;
        let task_id = ev["taskId"].as_str().unwrap_or_default().to_string();
        let mut status = json!({
            "state": shape::state(crate::wire::TaskStatus::Running, v),
            "timestamp": ev["ts"],
        });
        if ev["type"] == "task.progress" {
            if let Some(text) = ev["message"].as_str() {
                let message_id = format!("{task_id}-{}", ev["seq"]);
                status["message"] =
                    shape::agent_message(v, &message_id, text, &task_id, &self.context_id);
            }
        }
        let update = shape::status_update(
            v,
            &task_id,
            &self.context_id,
            status,
            false,
            json!({ "event": ev }),
        );
        out.extend_from_slice(&sse::frame(None, &rpc_line(&self.id, &update)));
    }

    /// a2a-sdk (Python) reads a stream with its HTTP client's 5 s timeout: a quiet task (the
    /// heartbeat interval is 10 s by default) would end its stream with a timeout.
    fn keep_alive(&self) -> Option<std::time::Duration> {
        Some(KEEP_ALIVE)
    }

    fn end(&mut self, _seq: u64, r: &TaskResult) -> Vec<Bytes> {
        let v = self.version;
        let artifact = shape::artifact_update(v, r, &self.context_id);
        let done = shape::status_update(
            v,
            &r.task_id,
            &self.context_id,
            shape::status(v, r, &self.context_id),
            true,
            json!({"ok": r.ok, "error": r.error, "errorCode": r.error_code, "artifacts": r.artifacts}),
        );
        vec![
            sse::frame(None, &rpc_line(&self.id, &artifact)),
            sse::frame(None, &rpc_line(&self.id, &done)),
        ]
    }
}
