//! Load generation: the fixed mix of task kinds, what each must answer, and the clients that
//! send them.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::checks::{check_all, check_result, check_stream, disk_check, short};
use crate::common::{self, ensure, procfs};
use crate::measure::sample;
use crate::{CHILD_FRAMEWORK, HOSTILE_FRAMEWORK, PYTHON_FRAMEWORK};

/// A hostile child (issue "hostile children and callers"): a FIFO, a 1 GB sparse file, a hard
/// link and a symlink out of its folder, all declared as artifacts, and a `setsid` escapee
/// detached from its pipes; it answers at once.
pub const HOSTILE_SCRIPT: &str = r#"#!/bin/sh
d="$AGENTDISPATCH_TASK_DIR"
mkfifo "$d/pipe"
truncate -s 1G "$d/sparse.bin"
echo shared > "$d/one.txt"; ln "$d/one.txt" "$d/two.txt"
ln -s /etc/hostname "$d/link.txt"
setsid sh -c 'exec sleep 30' </dev/null >/dev/null 2>&1 &
printf '{"type":"task.result","output":"hostile %s","artifacts":["pipe","sparse.bin","two.txt","link.txt"]}\n' "$AGENTDISPATCH_TASK_ID"
"#;

/// The child protocol in sh: read the envelope, report progress, log to stderr, write a file,
/// answer with the instruction (a soak word, so it holds no quote or backslash).
pub const CHILD_SCRIPT: &str = r#"#!/bin/sh
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
pub enum Kind {
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
    Hostile,
}

pub const KINDS: [Kind; 11] = [
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
    Kind::Hostile,
];

impl Kind {
    /// The deterministic mix, per hundred tasks.
    pub fn of(i: usize) -> Kind {
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
            96..=99 => Kind::Hostile,
            _ => Kind::Child,
        }
    }

    pub fn name(self) -> &'static str {
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
            Kind::Hostile => "hostile child (FIFO, links, escapee)",
        }
    }

    pub fn index(self) -> usize {
        KINDS.iter().position(|k| *k == self).unwrap_or(0)
    }
}

/// What the answer to a task must say.
#[derive(Clone, Debug)]
pub struct Expect {
    pub id: String,
    pub ok: bool,
    pub status: &'static str,
    pub output: Option<String>,
    pub error_code: Option<&'static str>,
    pub exit_code: Option<i64>,
    /// A file the child writes into its folder, with its content.
    pub file: Option<(&'static str, String)>,
}

impl Expect {
    pub fn ok(id: &str, output: String) -> Expect {
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

    pub fn failed(id: &str, status: &'static str, code: &'static str) -> Expect {
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
pub struct Record {
    pub at: Instant,
    pub expect: Expect,
}

#[derive(Clone, Copy, Default)]
pub struct Stat {
    pub count: u64,
    pub failed: u64,
    pub total_ms: f64,
    pub max_ms: f64,
}

pub struct Shared {
    pub url: String,
    pub artifacts: PathBuf,
    pub pid: i32,
    pub total: usize,
    pub began: Instant,
    pub next: AtomicUsize,
    pub done: AtomicUsize,
    pub disk_checks: AtomicUsize,
    pub failures: Mutex<Vec<String>>,
    pub stats: Mutex<[Stat; KINDS.len()]>,
    pub records: Mutex<VecDeque<Record>>,
}

impl Shared {
    pub fn fail(&self, what: String) {
        eprintln!("WRONG: {what}");
        self.failures.lock().unwrap().push(what);
    }

    pub fn failure_count(&self) -> usize {
        self.failures.lock().unwrap().len()
    }
}

/// A word no other task uses.
pub fn word(i: usize) -> String {
    let h = (i as u64 ^ 0x5eed).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    format!("soak{i}x{h:06x}")
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(180))
        .build()
        .expect("http client")
}

pub async fn post(http: &reqwest::Client, url: &str, body: &Value) -> Result<Value, String> {
    let (status, v) = common::post_json(http, url, body).await?;
    ensure(status == 200, || format!("HTTP {status}: {v}"))?;
    Ok(v)
}

/// Posts with `Accept: text/event-stream`; returns every `(id, data)` message.
pub async fn stream(
    http: &reqwest::Client,
    url: &str,
    body: &Value,
) -> Result<Vec<(Option<u64>, Value)>, String> {
    let resp = common::post_sse(http, url, body).await?;
    let mut out = Vec::new();
    let rest = common::read_sse(resp, |id, v| out.push((id, v))).await?;
    ensure(rest.trim().is_empty(), || {
        format!("stream ended mid-message: {rest:?}")
    })?;
    Ok(out)
}

/// Runs task `i`; returns what a later `task.status` must answer.
pub async fn run_one(
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
        Kind::Hostile => {
            let body = json!({"framework": HOSTILE_FRAMEWORK, "taskId": id});
            let exp = Expect::ok(&id, format!("hostile {id}"));
            let v = post(http, url, &body).await?;
            check_all(&v, &exp, &sh.artifacts)?;
            let uris: Vec<&str> = v["artifacts"]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x["uri"].as_str()).collect())
                .unwrap_or_default();
            ensure(
                uris.iter().any(|u| u.ends_with("/sparse.bin"))
                    && !uris.iter().any(|u| {
                        ["/pipe", "/one.txt", "/two.txt", "/link.txt"]
                            .iter()
                            .any(|n| u.ends_with(n))
                    }),
                || format!("hostile artifacts: {uris:?}"),
            )?;
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

pub async fn client(sh: Arc<Shared>, end: usize) {
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

pub async fn run_phase(sh: &Arc<Shared>, clients: usize, end: usize) {
    let handles: Vec<_> = (0..clients)
        .map(|_| tokio::spawn(client(sh.clone(), end)))
        .collect();
    for h in handles {
        if let Err(e) = h.await {
            sh.fail(format!("a client panicked: {e}"));
        }
    }
}
