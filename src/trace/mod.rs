//! One trace from the caller to the model call (SPEC §12, tracing): the worker continues the
//! caller's W3C trace context (or starts a trace) with a span for each invocation and one for
//! each task, exports them over OTLP/HTTP when the standard `OTEL_*` variables ask for it, and
//! hands the task's child `TRACEPARENT`/`TRACESTATE`/`BAGGAGE` naming the task span.
//!
//! - [`context`]: `traceparent`/`tracestate`/`baggage` read, checked, written.
//! - `settings`: what the `OTEL_*` variables ask for.
//! - `otlp`: finished spans and their protobuf form.
//! - `export`: the exporter task.
//!
//! With no endpoint set nothing is made: no span, no id, no task; a caller's context still
//! reaches the child unchanged, so the child's own spans join the caller's trace.

pub mod context;
mod export;
mod otlp;
mod settings;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use warp::http::{HeaderMap, StatusCode};

pub use context::{Incoming, SpanContext};
use otlp::{Kind, SpanData, Value};

/// AgentCore's user id header (the caller's identity as the runtime names it).
const USER_HEADER: &str = "x-amzn-bedrock-agentcore-runtime-user-id";
const SESSION_HEADER: &str = "x-amzn-bedrock-agentcore-runtime-session-id";
const REQUEST_HEADER: &str = "x-amzn-bedrock-agentcore-runtime-request-id";
/// Longest header value taken for a span attribute.
const MAX_ATTRIBUTE: usize = 256;

static EXPORTER: OnceLock<export::Exporter> = OnceLock::new();

/// Reads the `OTEL_*` variables and, when they ask for it, starts exporting (on the current
/// tokio runtime). Says at start-up whether the worker's spans are exported and, when a
/// variable asked for something it does not do, why not.
pub fn start_from_env() {
    let mut warnings = Vec::new();
    let settings = settings::from_env(|k| std::env::var(k).ok(), &mut warnings);
    for w in &warnings {
        tracing::warn!("{w}");
    }
    match settings {
        Ok(s) => {
            tracing::info!(endpoint = %s.uri, service = %s.resource[0].1, "tracing: the worker's spans are exported over OTLP/HTTP");
            let _ = EXPORTER.set(export::Exporter::start(s));
        }
        Err(Some(why)) => tracing::warn!("tracing: {why}"),
        Err(None) => {}
    }
}

/// Sends the spans still queued, within `grace` (at the worker's exit).
pub async fn shutdown(grace: Duration) {
    if let Some(e) = EXPORTER.get() {
        e.shutdown(grace).await;
    }
}

fn exporter() -> Option<&'static export::Exporter> {
    EXPORTER.get()
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)?
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= MAX_ATTRIBUTE)
        .map(str::to_string)
}

/// What a request hands its task: the span the task's span is a child of (the invocation's,
/// or the caller's when the worker exports none), the caller's `tracestate` and `baggage`,
/// and the ids its spans carry.
#[derive(Debug, Clone, Default)]
pub struct Parent {
    span: Option<SpanContext>,
    incoming: Arc<Incoming>,
    user_id: Option<String>,
    tenant_id: Option<String>,
}

/// The span of one request (`POST /invocations`, A2A `POST /`), from its start to its answer.
pub struct Invocation {
    parent: Parent,
    route: &'static str,
    start: SystemTime,
    session_id: Option<String>,
    request_id: Option<String>,
}

impl Invocation {
    /// Reads the request's trace context; with export on, opens the span of a `POST` to
    /// `route`.
    pub fn start(headers: &HeaderMap, route: &'static str) -> Invocation {
        let incoming = Incoming::from_headers(headers);
        let exporting = exporter().is_some();
        let span = match (exporting, incoming.parent) {
            (false, caller) => caller,
            (true, Some(caller)) => Some(caller.child()),
            (true, None) => Some(SpanContext::root()),
        };
        let (user_id, tenant_id, session_id, request_id) = if exporting {
            (
                header(headers, USER_HEADER).or_else(|| incoming.baggage_value("user.id")),
                incoming.baggage_value("aws.tenant.id"),
                header(headers, SESSION_HEADER).or_else(|| incoming.baggage_value("session.id")),
                header(headers, REQUEST_HEADER),
            )
        } else {
            (None, None, None, None)
        };
        Invocation {
            parent: Parent {
                span,
                incoming: Arc::new(incoming),
                user_id,
                tenant_id,
            },
            route,
            start: SystemTime::now(),
            session_id,
            request_id,
        }
    }

    /// What the request's task is a child of.
    pub fn parent(&self) -> Parent {
        self.parent.clone()
    }

    /// Ends the span with the answer's status (exported when on and sampled).
    pub fn end(self, status: StatusCode) {
        let (Some(exporter), Some(ctx)) = (exporter(), self.parent.span) else {
            return;
        };
        if !ctx.sampled {
            return;
        }
        let mut attributes = vec![
            ("http.request.method", Value::Str("POST".into())),
            ("http.route", Value::Str(self.route.into())),
            (
                "http.response.status_code",
                Value::Int(i64::from(status.as_u16())),
            ),
        ];
        common(&mut attributes, &self.parent, self.session_id);
        if let Some(r) = self.request_id {
            attributes.push(("agentdispatch.request.id", Value::Str(r)));
        }
        exporter.send(SpanData {
            ctx,
            parent: self.parent.incoming.parent.map(|p| p.span_id),
            tracestate: self.parent.incoming.tracestate.clone(),
            name: format!("POST {}", self.route),
            kind: Kind::Server,
            start: self.start,
            end: SystemTime::now(),
            attributes,
            // A server span is an error for a 5xx only (OpenTelemetry's HTTP conventions).
            error: status
                .is_server_error()
                .then(|| status.canonical_reason().unwrap_or("server error").into()),
        });
    }
}

/// `session.id`, `user.id`, `aws.tenant.id` (AgentCore Observability's attributes).
fn common(attributes: &mut Vec<(&'static str, Value)>, parent: &Parent, session: Option<String>) {
    if let Some(s) = session {
        attributes.push(("session.id", Value::Str(s)));
    }
    if let Some(u) = &parent.user_id {
        attributes.push(("user.id", Value::Str(u.clone())));
    }
    if let Some(t) = &parent.tenant_id {
        attributes.push(("aws.tenant.id", Value::Str(t.clone())));
    }
}

/// How a task's child was started, for its span.
const STARTED_UNKNOWN: u8 = 0;
const STARTED_WARM: u8 = 1;
const STARTED_COLD: u8 = 2;

/// The span of one task: made when the task is, ended with its result. Its context is what
/// the task's child gets in `TRACEPARENT`.
#[derive(Debug, Default)]
pub struct TaskSpan {
    parent: Parent,
    ctx: Option<SpanContext>,
    started: AtomicU8,
}

/// What a task's span says of its end.
pub struct TaskEnd<'a> {
    /// Task id.
    pub task_id: &'a str,
    /// `agent.run` or `command.run`.
    pub task_type: &'a str,
    /// The framework, for an agent run.
    pub framework: Option<&'a str>,
    /// The session.
    pub session_id: Option<&'a str>,
    /// The request that started it.
    pub request_id: &'a str,
    /// When it started.
    pub started_at: SystemTime,
    /// `succeeded`, `failed`, …
    pub status: &'a str,
    /// The child's exit status, when it had one.
    pub exit_code: Option<i32>,
    /// The error code, when it failed.
    pub error_code: Option<&'a str>,
    /// The error message, when it failed.
    pub error: Option<&'a str>,
}

impl TaskSpan {
    /// The task's span under `parent` (a new span only when the worker exports; otherwise the
    /// caller's context is handed on as it came).
    pub fn new(parent: &Parent) -> TaskSpan {
        let ctx = exporter().map(|_| parent.span.map_or_else(SpanContext::root, |p| p.child()));
        TaskSpan {
            parent: parent.clone(),
            ctx,
            started: AtomicU8::new(STARTED_UNKNOWN),
        }
    }

    /// `TRACEPARENT`, `TRACESTATE`, `BAGGAGE` for the task's child: naming the task's span,
    /// or the caller's when the worker makes none; nothing when there is neither.
    pub fn child_env(&self) -> Vec<(String, String)> {
        context::child_env(
            self.ctx.as_ref().or(self.parent.span.as_ref()),
            &self.parent.incoming,
        )
    }

    /// Notes whether the child was forked from a warm parent.
    pub fn started(&self, warm: bool) {
        let v = if warm { STARTED_WARM } else { STARTED_COLD };
        self.started.store(v, Ordering::Relaxed);
    }

    /// Ends the span (exported when on and sampled).
    pub fn end(&self, end: TaskEnd<'_>) {
        let (Some(exporter), Some(ctx)) = (exporter(), self.ctx) else {
            return;
        };
        if !ctx.sampled {
            return;
        }
        let mut attributes = vec![
            ("agentdispatch.task.id", Value::Str(end.task_id.into())),
            ("agentdispatch.task.type", Value::Str(end.task_type.into())),
            ("agentdispatch.task.status", Value::Str(end.status.into())),
            (
                "agentdispatch.request.id",
                Value::Str(end.request_id.into()),
            ),
        ];
        if let Some(f) = end.framework {
            attributes.push(("agentdispatch.framework", Value::Str(f.into())));
        }
        match self.started.load(Ordering::Relaxed) {
            STARTED_WARM => attributes.push(("agentdispatch.warm", Value::Bool(true))),
            STARTED_COLD => attributes.push(("agentdispatch.warm", Value::Bool(false))),
            _ => {}
        }
        if let Some(code) = end.exit_code {
            attributes.push(("process.exit.code", Value::Int(i64::from(code))));
        }
        if let Some(code) = end.error_code {
            attributes.push(("error.type", Value::Str(code.into())));
        }
        common(
            &mut attributes,
            &self.parent,
            end.session_id.map(str::to_string),
        );
        let name = match end.framework {
            Some(f) => format!("{} {f}", end.task_type),
            None => end.task_type.to_string(),
        };
        let error = (end.status != "succeeded")
            .then(|| crate::wire::clip(end.error.unwrap_or(end.status), MAX_ATTRIBUTE));
        exporter.send(SpanData {
            ctx,
            parent: self.parent.span.map(|p| p.span_id),
            tracestate: self.parent.incoming.tracestate.clone(),
            name,
            kind: Kind::Internal,
            start: end.started_at,
            end: SystemTime::now(),
            attributes,
            error,
        });
    }
}
