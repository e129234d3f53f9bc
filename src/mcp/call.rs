//! `tools/call`: a task started from the call's arguments, answered as one JSON response or
//! as an SSE stream of `notifications/progress` (the task's steps and live text) ending with
//! the response; and cancelling: `notifications/cancelled` names a call by its request id
//! (2025 revisions), closing the stream or the connection is the cancel (2026-07-28).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use serde_json::{json, Value};
use warp::reply::Response;

use super::rpc::{result_response, Accepts};
use super::Proto;
use crate::http::sse::{self, Framing};
use crate::live::{Delta, Kind};
use crate::task::{RequestIds, Start, Worker};
use crate::wire::{EventJson, TaskResult};

/// An SSE comment after this long without a message, for proxies and clients that drop a
/// quiet stream (a model may think for minutes between steps).
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);

/// The tool calls running now, by who sent them and their request id, so that a
/// `notifications/cancelled` (a POST of its own, on a stateless server) finds its task.
/// An entry lives as long as its call: bounded by the running tasks.
#[derive(Default)]
pub struct Calls {
    running: Mutex<HashMap<(String, String), String>>,
}

/// A call's entry in [`Calls`], removed when the call ends.
struct Entry {
    calls: Arc<Calls>,
    key: (String, String),
    task_id: String,
}

impl Drop for Entry {
    fn drop(&mut self) {
        let mut map = self.calls.running.lock().unwrap_or_else(|p| p.into_inner());
        // Only this call's: a later call with the same id (another client, no session) may
        // have taken the key since, and stays cancellable after this one ends.
        if map.get(&self.key) == Some(&self.task_id) {
            map.remove(&self.key);
        }
    }
}

impl Calls {
    fn key(scope: Option<&str>, request_id: &Value) -> (String, String) {
        (scope.unwrap_or("").to_string(), request_id.to_string())
    }

    fn enter(self: &Arc<Self>, scope: Option<&str>, request_id: &Value, task_id: &str) -> Entry {
        let key = Self::key(scope, request_id);
        let mut map = self.running.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(key.clone(), task_id.to_string());
        Entry {
            calls: self.clone(),
            key,
            task_id: task_id.to_string(),
        }
    }

    /// The task of the call `request_id` sent in `scope`, if it runs.
    pub fn task_of(&self, scope: Option<&str>, request_id: &Value) -> Option<String> {
        let map = self.running.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&Self::key(scope, request_id)).cloned()
    }
}

/// Cancels the task when dropped armed: a 2026-07-28 call whose client went away (its stream
/// closed, or its connection while a JSON answer was awaited).
struct CancelOnDrop {
    worker: Arc<Worker>,
    task_id: String,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (worker, id) = (self.worker.clone(), std::mem::take(&mut self.task_id));
        tracing::info!(taskId = %id, "MCP client closed the call's stream: cancelling its task");
        // Dropped on a runtime thread (the stream's producer or the request's future).
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                worker.cancel(&id, None).await;
            });
        }
    }
}

/// The error code as text, for a failed task's message.
fn code_text(r: &TaskResult) -> String {
    r.error_code
        .map(|c| c.as_str().to_string())
        .unwrap_or_else(|| r.status.as_str().to_string())
}

/// A task's answer as a `CallToolResult`: its output as text content; a failed task is a
/// result with `isError: true` whose text starts with the error code; `structuredContent`
/// holds the answer's fields but its events and output (the text already is the output).
pub fn tool_result(r: &TaskResult) -> Value {
    let mut text = if r.ok {
        r.output.to_string()
    } else {
        format!(
            "{}: {}",
            code_text(r),
            r.error.as_deref().unwrap_or("the task failed")
        )
    };
    if let (Some(qs), Some(session)) = (&r.asked.interrupts, &r.asked.session_id) {
        // No elicitation to carry them (docs/mcp.md): the questions, and how to answer.
        text = format!(
            "input_required: the task {} asks {}. Answer by calling this tool again with \
             sessionId {session:?} and input.resume: {{\"<id>\": answer}} (an approval's \
             answer is true or false).",
            r.task_id,
            serde_json::to_string(qs).unwrap_or_default()
        );
    }
    if !r.ok && !r.output.is_empty() {
        text.push_str("\n\n");
        text.push_str(&r.output);
    }
    let mut structured = serde_json::to_value(r).unwrap_or_else(|_| json!({}));
    if let Some(m) = structured.as_object_mut() {
        m.remove("events");
        m.remove("output");
    }
    json!({
        "content": [{"type": "text", "text": text}],
        "structuredContent": structured,
        "isError": !r.ok,
    })
}

/// What a `tools/call` carries beside the tool's arguments.
pub struct CallCtx {
    pub worker: Arc<Worker>,
    pub calls: Arc<Calls>,
    pub id: Value,
    pub proto: Proto,
    pub accepts: Accepts,
    pub progress_token: Option<Value>,
    pub ids: RequestIds,
    /// A 2026-07-28 client that takes elicitations: questions are an `InputRequiredResult`.
    pub elicit: bool,
}

/// The call's answer: an asking task's questions as the client can take them, else its
/// tool result.
fn answer(proto: &Proto, elicit: bool, r: &TaskResult) -> Value {
    match super::ask::input_required(r).filter(|_| elicit) {
        Some(asked) => {
            let mut v = proto.finish(asked);
            v["resultType"] = json!("input_required");
            v
        }
        None => proto.finish(tool_result(r)),
    }
}

/// Starts the task of `payload` and answers the call.
pub async fn start(ctx: CallCtx, payload: crate::wire::Payload) -> Response {
    let scope = ctx.ids.session_id.clone();
    let cap = ctx.worker.cfg.max_output_bytes;
    let task = match start_detached(&ctx.worker, payload, ctx.ids.clone(), ctx.proto.modern).await {
        Some(Start::New(task)) | Some(Start::Existing(task)) => task,
        // The start's own task panicked: nothing to answer about but that.
        None => {
            let r = TaskResult::fail(
                crate::wire::ErrorCode::SpawnFailed,
                "the task's start failed inside the worker",
            );
            return result_response(&ctx.id, ctx.proto.finish(tool_result(&r)));
        }
        Some(Start::OnDisk(r)) | Some(Start::Refused(r)) => {
            return result_response(&ctx.id, ctx.proto.finish(tool_result(&r)));
        }
    };
    let entry = ctx.calls.enter(scope.as_deref(), &ctx.id, &task.id);
    let cancel = CancelOnDrop {
        worker: ctx.worker.clone(),
        task_id: task.id.clone(),
        armed: ctx.proto.modern,
    };
    // A stream when the client takes one and it carries something: progress, or (2026-07-28)
    // the stream whose closing cancels the call.
    let stream = ctx.accepts.sse && (ctx.progress_token.is_some() || ctx.proto.modern);
    if stream {
        let framing = Progress {
            id: ctx.id,
            proto: ctx.proto,
            elicit: ctx.elicit,
            token: ctx.progress_token,
            sent: 0,
            cancel,
            _entry: entry,
        };
        return sse::framed_stream(task, 0, cap, Vec::new(), framing);
    }
    let r = task.answer(cap).await;
    let mut cancel = cancel;
    cancel.armed = false;
    drop(entry);
    result_response(&ctx.id, answer(&ctx.proto, ctx.elicit, &r))
}

/// Starts the task on a task of its own and hands the [`Start`] back: the start may await
/// (a child's spawn) after the task is already listed as running, and a client that goes
/// away then drops this call's future before any [`CancelOnDrop`] exists. The detached start
/// sees its receiver gone and cancels the run it began (only a new one: an existing task is
/// another caller's), as [`CancelOnDrop`] would have on 2026-07-28.
async fn start_detached(
    worker: &Arc<Worker>,
    payload: crate::wire::Payload,
    ids: RequestIds,
    cancel_if_gone: bool,
) -> Option<Start> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let w = worker.clone();
    tokio::spawn(async move {
        let start = w.start(payload, ids).await;
        let Err(Start::New(task)) = tx.send(start) else {
            return;
        };
        if cancel_if_gone {
            tracing::info!(taskId = %task.id, "MCP client went away while its call started: cancelling its task");
            w.cancel(&task.id, None).await;
        }
    });
    rx.await.ok()
}

/// Frames a task's events as MCP progress notifications, the response last.
struct Progress {
    id: Value,
    proto: Proto,
    elicit: bool,
    token: Option<Value>,
    /// Notifications sent: the `progress` value, which must rise with each.
    sent: u64,
    cancel: CancelOnDrop,
    _entry: Entry,
}

impl Progress {
    fn notify(&mut self, message: &str, out: &mut BytesMut) {
        let Some(token) = &self.token else {
            return;
        };
        self.sent += 1;
        let note = json!({
            "jsonrpc": "2.0",
            "method": "notifications/progress",
            "params": {"progressToken": token, "progress": self.sent, "message": message},
        });
        out.extend_from_slice(&sse::frame(None, &note.to_string()));
    }
}

/// The words a progress notification shows for an event: a step's name (and tool), a
/// heartbeat's elapsed time; `None` for output lines and the like.
fn event_message(ev: &Value) -> Option<String> {
    let message = ev["message"].as_str().unwrap_or_default();
    match ev["type"].as_str()? {
        // The first notification names the task, for task_status and task_cancel later.
        "task.progress" if message == "accepted" => Some(format!(
            "accepted: task {}",
            ev["taskId"].as_str().unwrap_or_default()
        )),
        // A step: its message names it (and its tool: "tool_call shout").
        "task.progress" if !message.is_empty() => Some(message.to_string()),
        // The one at the start says nothing the acceptance did not.
        "task.heartbeat" => {
            let s = ev["payload"]["elapsedMs"].as_u64().unwrap_or(0) / 1000;
            (s > 0).then(|| format!("running for {s} s"))
        }
        _ => None,
    }
}

impl Framing for Progress {
    fn event(&mut self, _seq: u64, event: &EventJson, out: &mut BytesMut) {
        if self.token.is_none() {
            return;
        }
        let Ok(ev) = serde_json::from_str::<Value>(event.get()) else {
            return;
        };
        if let Some(m) = event_message(&ev) {
            self.notify(&m, out);
        }
    }

    /// The model's text as it writes it: each piece is a notification's message.
    fn delta(&mut self, d: &Delta, _task_id: &str, out: &mut BytesMut) {
        if matches!(d.kind, Kind::Text) && !d.text.is_empty() {
            self.notify(&d.text, out);
        }
    }

    fn keep_alive(&self) -> Option<std::time::Duration> {
        Some(KEEP_ALIVE)
    }

    fn end(&mut self, _seq: u64, r: &TaskResult) -> Vec<Bytes> {
        self.cancel.armed = false;
        let response = json!({
            "jsonrpc": "2.0",
            "id": self.id,
            "result": answer(&self.proto, self.elicit, r),
        });
        vec![sse::frame(None, &response.to_string())]
    }
}

/// `task_status` / `task_cancel`: the task's answer as a tool result (an error only when the
/// task is unknown to the caller: a failed task's status is a good answer about it).
pub fn control_result(r: &TaskResult) -> Value {
    let unknown = r.error_code == Some(crate::wire::ErrorCode::UnknownTask);
    let text = serde_json::to_string(r).unwrap_or_default();
    let mut structured = serde_json::to_value(r).unwrap_or_else(|_| json!({}));
    if unknown {
        if let Some(m) = structured.as_object_mut() {
            m.remove("events");
        }
    }
    json!({
        "content": [{"type": "text", "text": text}],
        "structuredContent": structured,
        "isError": unknown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_that_ends_leaves_a_later_call_with_its_id_cancellable() {
        let calls = Arc::new(Calls::default());
        let first = calls.enter(None, &json!(1), "task-a");
        let second = calls.enter(None, &json!(1), "task-b");
        drop(first);
        assert_eq!(calls.task_of(None, &json!(1)).as_deref(), Some("task-b"));
        assert_eq!(calls.task_of(Some("s"), &json!(1)), None);
        drop(second);
        assert_eq!(calls.task_of(None, &json!(1)), None);
    }
}
