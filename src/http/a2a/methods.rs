//! The methods, each in both versions: send and stream, get, cancel, subscribe, list.

use std::sync::Arc;

use serde_json::{json, Value};
use warp::reply::Response;

use super::request::message_payload;
use super::shape::{self, Detail, Version};
use super::stream::{rpc_line, A2aFraming};
use super::{rpc_result, single_message_stream, RpcCode, RpcError};
use crate::http::sse;
use crate::task::{RequestIds, Scope, Start, Task, Worker};
use crate::wire::{ErrorCode, TaskResult};

/// Task ids one ListTasks page holds at most, and by default.
const MAX_PAGE: usize = 100;
const DEFAULT_PAGE: usize = 50;

/// `params.id` of get, cancel and subscribe.
pub(super) fn task_id_param(params: &Value) -> Result<&str, RpcError> {
    params
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| RpcError::invalid("params.id must be a task id (string)."))
}

/// `historyLength`, when given.
pub(super) fn history_length(value: Option<&Value>) -> Result<Option<usize>, RpcError> {
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
pub(super) fn context_of(worker: &Worker, r: &TaskResult) -> String {
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

pub(super) fn task_context(task: &Task) -> String {
    task.ids
        .session_id
        .clone()
        .unwrap_or_else(|| task.id.clone())
}

/// A task's answer, or `TaskNotFound` when nobody knows it.
pub(super) async fn known(
    worker: &Worker,
    task_id: &str,
    scope: Scope<'_>,
) -> Result<TaskResult, RpcError> {
    let r = worker.status(task_id, 0, scope).await;
    if r.error_code == Some(ErrorCode::UnknownTask) {
        return Err(RpcError::not_found(task_id));
    }
    Ok(r)
}

/// send and stream, in both versions.
pub(super) async fn send(
    worker: &Arc<Worker>,
    v: Version,
    id: &Value,
    params: &Value,
    mut ids: RequestIds,
    streaming: bool,
) -> Result<Response, RpcError> {
    let mut request = message_payload(params, &ids)?;
    // A follow-up that answers a waiting task runs as a new run, shown under the task's id.
    let asked =
        super::resume::follow_up(worker, &mut request, params, ids.session_id.as_deref()).await?;
    let shown = |mut r: TaskResult| {
        if let Some(a) = &asked {
            r.task_id = a.clone();
        }
        r
    };
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
    let task = match worker.start(request.payload, ids).await {
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
    if streaming {
        return Ok(task_stream(task, v, id, 0, cap, detail, asked));
    }
    let context_id = task_context(&task);
    if immediately {
        let r = shown(task.view(0, cap));
        let t = shape::task(v, &r, &context_id, detail);
        return Ok(rpc_result(id, shape::task_result(v, t)));
    }
    let r = shown(task.answer(cap).await);
    let result = match v {
        // A task waiting for input is answered as a Task: its state tells the client to reply.
        Version::V03 if r.status != crate::wire::TaskStatus::InputRequired => {
            shape::reference_answer(&r, &context_id)
        }
        _ => shape::task_result(v, shape::task(v, &r, &context_id, detail)),
    };
    Ok(rpc_result(id, result))
}

/// GetTask / tasks/get.
pub(super) async fn get(
    worker: &Worker,
    v: Version,
    params: &Value,
    scope: Scope<'_>,
) -> Result<Value, RpcError> {
    let task_id = task_id_param(params)?;
    let detail = Detail {
        history: history_length(params.get("historyLength"))?,
        artifacts: true,
    };
    let mut r = latest_run(worker, known(worker, task_id, scope).await?, scope).await;
    r.task_id = task_id.to_string();
    let context_id = context_of(worker, &r);
    Ok(shape::task(v, &r, &context_id, detail))
}

/// A task that asked and was answered is, over A2A, the same task: the run that answered it
/// (and the one that answered that, when it asked again); `r` itself when nothing answered it.
async fn latest_run(worker: &Worker, mut r: TaskResult, scope: Scope<'_>) -> TaskResult {
    for _ in 0..MAX_RESUMES_FOLLOWED {
        let (true, Some(session)) = (
            r.status == crate::wire::TaskStatus::InputRequired,
            r.asked.session_id.clone(),
        ) else {
            break;
        };
        let Some(by) = worker.answered_by(&session, &r.task_id).await else {
            break;
        };
        let next = worker.status(&by, 0, scope).await;
        if next.error_code == Some(ErrorCode::UnknownTask) {
            break;
        }
        r = next;
    }
    r
}

/// Questions and answers followed from an asking task to the run that ended its conversation.
const MAX_RESUMES_FOLLOWED: usize = 16;

/// CancelTask / tasks/cancel: `TaskNotCancelable` once the task has finished.
pub(super) async fn cancel(
    worker: &Worker,
    v: Version,
    params: &Value,
    scope: Scope<'_>,
) -> Result<Value, RpcError> {
    let task_id = task_id_param(params)?;
    let running = worker
        .get_in(task_id, scope)
        .filter(|t| t.result().is_none());
    if running.is_none() {
        let r = known(worker, task_id, scope).await?;
        return Err(RpcError {
            task_id: Some(r.task_id.clone()),
            ..RpcError::new(
                RpcCode::TaskNotCancelable,
                format!(
                    "Task cannot be canceled: it has already finished ({}).",
                    shape::state(r.status, v)
                ),
            )
        });
    }
    let r = worker.cancel(task_id, scope).await;
    let context_id = context_of(worker, &r);
    Ok(shape::task(v, &r, &context_id, Detail::default()))
}

/// SubscribeToTask / tasks/resubscribe: the task as it is now, then its updates to the end.
/// A finished task has no stream to join: `UnsupportedOperation` in 1.0, `InvalidParams` in
/// 0.3.
pub(super) async fn subscribe(
    worker: &Worker,
    v: Version,
    id: &Value,
    params: &Value,
    scope: Scope<'_>,
) -> Result<Response, RpcError> {
    let task_id = task_id_param(params)?;
    // A task that asked and was answered streams as the run that answers it, under its id.
    let running = match worker.get_in(task_id, scope) {
        Some(t) if t.result().is_none() => Some(t),
        _ => {
            let r = latest_run(worker, known(worker, task_id, scope).await?, scope).await;
            worker
                .get_in(&r.task_id, scope)
                .filter(|t| t.result().is_none())
        }
    };
    let Some(task) = running else {
        let r = known(worker, task_id, scope).await?;
        let message = format!(
            "Task {} has already finished ({}); there is no stream to subscribe to.",
            r.task_id,
            shape::state(r.status, v)
        );
        let code = if v == Version::V1 {
            RpcCode::UnsupportedOperation
        } else {
            RpcCode::InvalidParams
        };
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
        .is_some_and(|e| crate::wire::event::is_result(e))
    {
        after = after.saturating_sub(1);
    }
    let shown = (task.id != task_id).then(|| task_id.to_string());
    Ok(task_stream(
        task,
        v,
        id,
        after,
        cap,
        Detail::default(),
        shown,
    ))
}

/// A task's stream: the task as it is now (one `task` message), then its updates after
/// `after`, each framed for request `id`.
fn task_stream(
    task: Arc<Task>,
    v: Version,
    id: &Value,
    after: u64,
    cap: usize,
    detail: Detail,
    shown_as: Option<String>,
) -> Response {
    let context_id = task_context(&task);
    let mut now = task.view(u64::MAX, cap);
    if let Some(shown) = &shown_as {
        now.task_id = shown.clone();
    }
    let first = shape::task(v, &now, &context_id, detail);
    let first = vec![sse::frame(
        None,
        &rpc_line(id, &shape::task_result(v, first)),
    )];
    let framing = A2aFraming {
        id: id.clone(),
        context_id,
        version: v,
        begun: Default::default(),
        shown_as,
    };
    sse::framed_stream(task, after, cap, first, framing)
}

/// ListTasks (1.0): the tasks in memory, most recently updated first, filtered by `contextId`
/// and `status`, in pages of `pageSize` (the `pageToken` is where the next page starts).
pub(super) fn list(worker: &Worker, params: &Value, scope: Scope) -> Result<Value, RpcError> {
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
        .list(scope)
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
