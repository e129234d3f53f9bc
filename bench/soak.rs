//! The soak test: `cargo bench --bench soak [-- --tasks N]` (or `scripts/soak.sh`).
//!
//! Starts the real release worker on a free loopback port with a temp artifact directory and a
//! short task retention, then sends it `SOAK_TASKS` (10,000) tasks from `SOAK_CLIENTS` (8)
//! concurrent clients, in a fixed mix: echo `agent.run`, `command.run echo <word>`, commands
//! exiting non-zero, a `sh` framework child speaking the NDJSON protocol, a few real Python
//! framework runs (pydantic-ai), timeouts, cancels and server-sent event streams. Every answer is
//! checked, every task folder must be complete, and `task.status` of tasks already dropped from
//! memory must answer from disk.
//!
//! The worker's RSS, open fds, threads and zombie children are sampled after the first 500 tasks
//! (the baseline) and at the end, each time once every task has left memory and a settle
//! (`SOAK_SETTLE_SECONDS`, 3) has passed. PASS requires RSS within 10% of the baseline, fds and
//! threads back to the baseline (+1), no zombie and no wrong answer; the exit status is non-zero
//! otherwise, and the temp directory (worker log, task folders) is kept for a look.
//!
//! Options: `--tasks N`, `--clients N`, `--settle SECONDS` (or the variables above).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

#[path = "../tests/common/procfs.rs"]
mod procfs;
#[path = "../tests/common/sse.rs"]
mod sse;

const BIN: &str = env!("CARGO_BIN_EXE_agentdispatch-worker");
const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// `AGENTDISPATCH_TASK_RETENTION_SECONDS`: short, so that memory is measured in a steady state.
const RETENTION_SECONDS: u64 = 5;
/// `AGENTDISPATCH_MAX_CONCURRENT_TASKS`.
const MAX_CONCURRENT: usize = 16;
/// Tasks before the baseline sample.
const BASELINE_TASKS: usize = 500;
/// RSS growth allowed between the baseline and the end.
const RSS_SLACK: f64 = 0.10;
/// Sockets allowed above the baseline fd count (a keep-alive connection).
const FD_SLACK: usize = 1;
/// Threads allowed above the baseline.
const THREAD_SLACK: u64 = 1;
/// The framework defined by `AGENTDISPATCH_FRAMEWORK_COMMAND_SOAK_CHILD`.
const CHILD_FRAMEWORK: &str = "soak-child";
/// The Python framework run now and then.
const PYTHON_FRAMEWORK: &str = "pydantic-ai";

/// The child protocol in sh: read the envelope, report progress, log to stderr, write a file,
/// answer with the instruction (a soak word, so it holds no quote or backslash).
const CHILD_SCRIPT: &str = r#"#!/bin/sh
# soak child: one envelope line on stdin, NDJSON on stdout.
read -r envelope
rest=${envelope#*\"instruction\":\"}
instruction=${rest%%\"*}
printf '{"type":"task.progress","message":"working %s","payload":{"step":"model_turn"}}\n' "$instruction"
echo "stderr of $instruction" >&2
printf '%s\n' "$instruction" > "$AGENTDISPATCH_TASK_DIR/note.txt"
printf '{"type":"task.result","output":"child %s: %s","result":{"instruction":"%s","taskId":"%s"}}\n' \
  "$AGENTDISPATCH_TASK_ID" "$instruction" "$instruction" "$AGENTDISPATCH_TASK_ID"
"#;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Echo,
    Command,
    NonZero,
    Child,
    Python,
    Timeout,
    Cancel,
    StreamEcho,
    StreamCommand,
    StreamChild,
}

const KINDS: [Kind; 10] = [
    Kind::Echo,
    Kind::Command,
    Kind::NonZero,
    Kind::Child,
    Kind::Python,
    Kind::Timeout,
    Kind::Cancel,
    Kind::StreamEcho,
    Kind::StreamCommand,
    Kind::StreamChild,
];

impl Kind {
    /// The deterministic mix, per hundred tasks.
    fn of(i: usize) -> Kind {
        match i % 100 {
            0 => Kind::Python,
            1..=3 => Kind::Timeout,
            4..=6 => Kind::Cancel,
            7..=21 => match i % 3 {
                0 => Kind::StreamEcho,
                1 => Kind::StreamCommand,
                _ => Kind::StreamChild,
            },
            22..=41 => Kind::Echo,
            42..=63 => Kind::Command,
            64..=73 => Kind::NonZero,
            _ => Kind::Child,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Echo => "echo agent.run",
            Kind::Command => "command.run echo",
            Kind::NonZero => "command.run exit N",
            Kind::Child => "sh framework child",
            Kind::Python => "pydantic-ai",
            Kind::Timeout => "timeout (sleep 5, 0.2 s)",
            Kind::Cancel => "cancel (async sleep 30)",
            Kind::StreamEcho => "SSE echo",
            Kind::StreamCommand => "SSE command",
            Kind::StreamChild => "SSE framework child",
        }
    }

    fn index(self) -> usize {
        KINDS.iter().position(|k| *k == self).unwrap_or(0)
    }
}

struct Options {
    tasks: usize,
    clients: usize,
    settle: Duration,
}

fn options() -> Result<Options, String> {
    let env = |name: &str, default: f64| -> Result<f64, String> {
        match std::env::var(name) {
            Ok(v) => v
                .trim()
                .parse()
                .map_err(|_| format!("{name} must be a number, got {v:?}")),
            Err(_) => Ok(default),
        }
    };
    let mut tasks = env("SOAK_TASKS", 10_000.0)?;
    let mut clients = env("SOAK_CLIENTS", 8.0)?;
    let mut settle = env("SOAK_SETTLE_SECONDS", 3.0)?;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (key, inline) = match arg.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let slot = match key.as_str() {
            // cargo bench passes --bench to harness = false targets.
            "--bench" => continue,
            "--tasks" => &mut tasks,
            "--clients" => &mut clients,
            "--settle" => &mut settle,
            "-h" | "--help" => {
                return Err("usage: soak [--tasks N] [--clients N] [--settle SECONDS]".into())
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        };
        let value = inline
            .or_else(|| args.next())
            .ok_or_else(|| format!("{key} needs a value"))?;
        *slot = value
            .parse()
            .map_err(|_| format!("{key} must be a number, got {value:?}"))?;
    }
    if tasks < 2.0 || clients < 1.0 || settle < 0.0 {
        return Err("need --tasks >= 2, --clients >= 1, --settle >= 0".into());
    }
    Ok(Options {
        tasks: tasks as usize,
        clients: clients as usize,
        settle: Duration::from_secs_f64(settle),
    })
}

/// What the answer to a task must say.
#[derive(Clone, Debug)]
struct Expect {
    id: String,
    ok: bool,
    status: &'static str,
    output: Option<String>,
    error_code: Option<&'static str>,
    exit_code: Option<i64>,
    /// A file the child writes into its folder, with its content.
    file: Option<(&'static str, String)>,
}

impl Expect {
    fn ok(id: &str, output: String) -> Expect {
        Expect {
            id: id.to_string(),
            ok: true,
            status: "succeeded",
            output: Some(output),
            error_code: None,
            exit_code: None,
            file: None,
        }
    }

    fn failed(id: &str, status: &'static str, code: &'static str) -> Expect {
        Expect {
            id: id.to_string(),
            ok: false,
            status,
            output: None,
            error_code: Some(code),
            exit_code: None,
            file: None,
        }
    }
}

/// A finished task, kept for a later `task.status` once it has left memory.
struct Record {
    at: Instant,
    expect: Expect,
}

#[derive(Clone, Copy, Default)]
struct Stat {
    count: u64,
    failed: u64,
    total_ms: f64,
    max_ms: f64,
}

/// The worker's resources, from `/proc`.
#[derive(Clone, Debug, Default)]
struct Sample {
    rss_kb: u64,
    hwm_kb: u64,
    threads: u64,
    fds: usize,
    children: usize,
    zombies: Vec<i32>,
}

fn sample(pid: i32) -> Sample {
    let field = |name| procfs::status_kb(pid, name).unwrap_or(0);
    let mut s = Sample {
        rss_kb: field("VmRSS"),
        hwm_kb: field("VmHWM"),
        threads: field("Threads"),
        fds: procfs::fd_count(pid),
        ..Sample::default()
    };
    for (child, state) in procfs::children_with_state(pid) {
        s.children += 1;
        if state == 'Z' {
            s.zombies.push(child);
        }
    }
    s
}

struct Shared {
    url: String,
    artifacts: PathBuf,
    pid: i32,
    total: usize,
    began: Instant,
    next: AtomicUsize,
    done: AtomicUsize,
    disk_checks: AtomicUsize,
    failures: Mutex<Vec<String>>,
    stats: Mutex<[Stat; KINDS.len()]>,
    records: Mutex<VecDeque<Record>>,
}

impl Shared {
    fn fail(&self, what: String) {
        eprintln!("WRONG: {what}");
        self.failures.lock().unwrap().push(what);
    }

    fn failure_count(&self) -> usize {
        self.failures.lock().unwrap().len()
    }
}

fn ensure(cond: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what())
    }
}

/// A word no other task uses.
fn word(i: usize) -> String {
    let h = (i as u64 ^ 0x5eed).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    format!("soak{i}x{h:06x}")
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(180))
        .build()
        .expect("http client")
}

async fn post(http: &reqwest::Client, url: &str, body: &Value) -> Result<Value, String> {
    let resp = http
        .post(format!("{url}/invocations"))
        .json(body)
        .send()
        .await
        .map_err(|e| format!("POST failed: {e}"))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| format!("answer body: {e}"))?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|_| format!("not JSON: {}", String::from_utf8_lossy(&bytes)))?;
    ensure(status == 200, || format!("HTTP {status}: {v}"))?;
    Ok(v)
}

fn short(v: &Value) -> String {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        if let Some(n) = o.get("events").and_then(Value::as_array).map(Vec::len) {
            o.insert("events".into(), json!(format!("[{n} events]")));
        }
    }
    let s = v.to_string();
    if s.len() > 600 {
        format!("{}…", &s[..s.floor_char_boundary(600)])
    } else {
        s
    }
}

/// Checks events in order: seq 1, 2, … with `accepted` first and `task.result` (the status
/// as its message, the result value as its payload) last.
fn check_events(events: &[Value], exp: &Expect, whence: &str) -> Result<(), String> {
    ensure(events.len() >= 2, || {
        format!("{whence}: {} events", events.len())
    })?;
    for (n, e) in events.iter().enumerate() {
        ensure(e["seq"] == n as u64 + 1, || {
            format!("{whence}: event {n} has seq {} (want {})", e["seq"], n + 1)
        })?;
        ensure(e["taskId"] == exp.id.as_str(), || {
            format!("{whence}: event {n} of another task: {e}")
        })?;
    }
    ensure(
        events[0]["type"] == "task.progress" && events[0]["message"] == "accepted",
        || format!("{whence}: first event is not accepted: {}", events[0]),
    )?;
    let last = &events[events.len() - 1];
    ensure(
        last["type"] == "task.result" && last["message"] == exp.status,
        || {
            format!(
                "{whence}: last event is not task.result {}: {last}",
                exp.status
            )
        },
    )?;
    ensure(
        events[..events.len() - 1]
            .iter()
            .all(|e| e["type"] != "task.result"),
        || format!("{whence}: task.result before the last event"),
    )
}

/// Checks a result object (a JSON answer, the end of a stream, or `task.status`).
fn check_result(v: &Value, exp: &Expect) -> Result<(), String> {
    let fields_ok = v["taskId"] == exp.id.as_str()
        && v["ok"] == exp.ok
        && v["status"] == exp.status
        && exp
            .output
            .as_ref()
            .is_none_or(|o| v["output"] == o.as_str())
        && exp.error_code.is_none_or(|c| v["errorCode"] == c)
        && (exp.ok || v["error"].as_str().is_some_and(|e| !e.is_empty()))
        && exp.exit_code.is_none_or(|c| v["exitCode"] == c)
        && v.get("eventsTruncated").is_none();
    ensure(fields_ok, || format!("wanted {exp:?}, got {}", short(v)))?;
    let events = v["events"].as_array().cloned().unwrap_or_default();
    check_events(&events, exp, "answer")?;
    let first = &v["artifacts"][0]["uri"];
    ensure(
        first
            .as_str()
            .is_some_and(|u| u.ends_with(&format!("{}/result.json", exp.id))),
        || format!("first artifact is not result.json: {}", short(v)),
    )
}

/// Checks the task folder: `result.json`, `manifest.json` (its digest of `result.json`) and
/// `events.ndjson` ending with `task.result`. Returns the number of events on disk.
fn check_folder(artifacts: &Path, exp: &Expect) -> Result<usize, String> {
    let dir = artifacts.join(&exp.id);
    let read =
        |name: &str| std::fs::read(dir.join(name)).map_err(|e| format!("{}/{name}: {e}", exp.id));
    let result_bytes = read("result.json")?;
    let result: Value = serde_json::from_slice(&result_bytes)
        .map_err(|e| format!("{}/result.json is not JSON: {e}", exp.id))?;
    ensure(
        result["taskId"] == exp.id.as_str()
            && result["status"] == exp.status
            && result["ok"] == exp.ok
            && exp
                .output
                .as_ref()
                .is_none_or(|o| result["output"] == o.as_str()),
        || format!("{}/result.json: {}", exp.id, short(&result)),
    )?;
    let manifest: Value = serde_json::from_slice(&read("manifest.json")?)
        .map_err(|e| format!("{}/manifest.json is not JSON: {e}", exp.id))?;
    let first = &manifest["artifacts"][0];
    let digest = format!("{:x}", Sha256::digest(&result_bytes));
    ensure(
        first["uri"]
            .as_str()
            .is_some_and(|u| u.ends_with("/result.json"))
            && first["sha256"] == digest.as_str()
            && first["sizeBytes"] == result_bytes.len() as u64,
        || {
            format!(
                "{}/manifest.json does not describe result.json: {manifest}",
                exp.id
            )
        },
    )?;
    if let Some((name, content)) = &exp.file {
        let listed = manifest["artifacts"].as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x["uri"].as_str().is_some_and(|u| u.ends_with(name)))
        });
        ensure(listed, || {
            format!("{}/manifest.json does not list {name}: {manifest}", exp.id)
        })?;
        let got = String::from_utf8_lossy(&read(name)?).into_owned();
        ensure(got == *content, || {
            format!("{}/{name} holds {got:?}, want {content:?}", exp.id)
        })?;
    }
    let text = String::from_utf8(read("events.ndjson")?)
        .map_err(|_| format!("{}/events.ndjson is not UTF-8", exp.id))?;
    ensure(text.ends_with('\n'), || {
        format!("{}/events.ndjson does not end with a newline", exp.id)
    })?;
    let events: Vec<Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}/events.ndjson has a bad line: {e}", exp.id))?;
    check_events(&events, exp, "events.ndjson")?;
    Ok(events.len())
}

/// Checks an answer and the folder, and that the answer held every event on disk.
fn check_all(v: &Value, exp: &Expect, artifacts: &Path) -> Result<(), String> {
    check_result(v, exp)?;
    let on_disk = check_folder(artifacts, exp)?;
    let answered = v["events"].as_array().map_or(0, Vec::len);
    ensure(answered == on_disk, || {
        format!("answer holds {answered} events, events.ndjson {on_disk}")
    })
}

/// Posts with `Accept: text/event-stream`; returns every `(id, data)` message.
async fn stream(
    http: &reqwest::Client,
    url: &str,
    body: &Value,
) -> Result<Vec<(Option<u64>, Value)>, String> {
    let resp = http
        .post(format!("{url}/invocations"))
        .header("accept", "text/event-stream")
        .json(body)
        .send()
        .await
        .map_err(|e| format!("POST failed: {e}"))?;
    ensure(resp.status() == 200, || format!("HTTP {}", resp.status()))?;
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    ensure(ctype == "text/event-stream", || {
        format!("content-type {ctype:?}")
    })?;
    let mut out = Vec::new();
    let mut buf = String::new();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| format!("stream broke: {e}"))?;
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some((id, data)) = sse::next_message(&mut buf) {
            let v =
                serde_json::from_str(&data).map_err(|_| format!("SSE data is not JSON: {data}"))?;
            out.push((id, v));
        }
    }
    ensure(buf.trim().is_empty(), || {
        format!("stream ended mid-message: {buf:?}")
    })?;
    Ok(out)
}

/// Checks a stream: each event under its seq, then the whole result under the `task.result`
/// event's seq, and nothing after it.
fn check_stream(msgs: &[(Option<u64>, Value)], exp: &Expect) -> Result<Value, String> {
    ensure(msgs.len() >= 2, || format!("{} SSE messages", msgs.len()))?;
    let (last_id, result) = &msgs[msgs.len() - 1];
    for (n, (id, e)) in msgs[..msgs.len() - 1].iter().enumerate() {
        ensure(
            *id == Some(n as u64 + 1)
                && e["seq"] == n as u64 + 1
                && e["taskId"] == exp.id.as_str()
                && e["type"] != "task.result",
            || format!("SSE message {n}: id {id:?}, data {e}"),
        )?;
    }
    ensure(*last_id == Some(msgs.len() as u64), || {
        format!(
            "the result came under id {last_id:?}, want {} (the task.result seq)",
            msgs.len()
        )
    })?;
    Ok(result.clone())
}

/// Runs task `i`; returns what a later `task.status` must answer.
async fn run_one(
    http: &reqwest::Client,
    sh: &Shared,
    i: usize,
    kind: Kind,
) -> Result<Expect, String> {
    let id = format!("soak-{i:05}");
    let w = word(i);
    let url = sh.url.as_str();
    let echo = |id: &str| {
        (
            if i.is_multiple_of(2) {
                json!({"taskId": id, "prompt": w})
            } else {
                json!({"taskId": id, "input": {"instruction": w}})
            },
            Expect::ok(id, format!("Accepted instruction: {w}")),
        )
    };
    let command = |id: &str| {
        let mut exp = Expect::ok(id, format!("{w}\n"));
        exp.exit_code = Some(0);
        (
            json!({"taskType": "command.run", "taskId": id, "input": {"command": format!("echo {w}")}}),
            exp,
        )
    };
    let child = |id: &str| {
        let mut exp = Expect::ok(id, format!("child {id}: {w}"));
        exp.exit_code = Some(0);
        exp.file = Some(("note.txt", format!("{w}\n")));
        (
            json!({"framework": CHILD_FRAMEWORK, "taskId": id, "input": {"instruction": w}}),
            exp,
        )
    };
    match kind {
        Kind::Echo | Kind::Command | Kind::Child => {
            let (body, exp) = match kind {
                Kind::Echo => echo(&id),
                Kind::Command => command(&id),
                _ => child(&id),
            };
            let v = post(http, url, &body).await?;
            check_all(&v, &exp, &sh.artifacts)?;
            match kind {
                Kind::Echo => ensure(v["result"]["instruction"] == w.as_str(), || short(&v))?,
                Kind::Command => ensure(v["result"]["exitCode"] == 0, || short(&v))?,
                _ => {
                    ensure(
                        v["result"] == json!({"instruction": w, "taskId": id}),
                        || short(&v),
                    )?;
                    let events = v["events"].as_array().cloned().unwrap_or_default();
                    let working = format!("working {w}");
                    let stderr = format!("stderr of {w}");
                    ensure(
                        events.iter().any(|e| e["message"] == working.as_str())
                            && events.iter().any(|e| {
                                e["type"] == "task.log"
                                    && e["message"] == stderr.as_str()
                                    && e["payload"]["stream"] == "stderr"
                            }),
                        || format!("progress or stderr event missing: {}", short(&v)),
                    )?;
                }
            }
            Ok(exp)
        }
        Kind::NonZero => {
            let code = 1 + (i / 100) % 9;
            let body = json!({"taskType": "command.run", "taskId": id,
                "input": {"command": format!("sh -c 'echo {w} >&2; exit {code}'")}});
            let mut exp = Expect::failed(&id, "failed", "exit_nonzero");
            exp.exit_code = Some(code as i64);
            exp.output = Some(String::new());
            let v = post(http, url, &body).await?;
            check_all(&v, &exp, &sh.artifacts)?;
            let want = format!("Command exited with code {code}.");
            ensure(
                v["error"] == want.as_str() && v["result"]["exitCode"] == code,
                || short(&v),
            )?;
            let events = v["events"].as_array().cloned().unwrap_or_default();
            ensure(
                events
                    .iter()
                    .any(|e| e["type"] == "task.log" && e["message"] == w.as_str()),
                || format!("stderr line missing: {}", short(&v)),
            )?;
            Ok(exp)
        }
        Kind::Python => {
            let body = json!({"framework": PYTHON_FRAMEWORK, "taskId": id,
                "input": {"instruction": "hello world"}});
            let mut exp = Expect::ok(&id, "Shouted: HELLO WORLD".into());
            exp.exit_code = Some(0);
            let v = post(http, url, &body).await?;
            check_all(&v, &exp, &sh.artifacts)?;
            let events = v["events"].as_array().cloned().unwrap_or_default();
            ensure(
                events.iter().any(|e| {
                    e["payload"]["step"] == "tool_call" && e["payload"]["tool"] == "shout"
                }),
                || format!("no tool_call step: {}", short(&v)),
            )?;
            Ok(exp)
        }
        Kind::Timeout => {
            let body = json!({"taskType": "command.run", "taskId": id,
                "input": {"command": "sleep 5", "timeoutSeconds": 0.2}});
            let exp = Expect::failed(&id, "timed_out", "timed_out");
            let v = post(http, url, &body).await?;
            check_all(&v, &exp, &sh.artifacts)?;
            ensure(v["durationMs"].as_u64().is_some_and(|d| d < 4500), || {
                format!("the 0.2 s deadline took too long: {}", short(&v))
            })?;
            let left = procfs::task_processes(&id);
            ensure(left.is_empty(), || {
                format!("processes left behind: {left:?}")
            })?;
            Ok(exp)
        }
        Kind::Cancel => {
            let body = json!({"taskType": "command.run", "taskId": id, "async": true,
                "input": {"command": "sleep 30"}});
            let v = post(http, url, &body).await?;
            ensure(
                v["taskId"] == id.as_str()
                    && v["ok"] == true
                    && v["status"] == "running"
                    && v["events"][0]["message"] == "accepted",
                || format!("async answer: {}", short(&v)),
            )?;
            tokio::time::sleep(Duration::from_millis(20 * (i as u64 % 5))).await;
            let v = post(http, url, &json!({"taskType": "task.cancel", "taskId": id})).await?;
            let exp = Expect::failed(&id, "cancelled", "cancelled");
            check_all(&v, &exp, &sh.artifacts)?;
            ensure(v["durationMs"].as_u64().is_some_and(|d| d < 10_000), || {
                format!("the cancel took too long: {}", short(&v))
            })?;
            let v = post(http, url, &json!({"taskType": "task.status", "taskId": id})).await?;
            check_result(&v, &exp).map_err(|e| format!("task.status after cancel: {e}"))?;
            let left = procfs::task_processes(&id);
            ensure(left.is_empty(), || {
                format!("processes left behind: {left:?}")
            })?;
            Ok(exp)
        }
        Kind::StreamEcho | Kind::StreamCommand | Kind::StreamChild => {
            let (body, exp) = match kind {
                Kind::StreamEcho => echo(&id),
                Kind::StreamCommand => command(&id),
                _ => child(&id),
            };
            let msgs = stream(http, url, &body).await?;
            let result = check_stream(&msgs, &exp)?;
            check_all(&result, &exp, &sh.artifacts)?;
            Ok(exp)
        }
    }
}

/// `task.status` of the most recent task that has left memory (not in `task.list`) must answer
/// from its folder as the task did.
async fn disk_check(http: &reqwest::Client, sh: &Shared) -> Result<bool, String> {
    let old = Duration::from_secs(RETENTION_SECONDS + 3);
    let pick = {
        let mut records = sh.records.lock().unwrap();
        let mut pick = None;
        while records.front().is_some_and(|r| r.at.elapsed() > old) {
            pick = records.pop_front();
        }
        pick
    };
    let Some(rec) = pick else {
        return Ok(false);
    };
    let id = rec.expect.id.as_str();
    let list = post(http, &sh.url, &json!({"taskType": "task.list"})).await?;
    let tasks = list["tasks"].as_array().cloned().unwrap_or_default();
    ensure(list["ok"] == true, || {
        format!("task.list: {}", short(&list))
    })?;
    ensure(!tasks.iter().any(|t| t["taskId"] == id), || {
        format!(
            "{id} is still in memory {:?} after it finished (retention {RETENTION_SECONDS} s)",
            rec.at.elapsed()
        )
    })?;
    let v = post(
        http,
        &sh.url,
        &json!({"taskType": "task.status", "taskId": id}),
    )
    .await?;
    check_result(&v, &rec.expect).map_err(|e| format!("task.status of {id} from disk: {e}"))?;
    Ok(true)
}

async fn client(sh: Arc<Shared>, end: usize) {
    // One connection per client per phase, dropped at the phase's end.
    let http = http_client();
    while let Ok(i) = sh
        .next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < end).then_some(n + 1)
        })
    {
        let kind = Kind::of(i);
        let began = Instant::now();
        let outcome = run_one(&http, &sh, i, kind).await;
        let ms = began.elapsed().as_secs_f64() * 1000.0;
        {
            let mut stats = sh.stats.lock().unwrap();
            let s = &mut stats[kind.index()];
            s.count += 1;
            s.total_ms += ms;
            s.max_ms = s.max_ms.max(ms);
            if outcome.is_err() {
                s.failed += 1;
            }
        }
        match outcome {
            Ok(expect) => sh.records.lock().unwrap().push_back(Record {
                at: Instant::now(),
                expect,
            }),
            Err(e) => sh.fail(format!("soak-{i:05} ({}): {e}", kind.name())),
        }
        if i % 50 == 25 {
            match disk_check(&http, &sh).await {
                Ok(true) => {
                    sh.disk_checks.fetch_add(1, Ordering::Relaxed);
                }
                Ok(false) => {}
                Err(e) => sh.fail(e),
            }
        }
        let done = sh.done.fetch_add(1, Ordering::SeqCst) + 1;
        if done.is_multiple_of(1000) || done == sh.total {
            let s = sample(sh.pid);
            let secs = sh.began.elapsed().as_secs_f64();
            println!(
                "{done:>6}/{} tasks  {secs:>6.1} s  {:>5.1} tasks/s  RSS {:>6} kB  fds {:>3}  threads {:>2}  children {:>2}  wrong {}",
                sh.total,
                done as f64 / secs,
                s.rss_kb,
                s.fds,
                s.threads,
                s.children,
                sh.failure_count()
            );
        }
    }
}

async fn run_phase(sh: &Arc<Shared>, clients: usize, end: usize) {
    let handles: Vec<_> = (0..clients)
        .map(|_| tokio::spawn(client(sh.clone(), end)))
        .collect();
    for h in handles {
        if let Err(e) = h.await {
            sh.fail(format!("a client panicked: {e}"));
        }
    }
}

/// Waits until no task is left in memory, then `settle`; returns how long it took.
async fn settle(url: &str, settle: Duration) -> Result<Duration, String> {
    // No keep-alive: the sample should not count this client's socket.
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client");
    let began = Instant::now();
    let limit = Duration::from_secs(RETENTION_SECONDS + 30);
    loop {
        let list = post(&http, url, &json!({"taskType": "task.list"})).await?;
        let n = list["tasks"].as_array().map_or(usize::MAX, Vec::len);
        if n == 0 {
            break;
        }
        if began.elapsed() > limit {
            return Err(format!(
                "{n} tasks still in memory {limit:?} after the last one (retention {RETENTION_SECONDS} s): {}",
                short(&list)
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let ping: Value = http
        .get(format!("{url}/ping"))
        .send()
        .await
        .map_err(|e| format!("ping: {e}"))?
        .json()
        .await
        .map_err(|e| format!("ping: {e}"))?;
    ensure(ping["status"] == "Healthy", || {
        format!("idle worker answers /ping with {ping}")
    })?;
    drop(http);
    tokio::time::sleep(settle).await;
    Ok(began.elapsed())
}

/// Every task folder, complete: the three files, the last event a `task.result`.
fn scan_folders(artifacts: &Path, tasks: usize) -> Result<usize, String> {
    let mut complete = 0;
    let mut bad = Vec::new();
    for i in 0..tasks {
        let dir = artifacts.join(format!("soak-{i:05}"));
        let last_ok = std::fs::read_to_string(dir.join("events.ndjson"))
            .ok()
            .and_then(|t| t.lines().last().map(str::to_string))
            .and_then(|l| serde_json::from_str::<Value>(&l).ok())
            .is_some_and(|e| e["type"] == "task.result");
        if last_ok && dir.join("result.json").is_file() && dir.join("manifest.json").is_file() {
            complete += 1;
        } else if bad.len() < 10 {
            bad.push(
                dir.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    let folders = std::fs::read_dir(artifacts).map_or(0, |d| d.count());
    if complete == tasks && folders == tasks {
        Ok(complete)
    } else {
        Err(format!(
            "{complete} complete task folders of {tasks} ({folders} folders); incomplete: {bad:?}"
        ))
    }
}

struct Worker {
    child: Child,
    url: String,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_worker(tmp: &Path) -> Result<Worker, String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let script = tmp.join("soak-child.sh");
    std::fs::write(&script, CHILD_SCRIPT).map_err(|e| e.to_string())?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
    }
    let log = std::fs::File::create(tmp.join("worker.log")).map_err(|e| e.to_string())?;
    let child = Command::new(BIN)
        .env("PORT", port.to_string())
        .env("AGENTDISPATCH_HOST", "127.0.0.1")
        .env("AGENTDISPATCH_ARTIFACT_DIR", tmp.join("artifacts"))
        .env("AGENTDISPATCH_COMMAND_ALLOWLIST", "*")
        .env(
            "AGENTDISPATCH_FRAMEWORKS_DIR",
            Path::new(REPO).join("frameworks"),
        )
        .env(
            "AGENTDISPATCH_FRAMEWORK_COMMAND_SOAK_CHILD",
            format!("'{}'", script.display()),
        )
        .env(
            "AGENTDISPATCH_MAX_CONCURRENT_TASKS",
            MAX_CONCURRENT.to_string(),
        )
        .env(
            "AGENTDISPATCH_TASK_RETENTION_SECONDS",
            RETENTION_SECONDS.to_string(),
        )
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {BIN}: {e}"))?;
    Ok(Worker {
        child,
        url: format!("http://127.0.0.1:{port}"),
    })
}

async fn wait_ready(url: &str) -> Result<(), String> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .expect("http client");
    let began = Instant::now();
    while began.elapsed() < Duration::from_secs(20) {
        if let Ok(r) = http.get(format!("{url}/ping")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err("the worker did not answer /ping within 20 s".into())
}

/// The pydantic-ai venv, made by `scripts/setup-frameworks.sh` when missing.
fn ensure_python_framework() -> Result<(), String> {
    let python = Path::new(REPO)
        .join("frameworks")
        .join(PYTHON_FRAMEWORK)
        .join(".venv/bin/python");
    if python.exists() {
        return Ok(());
    }
    println!(
        "{PYTHON_FRAMEWORK} has no venv: running scripts/setup-frameworks.sh {PYTHON_FRAMEWORK}"
    );
    let status = Command::new(Path::new(REPO).join("scripts/setup-frameworks.sh"))
        .arg(PYTHON_FRAMEWORK)
        .status()
        .map_err(|e| format!("scripts/setup-frameworks.sh: {e}"))?;
    ensure(status.success() && python.exists(), || {
        format!("scripts/setup-frameworks.sh {PYTHON_FRAMEWORK} failed ({status})")
    })
}

fn stop(worker: &mut Worker) -> Result<(), String> {
    let pid = nix::unistd::Pid::from_raw(worker.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
        .map_err(|e| format!("SIGTERM: {e}"))?;
    let began = Instant::now();
    loop {
        match worker.child.try_wait() {
            Ok(Some(status)) => {
                return ensure(status.success(), || {
                    format!("the worker exited with {status} on SIGTERM")
                })
            }
            Ok(None) if began.elapsed() < Duration::from_secs(15) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Ok(None) => return Err("the worker did not exit within 15 s of SIGTERM".into()),
            Err(e) => return Err(format!("wait: {e}")),
        }
    }
}

fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

#[tokio::main]
async fn main() -> ExitCode {
    let opts = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = ensure_python_framework() {
        eprintln!("soak: {e}");
        return ExitCode::FAILURE;
    }
    let tmp = tempfile::Builder::new()
        .prefix("agentdispatch-soak-")
        .tempdir()
        .expect("temp dir");
    let mut worker = match start_worker(tmp.path()) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = wait_ready(&worker.url).await {
        eprintln!("soak: {e}");
        return ExitCode::FAILURE;
    }
    let pid = worker.child.id() as i32;
    let baseline_at = BASELINE_TASKS.min(opts.tasks / 2);
    println!(
        "soak: {} tasks from {} clients against {BIN} (pid {pid}, {}); baseline after {baseline_at}; \
         retention {RETENTION_SECONDS} s, max {MAX_CONCURRENT} tasks, settle {:?}",
        opts.tasks,
        opts.clients,
        worker.url,
        opts.settle
    );
    let sh = Arc::new(Shared {
        url: worker.url.clone(),
        artifacts: tmp.path().join("artifacts"),
        pid,
        total: opts.tasks,
        began: Instant::now(),
        next: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        disk_checks: AtomicUsize::new(0),
        failures: Mutex::new(Vec::new()),
        stats: Mutex::new([Stat::default(); KINDS.len()]),
        records: Mutex::new(VecDeque::new()),
    });

    run_phase(&sh, opts.clients, baseline_at).await;
    let first_phase = sh.began.elapsed();
    match settle(&sh.url, opts.settle).await {
        Ok(d) => println!("baseline: all tasks left memory; settled {d:.1?}"),
        Err(e) => sh.fail(format!("before the baseline: {e}")),
    }
    let base = sample(pid);
    println!(
        "baseline after {baseline_at} tasks ({first_phase:.1?}): RSS {} kB, fds {}, threads {}, children {}, zombies {:?}",
        base.rss_kb, base.fds, base.threads, base.children, base.zombies
    );

    let second = Instant::now();
    run_phase(&sh, opts.clients, opts.tasks).await;
    let second_phase = second.elapsed();
    let wall = sh.began.elapsed();
    let run_time = first_phase + second_phase;
    let mid = sample(pid);
    match settle(&sh.url, opts.settle).await {
        Ok(d) => println!("end: all tasks left memory; settled {d:.1?}"),
        Err(e) => sh.fail(format!("at the end: {e}")),
    }
    let end = sample(pid);
    let folders = scan_folders(&sh.artifacts, opts.tasks);
    let shutdown = stop(&mut worker);

    // The report.
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{:<26} {:>6} {:>6} {:>10} {:>10}",
        "kind", "tasks", "wrong", "mean ms", "max ms"
    );
    let stats = *sh.stats.lock().unwrap();
    for k in KINDS {
        let s = stats[k.index()];
        let mean = if s.count > 0 {
            s.total_ms / s.count as f64
        } else {
            0.0
        };
        let _ = writeln!(
            out,
            "{:<26} {:>6} {:>6} {:>10.1} {:>10.1}",
            k.name(),
            s.count,
            s.failed,
            mean,
            s.max_ms
        );
    }
    let total: u64 = stats.iter().map(|s| s.count).sum();
    let _ = writeln!(
        out,
        "{:<26} {:>6} {:>6}   in {run_time:.1?} of tasks ({:.1}/s; {:.1}/s after the baseline), {wall:.1?} wall",
        "all",
        total,
        stats.iter().map(|s| s.failed).sum::<u64>(),
        total as f64 / run_time.as_secs_f64(),
        (opts.tasks - baseline_at) as f64 / second_phase.as_secs_f64()
    );

    let rss_ratio = end.rss_kb as f64 / base.rss_kb.max(1) as f64;
    let checks = [
        (
            "RSS",
            format!("{} kB ({})", base.rss_kb, mb(base.rss_kb)),
            format!(
                "{} kB ({}), {:+.1}%",
                end.rss_kb,
                mb(end.rss_kb),
                (rss_ratio - 1.0) * 100.0
            ),
            format!("<= +{:.0}%", RSS_SLACK * 100.0),
            rss_ratio <= 1.0 + RSS_SLACK,
        ),
        (
            "open fds",
            base.fds.to_string(),
            end.fds.to_string(),
            format!("<= baseline + {FD_SLACK}"),
            end.fds <= base.fds + FD_SLACK,
        ),
        (
            "threads",
            base.threads.to_string(),
            end.threads.to_string(),
            format!("<= baseline + {THREAD_SLACK}"),
            end.threads <= base.threads + THREAD_SLACK,
        ),
        (
            "zombie children",
            format!("{:?}", base.zombies),
            format!("{:?}", end.zombies),
            "none".into(),
            base.zombies.is_empty() && end.zombies.is_empty(),
        ),
        (
            "live children",
            base.children.to_string(),
            end.children.to_string(),
            "0".into(),
            end.children == 0,
        ),
    ];
    let _ = writeln!(
        out,
        "\n{:<16} {:>22} {:>30} {:>20}  verdict",
        "resource", "baseline", "end", "limit"
    );
    let mut pass = true;
    for (name, b, e, limit, ok) in &checks {
        pass &= ok;
        let _ = writeln!(
            out,
            "{name:<16} {b:>22} {e:>30} {limit:>20}  {}",
            if *ok { "ok" } else { "FAIL" }
        );
    }
    let _ = writeln!(
        out,
        "(peak RSS {}; right after the last task: RSS {} kB, fds {}, threads {})",
        mb(end.hwm_kb),
        mid.rss_kb,
        mid.fds,
        mid.threads
    );
    match &folders {
        Ok(n) => {
            let _ = writeln!(out, "task folders complete: {n}/{}", opts.tasks);
        }
        Err(e) => sh.fail(format!("task folders: {e}")),
    }
    let _ = writeln!(
        out,
        "task.status answered from disk for {} dropped tasks",
        sh.disk_checks.load(Ordering::Relaxed)
    );
    match &shutdown {
        Ok(()) => {
            let _ = writeln!(out, "SIGTERM: exit status 0");
        }
        Err(e) => sh.fail(e.clone()),
    }
    let failures = sh.failures.lock().unwrap().clone();
    let _ = writeln!(out, "wrong answers: {}", failures.len());
    for f in failures.iter().take(20) {
        let _ = writeln!(out, "  {f}");
    }
    pass &= failures.is_empty() && total == opts.tasks as u64;
    print!("{out}");
    if pass {
        println!("PASS");
        println!(
            "(removing the temp dir and its {} task folders)",
            opts.tasks
        );
        let began = Instant::now();
        drop(tmp);
        println!("removed in {:.1?}", began.elapsed());
        ExitCode::SUCCESS
    } else {
        let kept = tmp.keep();
        println!(
            "FAIL (worker log and task folders kept in {})",
            kept.display()
        );
        ExitCode::FAILURE
    }
}
