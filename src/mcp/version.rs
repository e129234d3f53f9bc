//! The revision a request is served in: from its `_meta` (2026-07-28) or its
//! `MCP-Protocol-Version` header (the 2025 revisions, after `initialize`), checked against the
//! standard request headers 2026-07-28 mirrors from the body (`Mcp-Method`, `Mcp-Name`).

use serde_json::{Map, Value};
use warp::http::{HeaderMap, StatusCode};

use super::rpc::{self, header_text, Code, RpcError, LEGACY, MODERN};
use super::Proto;

/// The revision a request is served in, from its `_meta` and headers; an error when they
/// name a version not served or do not agree with the body.
pub fn negotiate(
    headers: &HeaderMap,
    method: &str,
    params: &Map<String, Value>,
) -> Result<Proto, RpcError> {
    let mismatch = |what: String| {
        RpcError::new(
            StatusCode::BAD_REQUEST,
            Code::HeaderMismatch,
            format!("Header mismatch: {what}."),
        )
    };
    if let Some(h) = header_text(headers, "mcp-method") {
        if h != method {
            return Err(mismatch(format!(
                "Mcp-Method {:?} is not the body's method {:?}",
                crate::wire::clip(h, 100),
                crate::wire::clip(method, 100)
            )));
        }
    }
    if let Some(h) = header_text(headers, "mcp-name") {
        let body_name = params
            .get("name")
            .or_else(|| params.get("uri"))
            .and_then(Value::as_str);
        if decode_header_value(h).as_deref() != body_name {
            return Err(mismatch("Mcp-Name is not the body's params.name".into()));
        }
    }
    let header = header_text(headers, "mcp-protocol-version");
    if method == "initialize" {
        return Ok(Proto {
            version: LEGACY[0],
            modern: false,
        });
    }
    let meta = params.get("_meta").and_then(|m| m.get(rpc::META_VERSION));
    if let Some(meta) = meta {
        let Some(v) = meta.as_str() else {
            return Err(RpcError::invalid_params(format!(
                "Invalid params: params._meta[\"{}\"] must be a string.",
                rpc::META_VERSION
            )));
        };
        if v != MODERN {
            return Err(RpcError::unsupported_version(v));
        }
        if header.is_some_and(|h| h != v) {
            return Err(mismatch(format!(
                "MCP-Protocol-Version is not the body's {} {v:?}",
                rpc::META_VERSION
            )));
        }
        return Ok(Proto {
            version: MODERN,
            modern: true,
        });
    }
    match header {
        Some(MODERN) => Err(RpcError::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidParams,
            format!(
                "Invalid params: a {MODERN} request names its version in params._meta[\"{}\"] (there is no handshake).",
                rpc::META_VERSION
            ),
        )),
        Some(h) => match LEGACY.iter().find(|v| **v == h) {
            Some(v) => Ok(Proto {
                version: v,
                modern: false,
            }),
            None => Err(RpcError::unsupported_version(h)),
        },
        // No version named: a client of a revision before the header, served as the newest
        // handshake revision (the shapes of tools have not changed since).
        None => Ok(Proto {
            version: LEGACY[0],
            modern: false,
        }),
    }
}

/// A header value as MCP 2026-07-28 encodes it: plain, or `=?base64?…?=` (UTF-8).
fn decode_header_value(v: &str) -> Option<String> {
    use base64::Engine;
    match v
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .ok()
            .and_then(|b| String::from_utf8(b).ok()),
        None => Some(v.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::decode_header_value as decode;

    #[test]
    fn header_values_plain_and_base64() {
        assert_eq!(decode("run_echo").as_deref(), Some("run_echo"));
        assert_eq!(
            decode("=?base64?SGVsbG8sIOS4lueVjA==?=").as_deref(),
            Some("Hello, 世界")
        );
        assert_eq!(decode("=?base64?not base64?="), None);
        assert_eq!(decode("=?base64?/w==?="), None, "not UTF-8");
    }
}
