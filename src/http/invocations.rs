//! `POST /invocations`: parse the payload, then start, follow or control a task, answering as
//! JSON or as a server-sent event stream.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};
use warp::http::{header, HeaderMap, StatusCode};
use warp::reply::Response;

use super::{
    agui, error_response, json_response, json_response_sized, sse, REQUEST_HEADER, SESSION_HEADER,
};
use crate::agui::looks_like;
use crate::config::Protocol;
use crate::request_context::RequestContext;
use crate::task::{RequestIds, Start, Worker};
use crate::wire::{
    parse_payload, payload_from_value, ErrorCode, PayloadError, TaskResult, TaskType,
};

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

/// Whether the client asked for `text/event-stream`.
pub fn wants_sse(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}

fn answer(result: &TaskResult, stream: bool) -> Response {
    if stream {
        sse::single(result)
    } else {
        json_response(StatusCode::OK, result)
    }
}

/// Handles one invocation body.
pub async fn handle(
    worker: Arc<Worker>,
    headers: &HeaderMap,
    body: Bytes,
    trace: crate::trace::Parent,
) -> Response {
    let ids = RequestIds::new(
        header_str(headers, REQUEST_HEADER),
        header_str(headers, SESSION_HEADER),
    )
    .traced(trace);
    let ids = match RequestContext::from_headers(headers) {
        Ok(ctx) => ids.with_request(ctx),
        Err(e) => return super::request_too_large(&ids, &e),
    };
    let sse_header = wants_sse(headers);
    // A RunAgentInput by its shape, or any body but a §7 control request when the deployment
    // speaks AG-UI (SPEC §13).
    let agui_only = worker.cfg.protocol == Protocol::Agui;
    let parsed = serde_json::from_slice::<Value>(&body);
    match &parsed {
        Ok(v) if looks_like(v) || (agui_only && v.get("taskType").is_none()) => {
            return agui::run(worker, ids, v).await
        }
        Err(e) if agui_only => return agui::refusal("Invalid JSON", &e.to_string()),
        _ => {}
    }
    let parsed = match parsed {
        Ok(v) => payload_from_value(v),
        // Parsed again for the payload's own words (an empty body, where the JSON breaks).
        Err(_) => parse_payload(&body),
    };
    let payload = match parsed {
        Ok(p) => p,
        Err(PayloadError::Invalid(msg)) => {
            tracing::info!(requestId = %ids.request_id, sessionId = ids.session_id.as_deref().unwrap_or(""), error = %msg, "invalid payload");
            return error_response(
                StatusCode::BAD_REQUEST,
                &msg,
                Some(ErrorCode::InvalidPayload),
            );
        }
        Err(e @ PayloadError::UnsupportedTaskType(_)) => {
            return answer(
                &TaskResult::fail(ErrorCode::UnsupportedTaskType, e.to_string()),
                sse_header,
            );
        }
    };
    let stream = sse_header || payload.stream;
    let cap = worker.cfg.max_output_bytes;
    // The session the request acts for, as a task started by it would have it.
    let scope = ids.session_id.as_deref().or(payload.session_id.as_deref());
    match payload.task_type {
        TaskType::Status => {
            let id = payload.task_id.as_deref().unwrap_or_default();
            answer(&worker.status(id, payload.after_seq, scope).await, false)
        }
        TaskType::Cancel => {
            let id = payload.task_id.as_deref().unwrap_or_default();
            answer(&worker.cancel(id, scope).await, false)
        }
        TaskType::List => {
            let mut list = json!({"ok": true, "tasks": worker.list(scope)});
            // A session's list names its open questions (SPEC §14), kept in its folder.
            if let Some(session) = scope {
                list["openQuestions"] = worker.open_questions(session).await;
            }
            json_response(StatusCode::OK, &list)
        }
        TaskType::AgentRun | TaskType::CommandRun => {
            let is_async = payload.is_async;
            let (request_id, session_id) = (ids.request_id.clone(), ids.session_id.clone());
            let said = |id: &str, from: &str| {
                tracing::info!(requestId = %request_id, sessionId = session_id.as_deref().unwrap_or(""), taskId = %id, from, "taskId already known: answering the earlier task, not a new run");
            };
            match worker.start(payload, ids).await {
                Start::New(task) => {
                    if stream {
                        sse::task_stream(task, 0, cap)
                    } else if is_async {
                        json_response(StatusCode::OK, &task.view(0, cap))
                    } else {
                        let r = task.answer(cap).await;
                        json_response_sized(StatusCode::OK, &r, r.json_len_hint())
                    }
                }
                Start::Existing(task) => {
                    said(&task.id, "memory");
                    let id = task.id.clone();
                    if stream {
                        repeated(sse::task_stream(task, 0, cap), &id)
                    } else if is_async {
                        repeated_json(&task.view(0, cap))
                    } else {
                        repeated_json(&task.answer(cap).await)
                    }
                }
                Start::OnDisk(r) => {
                    said(&r.task_id, "disk");
                    if stream {
                        repeated(sse::single(&r), &r.task_id)
                    } else {
                        repeated_json(&r)
                    }
                }
                Start::Refused(r) => answer(&r, stream),
            }
        }
    }
}

/// Marks an answer to a taskId already known (SPEC §3: a retry does not start a second run):
/// the earlier task's answer, whose input may differ from this request's. Said plainly, so a
/// caller who reused an id by mistake sees why its new prompt had no effect.
const REPEATED_HEADER: &str = "x-agentdispatch-repeated-task";

fn repeated(mut resp: Response, id: &str) -> Response {
    if let Ok(v) = header::HeaderValue::from_str(id) {
        resp.headers_mut().insert(REPEATED_HEADER, v);
    }
    resp
}

/// The earlier task's JSON answer with `"repeated": true`, and the header.
fn repeated_json(r: &TaskResult) -> Response {
    let mut body = serde_json::to_value(r).unwrap_or_else(|_| json!({}));
    if let Some(o) = body.as_object_mut() {
        o.insert("repeated".into(), Value::Bool(true));
    }
    repeated(json_response(StatusCode::OK, &body), &r.task_id)
}
