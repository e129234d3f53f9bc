//! A2A on `POST /` (JSON-RPC 2.0) and the agent card, in A2A 1.0 and 0.3 at once: the method
//! name decides the version (`SendMessage` is 1.0, `message/send` is 0.3; no header is needed,
//! AgentCore may strip headers). Every method maps onto the same task registry as
//! `/invocations`; the message's `contextId` is the task's session (SPEC §7.1).
//!
//! - [`card`]: the agent card;
//! - [`error`]: JSON-RPC errors, their codes named;
//! - [`methods`]: each method, in both versions;
//! - [`request`]: a message as an `agent.run` payload;
//! - [`shape`]: tasks, messages, updates in either version;
//! - [`stream`]: a task's events as an A2A stream.

mod card;
mod error;
mod methods;
mod request;
mod resume;
mod shape;
mod stream;

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Map, Value};
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;

use super::sse;
use super::{json_response, REQUEST_HEADER, SESSION_HEADER};
use crate::request_context::RequestContext;
use crate::task::{RequestIds, Worker};
pub use card::agent_card;
use error::{RpcCode, RpcError};
use methods::{cancel, get, list, send, subscribe};
use shape::Version;

/// The methods served, for the `MethodNotFound` answer.
const METHODS: &str = "A2A 1.0: SendMessage, SendStreamingMessage, GetTask, ListTasks, \
    CancelTask, SubscribeToTask; A2A 0.3: message/send, message/stream, tasks/get, \
    tasks/cancel, tasks/resubscribe";

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
pub async fn handle(
    worker: Arc<Worker>,
    headers: &HeaderMap,
    body: Bytes,
    trace: crate::trace::Parent,
) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            let e = RpcError::new(RpcCode::ParseError, format!("Parse error: {e}"));
            return json_response(StatusCode::OK, &e.json(Version::V03, &Value::Null));
        }
    };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let Some(method) = request.get("method").and_then(Value::as_str) else {
        let e = RpcError::new(
            RpcCode::InvalidRequest,
            "Invalid request: method must be a string.",
        );
        return json_response(StatusCode::OK, &e.json(Version::V03, &id));
    };
    let Some((v, op)) = operation(method) else {
        let shown = crate::wire::clip(method, 200);
        let e = RpcError::new(
            RpcCode::MethodNotFound,
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
    )
    .traced(trace);
    let ids = match RequestContext::from_headers(headers) {
        Ok(ctx) => ids.with_request(ctx),
        Err(e) => return super::request_too_large(&ids, &e),
    };
    let streaming = matches!(op, Op::Stream | Op::Subscribe);
    // Get, cancel, subscribe and list see only the session header's tasks, when it is sent.
    let scope = ids.session_id.clone();
    let scope = scope.as_deref();
    let answer = match op {
        Op::Send | Op::Stream => send(&worker, v, &id, &params, ids, streaming).await,
        Op::Get => get(&worker, v, &params, scope)
            .await
            .map(|t| rpc_result(&id, t)),
        Op::Cancel => cancel(&worker, v, &params, scope)
            .await
            .map(|t| rpc_result(&id, t)),
        Op::Subscribe => subscribe(&worker, v, &id, &params, scope).await,
        Op::List => list(&worker, &params, scope).map(|t| rpc_result(&id, t)),
        Op::PushConfig => Err(RpcError::new(
            RpcCode::PushNotificationNotSupported,
            "Push notifications are not supported by this agent.",
        )),
        Op::ExtendedCard => Err(RpcError::new(
            RpcCode::UnsupportedOperation,
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

/// For the fuzz target `fuzz_a2a_ids`: the pure parsing of an A2A request body (the method,
/// `params.id`, `historyLength`, a message's payload and context). Never panics but on a broken
/// invariant: a task id a message passes on is a valid one, a context id is at most 1 KiB.
#[doc(hidden)]
pub fn fuzz_request(body: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let _ = operation(v["method"].as_str().unwrap_or_default());
    let params = &v["params"];
    let _ = methods::task_id_param(params);
    let _ = methods::history_length(params.get("historyLength"));
    if let Ok(m) = request::message_payload(params, &RequestIds::default()) {
        if let Some(id) = m.payload.task_id.as_deref() {
            assert!(
                crate::wire::valid_task_id(id),
                "a message passed on task id {id:?}"
            );
        }
        assert!(
            m.context_id.len() <= 1024,
            "a context id of {} bytes",
            m.context_id.len()
        );
    }
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
