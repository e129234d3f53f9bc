//! `POST <AGENTDISPATCH_WARMUP_HOOK_PATH>` (default `/warmup`): AgentCore's warm-up hook. It
//! is answered once the warm parents that start with the worker are ready (2xx), or 503 when
//! they are not within the hook's bound. The wait is on the warm parents' status channels: it
//! holds no thread, so `/ping` and every other request are answered meanwhile.

use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;

use super::json_response;
use crate::task::Worker;
use crate::wire::ErrorCode;

/// Whether `path` is the hook's (a trailing `/` is the same path).
pub fn is_hook(worker: &Worker, path: &str) -> bool {
    let hook = worker.cfg.warmup_hook.path.as_str();
    path == hook || path.strip_suffix('/') == Some(hook)
}

/// Holds the request until the warm parents are ready, or the bound passed.
pub async fn handle(worker: &Worker) -> Response {
    let bound = worker.cfg.warmup_hook.timeout;
    tracing::info!(
        timeoutMs = bound.as_millis() as u64,
        "warm-up hook: waiting for the warm parents"
    );
    let found = worker.warm.warm_up(bound).await;
    let ready = found.ready.join(",");
    if found.ok {
        let message = if found.ready.is_empty() {
            "no warm parent starts with the worker (AGENTDISPATCH_WARM); nothing to wait for"
                .to_string()
        } else {
            format!("warm parents ready: {ready}")
        };
        tracing::info!(ready = %ready, waitedMs = found.waited_ms, "warm-up hook: {message}");
        let mut body = json!(found);
        body["message"] = json!(message);
        return json_response(StatusCode::OK, &body);
    }
    let waiting: Vec<String> = found
        .not_ready
        .iter()
        .map(|n| format!("{} ({})", n.framework, n.state))
        .collect();
    let error = format!(
        "warm parents not ready after {}ms ({}): {}",
        found.waited_ms,
        crate::warm::hook::TIMEOUT_VAR,
        waiting.join("; ")
    );
    tracing::warn!(ready = %ready, waitedMs = found.waited_ms, "warm-up hook: {error}");
    let mut body = json!(found);
    body["error"] = json!(error);
    body["errorCode"] = json!(ErrorCode::WarmNotReady);
    json_response(StatusCode::SERVICE_UNAVAILABLE, &body)
}
