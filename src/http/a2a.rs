//! A2A: the agent card and JSON-RPC 2.0 on `POST /`. `message/send` answers as the reference
//! worker does; `message/stream`, `tasks/get` and `tasks/cancel` map onto the same task
//! registry as `/invocations`.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use serde_json::{json, Map, Value};
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;

use super::sse::{self, Framing};
use super::{json_response, REQUEST_HEADER, SESSION_HEADER};
use crate::events::now_ts;
use crate::task::{RequestIds, Start, Worker};
use crate::wire::{payload_from_value, EventJson, TaskResult, TaskStatus};

/// The A2A protocol version the card and answers follow.
pub const PROTOCOL_VERSION: &str = "0.3.0";

/// `GET /.well-known/agent-card.json`.
pub fn agent_card(worker: &Worker, _headers: &HeaderMap) -> Response {
    let cfg = &worker.cfg;
    // Never from the request's Host header: a caller would choose where other clients send
    // their messages.
    let url = cfg.public_url.clone().unwrap_or_else(|| {
        let host = match cfg.host {
            h if h.is_unspecified() => "localhost".to_string(),
            std::net::IpAddr::V6(h) => format!("[{h}]"),
            h => h.to_string(),
        };
        format!("http://{host}:{}/", cfg.port)
    });
    let frameworks: Vec<&str> = worker.frameworks.iter().map(|f| f.name.as_str()).collect();
    json_response(
        StatusCode::OK,
        &json!({
            "name": cfg.agent_name,
            "description": cfg.agent_description,
            "url": url,
            "version": env!("CARGO_PKG_VERSION"),
            "protocolVersion": PROTOCOL_VERSION,
            "preferredTransport": "JSONRPC",
            "capabilities": {"streaming": true, "pushNotifications": false, "stateTransitionHistory": false},
            "defaultInputModes": ["text/plain"],
            "defaultOutputModes": ["text/plain", "application/json"],
            "skills": [{
                "id": "agentdispatch.agent.run",
                "name": "Run an agent task",
                "description": format!(
                    "Runs the instruction on an agent framework ({}); metadata.framework picks one.",
                    frameworks.join(", ")
                ),
                "tags": ["agent", "agentdispatch"],
                "inputModes": ["text/plain"],
                "outputModes": ["text/plain", "application/json"],
            }],
        }),
    )
}

fn rpc_error(id: &Value, code: i64, message: &str) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}),
    )
}

fn rpc_result(id: &Value, result: Value) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"jsonrpc": "2.0", "id": id, "result": result}),
    )
}

/// A2A state for a task status.
fn state(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Running => "working",
        TaskStatus::Succeeded => "completed",
        TaskStatus::Failed | TaskStatus::TimedOut => "failed",
        TaskStatus::Cancelled => "canceled",
    }
}

fn text_message(text: &str, task_id: &str, context_id: &str) -> Value {
    json!({
        "kind": "message",
        "role": "agent",
        "messageId": uuid::Uuid::new_v4().to_string(),
        "parts": [{"kind": "text", "text": text}],
        "taskId": task_id,
        "contextId": context_id,
    })
}

/// An A2A Task object for a result (running or finished).
fn task_object(r: &TaskResult, context_id: &str) -> Value {
    let mut status = json!({"state": state(r.status), "timestamp": now_ts()});
    let mut artifacts = Vec::new();
    if r.status != TaskStatus::Running {
        let text = r.error.as_deref().filter(|_| !r.ok).unwrap_or(&r.output);
        status["message"] = text_message(text, &r.task_id, context_id);
        artifacts.push(output_artifact(r));
    }
    json!({
        "kind": "task",
        "id": r.task_id,
        "contextId": context_id,
        "status": status,
        "artifacts": artifacts,
        "metadata": {"ok": r.ok, "events": r.events, "artifacts": r.artifacts, "error": r.error, "errorCode": r.error_code},
    })
}

fn output_artifact(r: &TaskResult) -> Value {
    json!({
        "artifactId": format!("{}-output", r.task_id),
        "name": "output",
        "parts": [{"kind": "text", "text": r.output}],
        "metadata": {"artifacts": r.artifacts, "result": r.result},
    })
}

/// `POST /`: one JSON-RPC request.
pub async fn handle(worker: Arc<Worker>, headers: &HeaderMap, body: Bytes) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return rpc_error(&Value::Null, -32700, &format!("Parse error: {e}")),
    };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let Some(method) = request.get("method").and_then(Value::as_str) else {
        return rpc_error(&id, -32600, "Invalid request: method must be a string.");
    };
    let params = request.get("params").cloned().unwrap_or(Value::Null);
    let ids = RequestIds::new(
        header(headers, REQUEST_HEADER),
        header(headers, SESSION_HEADER),
    );
    match method {
        "message/send" | "message/stream" => {
            let (payload, context_id) = match message_payload(&params, &ids) {
                Ok(p) => p,
                Err(msg) => return rpc_error(&id, -32602, &msg),
            };
            let cap = worker.cfg.max_output_bytes;
            // The context is the session (SPEC §7.1): a follow-up message continues it.
            let mut ids = ids;
            ids.session_id = Some(context_id.clone());
            let task = match worker.start(payload, ids) {
                Start::New(t) | Start::Existing(t) => t,
                Start::OnDisk(r) | Start::Refused(r) => {
                    return rpc_result(&id, reference_answer(&r, &context_id));
                }
            };
            if method == "message/send" {
                let r = task.answer(cap).await;
                return rpc_result(&id, reference_answer(&r, &context_id));
            }
            let first = task_object(&task.view(u64::MAX, cap), &context_id);
            let first = vec![sse::frame(None, &rpc_line(&id, first))];
            sse::framed_stream(task, 0, cap, first, A2aFraming { id, context_id })
        }
        "tasks/get" => match params.get("id").and_then(Value::as_str) {
            None => rpc_error(&id, -32602, "Invalid params: tasks/get requires params.id."),
            Some(task_id) => {
                let r = worker.status(task_id, 0);
                if r.error_code.as_deref() == Some("unknown_task") {
                    return rpc_error(&id, -32001, "Task not found");
                }
                rpc_result(&id, task_object(&r, &context_of(&params, task_id)))
            }
        },
        "tasks/cancel" => match params.get("id").and_then(Value::as_str) {
            None => rpc_error(
                &id,
                -32602,
                "Invalid params: tasks/cancel requires params.id.",
            ),
            Some(task_id) => match worker.get(task_id) {
                None if worker.status(task_id, 0).error_code.as_deref() == Some("unknown_task") => {
                    rpc_error(&id, -32001, "Task not found")
                }
                Some(t) if t.result().is_none() => {
                    let r = worker.cancel(task_id).await;
                    rpc_result(&id, task_object(&r, &context_of(&params, task_id)))
                }
                _ => rpc_error(
                    &id,
                    -32002,
                    "Task cannot be canceled: it has already finished.",
                ),
            },
        },
        _ => rpc_error(&id, -32601, "Unsupported A2A method. Use message/send."),
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn context_of(params: &Value, fallback: &str) -> String {
    params
        .get("contextId")
        .and_then(Value::as_str)
        .unwrap_or(fallback)
        .to_string()
}

fn rpc_line(id: &Value, result: Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string()
}

/// The reference worker's `message/send` answer.
fn reference_answer(r: &TaskResult, context_id: &str) -> Value {
    let mut m = text_message(&r.output, &r.task_id, context_id);
    m["metadata"] = json!({
        "ok": r.ok,
        "events": r.events,
        "artifacts": r.artifacts,
        "error": r.error,
        "taskId": r.task_id,
        "status": r.status,
        "errorCode": r.error_code,
    });
    m
}

/// Builds an `agent.run` payload from `params.message` and `params.metadata`.
fn message_payload(
    params: &Value,
    ids: &RequestIds,
) -> Result<(crate::wire::Payload, String), String> {
    let message = params
        .get("message")
        .and_then(Value::as_object)
        .ok_or("Invalid params: params.message must be an object.")?;
    let parts = message
        .get("parts")
        .and_then(Value::as_array)
        .ok_or("Invalid params: params.message.parts must be an array.")?;
    let texts: Vec<&str> = parts
        .iter()
        .filter(|p| {
            p.get("kind")
                .or_else(|| p.get("type"))
                .and_then(Value::as_str)
                == Some("text")
        })
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect();
    let meta = params.get("metadata").and_then(Value::as_object);
    let mut input = match meta.and_then(|m| m.get("input")) {
        Some(Value::Object(i)) => i.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(_) => return Err("Invalid params: params.metadata.input must be an object.".into()),
    };
    input.insert("instruction".into(), Value::String(texts.join("\n")));
    if let Some(ctx) = meta.and_then(|m| m.get("context")) {
        input.insert("context".into(), ctx.clone());
    }
    if let Some(fw) = meta.and_then(|m| m.get("framework")) {
        input.insert("framework".into(), fw.clone());
    }
    let mut body = json!({"taskType": "agent.run", "input": input});
    if let Some(task_id) = message.get("taskId").and_then(Value::as_str) {
        body["taskId"] = json!(task_id);
    }
    let payload = payload_from_value(body).map_err(|e| format!("Invalid params: {e}"))?;
    let context_id = message
        .get("contextId")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| ids.session_id.clone())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    Ok((payload, context_id))
}

/// Frames task events as A2A status and artifact updates.
struct A2aFraming {
    id: Value,
    context_id: String,
}

impl Framing for A2aFraming {
    fn event(&mut self, _seq: u64, event: &EventJson, out: &mut BytesMut) {
        let Ok(ev) = serde_json::from_str::<Value>(event.get()) else {
            return;
        };
        let task_id = ev["taskId"].as_str().unwrap_or_default().to_string();
        let mut status = json!({"state": "working", "timestamp": ev["ts"]});
        if ev["type"] == "task.progress" {
            if let Some(text) = ev["message"].as_str() {
                status["message"] = text_message(text, &task_id, &self.context_id);
            }
        }
        let update = json!({
            "kind": "status-update",
            "taskId": task_id,
            "contextId": self.context_id,
            "status": status,
            "final": false,
            "metadata": {"event": ev},
        });
        out.extend_from_slice(&sse::frame(None, &rpc_line(&self.id, update)));
    }

    fn end(&mut self, _seq: u64, r: &TaskResult) -> Vec<Bytes> {
        let artifact = json!({
            "kind": "artifact-update",
            "taskId": r.task_id,
            "contextId": self.context_id,
            "artifact": output_artifact(r),
            "lastChunk": true,
        });
        let text = r.error.as_deref().filter(|_| !r.ok).unwrap_or(&r.output);
        let done = json!({
            "kind": "status-update",
            "taskId": r.task_id,
            "contextId": self.context_id,
            "status": {"state": state(r.status), "timestamp": now_ts(), "message": text_message(text, &r.task_id, &self.context_id)},
            "final": true,
            "metadata": {"ok": r.ok, "error": r.error, "errorCode": r.error_code, "artifacts": r.artifacts},
        });
        vec![
            sse::frame(None, &rpc_line(&self.id, artifact)),
            sse::frame(None, &rpc_line(&self.id, done)),
        ]
    }
}
