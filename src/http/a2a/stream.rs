//! A task's events as an A2A stream: each `data:` a whole JSON-RPC response holding a status
//! update (a progress event's message becomes the status message), live text as artifact
//! updates appended to one artifact per message, then the output artifact and the terminal
//! status, after which the stream closes.

use bytes::{Bytes, BytesMut};
use serde_json::{json, Value};

use std::collections::HashSet;

use super::shape::{self, Version};
use crate::http::sse::{self, Framing};
use crate::live::{Delta, Kind};
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
    /// Artifacts of live text this stream has begun: the first piece of each creates it,
    /// the rest are appended to it (an SDK ignores an append to an artifact it has not seen).
    pub begun: HashSet<String>,
    /// The id the task is shown under when it is not the run's own: a run that answers a
    /// task's questions streams as that task (SPEC §14: over A2A the task keeps its id).
    pub shown_as: Option<String>,
}

impl A2aFraming {
    /// The id the client knows this task by.
    fn shown<'a>(&'a self, run: &'a str) -> &'a str {
        self.shown_as.as_deref().unwrap_or(run)
    }
}

impl Framing for A2aFraming {
    fn event(&mut self, _seq: u64, event: &EventJson, out: &mut BytesMut) {
        let Ok(ev) = serde_json::from_str::<Value>(event.get()) else {
            return;
        };
        let v = self.version;
        let task_id = self
            .shown(ev["taskId"].as_str().unwrap_or_default())
            .to_string();
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

    /// A piece of live text: appended to one artifact per message (and kind), so that a
    /// client's task ends up holding the text as written.
    fn delta(&mut self, d: &Delta, task_id: &str, out: &mut BytesMut) {
        let task_id = self.shown(task_id).to_string();
        let task_id = task_id.as_str();
        let (artifact_id, name) = match &d.kind {
            Kind::Text => (format!("{task_id}-message-{}", d.message_id), "message"),
            Kind::Reasoning => (format!("{task_id}-reasoning-{}", d.message_id), "reasoning"),
            Kind::ToolCall { tool_call_id, .. } => {
                (format!("{task_id}-tool-call-{tool_call_id}"), "tool_call")
            }
        };
        let append = !self.begun.insert(artifact_id.clone());
        let mut metadata = json!({"messageId": d.message_id, "afterSeq": d.after_seq});
        if let Kind::ToolCall { tool_call_id, tool } = &d.kind {
            metadata["toolCallId"] = json!(tool_call_id);
            metadata["tool"] = json!(tool);
        }
        let artifact = json!({
            "artifactId": artifact_id,
            "name": name,
            "parts": [shape::text_part(&d.text, self.version)],
            "metadata": metadata,
        });
        let update =
            shape::appended_artifact(self.version, task_id, &self.context_id, artifact, append);
        out.extend_from_slice(&sse::frame(None, &rpc_line(&self.id, &update)));
    }

    /// a2a-sdk (Python) reads a stream with its HTTP client's 5 s timeout: a quiet task (the
    /// heartbeat interval is 10 s by default) would end its stream with a timeout.
    fn keep_alive(&self) -> Option<std::time::Duration> {
        Some(KEEP_ALIVE)
    }

    fn end(&mut self, _seq: u64, r: &TaskResult) -> Vec<Bytes> {
        let v = self.version;
        let mut shown;
        let r = match &self.shown_as {
            Some(id) => {
                shown = r.clone();
                shown.task_id = id.clone();
                &shown
            }
            None => r,
        };
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
