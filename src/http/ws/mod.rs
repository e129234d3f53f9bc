//! `GET /ws` (SPEC §13): the WebSocket door. The upgrade is hyper's (the request carries its
//! `OnUpgrade`), the framing is tungstenite's; this module checks the request, answers 101 and
//! hands the socket to [`socket::run`], which reads client messages ([`read`]) and follows one
//! task at a time ([`follow`]).

mod agui;
mod follow;
mod read;
mod resume;
mod socket;

use std::sync::Arc;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use warp::http::{header, HeaderMap, HeaderValue, StatusCode};
use warp::reply::Response;

pub use follow::Framing;

use super::serve::Conn;
use super::{error_response, session_of, REQUEST_HEADER};
use crate::request_context::RequestContext;
use crate::task::{RequestIds, Worker};
use crate::wire::ErrorCode;

/// Bytes the socket reads at a time. tungstenite allocates its read buffer up front, 128 KiB
/// by default: with a thousand idle sockets open that alone would be 128 MB. Messages larger
/// than this are still read whole (the buffer is only the unit of reading).
const READ_BUFFER: usize = 4096;

/// A header's value, when it holds `token` in its comma-separated list (case-insensitive).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The 426 for a request to `/ws` that is not a WebSocket upgrade this worker speaks.
fn upgrade_required(what: &str) -> Response {
    let mut resp = error_response(
        StatusCode::UPGRADE_REQUIRED,
        &format!("GET /ws is a WebSocket endpoint (RFC 6455, version 13): {what}."),
        None,
    );
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static("13"),
    );
    resp
}

/// Answers the upgrade request with 101 and serves the socket, or says what is wrong with it.
pub fn upgrade(
    worker: &Arc<Worker>,
    headers: &HeaderMap,
    on_upgrade: Option<OnUpgrade>,
    conn: Option<Conn>,
) -> Response {
    if !has_token(headers, header::CONNECTION, "upgrade")
        || !has_token(headers, header::UPGRADE, "websocket")
    {
        return upgrade_required("send Connection: Upgrade and Upgrade: websocket");
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return upgrade_required("Sec-WebSocket-Version must be 13");
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return upgrade_required("Sec-WebSocket-Key is missing");
    };
    let (Some(on_upgrade), Some(conn)) = (on_upgrade, conn) else {
        // Every request the accept loop serves carries both: this is a bug, said as one.
        return error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "This connection cannot be upgraded.",
            None,
        );
    };
    if worker.shutdown.is_cancelled() {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "The worker is shutting down; open the socket on another one.",
            Some(ErrorCode::ShuttingDown),
        );
    }
    // Every task the socket starts carries the upgrade request's ids and context (SPEC §12).
    let ids = RequestIds::new(
        headers
            .get(REQUEST_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim().to_string()),
        session_of(headers),
    );
    let ids = match RequestContext::from_headers(headers) {
        Ok(ctx) => ids.with_request(ctx),
        Err(e) => return super::request_too_large(&ids, &e),
    };
    let accept = derive_accept_key(key.as_bytes());
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        // A message is an invocation payload: bounded as a request body.
        .max_message_size(Some(worker.cfg.max_payload_bytes))
        .max_frame_size(Some(worker.cfg.max_payload_bytes));
    let worker = worker.clone();
    let Conn { place, tracker } = conn;
    tracker.spawn(async move {
        // The connection's place is held while the socket is open.
        let _place = place;
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::info!(error = %e, "a WebSocket upgrade did not complete");
                return;
            }
        };
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        socket::run(worker, ws, ids).await;
    });
    let mut resp = Response::new(Default::default());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    resp
}
