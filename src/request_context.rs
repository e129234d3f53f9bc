//! The envelope's `request` (SPEC §12): what a child learns of the HTTP request that started its
//! task — the caller's identity token, the headers AgentCore forwarded, the trace context.
//!
//! Every door that starts a task (`POST /invocations`, A2A, `/ws`, MCP) builds one with
//! [`RequestContext::from_headers`] and hands it to `Worker::start` in `RequestIds::request`;
//! the task takes it once, into the child's stdin envelope, and keeps nothing of it.
//!
//! It holds secrets (`Authorization`, the workload access token, cookies, API keys): they go to
//! the child's stdin and nowhere else. Its `Debug` names header names only, so that no log line
//! or error message can print a value by accident.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::Value;
use warp::http::HeaderMap;

/// Most headers passed on (after the hop-by-hop ones are left out).
pub const MAX_HEADERS: usize = 64;
/// Longest header name passed on, in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// Longest header value passed on, in bytes (a large JWT in `Authorization` fits well).
pub const MAX_VALUE_BYTES: usize = 16 * 1024;
/// Largest `request` object, as JSON bytes.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// The header AgentCore puts the invocation's workload access token in.
pub const WORKLOAD_TOKEN_HEADER: &str = "workloadaccesstoken";
/// The identity service's own name for the same token (the SDK prefers it when both are sent).
pub const IDENTITY_WAT_HEADER: &str = "x-amz-bedrock-agentcore-identity-wat";
/// The OAuth2 callback URL AgentCore sends for user-federated flows.
pub const OAUTH2_CALLBACK_HEADER: &str = "oauth2callbackurl";
/// The caller's user id, on a SigV4 invocation that named one.
pub const USER_ID_HEADER: &str = "x-amzn-bedrock-agentcore-runtime-user-id";

/// Hop-by-hop and transport headers: they describe this connection to the worker, not the
/// request the agent serves (`proxy-authorization` is a proxy's credential, never the agent's).
const TRANSPORT: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
    "host",
    "content-length",
    "expect",
];

/// What the child is told of its request (the session and request ids are added when the
/// envelope is written: a task's session may come from its payload or an A2A context).
#[derive(Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestContext {
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    workload_access_token: Option<String>,
    #[serde(rename = "oauth2CallbackUrl", skip_serializing_if = "Option::is_none")]
    oauth2_callback_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    traceparent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tracestate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    baggage: Option<String>,
}

impl fmt::Debug for RequestContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: a value may be a secret.
        f.debug_struct("RequestContext")
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("workloadAccessToken", &self.workload_access_token.is_some())
            .finish_non_exhaustive()
    }
}

/// Why a request's headers cannot be passed on: a bound is passed. The message names the
/// bound and at most the header's name, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TooLarge {
    /// More headers than [`MAX_HEADERS`].
    #[error("The request has more than {MAX_HEADERS} headers to pass to the agent (the limit).")]
    Headers,
    /// A name longer than [`MAX_NAME_BYTES`].
    #[error("A header name of {0} bytes is longer than the {MAX_NAME_BYTES}-byte limit.")]
    Name(usize),
    /// A value longer than [`MAX_VALUE_BYTES`].
    #[error(
        "Header {name} has a value of {len} bytes, longer than the {MAX_VALUE_BYTES}-byte limit."
    )]
    Value {
        /// The header's name (lower-cased, within its own bound).
        name: String,
        /// The value's length.
        len: usize,
    },
    /// The whole object larger than [`MAX_REQUEST_BYTES`].
    #[error("The request's headers make {0} bytes to pass to the agent, more than the {MAX_REQUEST_BYTES}-byte limit.")]
    Whole(usize),
}

impl RequestContext {
    /// The context of a request with these headers, or which bound they pass.
    pub fn from_headers(headers: &HeaderMap) -> Result<RequestContext, TooLarge> {
        let mut kept: BTreeMap<String, String> = BTreeMap::new();
        let mut whole = 0usize;
        for (name, value) in headers {
            // `http` keeps names lower-cased already.
            let name = name.as_str();
            if TRANSPORT.contains(&name) {
                continue;
            }
            if name.len() > MAX_NAME_BYTES {
                return Err(TooLarge::Name(name.len()));
            }
            let value = String::from_utf8_lossy(value.as_bytes());
            let value = value.trim();
            if value.len() > MAX_VALUE_BYTES {
                return Err(TooLarge::Value {
                    name: name.to_string(),
                    len: value.len(),
                });
            }
            whole += value.len() + 2;
            // A repeated header is one value, as HTTP reads it (cookies join with `; `).
            match kept.get_mut(name) {
                Some(earlier) => {
                    earlier.push_str(if name == "cookie" { "; " } else { ", " });
                    earlier.push_str(value);
                    if earlier.len() > MAX_VALUE_BYTES {
                        return Err(TooLarge::Value {
                            name: name.to_string(),
                            len: earlier.len(),
                        });
                    }
                }
                None => {
                    if kept.len() == MAX_HEADERS {
                        return Err(TooLarge::Headers);
                    }
                    whole += name.len();
                    kept.insert(name.to_string(), value.to_string());
                }
            }
            if whole > MAX_REQUEST_BYTES {
                return Err(TooLarge::Whole(whole));
            }
        }
        let field = |name: &str| kept.get(name).filter(|v| !v.is_empty()).cloned();
        let ctx = RequestContext {
            user_id: field(USER_ID_HEADER),
            workload_access_token: field(IDENTITY_WAT_HEADER)
                .or_else(|| field(WORKLOAD_TOKEN_HEADER)),
            oauth2_callback_url: field(OAUTH2_CALLBACK_HEADER),
            traceparent: field("traceparent"),
            tracestate: field("tracestate"),
            baggage: field("baggage"),
            headers: kept,
        };
        // The fields repeat header values: the object as the child gets it is what is bounded.
        let len = serde_json::to_vec(&ctx).map_or(usize::MAX, |v| v.len());
        if len > MAX_REQUEST_BYTES {
            return Err(TooLarge::Whole(len));
        }
        Ok(ctx)
    }

    /// The headers passed on: names lower-cased, hop-by-hop ones left out.
    pub fn headers(&self) -> &BTreeMap<String, String> {
        &self.headers
    }

    /// The caller's user id (`X-Amzn-Bedrock-AgentCore-Runtime-User-Id`).
    pub fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }

    /// The caller's `traceparent`, as sent.
    pub fn traceparent(&self) -> Option<&str> {
        self.traceparent.as_deref()
    }

    /// The caller's `tracestate`, as sent.
    pub fn tracestate(&self) -> Option<&str> {
        self.tracestate.as_deref()
    }

    /// The caller's `baggage`, as sent.
    pub fn baggage(&self) -> Option<&str> {
        self.baggage.as_deref()
    }

    /// The envelope's `request` object: this context with the task's ids.
    pub fn envelope(&self, session_id: Option<&str>, request_id: &str) -> Value {
        let mut v =
            serde_json::to_value(self).unwrap_or_else(|_| Value::Object(Default::default()));
        if let Value::Object(m) = &mut v {
            m.insert("sessionId".into(), session_id.into());
            m.insert("requestId".into(), request_id.into());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::http::HeaderValue;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                warp::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn fields_come_from_agentcores_headers_and_transport_headers_are_left_out() {
        let h = map(&[
            ("Authorization", "Bearer abc"),
            ("WorkloadAccessToken", "wat-1"),
            ("OAuth2CallbackUrl", "https://cb.example/x"),
            ("X-Amzn-Bedrock-AgentCore-Runtime-User-Id", "u-7"),
            ("X-Amzn-Bedrock-AgentCore-Runtime-Custom-Tenant", "t-9"),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            ("baggage", "aws.tenant.id=t-9"),
            ("Host", "localhost:8080"),
            ("Connection", "keep-alive"),
            ("Content-Length", "12"),
            ("Proxy-Authorization", "Basic eA=="),
        ]);
        let ctx = RequestContext::from_headers(&h).unwrap();
        let v = ctx.envelope(Some("s-1"), "r-1");
        assert_eq!(v["sessionId"], "s-1");
        assert_eq!(v["requestId"], "r-1");
        assert_eq!(v["userId"], "u-7");
        assert_eq!(v["workloadAccessToken"], "wat-1");
        assert_eq!(v["oauth2CallbackUrl"], "https://cb.example/x");
        assert_eq!(
            v["traceparent"],
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        );
        assert_eq!(v["baggage"], "aws.tenant.id=t-9");
        assert!(v.get("tracestate").is_none());
        let headers = v["headers"].as_object().unwrap();
        assert_eq!(headers["authorization"], "Bearer abc");
        assert_eq!(
            headers["x-amzn-bedrock-agentcore-runtime-custom-tenant"],
            "t-9"
        );
        for gone in [
            "host",
            "connection",
            "content-length",
            "proxy-authorization",
        ] {
            assert!(!headers.contains_key(gone), "{gone} was passed on");
        }
    }

    #[test]
    fn the_identity_services_header_wins_and_repeats_join() {
        let h = map(&[
            ("WorkloadAccessToken", "old"),
            ("X-Amz-Bedrock-AgentCore-Identity-WAT", "new"),
            ("Cookie", "a=1"),
            ("Cookie", "b=2"),
            ("X-Custom", "one"),
            ("X-Custom", "two"),
        ]);
        let ctx = RequestContext::from_headers(&h).unwrap();
        let v = ctx.envelope(None, "r");
        assert_eq!(v["workloadAccessToken"], "new");
        assert_eq!(v["headers"]["cookie"], "a=1; b=2");
        assert_eq!(v["headers"]["x-custom"], "one, two");
        assert_eq!(v["sessionId"], Value::Null);
    }

    #[test]
    fn debug_shows_no_value() {
        let h = map(&[
            ("Authorization", "Bearer s3cr3t"),
            ("WorkloadAccessToken", "w4t"),
        ]);
        let shown = format!("{:?}", RequestContext::from_headers(&h).unwrap());
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("w4t"),
            "{shown}"
        );
        assert!(shown.contains("authorization"), "{shown}");
    }

    #[test]
    fn every_bound_is_a_clear_error_without_the_value() {
        let many: Vec<(String, String)> = (0..=MAX_HEADERS)
            .map(|i| (format!("x-h{i}"), "v".to_string()))
            .collect();
        let pairs: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            RequestContext::from_headers(&map(&pairs)).unwrap_err(),
            TooLarge::Headers
        );

        let long_name = "x".repeat(MAX_NAME_BYTES + 1);
        let err = RequestContext::from_headers(&map(&[(&long_name, "v")])).unwrap_err();
        assert!(err.to_string().contains("256-byte limit"), "{err}");

        let secret = "s".repeat(MAX_VALUE_BYTES + 1);
        let err = RequestContext::from_headers(&map(&[("authorization", &secret)])).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("authorization") && text.contains("16384-byte limit"),
            "{text}"
        );
        assert!(!text.contains("sss"), "{text}");

        let big = "v".repeat(MAX_VALUE_BYTES - 10);
        let names: Vec<String> = (0..5).map(|i| format!("x-big{i}")).collect();
        let pairs: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), big.as_str())).collect();
        let err = RequestContext::from_headers(&map(&pairs)).unwrap_err();
        assert!(matches!(err, TooLarge::Whole(_)), "{err}");
        assert!(err.to_string().contains("65536-byte limit"), "{err}");
    }

    #[test]
    fn the_token_counts_twice_against_the_whole_bound() {
        // 48 KiB of header values pass the running count; with the token's field it is 64 KiB
        // and more.
        let token = "t".repeat(MAX_VALUE_BYTES);
        let h = map(&[
            ("workloadaccesstoken", &token),
            ("x-a", &token),
            ("x-b", &token),
        ]);
        assert!(matches!(
            RequestContext::from_headers(&h),
            Err(TooLarge::Whole(_))
        ));
    }
}
