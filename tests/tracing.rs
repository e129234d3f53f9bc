//! One trace (SPEC §12, tracing) through the real binary, with a real OTLP/HTTP receiver
//! (tests/clients/otel/receiver.py: opentelemetry-proto decodes each request): the worker
//! continues a caller's `traceparent` (or X-Ray header) with a request span and a task span
//! carrying AgentCore's attributes, over `/invocations`, A2A and MCP; a task's child gets
//! `TRACEPARENT` naming the task span, and the Strands runner's own spans nest under it, cold
//! and warm (a warm task under OpenTelemetry is still forked); without the `OTEL_*` variables
//! nothing is exported and a caller's context reaches the child unchanged.
//!
//! Needs `scripts/setup-clients.sh otel` (the OTLP exporter and opentelemetry-proto, added to
//! the Strands venv's path); skips, saying so, when run outside scripts/test.sh without it.

mod common;
#[path = "tracing/receiver.rs"]
mod receiver;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use receiver::{otel_venv, site_packages, Receiver};
use serde_json::{json, Value};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const SESSION: &str = "trace-session-0123456789-0123456789-0123";

fn named<'a>(spans: &'a [Value], name: &str) -> &'a Value {
    spans
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no span {name:?} in {spans:#?}"))
}

fn headers() -> Vec<(&'static str, String)> {
    vec![
        ("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01")),
        ("tracestate", "vendor=opaque".into()),
        ("baggage", "aws.tenant.id=tenant%207,other=x".into()),
        (
            "x-amzn-bedrock-agentcore-runtime-session-id",
            SESSION.into(),
        ),
        ("x-amzn-bedrock-agentcore-runtime-user-id", "user-42".into()),
    ]
}

async fn invoke(w: &Worker, body: &Value, headers: &[(&str, String)]) -> Value {
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, r) = w
        .invoke_raw(serde_json::to_vec(body).unwrap(), &headers)
        .await;
    assert_eq!(status, 200, "{r:#}");
    r
}

/// The worker's invocation and task spans of `trace`, checked against each other and the
/// caller, with the attributes AgentCore Observability reads.
fn worker_spans(spans: &[Value], task_name: &str, route: &str, r: &Value) -> (Value, Value) {
    let invocation = named(spans, &format!("POST {route}")).clone();
    let task = named(spans, task_name).clone();
    assert_eq!(invocation["parentSpanId"], CALLER_SPAN, "{invocation:#}");
    assert_eq!(invocation["kind"], 2, "a server span: {invocation:#}");
    assert_eq!(invocation["traceState"], "vendor=opaque");
    assert_eq!(invocation["attributes"]["http.response.status_code"], 200);
    assert_eq!(task["parentSpanId"], invocation["spanId"], "{task:#}");
    assert_eq!(task["attributes"]["agentdispatch.task.id"], r["taskId"]);
    assert_eq!(task["attributes"]["agentdispatch.task.status"], r["status"]);
    for span in [&invocation, &task] {
        let a = &span["attributes"];
        assert_eq!(a["session.id"], SESSION, "{span:#}");
        assert_eq!(a["user.id"], "user-42", "{span:#}");
        assert_eq!(a["aws.tenant.id"], "tenant 7", "{span:#}");
        assert_eq!(span["resource"]["service.name"], "trace-test", "{span:#}");
        assert_eq!(
            span["resource"]["deployment.environment"], "test",
            "{span:#}"
        );
        assert_eq!(span["contentType"], "application/x-protobuf");
    }
    (invocation, task)
}

fn traced_worker(receiver: &Receiver) -> WorkerBuilder {
    WorkerBuilder::new()
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint())
        .env("OTEL_SERVICE_NAME", "trace-test")
        .env("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
}

/// The child's trace variables, from `env`'s output, sorted.
fn child_vars(r: &Value) -> Vec<String> {
    let out = r["output"].as_str().unwrap_or_default();
    out.lines()
        .filter(|l| {
            ["TRACEPARENT=", "TRACESTATE=", "BAGGAGE="]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .map(str::to_string)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[tokio::test]
async fn a_command_task_continues_the_callers_trace_and_its_child_names_the_task_span() {
    let Some(venv) = otel_venv() else { return };
    let receiver = Receiver::start(&venv, 0).await;
    let w = traced_worker(&receiver)
        .env(
            "TRACEPARENT",
            "00-11111111111111111111111111111111-2222222222222222-01",
        )
        .start()
        .await;

    let r = invoke(&w, &cmd("env"), &headers()).await;
    assert_eq!(r["status"], "succeeded", "{r:#}");
    let spans = receiver
        .wait_for(TRACE_ID, "invocation", |s| s["name"] == "POST /invocations")
        .await;
    let (_, task) = worker_spans(&spans, "command.run", "/invocations", &r);
    assert_eq!(task["attributes"]["process.exit.code"], 0);
    assert_eq!(
        task["status"], 0,
        "a succeeded task's status is unset: {task:#}"
    );
    // The child's TRACEPARENT names the task span (not the worker's own variable's trace).
    let task_span = task["spanId"].as_str().unwrap();
    assert_eq!(
        child_vars(&r),
        [
            "BAGGAGE=aws.tenant.id=tenant%207,other=x".into(),
            format!("TRACEPARENT=00-{TRACE_ID}-{task_span}-01"),
            "TRACESTATE=vendor=opaque".into(),
        ]
    );

    // No traceparent: a new trace, and a failed task's span says so.
    let r = w.run(cmd("sh -c 'exit 3'")).await;
    assert_eq!(r["exitCode"], 3, "{r:#}");
    let failed = |s: &Value| s["attributes"]["agentdispatch.task.id"] == r["taskId"];
    assert!(
        eventually(Duration::from_secs(30), || receiver
            .spans(None)
            .iter()
            .any(failed))
        .await
    );
    let task = receiver.spans(None).into_iter().find(failed).unwrap();
    assert_ne!(task["traceId"], TRACE_ID);
    assert_eq!(task["status"], 2, "an error: {task:#}");
    assert_eq!(task["attributes"]["process.exit.code"], 3);
    let trace = task["traceId"].as_str().unwrap();
    let spans = receiver
        .wait_for(trace, "invocation", |s| s["name"] == "POST /invocations")
        .await;
    assert_eq!(
        named(&spans, "POST /invocations")["spanId"],
        task["parentSpanId"]
    );

    // A2A: the same, under a "POST /" server span.
    let send = json!({"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {
        "message": {"role": "user", "messageId": "m-1", "parts": [{"kind": "text", "text": "hi"}]},
        "metadata": {"framework": "echo"}}});
    let a2a_headers: Vec<(&str, String)> = headers()
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                if k == "traceparent" {
                    format!("00-{TRACE_ID}-{}-01", "0123456789abcdef")
                } else {
                    v
                },
            )
        })
        .collect();
    let headers: Vec<(&str, &str)> = a2a_headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let answer = w.rpc_with(send, &headers).await;
    assert!(answer.get("result").is_some(), "{answer:#}");
    echo_under(&receiver, "POST /", "0123456789abcdef").await;

    // MCP: a tools/call (2026-07-28, no handshake) under a "POST /mcp" server span.
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "run_echo", "arguments": {"instruction": "hi"},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}});
    let answer = w
        .client()
        .post(format!("{}/mcp", w.url))
        .header("accept", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("traceparent", format!("00-{TRACE_ID}-fedcba9876543210-01"))
        .json(&call)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    echo_under(&receiver, "POST /mcp", "fedcba9876543210").await;

    // AgentCore's X-Ray header, when no traceparent came: the same trace, as ADOT maps it.
    let xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let r = invoke(&w, &cmd("true"), &[("x-amzn-trace-id", xray.to_string())]).await;
    assert_eq!(r["status"], "succeeded", "{r:#}");
    let spans = receiver
        .wait_for("5759e988bd862e3fe1be46a994272793", "invocation", |s| {
            s["name"] == "POST /invocations"
        })
        .await;
    assert_eq!(
        named(&spans, "POST /invocations")["parentSpanId"],
        "53995c3f42cd8ad8"
    );

    // An unsampled caller: nothing exported for it, and the child is told it is not sampled.
    let unsampled = "00-99999999999999999999999999999999-1111111111111111-00";
    let r = invoke(&w, &cmd("env"), &[("traceparent", unsampled.to_string())]).await;
    let vars = child_vars(&r);
    assert!(
        vars.len() == 1
            && vars[0].starts_with("TRACEPARENT=00-99999999999999999999999999999999-")
            && vars[0].ends_with("-00"),
        "{vars:?}"
    );
    drop_and_flush(w);
    assert_eq!(
        receiver.spans(Some("99999999999999999999999999999999")),
        Vec::<Value>::new()
    );
}

/// Waits for the request span `name` of `TRACE_ID` and checks it is the child of the caller's
/// span `caller` and the parent of an echo task's span.
async fn echo_under(receiver: &Receiver, name: &str, caller: &str) {
    let spans = receiver
        .wait_for(TRACE_ID, name, |s| s["name"] == name)
        .await;
    let request = named(&spans, name);
    assert_eq!(request["parentSpanId"], caller);
    let task = |s: &&Value| s["name"] == "agent.run echo" && s["parentSpanId"] == request["spanId"];
    assert!(spans.iter().any(|s| task(&s)), "{spans:#?}");
}

/// Stops the worker with SIGTERM and waits for its exit: every span it had is sent by then.
fn drop_and_flush(mut w: Worker) {
    w.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(w.wait_exit(Duration::from_secs(30)), Some(0));
}

/// The OTLP default port: an exporter that tried without being asked would come here.
const DEFAULT_OTLP_PORT: u16 = 4318;

#[tokio::test]
async fn without_otel_variables_nothing_is_exported_and_the_caller_context_passes_through() {
    let Some(venv) = otel_venv() else { return };
    require_strands();
    let receiver = Receiver::start(&venv, DEFAULT_OTLP_PORT).await;
    let mut builder = strands_worker(&venv, "none");
    for var in [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_SDK_DISABLED",
        "AGENT_OBSERVABILITY_ENABLED",
    ] {
        builder = builder.env_remove(var);
    }
    // A TRACEPARENT of the worker's own environment names no task's parent.
    let w = builder
        .env(
            "TRACEPARENT",
            "00-11111111111111111111111111111111-2222222222222222-01",
        )
        .start()
        .await;
    let r = w.run(cmd("env")).await;
    assert_eq!(child_vars(&r), Vec::<String>::new(), "{r:#}");
    let r = invoke(&w, &cmd("env"), &headers()).await;
    assert_eq!(
        child_vars(&r),
        [
            "BAGGAGE=aws.tenant.id=tenant%207,other=x".into(),
            format!("TRACEPARENT=00-{TRACE_ID}-{CALLER_SPAN}-01"),
            "TRACESTATE=vendor=opaque".into(),
        ],
        "the caller's context, unchanged"
    );
    // Strands (with OpenTelemetry and the OTLP exporter importable) sets nothing up.
    let r = strands_hello(&w).await;
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert!(tracing_setup(&r).is_none(), "{r:#}");
    assert!(!w.log_lines().iter().any(|l| l["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("tracing"))));
    drop_and_flush(w);
    assert_eq!(receiver.spans(None), Vec::<Value>::new());
}

fn require_strands() {
    let python =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("frameworks/strands/.venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-frameworks.sh strands",
        python.display()
    );
}

fn strands_worker(venv: &std::path::Path, warm: &str) -> WorkerBuilder {
    let frameworks = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("frameworks");
    let sessions =
        std::env::temp_dir().join(format!("trace-sessions-{}-{warm}", std::process::id()));
    WorkerBuilder::new()
        .env("AGENTDISPATCH_FRAMEWORKS_DIR", frameworks.to_str().unwrap())
        .env("AGENTDISPATCH_SESSION_DIR", sessions.to_str().unwrap())
        .env("AGENTDISPATCH_WARM", warm)
        .env("PYTHONPATH", &site_packages(venv))
}

/// The Strands example agent on "hello world", with the caller's trace headers.
async fn strands_hello(w: &Worker) -> Value {
    let body = json!({"framework": "strands", "input": {"instruction": "hello world"}});
    invoke(w, &body, &headers()).await
}

/// The runner's "tracing set up" event's payload.
fn tracing_setup(r: &Value) -> Option<Value> {
    events_of(r, "task.log")
        .into_iter()
        .find(|e| e["message"] == "tracing set up")
        .map(|e| e["payload"].clone())
}

async fn strands_nest_under_the_task_span(kind: Kind) {
    let Some(venv) = otel_venv() else { return };
    require_strands();
    let receiver = Receiver::start(&venv, 0).await;
    let warm = if kind == Kind::Warm {
        "strands"
    } else {
        "none"
    };
    let w = strands_worker(&venv, warm)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint())
        .env("OTEL_SERVICE_NAME", "trace-test")
        .env("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
        .start()
        .await;
    if kind == Kind::Warm {
        w.warm_ready("strands", 1).await;
        let ready = w
            .log_lines()
            .into_iter()
            .find(|l| l["message"] == "warm parent ready")
            .unwrap();
        assert_eq!(
            ready["threads"], 1,
            "the warm parent stayed one thread: {ready:#}"
        );
    }
    let r = strands_hello(&w).await;
    assert_eq!(r["output"], "Shouted: HELLO WORLD", "{r:#}");
    match kind {
        Kind::Warm => assert!(
            forked_from(&r).is_some(),
            "not forked warm under OpenTelemetry: {r:#}"
        ),
        Kind::Cold => assert!(forked_from(&r).is_none(), "{r:#}"),
    }
    let setup = tracing_setup(&r).unwrap_or_else(|| panic!("no tracing set-up event: {r:#}"));
    assert_eq!(setup["exporting"], "sdk", "{setup:#}");

    let agent = |s: &Value| {
        s["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("invoke_agent"))
    };
    receiver
        .wait_for(TRACE_ID, "Strands invoke_agent", agent)
        .await;
    let spans = receiver
        .wait_for(TRACE_ID, "invocation", |s| s["name"] == "POST /invocations")
        .await;
    let (_, task) = worker_spans(&spans, "agent.run strands", "/invocations", &r);
    assert_eq!(task["attributes"]["agentdispatch.framework"], "strands");
    assert_eq!(task["attributes"]["agentdispatch.warm"], kind == Kind::Warm);
    let invoke_agent = spans.iter().find(|s| agent(s)).unwrap();
    assert_eq!(
        invoke_agent["parentSpanId"], task["spanId"],
        "Strands' agent span under the task span: {spans:#?}"
    );
    assert_eq!(invoke_agent["resource"]["service.name"], "trace-test");
    assert_eq!(invoke_agent["scope"], "strands.telemetry.tracer");
    // The tool's span, deeper down, in the same trace and under the agent's.
    let tool = named(&spans, "execute_tool shout");
    let mut up = tool.clone();
    while up["spanId"] != invoke_agent["spanId"] {
        up = spans
            .iter()
            .find(|s| s["spanId"] == up["parentSpanId"])
            .unwrap_or_else(|| panic!("{tool:#} is not under {invoke_agent:#}"))
            .clone();
    }

    if kind == Kind::Warm {
        // Still warm for the next task: the set-up in the task did not reach the parent.
        let r = w
            .run(json!({"framework": "strands", "input": {"instruction": "hello again"}}))
            .await;
        assert!(forked_from(&r).is_some(), "{r:#}");
    }
}

#[tokio::test]
async fn strands_cold_spans_nest_under_the_workers_task_span_in_one_trace() {
    strands_nest_under_the_task_span(Kind::Cold).await;
}

#[tokio::test]
async fn strands_warm_spans_nest_under_the_workers_task_span_and_the_task_is_still_forked() {
    strands_nest_under_the_task_span(Kind::Warm).await;
}

#[tokio::test]
async fn an_endpoint_that_is_down_fails_no_task_and_is_said_once() {
    // A port nothing listens on: every export fails to connect.
    let port = free_port();
    let w = WorkerBuilder::new()
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            &format!("http://127.0.0.1:{port}"),
        )
        .start()
        .await;
    for _ in 0..3 {
        let r = invoke(&w, &cmd("true"), &headers()).await;
        assert_eq!(r["status"], "succeeded", "{r:#}");
    }
    let said = |w: &Worker| {
        w.log_lines()
            .into_iter()
            .filter(|l| {
                l["message"] == "cannot export spans; they are dropped until the endpoint answers"
            })
            .count()
    };
    let mut w = w;
    w.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(w.wait_exit(Duration::from_secs(30)), Some(0));
    assert_eq!(said(&w), 1, "{:#?}", w.log_lines());
}
