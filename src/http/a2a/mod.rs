//! A2A on `POST /` (JSON-RPC 2.0) and the agent card, in A2A 1.0 and 0.3 at once: the method
//! name decides the version (`SendMessage` is 1.0, `message/send` is 0.3; no header is needed,
//! AgentCore may strip headers). Every method maps onto the same task registry as
//! `/invocations`; the message's `contextId` is the task's session (SPEC §7.1).
//!
//! - [`shape`]: tasks, messages, updates in either version;
//! - [`stream`]: a task's events as an A2A stream.

mod shape;
mod stream;

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Map, Value};
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;

use super::sse;
use super::{json_response, REQUEST_HEADER, SESSION_HEADER};
use crate::task::{RequestIds, Start, Task, Worker};
use crate::wire::{payload_from_value, TaskResult};
use shape::{Detail, Version};
use stream::{rpc_line, A2aFraming};

/// The A2A 0.3 protocol version of the card's top-level fields.
pub const PROTOCOL_VERSION: &str = "0.3.0";

/// The methods served, for the -32601 answer.
const METHODS: &str = "A2A 1.0: SendMessage, SendStreamingMessage, GetTask, ListTasks, \
    CancelTask, SubscribeToTask; A2A 0.3: message/send, message/stream, tasks/get, \
    tasks/cancel, tasks/resubscribe";

/// Longest `contextId` accepted.
const MAX_CONTEXT_ID_BYTES: usize = 1024;

/// Task ids one ListTasks page holds at most, and by default.
const MAX_PAGE: usize = 100;
const DEFAULT_PAGE: usize = 50;

/// `GET /.well-known/agent-card.json`: the 1.0 fields (`supportedInterfaces` with a 1.0 and a
/// 0.3 JSON-RPC entry on the same URL) and the 0.3 top-level ones (`url`,
/// `preferredTransport`, `protocolVersion`), so that clients of either version find theirs.
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
            "supportedInterfaces": [
                {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
                {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
            ],
            "url": url,
            "preferredTransport": "JSONRPC",
            "protocolVersion": PROTOCOL_VERSION,
            "version": env!("CARGO_PKG_VERSION"),
            "capabilities": {"streaming": true, "pushNotifications": false},
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

/// What a method asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Send,
    Stream,
    Get,
    Cancel,
    Subscribe,
    List,
    PushConfig,
    ExtendedCard,
}

fn operation(method: &str) -> Option<(Version, Op)> {
    use Op::*;
    use Version::*;
    Some(match method {
        "SendMessage" => (V1, Send),
        "SendStreamingMessage" => (V1, Stream),
        "GetTask" => (V1, Get),
        "CancelTask" => (V1, Cancel),
        "SubscribeToTask" => (V1, Subscribe),
        "ListTasks" => (V1, List),
        "CreateTaskPushNotificationConfig"
        | "GetTaskPushNotificationConfig"
        | "ListTaskPushNotificationConfigs"
        | "DeleteTaskPushNotificationConfig" => (V1, PushConfig),
        "GetExtendedAgentCard" => (V1, ExtendedCard),
        "message/send" => (V03, Send),
        "message/stream" => (V03, Stream),
        "tasks/get" => (V03, Get),
        "tasks/cancel" => (V03, Cancel),
        "tasks/resubscribe" => (V03, Subscribe),
        "tasks/pushNotificationConfig/set"
        | "tasks/pushNotificationConfig/get"
        | "tasks/pushNotificationConfig/list"
        | "tasks/pushNotificationConfig/delete" => (V03, PushConfig),
        "agent/getAuthenticatedExtendedCard" => (V03, ExtendedCard),
        _ => return None,
    })
}

/// A JSON-RPC error. In 1.0 an A2A-specific error carries a `google.rpc.ErrorInfo` in `data`.
struct RpcError {
    code: i64,
    message: String,
    task_id: Option<String>,
}

impl RpcError {
    fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            task_id: None,
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        RpcError::new(-32602, format!("Invalid params: {}", message.into()))
    }

    fn not_found(task_id: &str) -> Self {
        RpcError {
            task_id: Some(crate::wire::clip(task_id, 200)),
            ..RpcError::new(-32001, "Task not found")
        }
    }

    fn json(&self, v: Version, id: &Value) -> Value {
        let mut error = json!({"code": self.code, "message": self.message});
        let reason = match self.code {
            -32001 => "TASK_NOT_FOUND",
            -32002 => "TASK_NOT_CANCELABLE",
            -32003 => "PUSH_NOTIFICATION_NOT_SUPPORTED",
            -32004 => "UNSUPPORTED_OPERATION",
            _ => "",
        };
        if v == Version::V1 && !reason.is_empty() {
            let mut metadata = Map::new();
            if let Some(t) = &self.task_id {
                metadata.insert("taskId".into(), json!(t));
            }
            error["data"] = json!([{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "a2a-protocol.org",
                "metadata": metadata,
            }]);
        }
        json!({"jsonrpc": "2.0", "id": id, "error": error})
    }
}

fn rpc_result(id: &Value, result: Value) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"jsonrpc": "2.0", "id": id, "result": result}),
    )
}

/// A stream that holds a single message (an error, or a finished task).
fn single_message_stream(data: String) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let _ = tx.try_send(Ok(sse::frame(None, &data)));
    sse::sse_response(rx)
}

/// `POST /`: one JSON-RPC request.
pub async fn handle(worker: Arc<Worker>, headers: &HeaderMap, body: Bytes) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            let e = RpcError::new(-32700, format!("Parse error: {e}"));
            return json_response(StatusCode::OK, &e.json(Version::V03, &Value::Null));
        }
    };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let Some(method) = request.get("method").and_then(Value::as_str) else {
        let e = RpcError::new(-32600, "Invalid request: method must be a string.");
        return json_response(StatusCode::OK, &e.json(Version::V03, &id));
    };
    let Some((v, op)) = operation(method) else {
        let shown = crate::wire::clip(method, 200);
        let e = RpcError::new(
            -32601,
            format!("Method not found: {shown}. Supported: {METHODS}."),
        );
        return json_response(StatusCode::OK, &e.json(Version::V03, &id));
    };
    let params = match request.get("params") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(p @ Value::Object(_)) => p.clone(),
        Some(_) => {
            let e = RpcError::invalid("params must be an object.");
            return json_response(StatusCode::OK, &e.json(v, &id));
        }
    };
    let ids = RequestIds::new(
        header(headers, REQUEST_HEADER),
        header(headers, SESSION_HEADER),
    );
    let streaming = matches!(op, Op::Stream | Op::Subscribe);
    let answer = match op {
        Op::Send | Op::Stream => send(&worker, v, &id, &params, ids, streaming).await,
        Op::Get => get(&worker, v, &params).map(|t| rpc_result(&id, t)),
        Op::Cancel => cancel(&worker, v, &params)
            .await
            .map(|t| rpc_result(&id, t)),
        Op::Subscribe => subscribe(&worker, v, &id, &params),
        Op::List => list(&worker, &params).map(|t| rpc_result(&id, t)),
        Op::PushConfig => Err(RpcError::new(
            -32003,
            "Push notifications are not supported by this agent.",
        )),
        Op::ExtendedCard => Err(RpcError::new(
            -32004,
            "This agent has no extended agent card.",
        )),
    };
    match answer {
        Ok(resp) => resp,
        // A 0.3 streaming client (httpx-sse) reads only an event stream: its errors come as one.
        Err(e) if streaming && v == Version::V03 => {
            single_message_stream(e.json(v, &id).to_string())
        }
        Err(e) => json_response(StatusCode::OK, &e.json(v, &id)),
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `params.id` of get, cancel and subscribe.
fn task_id_param(params: &Value) -> Result<&str, RpcError> {
    params
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| RpcError::invalid("params.id must be a task id (string)."))
}

/// `historyLength`, when given.
fn history_length(value: Option<&Value>) -> Result<Option<usize>, RpcError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(n) => n
            .as_u64()
            .map(|n| Some(n as usize))
            .ok_or_else(|| RpcError::invalid("historyLength must be a non-negative integer.")),
    }
}

/// The context of a known task: its session id (in memory, or the `sessionId` of its first
/// event on disk), else its own id.
fn context_of(worker: &Worker, r: &TaskResult) -> String {
    if let Some(s) = worker
        .get(&r.task_id)
        .and_then(|t| t.ids.session_id.clone())
    {
        return s;
    }
    r.events
        .first()
        .and_then(|e| serde_json::from_str::<Value>(e.get()).ok())
        .and_then(|e| e["payload"]["sessionId"].as_str().map(str::to_string))
        .unwrap_or_else(|| r.task_id.clone())
}

fn task_context(task: &Task) -> String {
    task.ids
        .session_id
        .clone()
        .unwrap_or_else(|| task.id.clone())
}

/// A task's answer, or -32001 when nobody knows it.
fn known(worker: &Worker, task_id: &str) -> Result<TaskResult, RpcError> {
    let r = worker.status(task_id, 0);
    if r.error_code.as_deref() == Some("unknown_task") {
        return Err(RpcError::not_found(task_id));
    }
    Ok(r)
}

/// send and stream, in both versions.
async fn send(
    worker: &Arc<Worker>,
    v: Version,
    id: &Value,
    params: &Value,
    mut ids: RequestIds,
    streaming: bool,
) -> Result<Response, RpcError> {
    let request = message_payload(params, &ids)?;
    let cap = worker.cfg.max_output_bytes;
    let config = params.get("configuration");
    let immediately = config.is_some_and(|c| {
        c.get("returnImmediately") == Some(&Value::Bool(true))
            || c.get("blocking") == Some(&Value::Bool(false))
    });
    let detail = Detail {
        history: history_length(config.and_then(|c| c.get("historyLength")))?,
        artifacts: true,
    };
    // The context is the session (SPEC §7.1): a follow-up message continues it.
    ids.session_id = Some(request.context_id.clone());
    let task = match worker.start(request.payload, ids) {
        Start::New(t) | Start::Existing(t) => t,
        Start::OnDisk(r) | Start::Refused(r) => {
            let context_id = context_of(worker, &r);
            let r = *r;
            let result = match (v, streaming, immediately) {
                (Version::V03, false, false) => shape::reference_answer(&r, &context_id),
                _ => shape::task_result(v, shape::task(v, &r, &context_id, detail)),
            };
            if streaming {
                return Ok(single_message_stream(rpc_line(id, &result)));
            }
            return Ok(rpc_result(id, result));
        }
    };
    let context_id = task_context(&task);
    if streaming {
        let first = shape::task(v, &task.view(u64::MAX, cap), &context_id, detail);
        let first = vec![sse::frame(
            None,
            &rpc_line(id, &shape::task_result(v, first)),
        )];
        let framing = A2aFraming {
            id: id.clone(),
            context_id,
            version: v,
        };
        return Ok(sse::framed_stream(task, 0, cap, first, framing));
    }
    if immediately {
        let r = task.view(0, cap);
        let t = shape::task(v, &r, &context_id, detail);
        return Ok(rpc_result(id, shape::task_result(v, t)));
    }
    let r = task.answer(cap).await;
    let result = match v {
        Version::V03 => shape::reference_answer(&r, &context_id),
        Version::V1 => shape::task_result(v, shape::task(v, &r, &context_id, detail)),
    };
    Ok(rpc_result(id, result))
}

/// GetTask / tasks/get.
fn get(worker: &Worker, v: Version, params: &Value) -> Result<Value, RpcError> {
    let task_id = task_id_param(params)?;
    let detail = Detail {
        history: history_length(params.get("historyLength"))?,
        artifacts: true,
    };
    let r = known(worker, task_id)?;
    let context_id = context_of(worker, &r);
    Ok(shape::task(v, &r, &context_id, detail))
}

/// CancelTask / tasks/cancel: -32002 once the task has finished.
async fn cancel(worker: &Worker, v: Version, params: &Value) -> Result<Value, RpcError> {
    let task_id = task_id_param(params)?;
    let running = worker.get(task_id).filter(|t| t.result().is_none());
    if running.is_none() {
        let r = known(worker, task_id)?;
        return Err(RpcError {
            task_id: Some(r.task_id.clone()),
            ..RpcError::new(
                -32002,
                format!(
                    "Task cannot be canceled: it has already finished ({}).",
                    shape::state(r.status, v)
                ),
            )
        });
    }
    let r = worker.cancel(task_id).await;
    let context_id = context_of(worker, &r);
    Ok(shape::task(v, &r, &context_id, Detail::default()))
}

/// SubscribeToTask / tasks/resubscribe: the task as it is now, then its updates to the end.
/// A finished task has no stream to join: -32004 in 1.0, -32602 in 0.3.
fn subscribe(
    worker: &Worker,
    v: Version,
    id: &Value,
    params: &Value,
) -> Result<Response, RpcError> {
    let task_id = task_id_param(params)?;
    let Some(task) = worker.get(task_id).filter(|t| t.result().is_none()) else {
        let r = known(worker, task_id)?;
        let message = format!(
            "Task {} has already finished ({}); there is no stream to subscribe to.",
            r.task_id,
            shape::state(r.status, v)
        );
        let code = if v == Version::V1 { -32004 } else { -32602 };
        return Err(RpcError {
            task_id: Some(r.task_id.clone()),
            ..RpcError::new(code, message)
        });
    };
    let cap = worker.cfg.max_output_bytes;
    // Updates after the events seen so far. The `task.result` event is written just before
    // the result is published: when it is the last one, the stream starts before it (and
    // ends at once).
    let mut after = task.events.last_seq();
    let last = task.events.since(after.saturating_sub(1), 64 * 1024);
    if last
        .events
        .last()
        .is_some_and(|e| e.get().starts_with(r#"{"type":"task.result""#))
    {
        after = after.saturating_sub(1);
    }
    let context_id = task_context(&task);
    let first = shape::task(v, &task.view(u64::MAX, cap), &context_id, Detail::default());
    let first = vec![sse::frame(
        None,
        &rpc_line(id, &shape::task_result(v, first)),
    )];
    let framing = A2aFraming {
        id: id.clone(),
        context_id,
        version: v,
    };
    Ok(sse::framed_stream(task, after, cap, first, framing))
}

/// ListTasks (1.0): the tasks in memory, most recently updated first, filtered by `contextId`
/// and `status`, in pages of `pageSize` (the `pageToken` is where the next page starts).
fn list(worker: &Worker, params: &Value) -> Result<Value, RpcError> {
    let context = params
        .get("contextId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    const STATES: [&str; 8] = [
        "TASK_STATE_SUBMITTED",
        "TASK_STATE_WORKING",
        "TASK_STATE_COMPLETED",
        "TASK_STATE_FAILED",
        "TASK_STATE_CANCELED",
        "TASK_STATE_INPUT_REQUIRED",
        "TASK_STATE_REJECTED",
        "TASK_STATE_AUTH_REQUIRED",
    ];
    let status = match params.get("status") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() || s == "TASK_STATE_UNSPECIFIED" => None,
        Some(Value::String(s)) if STATES.contains(&s.as_str()) => Some(s.as_str()),
        Some(other) => {
            return Err(RpcError::invalid(format!(
                "status {other} is not a task state (one of {}).",
                STATES.join(", ")
            )))
        }
    };
    let page_size = match params.get("pageSize") {
        None | Some(Value::Null) => DEFAULT_PAGE,
        Some(n) => match n.as_u64() {
            Some(n @ 1..=100) => n as usize,
            _ => {
                return Err(RpcError::invalid(format!(
                    "pageSize must be an integer from 1 to {MAX_PAGE}."
                )))
            }
        },
    };
    let start = match params.get("pageToken").and_then(Value::as_str) {
        None | Some("") => 0,
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| RpcError::invalid("pageToken is not one this agent gave."))?,
    };
    let detail = Detail {
        history: history_length(params.get("historyLength"))?,
        artifacts: params.get("includeArtifacts") == Some(&Value::Bool(true)),
    };
    let mut matching: Vec<Arc<Task>> = worker
        .list()
        .into_iter()
        .filter(|s| status.is_none_or(|st| shape::state(s.status, Version::V1) == st))
        .filter_map(|s| worker.get(&s.task_id))
        .filter(|t| context.is_none_or(|c| task_context(t) == c))
        .collect();
    // Most recently updated first: running tasks (updated now), then by when each ended.
    matching.sort_by_key(|t| {
        std::cmp::Reverse(t.result().map_or(std::time::SystemTime::now(), |r| {
            t.started_at + std::time::Duration::from_millis(r.duration_ms)
        }))
    });
    let cap = worker.cfg.max_output_bytes;
    let tasks: Vec<Value> = matching
        .iter()
        .skip(start)
        .take(page_size)
        .map(|t| {
            // Events (history, metadata) only when history is asked for, within one answer's cap.
            let after = if detail.history.is_some_and(|n| n > 0) {
                0
            } else {
                u64::MAX
            };
            let r = t.view(after, cap / page_size);
            shape::task(Version::V1, &r, &task_context(t), detail)
        })
        .collect();
    let next = start + tasks.len();
    Ok(json!({
        "tasks": tasks,
        "nextPageToken": if next < matching.len() { next.to_string() } else { String::new() },
        "pageSize": page_size,
        "totalSize": matching.len(),
    }))
}

/// An `agent.run` payload and its context, from a message.
struct MessageRequest {
    payload: crate::wire::Payload,
    context_id: String,
}

/// Builds an `agent.run` payload from `params.message` (its text parts, joined by newlines, are
/// the instruction) and `params.metadata` (`framework`, `context`, `input`).
fn message_payload(params: &Value, ids: &RequestIds) -> Result<MessageRequest, RpcError> {
    let message = params
        .get("message")
        .and_then(Value::as_object)
        .ok_or_else(|| RpcError::invalid("params.message must be an object."))?;
    let parts = message
        .get("parts")
        .and_then(Value::as_array)
        .ok_or_else(|| RpcError::invalid("params.message.parts must be an array."))?;
    // 0.3 parts say `kind: "text"`; 1.0 parts are text parts when they hold `text`.
    let texts: Vec<&str> = parts
        .iter()
        .filter(|p| {
            p.get("kind")
                .or_else(|| p.get("type"))
                .and_then(Value::as_str)
                .is_none_or(|k| k == "text")
        })
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect();
    let meta = params
        .get("metadata")
        .and_then(Value::as_object)
        .or_else(|| message.get("metadata").and_then(Value::as_object));
    let mut input = match meta.and_then(|m| m.get("input")) {
        Some(Value::Object(i)) => i.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(_) => {
            return Err(RpcError::invalid(
                "params.metadata.input must be an object.",
            ))
        }
    };
    input.insert("instruction".into(), Value::String(texts.join("\n")));
    if let Some(ctx) = meta.and_then(|m| m.get("context")) {
        input.insert("context".into(), ctx.clone());
    }
    if let Some(fw) = meta.and_then(|m| m.get("framework")) {
        input.insert("framework".into(), fw.clone());
    }
    let mut body = json!({"taskType": "agent.run", "input": input});
    if let Some(task_id) = message
        .get("taskId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        body["taskId"] = json!(task_id);
    }
    let payload = payload_from_value(body).map_err(|e| RpcError::invalid(e.to_string()))?;
    let context_id = message
        .get("contextId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .or_else(|| ids.session_id.clone())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    // Kept with the task for an hour and named in its events: bounded, as every caller value.
    if context_id.len() > MAX_CONTEXT_ID_BYTES {
        return Err(RpcError::invalid(format!(
            "params.message.contextId is longer than {MAX_CONTEXT_ID_BYTES} bytes."
        )));
    }
    Ok(MessageRequest {
        payload,
        context_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_method_name_decides_the_version() {
        assert_eq!(operation("SendMessage"), Some((Version::V1, Op::Send)));
        assert_eq!(operation("message/send"), Some((Version::V03, Op::Send)));
        assert_eq!(
            operation("tasks/resubscribe"),
            Some((Version::V03, Op::Subscribe))
        );
        assert_eq!(operation("ListTasks"), Some((Version::V1, Op::List)));
        assert_eq!(operation("tasks/list"), None);
    }
}
