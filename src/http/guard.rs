//! Checks made before a request reaches its route: the id headers (bounded as the payload's
//! ids, before anything uses them) and, on a loopback listener, `Host` and `Origin`.
//!
//! A worker listening on loopback is a developer's local worker: a web page the developer
//! visits could post to it (a `text/plain` body needs no CORS preflight) or reach it through
//! DNS rebinding (a name of the page's that resolves to 127.0.0.1). As MCP's specification
//! asks of local servers, such a worker answers only requests whose `Host` is a loopback name
//! or address, and whose `Origin`, when sent, is a loopback one.

use std::net::{IpAddr, SocketAddr};

use warp::http::{header, HeaderMap, StatusCode};
use warp::reply::Response;

use super::{error_response, REQUEST_HEADER, SESSION_HEADER};
use crate::wire::{clip, id_problem, ErrorCode};

/// A 400 naming the id header at fault, if one is.
pub fn id_headers(headers: &HeaderMap) -> Option<Response> {
    for name in [REQUEST_HEADER, SESSION_HEADER] {
        let Some(value) = headers.get(name) else {
            continue;
        };
        let problem = match value.to_str() {
            Ok(text) => id_problem(text),
            Err(_) => Some("must be visible ASCII".to_string()),
        };
        if let Some(problem) = problem {
            return Some(error_response(
                StatusCode::BAD_REQUEST,
                &format!("Header {name} {problem}."),
                Some(ErrorCode::InvalidHeader),
            ));
        }
    }
    None
}

/// On a loopback listener, a 403 naming `Host` or `Origin` when either is not a loopback one.
pub fn loopback_only(local: SocketAddr, headers: &HeaderMap) -> Option<Response> {
    if !local.ip().is_loopback() {
        return None;
    }
    let refuse = |name: &str, value: &str, want: String, code: ErrorCode| {
        Some(error_response(
            StatusCode::FORBIDDEN,
            &format!(
                "{name} {:?} is refused: this worker listens on loopback ({local}) and answers only {want} (a web page must not drive a local worker).",
                clip(value, 200)
            ),
            Some(code),
        ))
    };
    // A client with no Host (HTTP/1.0) is no browser: browsers always send one.
    if let Some(host) = headers.get(header::HOST) {
        let text = host.to_str().unwrap_or("");
        if !authority_is_loopback(text) {
            return refuse(
                "Host",
                &String::from_utf8_lossy(host.as_bytes()),
                "a loopback Host (localhost, 127.0.0.1 or [::1], any port)".into(),
                ErrorCode::ForbiddenHost,
            );
        }
    }
    for origin in headers.get_all(header::ORIGIN) {
        let text = origin.to_str().unwrap_or("");
        let authority = text
            .strip_prefix("http://")
            .or_else(|| text.strip_prefix("https://"));
        if !authority.is_some_and(authority_is_loopback) {
            return refuse(
                "Origin",
                &String::from_utf8_lossy(origin.as_bytes()),
                "requests with no Origin or a loopback one (http://localhost, http://127.0.0.1, http://[::1])".into(),
                ErrorCode::ForbiddenOrigin,
            );
        }
    }
    None
}

/// Whether `authority` (`host[:port]`) names this machine's loopback, on any port: what
/// stops DNS rebinding is the name (a page's own name, resolving to 127.0.0.1, is not one of
/// these), and a local proxy or port forward to the worker (another port) stays usable.
fn authority_is_loopback(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((h, tail)) if tail.is_empty() || tail.starts_with(':') => h,
            _ => return false,
        },
        None => authority.rsplit_once(':').map_or(authority, |(h, _port)| h),
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::authority_is_loopback as ok;

    #[test]
    fn loopback_authorities() {
        for good in [
            "127.0.0.1:8080",
            "LOCALHOST:8080",
            "[::1]:8080",
            "127.1.2.3:8080",
            "localhost",
            "127.0.0.1",
            "[::1]",
        ] {
            assert!(ok(good), "{good}");
        }
        for bad in [
            "evil.example:8080",
            "localhost.evil.example:8080",
            "[::1",
            "[::1]x",
            "0.0.0.0:8080",
            "10.0.0.1",
            "null",
            "",
        ] {
            assert!(!ok(bad), "{bad}");
        }
    }
}
