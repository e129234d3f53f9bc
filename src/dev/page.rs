//! The playground page (`GET /` in dev mode) and the framework list it shows
//! (`GET /dev/frameworks`).

use serde_json::json;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;

use crate::frameworks::Launch;
use crate::http::json_response;
use crate::task::Worker;

/// The page: one static file, embedded, no build step.
const PAGE: &str = include_str!("playground.html");

/// The playground page. Its script and style are inline, and it talks only to this worker: the
/// policy says so, so that a page served from a developer's machine loads nothing else.
pub fn playground() -> Response {
    let mut resp = Response::new(PAGE.into());
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
        ),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The frameworks a task may name, and the default one: `{"default", "frameworks":[{name,
/// description, warm}]}`.
pub fn frameworks(worker: &Worker) -> Response {
    let list: Vec<_> = worker
        .frameworks
        .iter()
        .map(|f| {
            json!({
                "name": f.name,
                "description": f.description,
                "warm": f.warm && f.launch != Launch::Echo,
            })
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"default": worker.cfg.default_framework, "frameworks": list}),
    )
}
