//! JSON-RPC 2.0 as MCP's Streamable HTTP transport carries it: the protocol versions served,
//! error codes and the HTTP status each answer goes out with.

use serde_json::{json, Value};
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;

use crate::http::json_response;

/// The stateless revision: no handshake, the version in every request's `_meta`.
pub const MODERN: &str = "2026-07-28";
/// The handshake revisions served, newest first: an `initialize` asking for another version
/// is answered with the first.
pub const LEGACY: [&str; 2] = ["2025-11-25", "2025-06-18"];
/// Every version, newest first (`server/discover`, the unsupported-version error).
pub const SUPPORTED: [&str; 3] = [MODERN, LEGACY[0], LEGACY[1]];

/// `_meta` keys of the stateless revision.
pub const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// The server's identity in a modern result's `_meta`.
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

/// Error codes: JSON-RPC's own and MCP's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    ParseError = -32700,
    InvalidRequest = -32600,
    MethodNotFound = -32601,
    InvalidParams = -32602,
    /// MCP 2026-07-28: a request header that does not match the body.
    HeaderMismatch = -32020,
    /// MCP 2026-07-28: a version the server does not speak (its data lists those it does).
    UnsupportedProtocolVersion = -32022,
}

/// One JSON-RPC error, with the HTTP status it is sent with.
#[derive(Debug)]
pub struct RpcError {
    pub status: StatusCode,
    pub code: Code,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(status: StatusCode, code: Code, message: impl Into<String>) -> Self {
        RpcError {
            status,
            code,
            message: message.into(),
            data: None,
        }
    }

    /// A 400 `InvalidRequest`: the message is not a request this transport takes.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Code::InvalidRequest, message)
    }

    /// `InvalidParams`: answered 200, as any error a method itself decides.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(StatusCode::OK, Code::InvalidParams, message)
    }

    /// The version asked for is not served: 400 with the versions that are.
    pub fn unsupported_version(requested: &str) -> Self {
        let shown = crate::wire::clip(requested, 100);
        RpcError {
            data: Some(json!({"supported": SUPPORTED, "requested": shown})),
            ..Self::new(
                StatusCode::BAD_REQUEST,
                Code::UnsupportedProtocolVersion,
                format!(
                    "Unsupported protocol version {shown:?}: this server speaks {}.",
                    SUPPORTED.join(", ")
                ),
            )
        }
    }

    /// The answer, for the request `id` (null when it is not known).
    pub fn response(&self, id: &Value) -> Response {
        json_response(self.status, &self.body(id))
    }

    /// The JSON-RPC error object.
    pub fn body(&self, id: &Value) -> Value {
        let mut error = json!({"code": self.code as i32, "message": self.message});
        if let Some(d) = &self.data {
            error["data"] = d.clone();
        }
        json!({"jsonrpc": "2.0", "id": id, "error": error})
    }
}

/// A result, answered as one JSON object.
pub fn result_response(id: &Value, result: Value) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"jsonrpc": "2.0", "id": id, "result": result}),
    )
}

/// 202 with no body: a notification or a client's response was taken.
pub fn accepted() -> Response {
    let mut resp = Response::new(Vec::new().into());
    *resp.status_mut() = StatusCode::ACCEPTED;
    resp
}

/// What the client's `Accept` lets the answer be.
#[derive(Debug, Clone, Copy)]
pub struct Accepts {
    pub json: bool,
    pub sse: bool,
}

impl Accepts {
    /// From the `Accept` headers: none sent means anything (curl, a bench); `*/*` and
    /// `application/*` count as JSON.
    pub fn of(headers: &warp::http::HeaderMap) -> Accepts {
        let mut any = false;
        let mut a = Accepts {
            json: false,
            sse: false,
        };
        for v in headers.get_all(header::ACCEPT) {
            any = true;
            for item in v.to_str().unwrap_or("").split(',') {
                let media = item.split(';').next().unwrap_or("").trim();
                match media.to_ascii_lowercase().as_str() {
                    "application/json" | "application/*" => a.json = true,
                    "text/event-stream" => a.sse = true,
                    "*/*" => {
                        a.json = true;
                        a.sse = true;
                    }
                    "text/*" => a.sse = true,
                    _ => {}
                }
            }
        }
        if !any {
            return Accepts {
                json: true,
                sse: false,
            };
        }
        a
    }
}

/// A header's value as text, trimmed; `None` when absent or not visible ASCII.
pub fn header_text<'a>(headers: &'a warp::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The `Allow` header's methods for `/mcp`: POST only, as a stateless server (no GET stream
/// to open, no session to DELETE).
pub fn only_post() -> Response {
    let mut resp = json_response(
        StatusCode::METHOD_NOT_ALLOWED,
        &json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {
                "code": Code::InvalidRequest as i32,
                "message": "Method not allowed: this MCP server is stateless; send each JSON-RPC message with POST /mcp (there is no GET stream and no session to delete).",
            },
        }),
    );
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::http::HeaderMap;

    fn accepts(values: &[&str]) -> (bool, bool) {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::ACCEPT, v.parse().unwrap());
        }
        let a = Accepts::of(&h);
        (a.json, a.sse)
    }

    #[test]
    fn accept_headers() {
        assert_eq!(accepts(&[]), (true, false), "none sent: JSON");
        assert_eq!(
            accepts(&["application/json, text/event-stream"]),
            (true, true)
        );
        assert_eq!(
            accepts(&["text/event-stream;q=0.9", "application/json"]),
            (true, true)
        );
        assert_eq!(accepts(&["*/*"]), (true, true));
        assert_eq!(accepts(&["Application/JSON"]), (true, false));
        assert_eq!(accepts(&["text/html"]), (false, false));
    }
}
