//! The six Python frameworks of `frameworks/` through the real binary over HTTP, offline:
//! the answer's text (live deltas) and the steps streamed over SSE as they happen, cancel and deadline leaving no process behind, no
//! network or process start (a Python audit hook), and the failures of a frameworks directory
//! (missing or raising entrypoint, a runner killed by a signal, broken manifests) answered
//! clearly while the worker keeps serving. Needs `scripts/setup-frameworks.sh`; never skips.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

// The concerns, one file each under tests/frameworks_http/ (the per-framework tests keep the
// framework's name first, as scripts/test.sh's `--skip <framework>_` filters expect).
#[path = "frameworks_http/end_to_end.rs"]
mod end_to_end;
#[path = "frameworks_http/entrypoints.rs"]
mod entrypoints;
#[path = "frameworks_http/failures.rs"]
mod failures;
#[path = "frameworks_http/init.rs"]
mod init;
#[path = "frameworks_http/interrupts.rs"]
mod interrupts;
#[path = "frameworks_http/interrupts_each.rs"]
mod interrupts_each;
#[path = "frameworks_http/interrupts_pydantic_ai.rs"]
mod interrupts_pydantic_ai;
#[path = "frameworks_http/listing.rs"]
mod listing;
#[path = "frameworks_http/live_text.rs"]
mod live_text;
#[path = "frameworks_http/own_agent.rs"]
mod own_agent;
#[path = "frameworks_http/readme_examples.rs"]
mod readme_examples;
#[path = "frameworks_http/sessions.rs"]
mod sessions;
#[path = "frameworks_http/stalled_model.rs"]
mod stalled_model;

/// The step kinds a runner reports (`payload.step` of its `task.progress` events).
pub(crate) const STEPS: [&str; 4] = ["model_turn", "tool_call", "tool_result", "final_answer"];

/// The example agents' answer to "hello world".
pub(crate) const ANSWER: &str = "Shouted: HELLO WORLD";

/// Loaded through `PYTHONPATH` by every Python child of the worker: logs network look-ups and
/// connections and process starts to `$AGENTDISPATCH_AUDIT_LOG`, after a first line per
/// interpreter that proves the hook was active.
pub(crate) const AUDIT_SITECUSTOMIZE: &str = r##"
import os, sys
_log = os.environ.get("AGENTDISPATCH_AUDIT_LOG")
_watched = {"socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr", "socket.connect",
            "subprocess.Popen", "os.system", "os.posix_spawn", "os.exec", "os.spawn"}
if _log:
    with open(_log, "a") as f:
        f.write(f"# audit hook loaded in {os.getpid()}\n")
    def _hook(event, args):
        if event in _watched:
            with open(_log, "a") as f:
                f.write(f"{os.getpid()} {event} {args!r:.300}\n")
    sys.addaudithook(_hook)
"##;

/// The repository's `frameworks/` directory.
pub(crate) fn frameworks_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("frameworks")
        .canonicalize()
        .expect("frameworks/ exists")
}

/// Fails (never skips) when a framework's virtualenv is missing.
pub(crate) fn require_venv(name: &str) {
    let python = frameworks_dir().join(name).join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-frameworks.sh {name}",
        python.display()
    );
}

/// A worker builder on the repository's frameworks with `app` as `AGENTDISPATCH_APP_DIR` and
/// `allowlist` as `AGENTDISPATCH_ENTRYPOINT_ALLOWLIST`: a payload may name the user's code there.
pub(crate) fn with_app(app: &Path, allowlist: &str) -> WorkerBuilder {
    WorkerBuilder::new()
        .env(
            "AGENTDISPATCH_FRAMEWORKS_DIR",
            frameworks_dir().to_str().unwrap(),
        )
        .env("AGENTDISPATCH_APP_DIR", app.to_str().unwrap())
        .env("AGENTDISPATCH_ENTRYPOINT_ALLOWLIST", allowlist)
}

/// A task id no other test (or test process) uses: processes are found by it in `/proc`.
pub(crate) fn unique_id(what: &str) -> String {
    format!("fw-{what}-{}-{}", std::process::id(), clock_suffix())
}

pub(crate) fn clock_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 1_000_000_000_000
}

pub(crate) fn step_of(event: &Value) -> Option<&str> {
    (event["type"] == "task.progress")
        .then(|| event["payload"]["step"].as_str())
        .flatten()
}

/// Polls `task.status` until a `task.progress` event with `payload.step == step` shows while
/// the task is still running; returns every event seen.
pub(crate) async fn wait_for_step(
    w: &Worker,
    id: &str,
    step: &str,
    within: Duration,
) -> Vec<Value> {
    let started = Instant::now();
    let mut seen: Vec<Value> = Vec::new();
    let mut after = 0;
    loop {
        let s = w
            .run(json!({"taskType":"task.status","taskId":id,"afterSeq":after}))
            .await;
        for e in s["events"].as_array().expect("events") {
            after = after.max(e["seq"].as_u64().unwrap());
            seen.push(e.clone());
        }
        assert_eq!(
            s["status"], "running",
            "task {id} ended before a {step} event: {s:#}"
        );
        if seen.iter().any(|e| step_of(e) == Some(step)) {
            return seen;
        }
        assert!(
            started.elapsed() < within,
            "no {step} event within {within:?}; events so far: {seen:#?}"
        );
        // The poll interval of this bounded wait (an HTTP poll, so not `eventually`).
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until no process carries the task's id; fails naming what is left.
pub(crate) async fn assert_no_process_left(id: &str, within: Duration) {
    let gone = eventually(within, || task_processes(id).is_empty()).await;
    let left: Vec<String> = task_processes(id)
        .into_iter()
        .map(|p| {
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            format!("{p}: {}", String::from_utf8_lossy(&cmd).replace('\0', " "))
        })
        .collect();
    assert!(gone, "processes of task {id} left behind: {left:?}");
}

/// The worker still answers `/ping` and runs the built-in echo.
pub(crate) async fn assert_still_serving(w: &Worker) {
    let ping = w.ping().await;
    assert!(
        ping["status"] == "Healthy" || ping["status"] == "HealthyBusy",
        "{ping}"
    );
    let r = w.run(json!({"prompt":"still serving"})).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["output"], "Accepted instruction: still serving");
}

/// Checks the streamed hello-world run; returns (first step, tool_call, final) arrival times
/// relative to the request for the log.
pub(crate) fn check_hello_world_stream(
    name: &str,
    started: Instant,
    msgs: &[SseMessage],
) -> String {
    let dump = || {
        msgs.iter()
            .map(|m| m.data.to_string().chars().take(300).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let (last, before) = msgs.split_last().expect("at least one SSE message");
    let result = &last.data;
    assert_eq!(result["ok"], true, "{name}: {result:#}");
    assert_eq!(result["status"], "succeeded", "{name}");
    assert_eq!(result["output"], ANSWER, "{name}: {result:#}");
    // Live text (SPEC §4.1) is not of the record: no id, no seq; the events are the rest.
    let (deltas, events): (Vec<&SseMessage>, Vec<&SseMessage>) =
        before.iter().partition(|m| m.data["type"] == "task.delta");
    for d in &deltas {
        assert!(
            d.id.is_none() && d.data.get("seq").is_none(),
            "{name}: a delta with an id or a seq:\n{}",
            dump()
        );
    }
    // Every other message before the last is an event, ids rising by one.
    for (i, m) in events.iter().enumerate() {
        assert!(
            m.data["type"].is_string() && m.data["type"] != "task.result",
            "{name}: message {i} is not an event before the result:\n{}",
            dump()
        );
        assert_eq!(m.id, Some(i as u64 + 1), "{name}: SSE ids\n{}", dump());
        assert_eq!(m.data["seq"], i as u64 + 1, "{name}");
    }
    let steps: Vec<(usize, &str)> = events
        .iter()
        .enumerate()
        .filter_map(|(i, m)| step_of(&m.data).map(|s| (i, s)))
        .collect();
    for (_, s) in &steps {
        assert!(STEPS.contains(s), "{name}: unknown step {s}\n{}", dump());
    }
    let first = |kind: &str| {
        steps
            .iter()
            .find(|(_, s)| *s == kind)
            .map(|(i, _)| *i)
            .unwrap_or_else(|| panic!("{name}: no {kind} progress event:\n{}", dump()))
    };
    let (call_i, out_i) = (first("tool_call"), first("tool_result"));
    assert!(
        call_i < out_i,
        "{name}: tool_call after tool_result:\n{}",
        dump()
    );
    let call = &events[call_i].data["payload"];
    assert_eq!(call["tool"], "shout", "{name}: {call}");
    assert_eq!(
        call["args"],
        json!({"text": "hello world"}),
        "{name}: {call}"
    );
    let out = &events[out_i].data["payload"];
    assert_eq!(out["tool"], "shout", "{name}: {out}");
    assert!(
        out["result"].as_str().unwrap_or("").contains("HELLO WORLD"),
        "{name}: {out}"
    );
    if let Some(&(fa_i, _)) = steps.iter().rev().find(|(_, s)| *s == "final_answer") {
        assert!(out_i < fa_i, "{name}: final_answer before tool_result");
        assert_eq!(events[fa_i].data["payload"]["text"], ANSWER, "{name}");
    }
    // Live: the steps reached the client before the end of the run, not with the result.
    let first_step = &events[steps[0].0];
    assert!(
        events[call_i].at < last.at && first_step.at < last.at,
        "{name}: step events arrived with the result, not as they happened"
    );
    // The result carries the same events, in order.
    let inner: Vec<u64> = result["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["seq"].as_u64())
        .collect();
    let streamed: Vec<u64> = events.iter().map(|m| m.id.unwrap()).collect();
    assert!(
        inner.starts_with(&streamed),
        "{name}: result events {inner:?} vs streamed {streamed:?}"
    );
    let ms = |t: Instant| t.duration_since(started).as_millis();
    format!(
        "{name}: first step {} ms, tool_call {} ms, result {} ms after the request",
        ms(first_step.at),
        ms(events[call_i].at),
        ms(last.at)
    )
}

/// Incremental reader of an SSE answer: one `data:` JSON at a time, as it arrives.
pub(crate) struct SseReader {
    pub(crate) body: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    pub(crate) buf: String,
}

impl SseReader {
    pub(crate) async fn open(w: &Worker, body: &Value) -> SseReader {
        let resp = w
            .client()
            .post(format!("{}/invocations", w.url))
            .header("accept", "text/event-stream")
            .json(body)
            .send()
            .await
            .unwrap();
        SseReader::of(resp)
    }

    /// `GET /tasks/{id}/events`, from the start or after `Last-Event-ID: after`.
    pub(crate) async fn subscribe(w: &Worker, id: &str, after: Option<u64>) -> SseReader {
        let mut req = w.client().get(format!("{}/tasks/{id}/events", w.url));
        if let Some(n) = after {
            req = req.header("last-event-id", n.to_string());
        }
        SseReader::of(req.send().await.unwrap())
    }

    /// Reads an SSE answer.
    fn of(resp: reqwest::Response) -> SseReader {
        assert_eq!(resp.status(), 200);
        SseReader {
            body: futures_util::StreamExt::boxed(resp.bytes_stream()),
            buf: String::new(),
        }
    }

    /// The next message's data, or None at the end of the stream.
    pub(crate) async fn next(&mut self) -> Option<Value> {
        self.next_message().await.map(|m| m.data)
    }

    /// The next message with its `id:` and arrival time, or None at the end of the stream.
    pub(crate) async fn next_message(&mut self) -> Option<SseMessage> {
        loop {
            if let Some((id, data)) = common::sse::next_message(&mut self.buf) {
                return Some(SseMessage {
                    id,
                    data: serde_json::from_str(&data).unwrap(),
                    at: Instant::now(),
                });
            }
            let chunk = futures_util::StreamExt::next(&mut self.body).await?;
            self.buf
                .push_str(&String::from_utf8_lossy(&chunk.expect("SSE body")));
        }
    }
}
