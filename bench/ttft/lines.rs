//! The `lines` part of `cargo bench --bench ttft`: what one stdout line costs the worker on the
//! supervisor's line path, a `task.delta` line beside a plain event line, with the floor of any
//! JSON line measured in the same run (issue 22: "the supervisor's line path must not get slower
//! for it").
//!
//! 1. Through the release worker: per kind, a child (a Python script given through
//!    `AGENTDISPATCH_FRAMEWORK_COMMAND_LINES_<KIND>`) writes `LINES` lines of about the same
//!    length as fast as the pipe takes them (64 KB writes), then its result. Kinds: **refused**
//!    deltas (`text` a number: read, split, parsed, classified and counted, nothing recorded or
//!    sent), **deltas** with no live stream (the text so far kept for a late
//!    subscriber), **deltas** to one reading SSE stream, and **progress events** (recorded:
//!    `seq`, `events.ndjson`, the memory buffer). The kinds take turns run by run; per kind the
//!    median over `--runs` of the worker process's CPU (user + system, `/proc/<pid>/stat`) per
//!    line and of lines per second from the request to the answer.
//! 2. In-process, the same lines: `serde_json::from_str` alone (the parse every JSON line pays:
//!    the floor) and `protocol::classify` (the parse and telling a delta from an event), in CPU
//!    ns of the bench's thread.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{self, median, Log, Server};

/// One kind of line: its name, the framework that writes it, whether its task is read over SSE.
struct Kind {
    what: &'static str,
    framework: &'static str,
    sse: bool,
}

const KINDS: [Kind; 4] = [
    Kind {
        what: "refused `task.delta` (parsed, classified, counted)",
        framework: "lines-refused",
        sse: false,
    },
    Kind {
        what: "`task.delta`, no live stream",
        framework: "lines-delta",
        sse: false,
    },
    Kind {
        what: "`task.delta`, one SSE stream reading",
        framework: "lines-delta",
        sse: true,
    },
    Kind {
        what: "`task.progress` event (recorded)",
        framework: "lines-event",
        sse: false,
    },
];

/// Line `n` of a kind, all about 80 bytes (the delta's text is 8 bytes, as in the flood).
fn line(framework: &str, n: usize) -> String {
    match framework {
        "lines-refused" => {
            format!(r#"{{"type":"task.delta","payload":{{"messageId":"m-1","text":1{n:07}}}}}"#)
        }
        "lines-delta" => {
            format!(r#"{{"type":"task.delta","payload":{{"messageId":"m-1","text":"{n:07} "}}}}"#)
        }
        _ => format!(r#"{{"type":"task.progress","message":"{n:07} ","payload":{{"x":"pad"}}}}"#),
    }
}

/// The child: builds its lines first (not timed by the worker's CPU), writes them in 64 KB
/// pieces, then its result.
fn script(framework: &str, lines: usize) -> String {
    // Python's own formatting of the same line (the refused one's number starts with 1: JSON
    // has no leading zeros).
    let template = line(framework, 0).replace("0000000", "%07d");
    format!(
        r#"import os
data = b"".join((b'{template}\n' % n) for n in range({lines}))
view = memoryview(data)
while view:
    view = view[os.write(1, view[:65536]):]
os.write(1, b'{{"type":"task.result","output":"done"}}\n')
"#
    )
}

async fn start(lines: usize) -> Server {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = common::worker_command();
    cmd.env("AGENTDISPATCH_ARTIFACT_DIR", tmp.path().join("artifacts"))
        .env("AGENTDISPATCH_FRAMEWORKS_DIR", "/nonexistent")
        .stderr(Stdio::null());
    for fw in ["lines-refused", "lines-delta", "lines-event"] {
        let path = tmp.path().join(format!("{fw}.py"));
        std::fs::write(&path, script(fw, lines)).unwrap();
        cmd.env(
            format!(
                "AGENTDISPATCH_FRAMEWORK_COMMAND_{}",
                fw.to_uppercase().replace('-', "_")
            ),
            format!("python3 {}", path.display()),
        );
    }
    let mut w = Server::start(cmd, Log::Drop)
        .await
        .expect("start the release worker");
    w.tmp = Some(tmp);
    w
}

/// One task of `kind`: (worker CPU seconds, request → answer).
async fn one(w: &Server, http: &reqwest::Client, kind: &Kind, lines: usize) -> (f64, Duration) {
    let body = json!({"prompt": "lines", "framework": kind.framework});
    let cpu0 = common::cpu_seconds(w.pid());
    let started = Instant::now();
    let (result, text) = if kind.sse {
        let resp = common::post_sse(http, &w.url, &body)
            .await
            .expect("POST /invocations");
        let (mut result, mut text) = (Value::Null, 0usize);
        common::read_sse(resp, |_, v| {
            if v["type"] == "task.delta" {
                text += v["payload"]["text"].as_str().map_or(0, str::len);
            }
            if v.get("ok").is_some() {
                result = v;
            }
        })
        .await
        .expect("SSE body");
        (result, Some(text))
    } else {
        let (status, v) = common::post_json(http, &w.url, &body)
            .await
            .expect("POST /invocations");
        assert_eq!(status, 200, "{v}");
        (v, None)
    };
    let took = started.elapsed();
    let cpu = common::cpu_seconds(w.pid()) - cpu0;
    assert_eq!(result["ok"], true, "{}: {result}", kind.framework);
    if let Some(text) = text {
        assert_eq!(
            text,
            lines * 8,
            "every byte of the deltas' text reached the stream"
        );
    }
    (cpu, took)
}

/// This thread's time on a CPU so far, in ns (`/proc/thread-self/schedstat`'s first field):
/// on this shared machine the wall clock also counts the time other jobs had the core.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split(' ').next()?.parse().ok())
        .expect("/proc/thread-self/schedstat")
}

/// `f` over `lines`, `rounds` times; the fastest round's CPU ns per line.
fn ns_per_line<T>(lines: &[T], rounds: usize, mut f: impl FnMut(&T) -> bool) -> f64 {
    let mut best = f64::MAX;
    let mut kept = 0usize;
    for _ in 0..rounds {
        let t = thread_cpu_ns();
        for l in lines {
            kept += usize::from(f(l));
        }
        best = best.min((thread_cpu_ns() - t) as f64 / lines.len() as f64);
    }
    std::hint::black_box(kept);
    best
}

pub async fn lines(runs: usize, lines: usize) {
    let w = start(lines).await;
    let http = reqwest::Client::new();
    w.first_ping(&http, Duration::from_secs(20), Duration::from_millis(5))
        .await
        .expect("/ping");
    // One task of each first: Python's start-up and the first allocations, not timed.
    for k in &KINDS {
        one(&w, &http, k, lines).await;
    }
    let mut got: Vec<Vec<(f64, Duration)>> = KINDS.iter().map(|_| Vec::new()).collect();
    for run in 0..runs {
        for k in 0..KINDS.len() {
            let i = (run + k) % KINDS.len();
            got[i].push(one(&w, &http, &KINDS[i], lines).await);
        }
    }
    let us = |i: usize| {
        let mut v: Vec<f64> = got[i].iter().map(|(c, _)| c * 1e6 / lines as f64).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let rate = |i: usize| {
        let t = median(&got[i].iter().map(|(_, t)| *t).collect::<Vec<_>>());
        lines as f64 / t.as_secs_f64()
    };
    // In-process, the same lines: the parse every JSON line pays (the floor), and the
    // classification (which tells a delta from an event) on top of it.
    use agentdispatch_worker::protocol::{classify, ChildLine};
    let in_process = |fw: &str| {
        let ls: Vec<String> = (0..lines).map(|n| line(fw, n)).collect();
        let parse = ns_per_line(&ls, 20, |l| serde_json::from_str::<Value>(l).is_ok());
        let classify = ns_per_line(&ls, 20, |l| !matches!(classify(l), ChildLine::Text));
        (parse, classify)
    };
    println!();
    println!("Line path: a child writing {lines} lines of one kind as fast as the pipe takes them, then its result; the kinds taking turns, median of {runs} tasks each (after one each). In-process: CPU of the bench's thread per line, best of 20 rounds over the same lines");
    println!();
    println!("| line (bytes) | floor: `serde_json::from_str` alone, in-process | `protocol::classify`, in-process | worker CPU per line, whole path | worker − floor | lines/s, request → answer |");
    println!("|---|---|---|---|---|---|");
    for (i, k) in KINDS.iter().enumerate() {
        let (parse, classify) = in_process(k.framework);
        println!(
            "| {} ({}) | {parse:.0} ns | {classify:.0} ns | {:.2} µs | {:.2} µs | {:.0} |",
            k.what,
            line(k.framework, 1234567).len() + 1,
            us(i),
            us(i) - parse / 1000.0,
            rate(i)
        );
    }
}
