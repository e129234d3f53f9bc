//! `POST /invocations`: parse the payload, then start, follow or control a task, answering as
//! JSON or as a server-sent event stream.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::json;
use warp::http::{header, HeaderMap, StatusCode};
use warp::reply::Response;

use super::{
    error_response, json_response, json_response_sized, sse, REQUEST_HEADER, SESSION_HEADER,
};
use crate::request_context::RequestContext;
use crate::task::{RequestIds, Start, Worker};
use crate::wire::{parse_payload, ErrorCode, PayloadError, TaskResult, TaskType};

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
pub async fn handle(worker: Arc<Worker>, headers: &HeaderMap, body: Bytes) -> Response {
    let ids = RequestIds::new(
        header_str(headers, REQUEST_HEADER),
        header_str(headers, SESSION_HEADER),
    );
    let ids = match RequestContext::from_headers(headers) {
        Ok(ctx) => ids.with_request(ctx),
        Err(e) => return super::request_too_large(&ids, &e),
    };
    let sse_header = wants_sse(headers);
    let payload = match parse_payload(&body) {
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
            match worker.start(payload, ids).await {
                Start::New(task) | Start::Existing(task) => {
                    if stream {
                        sse::task_stream(task, 0, cap)
                    } else if is_async {
                        json_response(StatusCode::OK, &task.view(0, cap))
                    } else {
                        let r = task.answer(cap).await;
                        json_response_sized(StatusCode::OK, &r, r.json_len_hint())
                    }
                }
                Start::OnDisk(r) | Start::Refused(r) => answer(&r, stream),
            }
        }
    }
}
