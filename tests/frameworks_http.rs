//! The six Python frameworks of `frameworks/` through the real binary over HTTP, offline:
//! steps streamed over SSE as they happen, cancel and deadline leaving no process behind, no
//! network or process start (a Python audit hook), and the failures of a frameworks directory
//! (missing or raising entrypoint, a runner killed by a signal, broken manifests) answered
//! clearly while the worker keeps serving. Needs `scripts/setup-frameworks.sh`; never skips.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// The step kinds a runner reports (`payload.step` of its `task.progress` events).
const STEPS: [&str; 4] = ["model_turn", "tool_call", "tool_result", "final_answer"];

/// The example agents' answer to "hello world".
const ANSWER: &str = "Shouted: HELLO WORLD";

/// Loaded through `PYTHONPATH` by every Python child of the worker: logs network look-ups and
/// connections and process starts to `$AGENTDISPATCH_AUDIT_LOG`, after a first line per
/// interpreter that proves the hook was active.
const AUDIT_SITECUSTOMIZE: &str = r##"
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
fn frameworks_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("frameworks")
        .canonicalize()
        .expect("frameworks/ exists")
}

/// Fails (never skips) when a framework's virtualenv is missing.
fn require_venv(name: &str) {
    let python = frameworks_dir().join(name).join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-frameworks.sh {name}",
        python.display()
    );
}

/// A task id no other test (or test process) uses: processes are found by it in `/proc`.
fn unique_id(what: &str) -> String {
    format!("fw-{what}-{}-{}", std::process::id(), clock_suffix())
}

fn clock_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 1_000_000_000_000
}

fn step_of(event: &Value) -> Option<&str> {
    (event["type"] == "task.progress")
        .then(|| event["payload"]["step"].as_str())
        .flatten()
}

/// Polls `task.status` until a `task.progress` event with `payload.step == step` shows while
/// the task is still running; returns every event seen.
async fn wait_for_step(w: &Worker, id: &str, step: &str, within: Duration) -> Vec<Value> {
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
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until no process carries the task's id; fails naming what is left.
async fn assert_no_process_left(id: &str, within: Duration) {
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
async fn assert_still_serving(w: &Worker) {
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
fn check_hello_world_stream(name: &str, started: Instant, msgs: &[SseMessage]) -> String {
    let dump = || {
        msgs.iter()
            .map(|m| m.data.to_string().chars().take(300).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let (last, events) = msgs.split_last().expect("at least one SSE message");
    let result = &last.data;
    assert_eq!(result["ok"], true, "{name}: {result:#}");
    assert_eq!(result["status"], "succeeded", "{name}");
    assert_eq!(result["output"], ANSWER, "{name}: {result:#}");
    // Every message before the last is an event, ids rising by one.
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
struct SseReader {
    body: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
}

impl SseReader {
    async fn open(w: &Worker, body: &Value) -> SseReader {
        let resp = w
            .client()
            .post(format!("{}/invocations", w.url))
            .header("accept", "text/event-stream")
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        SseReader {
            body: futures_util::StreamExt::boxed(resp.bytes_stream()),
            buf: String::new(),
        }
    }

    /// The next message's data, or None at the end of the stream.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some((_, data)) = common::sse::next_message(&mut self.buf) {
                return Some(serde_json::from_str(&data).unwrap());
            }
            let chunk = futures_util::StreamExt::next(&mut self.body).await?;
            self.buf
                .push_str(&String::from_utf8_lossy(&chunk.expect("SSE body")));
        }
    }
}

/// What a framework's test does besides the hello-world run, the cancel and the audit.
#[derive(Clone, Copy, Default)]
struct Also {
    /// A 1-second deadline on the slow run.
    deadline: bool,
    /// A slow run followed over SSE: the tool call shows on the open stream while the tool
    /// sleeps, a cancel from another request ends the stream with `cancelled`.
    sse_cancel: bool,
}

/// Everything about one framework, on one worker whose Python children carry the audit hook:
/// the streamed hello-world run, a cancel during the slow tool, what `also` asks, and then
/// the audit log.
async fn framework_end_to_end(name: &str, kind: Kind, also: Also) {
    require_venv(name);
    let warm = match kind {
        Kind::Cold => "none",
        Kind::Warm => name,
    };
    // Every task of this worker starts as `kind`.
    let check_kind = |what: &str, r: &Value| match kind {
        Kind::Warm => assert!(
            forked_from(r).is_some(),
            "{name} {what}: not forked warm: {r:#}"
        ),
        Kind::Cold => assert!(
            forked_from(r).is_none(),
            "{name} {what}: forked warm: {r:#}"
        ),
    };
    let audit = tempfile::tempdir().unwrap();
    std::fs::write(
        audit.path().join("sitecustomize.py"),
        AUDIT_SITECUSTOMIZE.trim_start(),
    )
    .unwrap();
    let log = audit.path().join("audit.log");
    let w = WorkerBuilder::new()
        .env(
            "AGENTDISPATCH_FRAMEWORKS_DIR",
            frameworks_dir().to_str().unwrap(),
        )
        .env("PYTHONPATH", audit.path().to_str().unwrap())
        .env("AGENTDISPATCH_AUDIT_LOG", log.to_str().unwrap())
        .env("AGENTDISPATCH_WARM", warm)
        .start()
        .await;
    if kind == Kind::Warm {
        w.warm_ready(name, 1).await;
    }
    let mut pythons = 0;

    // 1. Hello world over SSE: steps in order, live, then the example agent's answer.
    let id = unique_id(&format!("{name}-hello"));
    let started = Instant::now();
    let msgs = w
        .stream(&json!({"taskId":id,"framework":name,"input":{"instruction":"hello world"}}))
        .await;
    let timing = check_hello_world_stream(name, started, &msgs);
    check_kind("hello", &msgs.last().unwrap().data);
    eprintln!("{kind:?} {timing}");
    pythons += 1;
    assert_no_process_left(&id, Duration::from_secs(2)).await;

    // 2. Cancel while the slow tool sleeps: cancelled, TERM honoured, nothing left.
    let id = unique_id(&format!("{name}-cancel"));
    let r = w
        .run(json!({"taskId":id,"async":true,"framework":name,
                    "input":{"instruction":"please be slow"}}))
        .await;
    assert_eq!(r["status"], "running", "{r}");
    let seen = wait_for_step(&w, &id, "tool_call", Duration::from_secs(180)).await;
    pythons += 1;
    assert!(
        !seen.iter().any(|e| step_of(e) == Some("tool_result")),
        "{name}: the slow tool returned at once: {seen:#?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await; // the tool is asleep now
    assert!(
        !task_processes(&id).is_empty(),
        "{name}: no process carries the task id while it runs"
    );
    let asked = Instant::now();
    let r = w.run(json!({"taskType":"task.cancel","taskId":id})).await;
    let took = asked.elapsed();
    assert_eq!(r["status"], "cancelled", "{name}: {r:#}");
    check_kind("cancel", &r);
    assert_eq!(r["ok"], false);
    assert_eq!(r["errorCode"], "cancelled");
    assert_eq!(r["error"], "Task cancelled.");
    assert!(
        !events_of(&r, "task.progress")
            .iter()
            .any(|e| step_of(e) == Some("tool_result")),
        "{name}: tool_result after cancel"
    );
    assert!(
        events_of(&r, "task.log")
            .iter()
            .any(|e| e["message"] == "cancelled by SIGTERM"),
        "{name}: the runner did not report SIGTERM (killed only after the grace?): {r:#}"
    );
    assert!(
        took < Duration::from_secs(5),
        "{name}: cancel took {took:?}: SIGTERM not honoured within the kill grace"
    );
    assert_no_process_left(&id, Duration::from_secs(2)).await;
    eprintln!("{name}: cancel answered in {} ms", took.as_millis());
    let s = w.run(json!({"taskType":"task.status","taskId":id})).await;
    assert_eq!(s["status"], "cancelled");

    // 3. A slow run followed live over SSE and cancelled from another request.
    if also.sse_cancel {
        let id = unique_id(&format!("{name}-sse-cancel"));
        let mut sse = SseReader::open(
            &w,
            &json!({"taskId":id,"framework":name,"input":{"instruction":"please be slow"}}),
        )
        .await;
        let mut seen = Vec::new();
        let first_call = tokio::time::timeout(Duration::from_secs(180), async {
            while let Some(m) = sse.next().await {
                assert!(
                    m.get("ok").is_none(),
                    "{name}: ended before tool_call: {m:#}"
                );
                seen.push(m);
                if step_of(seen.last().unwrap()) == Some("tool_call") {
                    return;
                }
            }
            panic!("{name}: stream ended without tool_call: {seen:#?}");
        })
        .await;
        assert!(first_call.is_ok(), "{name}: no tool_call within 180 s");
        pythons += 1;
        assert_eq!(w.ping().await["status"], "HealthyBusy");
        let r = w.run(json!({"taskType":"task.cancel","taskId":id})).await;
        assert_eq!(r["status"], "cancelled", "{name}: {r:#}");
        let mut rest = Vec::new();
        while let Some(m) = sse.next().await {
            rest.push(m);
        }
        let last = rest.last().expect("the stream ends with the result");
        assert_eq!(last["status"], "cancelled", "{name}: {last:#}");
        check_kind("sse cancel", last);
        assert_eq!(last["errorCode"], "cancelled");
        assert!(
            !rest.iter().any(|m| step_of(m) == Some("tool_result")),
            "{name}: tool_result after cancel"
        );
        assert_no_process_left(&id, Duration::from_secs(2)).await;
    }

    // 4. A 1-second deadline on the slow run: timed out, nothing left.
    if also.deadline {
        let id = unique_id(&format!("{name}-deadline"));
        let asked = Instant::now();
        let r = w
            .run(json!({"taskId":id,"framework":name,
                        "input":{"instruction":"please be slow","timeoutSeconds":1}}))
            .await;
        let took = asked.elapsed();
        assert_eq!(r["status"], "timed_out", "{name}: {r:#}");
        check_kind("deadline", &r);
        assert_eq!(r["ok"], false);
        assert_eq!(r["errorCode"], "timed_out");
        assert_eq!(r["error"], "Command timed out after 1000ms.");
        assert!(
            took < Duration::from_secs(7),
            "{name}: deadline took {took:?}"
        );
        assert_no_process_left(&id, Duration::from_secs(2)).await;
        let reached = events_of(&r, "task.progress")
            .iter()
            .any(|e| step_of(e) == Some("tool_call"));
        eprintln!(
            "{name}: 1 s deadline answered after {} ms (tool reached: {reached})",
            took.as_millis()
        );
    }

    // 5. Offline: the hook ran in every interpreter (warm: the parent, whose forks inherit it)
    // and saw no network or process start.
    if kind == Kind::Warm {
        pythons = 1;
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let loaded = text
        .lines()
        .filter(|l| l.starts_with("# audit hook loaded"))
        .count();
    assert!(
        loaded >= pythons,
        "{name}: audit hook loaded {loaded} times for {pythons} runs:\n{text}"
    );
    let calls: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(
        calls.is_empty(),
        "{name}: network or process calls during the runs:\n{}",
        calls.join("\n")
    );
    assert_still_serving(&w).await;
}

#[tokio::test]
async fn langchain_cold_streams_steps_cancels_cleanly_and_stays_offline() {
    framework_end_to_end("langchain", Kind::Cold, Also::default()).await;
}

#[tokio::test]
async fn langchain_warm_streams_steps_cancels_cleanly_and_stays_offline() {
    framework_end_to_end("langchain", Kind::Warm, Also::default()).await;
}

#[tokio::test]
async fn langgraph_cold_streams_steps_cancels_cleanly_times_out_and_stays_offline() {
    framework_end_to_end(
        "langgraph",
        Kind::Cold,
        Also {
            deadline: true,
            sse_cancel: false,
        },
    )
    .await;
}

#[tokio::test]
async fn langgraph_warm_streams_steps_cancels_cleanly_times_out_and_stays_offline() {
    framework_end_to_end(
        "langgraph",
        Kind::Warm,
        Also {
            deadline: true,
            sse_cancel: false,
        },
    )
    .await;
}

#[tokio::test]
async fn crewai_cold_streams_steps_cancels_cleanly_and_stays_offline() {
    framework_end_to_end("crewai", Kind::Cold, Also::default()).await;
}

#[tokio::test]
async fn crewai_warm_streams_steps_cancels_cleanly_and_stays_offline() {
    framework_end_to_end("crewai", Kind::Warm, Also::default()).await;
}

#[tokio::test]
async fn strands_cold_streams_steps_cancels_cleanly_also_over_sse_and_stays_offline() {
    framework_end_to_end(
        "strands",
        Kind::Cold,
        Also {
            deadline: false,
            sse_cancel: true,
        },
    )
    .await;
}

#[tokio::test]
async fn strands_warm_streams_steps_cancels_cleanly_also_over_sse_and_stays_offline() {
    framework_end_to_end(
        "strands",
        Kind::Warm,
        Also {
            deadline: false,
            sse_cancel: true,
        },
    )
    .await;
}

#[tokio::test]
async fn openai_agents_cold_streams_steps_cancels_cleanly_and_stays_offline() {
    framework_end_to_end("openai-agents", Kind::Cold, Also::default()).await;
}

#[tokio::test]
async fn openai_agents_warm_streams_steps_cancels_cleanly_and_stays_offline() {
    framework_end_to_end("openai-agents", Kind::Warm, Also::default()).await;
}

#[tokio::test]
async fn pydantic_ai_cold_streams_steps_cancels_cleanly_also_over_sse_and_stays_offline() {
    framework_end_to_end(
        "pydantic-ai",
        Kind::Cold,
        Also {
            deadline: false,
            sse_cancel: true,
        },
    )
    .await;
}

#[tokio::test]
async fn pydantic_ai_warm_streams_steps_cancels_cleanly_also_over_sse_and_stays_offline() {
    framework_end_to_end(
        "pydantic-ai",
        Kind::Warm,
        Also {
            deadline: false,
            sse_cancel: true,
        },
    )
    .await;
}

/// The last line of an error (the runner's one clear line).
fn last_line(r: &Value) -> &str {
    r["error"]
        .as_str()
        .unwrap_or("")
        .lines()
        .last()
        .unwrap_or("")
}

#[tokio::test]
async fn a_missing_or_raising_entrypoint_fails_clearly_and_the_worker_keeps_serving() {
    require_venv("langgraph");
    let app = tempfile::tempdir().unwrap();
    std::fs::write(
        app.path().join("broken_agent.py"),
        "raise RuntimeError(\"agent construction failed: 42\")\n",
    )
    .unwrap();
    let w = WorkerBuilder::new()
        .env(
            "AGENTDISPATCH_FRAMEWORKS_DIR",
            frameworks_dir().to_str().unwrap(),
        )
        .env("AGENTDISPATCH_APP_DIR", app.path().to_str().unwrap())
        .start()
        .await;
    let run = |entrypoint: &str| json!({"framework":"langgraph","input":{"instruction":"hello world","entrypoint":entrypoint}});
    let (missing, raising) =
        tokio::join!(w.run(run("nosuch:agent")), w.run(run("broken_agent:agent")));

    assert_eq!(missing["ok"], false, "{missing:#}");
    assert_eq!(missing["status"], "failed");
    assert_eq!(missing["errorCode"], "exit_nonzero");
    assert_eq!(missing["exitCode"], 1);
    let line = last_line(&missing);
    assert!(
        line.contains("entrypoint module 'nosuch' not found")
            && line.contains("AGENTDISPATCH_APP_DIR="),
        "{missing:#}"
    );
    assert!(line.starts_with("langgraph runner failed: EntrypointError"));

    assert_eq!(raising["ok"], false, "{raising:#}");
    assert_eq!(raising["errorCode"], "exit_nonzero");
    let line = last_line(&raising);
    assert!(
        line.contains("'broken_agent'")
            && line.contains("RuntimeError: agent construction failed: 42"),
        "{raising:#}"
    );
    assert_still_serving(&w).await;
}

/// A temporary frameworks directory: a runner killed by a signal, a manifest with bad JSON, one
/// without a command, one naming a missing program, one overridden from the environment.
fn broken_frameworks() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let folder = |name: &str, manifest: &str| {
        let f = dir.path().join(name);
        std::fs::create_dir(&f).unwrap();
        std::fs::write(f.join("framework.json"), manifest).unwrap();
        f
    };
    let killed = folder(
        "killed",
        r#"{"name":"killed","description":"dies by SIGKILL","command":["./run.sh"]}"#,
    );
    script(
        &killed,
        "run.sh",
        "#!/bin/sh\n\
         echo '{\"type\":\"task.progress\",\"message\":\"about to die\"}'\n\
         echo 'runner: giving up' >&2\n\
         kill -9 $$\n",
    );
    folder("badjson", "{\"name\": \"badjson\", \"command\": [oops");
    folder("nocommand", r#"{"name":"nocommand"}"#);
    folder("novenv", r#"{"command":[".venv/bin/python","runner.py"]}"#);
    folder("shadowed", r#"{"command":["./not-here"]}"#);
    // Folders starting with `_` or `.` are not frameworks.
    let shared = dir.path().join("_shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("framework.json"), "{oops").unwrap();
    dir
}

#[tokio::test]
async fn broken_frameworks_are_answered_clearly_and_the_worker_keeps_serving() {
    let dir = broken_frameworks();
    let root = dir.path().canonicalize().unwrap();
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_FRAMEWORKS_DIR", root.to_str().unwrap())
        .start()
        .await;
    let run = |fw: &str| json!({"framework":fw,"input":{"instruction":"hi"}});

    // A runner killed by a signal: the signal in words, then its last stderr line.
    let r = w.run(run("killed")).await;
    assert_eq!(r["ok"], false, "{r:#}");
    assert_eq!(r["status"], "failed");
    assert_eq!(r["errorCode"], "killed");
    assert_eq!(
        r["error"],
        "Framework command was killed by signal SIGKILL.\nrunner: giving up"
    );
    assert!(events_of(&r, "task.progress")
        .iter()
        .any(|e| e["message"] == "about to die"));
    assert_still_serving(&w).await;

    // A manifest naming a missing program: the program and the OS error in words.
    let r = w.run(run("novenv")).await;
    assert_eq!(r["ok"], false, "{r:#}");
    assert_eq!(r["errorCode"], "spawn_failed");
    let err = r["error"].as_str().unwrap();
    let program = root.join("novenv/.venv/bin/python");
    assert!(
        err.starts_with(&format!("Cannot start {}", program.display()))
            && err.contains("No such file or directory")
            && err.contains("scripts/setup-frameworks.sh"),
        "{err}"
    );
    assert_still_serving(&w).await;

    // Broken manifests: skipped (unknown framework), each a warning naming its file.
    for name in ["badjson", "nocommand", "_shared"] {
        let r = w.run(run(name)).await;
        assert_eq!(r["ok"], false, "{r:#}");
        assert_eq!(r["errorCode"], "unknown_framework");
        assert_eq!(r["error"], format!("Unsupported agent framework: {name}"));
    }
    let warnings: Vec<String> = w
        .log_lines()
        .iter()
        .filter(|l| l["level"] == "WARN")
        .filter_map(|l| l["message"].as_str().map(str::to_string))
        .collect();
    let warned = |file: &str, words: &str| {
        let path = root.join(file);
        assert!(
            warnings
                .iter()
                .any(|m| m.contains(&*path.to_string_lossy()) && m.contains(words)),
            "no warning naming {} with {words:?}: {warnings:#?}",
            path.display()
        );
    };
    warned("badjson/framework.json", "not valid JSON");
    warned("nocommand/framework.json", "has no \"command\"");
    assert!(
        !warnings.iter().any(|m| m.contains("_shared")),
        "{warnings:#?}"
    );
    assert_still_serving(&w).await;
}

/// Runs `agentdispatch-worker frameworks` with only the given variables set.
fn list_frameworks(vars: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = worker_command();
    cmd.arg("frameworks")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run agentdispatch-worker frameworks");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The entry of `name` in the listing: its first line and the lines indented under it.
fn entry<'a>(listing: &'a str, name: &str) -> Vec<&'a str> {
    let mut lines = listing
        .lines()
        .skip_while(|l| l.split_whitespace().next() != Some(name) || l.starts_with(' '));
    let mut out: Vec<&str> = lines.next().into_iter().collect();
    out.extend(lines.take_while(|l| l.starts_with(' ')));
    out
}

#[tokio::test]
async fn the_frameworks_command_lists_each_framework_with_its_source() {
    // The shipped frameworks, with their virtualenvs in place.
    let dir = frameworks_dir();
    let (ok, listing, stderr) =
        list_frameworks(&[("AGENTDISPATCH_FRAMEWORKS_DIR", dir.to_str().unwrap())]);
    assert!(ok, "{stderr}");
    let echo = entry(&listing, "echo");
    assert!(
        echo.len() >= 2 && echo[1].trim() == "from built-in",
        "{listing}"
    );
    for name in [
        "langchain",
        "langgraph",
        "crewai",
        "strands",
        "openai-agents",
        "pydantic-ai",
    ] {
        require_venv(name);
        let e = entry(&listing, name);
        let folder = dir.join(name);
        assert!(e.len() >= 2, "{name} missing from the listing:\n{listing}");
        assert!(
            e[0].ends_with(&format!(
                "{} runner.py",
                folder.join(".venv/bin/python").display()
            )),
            "{name}: {e:?}"
        );
        assert_eq!(
            e[1].trim(),
            format!("from {}", folder.join("framework.json").display()),
            "{name}"
        );
        assert!(
            e.len() >= 3 && !e[2].trim().is_empty(),
            "{name}: no description"
        );
    }
    assert!(!listing.contains("[program not found]"), "{listing}");
    assert!(!listing.contains("warning:"), "{listing}");

    // A directory with broken ones, and an environment definition overriding a folder.
    let broken = broken_frameworks();
    let root = broken.path().canonicalize().unwrap();
    let (ok, listing, stderr) = list_frameworks(&[
        ("AGENTDISPATCH_FRAMEWORKS_DIR", root.to_str().unwrap()),
        ("AGENTDISPATCH_FRAMEWORK_COMMAND_SHADOWED", "true"),
    ]);
    assert!(ok, "a broken manifest must not fail the listing: {stderr}");
    let killed = entry(&listing, "killed");
    assert_eq!(
        killed[0].split_whitespace().collect::<Vec<_>>(),
        ["killed", root.join("killed/./run.sh").to_str().unwrap()],
        "{listing}"
    );
    assert_eq!(
        killed[1].trim(),
        format!("from {}", root.join("killed/framework.json").display())
    );
    let novenv = entry(&listing, "novenv");
    assert!(
        novenv[0].ends_with("runner.py  [program not found]"),
        "{listing}"
    );
    let shadowed = entry(&listing, "shadowed");
    assert!(
        !shadowed[0].contains("not found") && shadowed[0].contains("true"),
        "{listing}"
    );
    assert_eq!(
        shadowed[1].trim(),
        "from env AGENTDISPATCH_FRAMEWORK_COMMAND_SHADOWED"
    );
    for name in ["badjson", "nocommand", "_shared"] {
        assert!(
            entry(&listing, name).is_empty(),
            "{name} listed:\n{listing}"
        );
    }
    let warning = |file: &str| {
        let path = root.join(file);
        listing
            .lines()
            .any(|l| l.starts_with("warning: ") && l.contains(&*path.to_string_lossy()))
    };
    assert!(warning("badjson/framework.json"), "{listing}");
    assert!(warning("nocommand/framework.json"), "{listing}");
}

/// The files of README.md's "Bring your own framework" section: each fenced block whose info
/// string names a path under `frameworks/`, as (path inside the frameworks dir, text).
fn readme_framework_files() -> Vec<(String, String)> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("\n## Bring your own framework\n")
        .nth(1)
        .expect("README.md has a \"Bring your own framework\" section");
    let section = section.split("\n## ").next().unwrap();
    let mut files = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        let Some(info) = line.strip_prefix("```") else {
            continue;
        };
        let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
        if let Some(path) = info
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.strip_prefix("frameworks/"))
        {
            files.push((path.to_string(), body.join("\n") + "\n"));
        }
    }
    files
}

#[tokio::test]
async fn the_readme_examples_of_other_languages_run_as_frameworks() {
    let files = readme_framework_files();
    let names: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        names,
        [
            "shout-node/framework.json",
            "shout-node/run.js",
            "hello-sh/framework.json",
            "hello-sh/run.sh"
        ]
    );
    assert!(
        agentdispatch_worker::frameworks::program_exists("node"),
        "node is not on PATH: the README's Node.js example needs it (apt-get install nodejs)"
    );
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in &files {
        let (folder, file) = path.split_once('/').unwrap();
        std::fs::create_dir_all(dir.path().join(folder)).unwrap();
        if text.starts_with("#!") {
            script(&dir.path().join(folder), file, text);
        } else {
            std::fs::write(dir.path().join(path), text).unwrap();
        }
    }
    let root = dir.path().to_str().unwrap();

    let (ok, listing, stderr) = list_frameworks(&[("AGENTDISPATCH_FRAMEWORKS_DIR", root)]);
    assert!(ok, "{stderr}");
    assert!(
        !listing.contains("not found") && !listing.contains("warning"),
        "{listing}"
    );
    for name in ["shout-node", "hello-sh"] {
        assert_eq!(entry(&listing, name).len(), 4, "{listing}");
    }

    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_FRAMEWORKS_DIR", root)
        .start()
        .await;
    let started = Instant::now();
    let msgs = w
        .stream(&json!({"framework":"shout-node","input":{"instruction":"hello world"}}))
        .await;
    check_hello_world_stream("shout-node", started, &msgs);
    let result = &msgs.last().unwrap().data;
    assert_eq!(
        result["result"],
        json!({"framework": "shout-node", "length": 11})
    );

    let id = unique_id("hello-sh");
    let r = w
        .run(json!({"taskId":id,"framework":"hello-sh","input":{"instruction":"hi"}}))
        .await;
    assert_eq!(r["ok"], true, "{r:#}");
    assert_eq!(r["output"], format!("hello from sh, task {id}"));
    let steps: Vec<&str> = events_of(&r, "task.progress")
        .iter()
        .filter_map(|e| step_of(e))
        .collect();
    assert_eq!(steps, ["model_turn"]);
    assert!(events_of(&r, "task.log")
        .iter()
        .any(|e| e["payload"]["stream"] == "stderr"
            && e["message"].as_str().unwrap().starts_with("envelope: {")));
    let artifact = r["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["uri"].as_str().unwrap().ends_with("/envelope.json"))
        .unwrap_or_else(|| panic!("envelope.json not listed: {r:#}"));
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(artifact["uri"].as_str().unwrap()).unwrap())
            .unwrap();
    assert_eq!(written["instruction"], "hi");
    assert_eq!(written["taskId"], id.as_str());

    // The command line's `run`, as the README shows it.
    let out = worker_command()
        .args([
            "run",
            "--framework",
            "shout-node",
            "--instruction",
            "hello world",
        ])
        .env("AGENTDISPATCH_FRAMEWORKS_DIR", root)
        .env("AGENTDISPATCH_ARTIFACT_DIR", dir.path().join("artifacts"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("tool_call shout"), "{stdout}");
    assert!(stdout.contains("Shouted: HELLO WORLD"), "{stdout}");
}

/// The file (under the session folder) where `name`'s runner keeps a conversation.
fn session_file(name: &str, key: &str) -> PathBuf {
    PathBuf::from(match name {
        "langgraph" => "langgraph.sqlite".to_string(),
        "langchain" => "langchain.sqlite".to_string(),
        "openai-agents" => "openai-agents.sqlite".to_string(),
        "pydantic-ai" => "pydantic-ai.json".to_string(),
        "crewai" => "crewai-conversation.json".to_string(),
        "strands" => format!("session_{key}/session.json"),
        other => panic!("no session file known for {other}"),
    })
}

/// A conversation with `name`'s example agent through the real binary (warm): turn 2 sees turn
/// 1, another session sees nothing, the session holds across a worker restart, two concurrent
/// turns run one after the other in order, and a corrupt session file fails naming the file.
async fn conversation(name: &str) {
    require_venv(name);
    let sessions = tempfile::tempdir().unwrap();
    let start = || {
        WorkerBuilder::new()
            .env(
                "AGENTDISPATCH_FRAMEWORKS_DIR",
                frameworks_dir().to_str().unwrap(),
            )
            .env(
                "AGENTDISPATCH_SESSION_DIR",
                sessions.path().to_str().unwrap(),
            )
            .env("AGENTDISPATCH_WARM", name)
            .start()
    };
    let say = |session: &str, id: String| {
        json!({"taskId": id, "framework": name, "sessionId": session,
               "input": {"instruction": "hello world"}})
    };
    let answer = |earlier: usize| match earlier {
        0 => ANSWER.to_string(),
        n => format!("{ANSWER} (earlier turns: {n})"),
    };
    let a = format!("conv-{name}-{}", std::process::id());
    {
        let w = start().await;
        w.warm_ready(name, 1).await;
        for earlier in 0..2 {
            let r = w.run(say(&a, unique_id(&format!("{name}-turn")))).await;
            assert_eq!(
                r["output"],
                answer(earlier),
                "{name} turn {}: {r:#}",
                earlier + 1
            );
        }
        let r = w
            .run(say("someone-else", unique_id(&format!("{name}-other"))))
            .await;
        assert_eq!(r["output"], ANSWER, "{name}: another session: {r:#}");
    }
    // A new worker (the microVM resumed): the conversation is on disk.
    let w = start().await;
    w.warm_ready(name, 1).await;
    let r = w
        .run(say(&a, unique_id(&format!("{name}-after-restart"))))
        .await;
    assert_eq!(r["output"], answer(2), "{name} after a restart: {r:#}");
    // Two at once in one session: one after the other, in the order they came.
    let ids = [
        unique_id(&format!("{name}-c1")),
        unique_id(&format!("{name}-c2")),
    ];
    for id in &ids {
        let mut body = say(&a, id.clone());
        body["async"] = json!(true);
        assert_eq!(w.run(body).await["status"], "running");
    }
    for (i, id) in ids.iter().enumerate() {
        w.wait_done(id).await;
        let r = w.run(json!({"taskType":"task.status","taskId":id})).await;
        assert_eq!(
            r["output"],
            answer(3 + i),
            "{name} concurrent turn {i}: {r:#}"
        );
    }
    // A corrupt session file: a clear error naming it, and the worker serves on.
    let broken = format!("broken-{name}");
    let file = sessions
        .path()
        .join(&broken)
        .join(session_file(name, &broken));
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "this is not what the framework wrote").unwrap();
    let r = w
        .run(say(&broken, unique_id(&format!("{name}-broken"))))
        .await;
    assert_eq!(r["ok"], false, "{name}: {r:#}");
    let error = r["error"].as_str().unwrap();
    assert!(
        error.contains(&broken) && error.contains("session"),
        "{name}: the error does not name the session file: {error}"
    );
    assert_still_serving(&w).await;
}

#[tokio::test]
async fn langgraph_keeps_a_conversation_per_session() {
    conversation("langgraph").await;
}

#[tokio::test]
async fn langchain_keeps_a_conversation_per_session() {
    conversation("langchain").await;
}

#[tokio::test]
async fn strands_keeps_a_conversation_per_session() {
    conversation("strands").await;
}

#[tokio::test]
async fn openai_agents_keeps_a_conversation_per_session() {
    conversation("openai-agents").await;
}

#[tokio::test]
async fn pydantic_ai_keeps_a_conversation_per_session() {
    conversation("pydantic-ai").await;
}

#[tokio::test]
async fn crewai_keeps_a_conversation_per_session() {
    conversation("crewai").await;
}
