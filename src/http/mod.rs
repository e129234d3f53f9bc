//! The HTTP surface: one warp filter hands every request to [`route`], which dispatches on
//! method and path, so that 404 and 405 answers are exact and every error is JSON.

mod a2a;
mod agui;
mod guard;
#[doc(hidden)]
pub use a2a::fuzz_request as fuzz_a2a_request;
mod invocations;
mod serve;
pub(crate) mod sse;
mod warmup;
mod ws;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use serde_json::json;
use warp::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use warp::reply::Response;

use crate::trace;
use warp::Filter;

use crate::task::Worker;
use crate::wire::ErrorCode;

/// The header AgentCore puts the runtime session id in.
pub const SESSION_HEADER: &str = "x-amzn-bedrock-agentcore-runtime-session-id";
/// The header AgentCore puts the request id in.
pub const REQUEST_HEADER: &str = "x-amzn-bedrock-agentcore-runtime-request-id";

/// A JSON answer.
pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response {
    json_response_sized(status, body, 256)
}

/// A JSON answer whose size is about `hint` bytes (a large answer's buffer is sized once
/// instead of doubling past it).
pub fn json_response_sized<T: Serialize + ?Sized>(
    status: StatusCode,
    body: &T,
    hint: usize,
) -> Response {
    let mut bytes = Vec::with_capacity(hint);
    if serde_json::to_writer(&mut bytes, body).is_err() {
        bytes = b"{}".to_vec();
    }
    let mut resp = Response::new(bytes.into());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// An error in the shape of the reference worker, with an optional `errorCode`.
pub fn error_response(status: StatusCode, error: &str, code: Option<ErrorCode>) -> Response {
    let mut body = json!({"ok": false, "error": error});
    if let Some(c) = code {
        body["errorCode"] = json!(c);
    }
    json_response(status, &body)
}

/// The 400 for headers past a bound of the request's context (SPEC §12): it names the bound
/// (and the header, never its value), so a caller knows what to send less of.
pub(crate) fn request_too_large(
    ids: &crate::task::RequestIds,
    e: &crate::request_context::TooLarge,
) -> Response {
    tracing::info!(requestId = %ids.request_id, sessionId = ids.session_id.as_deref().unwrap_or(""), error = %e, "request headers refused");
    error_response(
        StatusCode::BAD_REQUEST,
        &e.to_string(),
        Some(ErrorCode::InvalidHeader),
    )
}

fn ping(worker: &Worker) -> Response {
    let (busy, since) = worker.ping();
    let mut body = json!({
        "status": if busy { "HealthyBusy" } else { "Healthy" },
        "time_of_last_update": since,
    });
    // The status keeps AgentCore's values (the worker serves; other frameworks may work): what
    // is wrong goes beside it, for a person or a probe that reads it.
    if let Some(why) = worker.agent_problem() {
        body["agentError"] = json!(format!(
            "the default framework {}'s agent cannot load: {why}",
            worker.cfg.default_framework
        ));
    }
    json_response(StatusCode::OK, &body)
}

/// Reads a request body up to `limit` bytes; `Err` is the 413 answer.
async fn read_body<S, B>(headers: &HeaderMap, body: S, limit: usize) -> Result<Bytes, Response>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let too_large = || {
        error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "Request body is larger than AGENTDISPATCH_MAX_PAYLOAD_BYTES ({limit} bytes)."
            ),
            Some(ErrorCode::InvalidPayload),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0).min(1 << 20) as usize);
    futures_util::pin_mut!(body);
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| {
            error_response(
                StatusCode::BAD_REQUEST,
                &format!("Request body could not be read: {e}"),
                Some(ErrorCode::InvalidPayload),
            )
        })?;
        if buf.len() + chunk.remaining() > limit {
            return Err(too_large());
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            buf.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(buf.freeze())
}

pub(crate) fn method_not_allowed(allow: &'static str) -> Response {
    let mut resp = error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("Method not allowed. Use {allow}."),
        None,
    );
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

/// What a route may need beyond the request itself: the MCP tool calls running now, and what
/// a `GET /ws` is upgraded with (its connection's upgrade and place).
struct Extras {
    calls: Arc<crate::mcp::Calls>,
    on: Option<hyper::upgrade::OnUpgrade>,
    conn: Option<serve::Conn>,
}

/// Dispatches one request.
async fn route<S, B>(
    worker: Arc<Worker>,
    local: SocketAddr,
    method: Method,
    path: String,
    headers: HeaderMap,
    body: S,
    extras: Extras,
) -> Response
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let limit = worker.cfg.max_payload_bytes;
    if let Some(refused) = guard::loopback_only(local, &headers) {
        return refused;
    }
    // The socket's tasks take their ids from the upgrade request's headers.
    if method == Method::POST || segments == ["ws"] {
        if let Some(refused) = guard::id_headers(&headers) {
            return refused;
        }
    }
    if warmup::is_hook(&worker, &path) {
        return match method {
            Method::POST => warmup::handle(&worker).await,
            _ => method_not_allowed("POST"),
        };
    }
    match (segments.as_slice(), &method) {
        (["ping"] | ["health"], &Method::GET | &Method::HEAD) => ping(&worker),
        (["ping"] | ["health"], _) => method_not_allowed("GET"),
        (["invocations"], &Method::POST) => {
            traced_post(&headers, body, limit, "/invocations", |bytes, trace| {
                invocations::handle(worker, &headers, bytes, trace)
            })
            .await
        }
        (["invocations"], _) => method_not_allowed("POST"),
        (["ws"], &Method::GET) => ws::upgrade(&worker, &headers, extras.on, extras.conn),
        (["ws"], _) => method_not_allowed("GET"),
        (["mcp"], &Method::POST) => {
            traced_post(&headers, body, limit, "/mcp", |bytes, trace| {
                crate::mcp::handle(worker, extras.calls, &Method::POST, &headers, bytes, trace)
            })
            .await
        }
        (["mcp"], m) => match read_body(&headers, body, limit).await {
            Ok(bytes) => {
                crate::mcp::handle(worker, extras.calls, m, &headers, bytes, Default::default())
                    .await
            }
            Err(resp) => resp,
        },
        ([], &Method::POST) => {
            traced_post(&headers, body, limit, "/", |bytes, trace| {
                a2a::handle(worker, &headers, bytes, trace)
            })
            .await
        }
        ([".well-known", "agent-card.json" | "agent.json"], &Method::GET) => {
            a2a::agent_card(&worker, local)
        }
        ([".well-known", "agent-card.json" | "agent.json"], _) => method_not_allowed("GET"),
        (["tasks"], &Method::GET) => json_response(
            StatusCode::OK,
            &json!({"ok": true, "tasks": worker.list(session_of(&headers).as_deref())}),
        ),
        (["tasks", id], &Method::GET) => {
            let r = worker.status(id, 0, session_of(&headers).as_deref()).await;
            let code = if r.error_code == Some(ErrorCode::UnknownTask) {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::OK
            };
            json_response(code, &r)
        }
        (["tasks", id, "events"], &Method::GET) => sse::follow(&worker, id, &headers).await,
        (["tasks"] | ["tasks", _] | ["tasks", _, "events"], _) => method_not_allowed("GET"),
        // Dev mode only (`serve --dev`); otherwise these are the 404 below, as before.
        ([], &Method::GET) if worker.cfg.dev => crate::dev::playground(),
        (["dev", "frameworks"], &Method::GET) if worker.cfg.dev => crate::dev::frameworks(&worker),
        _ => error_response(
            StatusCode::NOT_FOUND,
            "Not found. Use POST /invocations for HTTP or POST / for A2A.",
            None,
        ),
    }
}

/// A `POST` to `route` in its span (`trace::Invocation`): the body read, then `handle`d with
/// the trace context its task continues; the span ends with the answer's status.
async fn traced_post<S, B, F, Fut>(
    headers: &HeaderMap,
    body: S,
    limit: usize,
    route: &'static str,
    handle: F,
) -> Response
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
    F: FnOnce(Bytes, trace::Parent) -> Fut,
    Fut: Future<Output = Response>,
{
    let call = trace::Invocation::start(headers, route);
    let resp = match read_body(headers, body, limit).await {
        Ok(bytes) => handle(bytes, call.parent()).await,
        Err(resp) => resp,
    };
    call.end(resp.status());
    resp
}

/// The session a request acts for: AgentCore's session header, when sent (see
/// `task::Scope`).
pub(crate) fn session_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The warp filter serving every route; `local` is the address bound (the agent card's
/// default URL names its port, also when `PORT=0` let the system pick it).
pub fn routes(
    worker: Arc<Worker>,
    local: SocketAddr,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
    // The MCP tool calls running now (for `notifications/cancelled`), shared by every request.
    let calls = Arc::new(crate::mcp::Calls::default());
    warp::method()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .and(warp::ext::optional::<hyper::upgrade::OnUpgrade>())
        .and(warp::ext::optional::<serve::Conn>())
        .then(
            move |method: Method,
                  path: warp::path::FullPath,
                  headers: HeaderMap,
                  body,
                  on,
                  conn| {
                let worker = worker.clone();
                let calls = calls.clone();
                async move {
                    route(
                        worker,
                        local,
                        method,
                        path.as_str().to_string(),
                        headers,
                        body,
                        Extras { calls, on, conn },
                    )
                    .await
                }
            },
        )
        .recover(|_rejection: warp::Rejection| async {
            Ok::<_, Infallible>(error_response(
                StatusCode::BAD_REQUEST,
                "Bad request.",
                None,
            ))
        })
        .unify()
}

/// Binds `addr` (an error names the address) and serves until `shutdown` resolves.
pub async fn serve(
    worker: Arc<Worker>,
    addr: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<impl Future<Output = ()>> {
    let listen = || -> std::io::Result<tokio::net::TcpListener> {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        // Accepted connections inherit TCP_NODELAY from the listening socket on Linux; without
        // it a streamed answer's first small write waits ~40 ms for the client's delayed ACK.
        socket.set_nodelay(true)?;
        socket.bind(addr)?;
        socket.listen(1024)
    };
    let listener = listen().map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr()?;
    tracing::info!(address = %local, "listening");
    let limits = serve::Limits {
        max_connections: worker.cfg.max_connections,
        read_timeout: worker.cfg.request_read_timeout,
    };
    Ok(serve::run(
        listener,
        warp::service(routes(worker, local)),
        limits,
        shutdown,
    ))
}
