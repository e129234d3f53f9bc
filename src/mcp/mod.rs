//! The MCP door (SPEC §15): `POST /mcp`, MCP's Streamable HTTP transport, stateless, serving
//! the worker's agents as tools to an MCP client (an IDE, a desktop assistant, another agent).
//!
//! Three protocol revisions on one endpoint, told apart per request, as a "dual-era" server:
//! - 2026-07-28 (modern): no handshake; each request names its version in
//!   `params._meta["io.modelcontextprotocol/protocolVersion"]` (and the `MCP-Protocol-Version`
//!   header, which must match); `server/discover` says what the server speaks; each result
//!   carries `resultType` and the server's identity; closing a call's stream cancels it.
//! - 2025-11-25 and 2025-06-18 (legacy): `initialize` negotiates the version (one not served is
//!   answered with the newest that is), later requests name it in `MCP-Protocol-Version`;
//!   no `Mcp-Session-Id` is ever issued, and one a platform adds (AgentCore does) is accepted
//!   and names the session; `notifications/cancelled` cancels a call.
//!
//! No SDK crate: `rmcp`'s model types follow one revision at a time (2026-07-28's `_meta` keys,
//! `resultType` and `server/discover` are not in them) and its server side is built for its own
//! transports, not for a warp route whose bounds (body size, connections, read timeouts) the
//! HTTP surface already sets. The handful of shapes this door answers are written out here.
//!
//! - [`rpc`]: JSON-RPC messages, error codes, versions;
//! - [`tools`]: the tools and a call's arguments as a payload;
//! - [`call`]: running a call, progress notifications, cancelling;
//! - [`version`]: the revision a request is served in.

mod ask;
mod call;
mod rpc;
mod tools;
mod version;

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Map, Value};
use warp::http::{header, HeaderMap, Method, StatusCode};
use warp::reply::Response;

use crate::request_context::RequestContext;
pub use call::Calls;
use call::{control_result, tool_result, CallCtx};
use rpc::{accepted, header_text, result_response, Accepts, Code, RpcError};
pub use rpc::{LEGACY, MODERN, SUPPORTED};

/// The platform's MCP session header (AgentCore adds one; the worker never issues one).
const MCP_SESSION_HEADER: &str = "mcp-session-id";
/// Longest JSON-RPC request id kept while its call runs.
const MAX_ID_BYTES: usize = 1024;

/// The revision a request is served in.
#[derive(Debug, Clone, Copy)]
pub struct Proto {
    /// The version string.
    pub version: &'static str,
    /// 2026-07-28: results carry `resultType` and the server's identity.
    pub modern: bool,
}

impl Proto {
    /// A result as the revision wants it.
    fn finish(&self, mut result: Value) -> Value {
        if self.modern {
            if let Some(m) = result.as_object_mut() {
                m.insert("resultType".into(), json!("complete"));
                m.insert(
                    "_meta".into(),
                    json!({ rpc::META_SERVER_INFO: server_info() }),
                );
            }
        }
        result
    }
}

fn server_info() -> Value {
    json!({"name": "agentdispatch-worker", "version": env!("CARGO_PKG_VERSION")})
}

const INSTRUCTIONS: &str = "Each run_<framework> tool runs that agent framework on an instruction \
    as a supervised task and answers with its output; pass sessionId to continue a conversation. \
    task_status and task_cancel act on a task by the taskId a run names in structuredContent.";

/// Any request on `/mcp`: POST is the transport; GET and DELETE are 405, as a stateless
/// server answers them (no stream to open, no session to end).
pub async fn handle(
    worker: Arc<crate::task::Worker>,
    calls: Arc<Calls>,
    method: &Method,
    headers: &HeaderMap,
    body: Bytes,
    trace: crate::trace::Parent,
) -> Response {
    if method != Method::POST {
        return rpc::only_post();
    }
    if let Some(refused) = cross_origin(headers) {
        return refused;
    }
    let accepts = Accepts::of(headers);
    if !accepts.json && !accepts.sse {
        return RpcError::new(
            StatusCode::NOT_ACCEPTABLE,
            Code::InvalidRequest,
            "Not acceptable: the Accept header must allow application/json or text/event-stream.",
        )
        .response(&Value::Null);
    }
    match message(worker, calls, headers, accepts, &body, trace).await {
        Ok(resp) => resp,
        Err((e, id)) => e.response(&id),
    }
}

/// On any listener, an `Origin` must name the host the request was sent to (a browser page of
/// another site must not drive the tools); on loopback the HTTP guard has already required a
/// loopback one. MCP's transport asks servers to validate `Origin` against DNS rebinding.
fn cross_origin(headers: &HeaderMap) -> Option<Response> {
    let origin = headers.get(header::ORIGIN)?;
    let text = origin.to_str().unwrap_or("");
    let authority = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"));
    let host = header_text(headers, header::HOST.as_str());
    if authority.is_some()
        && authority.map(str::to_ascii_lowercase) == host.map(str::to_ascii_lowercase)
    {
        return None;
    }
    Some(
        RpcError::new(
            StatusCode::FORBIDDEN,
            Code::InvalidRequest,
            format!(
                "Origin {:?} is refused: /mcp answers requests with no Origin or one naming the host they were sent to.",
                crate::wire::clip(&String::from_utf8_lossy(origin.as_bytes()), 200)
            ),
        )
        .response(&Value::Null),
    )
}

/// The body as one JSON-RPC message, answered; `Err` is an error and the id it answers.
async fn message(
    worker: Arc<crate::task::Worker>,
    calls: Arc<Calls>,
    headers: &HeaderMap,
    accepts: Accepts,
    body: &[u8],
    trace: crate::trace::Parent,
) -> Result<Response, (RpcError, Value)> {
    let no_id = |e: RpcError| (e, Value::Null);
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        no_id(RpcError::new(
            StatusCode::BAD_REQUEST,
            Code::ParseError,
            format!("Parse error: the body is not JSON ({e})."),
        ))
    })?;
    let obj = match value {
        Value::Object(o) => o,
        Value::Array(_) => {
            return Err(no_id(RpcError::invalid_request(
                "Invalid request: JSON-RPC batches are not taken (MCP 2025-06-18 removed them); send one message per POST.",
            )))
        }
        other => {
            return Err(no_id(RpcError::invalid_request(format!(
                "Invalid request: the body must be a JSON-RPC 2.0 object, not {}.",
                crate::wire::kind_of(&other)
            ))))
        }
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(no_id(RpcError::invalid_request(
            "Invalid request: jsonrpc must be \"2.0\".",
        )));
    }
    let id = obj.get("id").cloned();
    let method = match obj.get("method") {
        Some(Value::String(m)) => m.as_str(),
        Some(_) => {
            return Err((
                RpcError::invalid_request("Invalid request: method must be a string."),
                id.unwrap_or(Value::Null),
            ))
        }
        // A response from the client: this server never asks it anything, so there is
        // nothing to match it to; taken, as the transport says.
        None if obj.contains_key("result") || obj.contains_key("error") => return Ok(accepted()),
        None => {
            return Err(no_id(RpcError::invalid_request(
                "Invalid request: a JSON-RPC request needs a method.",
            )))
        }
    };
    let params = match obj.get("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => p.clone(),
        Some(other) => {
            return Err((
                RpcError::invalid_params(format!(
                    "Invalid params: params must be an object, not {}.",
                    crate::wire::kind_of(other)
                )),
                id.unwrap_or(Value::Null),
            ))
        }
    };
    let scope = session(headers);
    let Some(id) = id else {
        notification(&worker, &calls, method, &params, scope.as_deref());
        return Ok(accepted());
    };
    match &id {
        Value::String(s) if s.len() <= MAX_ID_BYTES => {}
        Value::Number(n) if n.is_i64() || n.is_u64() => {}
        Value::String(_) => {
            return Err(no_id(RpcError::invalid_request(format!(
                "Invalid request: id is longer than {MAX_ID_BYTES} bytes."
            ))))
        }
        _ => {
            return Err(no_id(RpcError::invalid_request(
                "Invalid request: id must be a string or an integer.",
            )))
        }
    }
    let proto = version::negotiate(headers, method, &params).map_err(|e| (e, id.clone()))?;
    let fail = |e: RpcError| (e, id.clone());
    let answer = match method {
        "initialize" => {
            let requested = params
                .get("protocolVersion")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    fail(RpcError::invalid_params(
                        "Invalid params: initialize needs params.protocolVersion (a string).",
                    ))
                })?;
            let version = LEGACY
                .iter()
                .find(|v| **v == requested)
                .copied()
                .unwrap_or(LEGACY[0]);
            json!({
                "protocolVersion": version,
                "capabilities": {"tools": {"listChanged": false}},
                "serverInfo": server_info(),
                "instructions": INSTRUCTIONS,
            })
        }
        "ping" if !proto.modern => json!({}),
        "server/discover" => Proto {
            modern: true,
            ..proto
        }
        .finish(json!({
            "supportedVersions": SUPPORTED,
            "capabilities": {"tools": {}},
            "instructions": INSTRUCTIONS,
            "ttlMs": 0,
            "cacheScope": "public",
        })),
        "tools/list" => {
            let mut r = json!({"tools": tools::list(&worker)});
            if proto.modern {
                // The tools follow the frameworks, fixed for the worker's life; a new image
                // or configuration is a new worker, so a client should not keep them long.
                r["ttlMs"] = json!(60_000);
                r["cacheScope"] = json!("public");
            }
            proto.finish(r)
        }
        "tools/call" => {
            let ids = crate::task::RequestIds::new(
                header_text(headers, crate::http::REQUEST_HEADER).map(str::to_string),
                scope,
            )
            .traced(trace);
            // What the agent sees of the request (SPEC §12), as on /invocations and A2A.
            let ids = match RequestContext::from_headers(headers) {
                Ok(request) => ids.with_request(request),
                Err(e) => {
                    tracing::info!(requestId = %ids.request_id, error = %e, "MCP request headers refused");
                    return Err(fail(RpcError {
                        data: Some(json!({"errorCode": crate::wire::ErrorCode::InvalidHeader})),
                        ..RpcError::invalid_request(format!("Invalid request: {e}"))
                    }));
                }
            };
            let ctx = CallCtx {
                worker,
                calls,
                id: id.clone(),
                proto,
                accepts,
                progress_token: progress_token(&params),
                ids,
                elicit: proto.modern && ask::elicits(&params),
            };
            return tools_call(ctx, headers, &params).await.map_err(fail);
        }
        // Notifications sent as requests, and what a tools-only server does not serve.
        _ => {
            let status = if proto.modern {
                // 2026-07-28 answers an unknown method 404, so that a client can tell a modern
                // server's refusal from a path that serves nothing.
                StatusCode::NOT_FOUND
            } else {
                StatusCode::OK
            };
            return Err(fail(RpcError::new(
                status,
                Code::MethodNotFound,
                format!(
                    "Method not found: {}. This server serves {}.",
                    crate::wire::clip(method, 100),
                    if proto.modern {
                        "server/discover, tools/list and tools/call"
                    } else {
                        "initialize, ping, tools/list and tools/call"
                    }
                ),
            )));
        }
    };
    Ok(result_response(&id, answer))
}

/// The session a request acts for: AgentCore's session header, else the platform's
/// `Mcp-Session-Id`.
fn session(headers: &HeaderMap) -> Option<String> {
    crate::http::session_of(headers).or_else(|| {
        header_text(headers, MCP_SESSION_HEADER)
            .filter(|s| !s.is_empty() && crate::wire::id_problem(s).is_none())
            .map(str::to_string)
    })
}

/// `params._meta.progressToken`, when a string or an integer.
fn progress_token(params: &Map<String, Value>) -> Option<Value> {
    let t = params.get("_meta")?.get("progressToken")?;
    (t.is_string() || t.is_i64() || t.is_u64()).then(|| t.clone())
}

/// A notification: `notifications/cancelled` cancels the task of the call it names; every
/// other one (`notifications/initialized`, progress, roots) needs nothing from a stateless
/// server.
fn notification(
    worker: &Arc<crate::task::Worker>,
    calls: &Calls,
    method: &str,
    params: &Map<String, Value>,
    scope: Option<&str>,
) {
    if method != "notifications/cancelled" {
        return;
    }
    let Some(request_id) = params.get("requestId") else {
        return;
    };
    let Some(task_id) = calls.task_of(scope, request_id) else {
        return;
    };
    tracing::info!(taskId = %task_id, "MCP notifications/cancelled: cancelling the call's task");
    let (worker, scope) = (worker.clone(), scope.map(str::to_string));
    // Answered at once (202); the cancel itself waits for the task to stop.
    tokio::spawn(async move {
        worker.cancel(&task_id, scope.as_deref()).await;
    });
}

/// `tools/call`: the tool's task, or the control it asks for.
async fn tools_call(
    ctx: CallCtx,
    _headers: &HeaderMap,
    params: &Map<String, Value>,
) -> Result<Response, RpcError> {
    let name = params.get("name").and_then(Value::as_str).ok_or_else(|| {
        RpcError::invalid_params("Invalid params: tools/call needs params.name (a string).")
    })?;
    let empty = Map::new();
    let args = match params.get("arguments") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(a)) => a,
        Some(other) => {
            return Err(RpcError::invalid_params(format!(
                "Invalid params: params.arguments must be an object, not {}.",
                crate::wire::kind_of(other)
            )))
        }
    };
    // A 2026-07-28 retry answering an `input_required` result: the session's resume.
    let resumed = if ctx.proto.modern {
        ask::resumed(params, args)?
    } else {
        None
    };
    let args = resumed.as_ref().unwrap_or(args);
    let call = match tools::call(&ctx.worker, name, args) {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Err(RpcError::invalid_params(format!(
                "Unknown tool: {}. tools/list names the tools served.",
                crate::wire::clip(name, 100)
            )))
        }
        Err(tools::BadArguments(msg)) => {
            let r = crate::wire::TaskResult::fail(crate::wire::ErrorCode::InvalidPayload, msg);
            return Ok(result_response(&ctx.id, ctx.proto.finish(tool_result(&r))));
        }
    };
    let scope = ctx.ids.session_id.clone();
    Ok(match call {
        tools::Call::Start(payload) => call::start(ctx, *payload).await,
        tools::Call::Status { task_id, after_seq } => {
            let r = ctx
                .worker
                .status(&task_id, after_seq, scope.as_deref())
                .await;
            result_response(&ctx.id, ctx.proto.finish(control_result(&r)))
        }
        tools::Call::Cancel { task_id } => {
            let r = ctx.worker.cancel(&task_id, scope.as_deref()).await;
            result_response(&ctx.id, ctx.proto.finish(control_result(&r)))
        }
    })
}
