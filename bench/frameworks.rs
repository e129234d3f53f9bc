//! Per-framework figures for the Python frameworks of `frameworks/`, through the real release
//! binary over HTTP with SSE:
//!
//! - time from the invocation to the first event (`accepted`, the worker's own), to the first
//!   agent step the child streams (`task.progress` with `payload.step`), and to the result;
//!   and from the last step to the result (the child's exit: interpreter teardown);
//! - the child's peak RSS (`VmHWM` of every process carrying the task's `AGENTDISPATCH_TASK_ID`,
//!   polled from `/proc` every 10 ms while the task runs; the largest one);
//! - beside them, the bare `.venv/bin/python -c 'import <module>'` time, measured in the same run.
//!
//! Each figure is the median of `--runs` runs (default 3); frameworks run one after another.
//!
//! ```sh
//! scripts/setup-frameworks.sh
//! cargo bench --bench frameworks                      # all six
//! cargo bench --bench frameworks -- --runs 5 langgraph strands
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};

#[path = "../tests/common/procfs.rs"]
mod procfs;

const BIN: &str = env!("CARGO_BIN_EXE_agentdispatch-worker");

/// Framework folder → the module its runner imports.
const FRAMEWORKS: [(&str, &str); 6] = [
    ("langchain", "langchain.agents"),
    ("langgraph", "langgraph.graph"),
    ("crewai", "crewai"),
    ("strands", "strands"),
    ("openai-agents", "agents"),
    ("pydantic-ai", "pydantic_ai"),
];

struct Worker {
    child: Child,
    url: String,
    _artifacts: tempfile::TempDir,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_worker(frameworks: &Path) -> Worker {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let artifacts = tempfile::tempdir().unwrap();
    let child = Command::new(BIN)
        .env("PORT", port.to_string())
        .env("AGENTDISPATCH_HOST", "127.0.0.1")
        .env("AGENTDISPATCH_FRAMEWORKS_DIR", frameworks)
        .env("AGENTDISPATCH_ARTIFACT_DIR", artifacts.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start the worker");
    Worker {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _artifacts: artifacts,
    }
}

async fn wait_ready(client: &reqwest::Client, w: &Worker) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if let Ok(r) = client.get(format!("{}/ping", w.url)).send().await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the worker did not answer /ping");
}

/// One run's figures.
struct Run {
    accepted: Duration,
    first_step: Duration,
    last_step: Duration,
    result: Duration,
    peak_rss_kb: u64,
}

/// Polls the task's processes' `VmHWM` until `stop`; returns the largest seen.
fn watch_rss(task_id: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let marker = format!("AGENTDISPATCH_TASK_ID={task_id}").into_bytes();
        let mut pids: Vec<i32> = Vec::new();
        let mut last_scan = Instant::now() - Duration::from_secs(1);
        let mut peak: HashMap<i32, u64> = HashMap::new();
        while !stop.load(Ordering::Relaxed) {
            // A full /proc scan is costly; rescan for new processes every 100 ms, read the
            // known ones every 10 ms.
            if last_scan.elapsed() >= Duration::from_millis(100) {
                pids = procfs::marked_processes(&marker);
                last_scan = Instant::now();
            }
            for &pid in &pids {
                if let Some(kb) = procfs::status_kb(pid, "VmHWM") {
                    let e = peak.entry(pid).or_default();
                    *e = (*e).max(kb);
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        peak.values().copied().max().unwrap_or(0)
    })
}

async fn run_once(client: &reqwest::Client, w: &Worker, name: &str, n: usize) -> Run {
    let task_id = format!("bench-{name}-{}-{n}", std::process::id());
    let stop = Arc::new(AtomicBool::new(false));
    let rss = watch_rss(task_id.clone(), stop.clone());
    let started = Instant::now();
    let resp = client
        .post(format!("{}/invocations", w.url))
        .header("accept", "text/event-stream")
        .json(&json!({"taskId": task_id, "framework": name,
                      "input": {"instruction": "hello world"}}))
        .send()
        .await
        .expect("POST /invocations");
    assert_eq!(resp.status(), 200);
    let (mut accepted, mut first_step, mut last_step, mut result) = (None, None, None, None);
    let mut last: Option<Value> = None;
    let mut buf = String::new();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        buf.push_str(&String::from_utf8_lossy(&chunk.expect("SSE body")));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) else {
                continue;
            };
            let v: Value = serde_json::from_str(data).expect("SSE data is JSON");
            let at = started.elapsed();
            accepted.get_or_insert(at);
            if v["type"] == "task.progress" && v["payload"]["step"].is_string() {
                first_step.get_or_insert(at);
                last_step = Some(at);
            }
            if v.get("ok").is_some() {
                result = Some(at);
            }
            last = Some(v);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let peak_rss_kb = rss.join().unwrap();
    let last = last.expect("an SSE message");
    assert_eq!(last["ok"], true, "{name}: {last}");
    assert_eq!(last["output"], "Shouted: HELLO WORLD", "{name}");
    Run {
        accepted: accepted.unwrap(),
        first_step: first_step.unwrap_or_else(|| panic!("{name}: no step event")),
        last_step: last_step.unwrap(),
        result: result.unwrap(),
        peak_rss_kb,
    }
}

/// Wall time of `python -c 'import module'`.
fn import_time(python: &Path, module: &str) -> Duration {
    let started = Instant::now();
    let status = Command::new(python)
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .status()
        .expect("run python");
    assert!(
        status.success(),
        "{} -c 'import {module}' failed",
        python.display()
    );
    started.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn main() {
    let mut runs = 3usize;
    let mut only: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bench" => {} // passed by `cargo bench`
            "--runs" => {
                runs = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .expect("--runs N")
            }
            other if other.starts_with('-') => panic!("unknown option {other}"),
            name => only.push(name.to_string()),
        }
    }
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("frameworks")
        .canonicalize()
        .expect("frameworks/");
    let chosen: Vec<(&str, &str)> = FRAMEWORKS
        .iter()
        .copied()
        .filter(|(n, _)| only.is_empty() || only.iter().any(|o| o == n))
        .collect();
    assert!(!chosen.is_empty(), "no framework named {only:?}");
    for (name, _) in &chosen {
        let python = dir.join(name).join(".venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run scripts/setup-frameworks.sh {name}",
            python.display()
        );
    }

    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let w = start_worker(&dir);
    rt.block_on(wait_ready(&client, &w));
    println!(
        "hello-world run of each example agent, median of {runs} (peak RSS: largest of the runs)"
    );
    println!(
        "| framework | `import` alone | first event (accepted) | first step | result | result − import | last step → result | child peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, module) in chosen {
        let python = dir.join(name).join(".venv/bin/python");
        let mut import = Vec::new();
        let (mut acc, mut step, mut res, mut tail, mut rss) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), 0);
        for n in 0..runs {
            // Interleaved, so that both see the same machine load.
            import.push(import_time(&python, module));
            let r = rt.block_on(run_once(&client, &w, name, n));
            acc.push(r.accepted);
            step.push(r.first_step);
            res.push(r.result);
            tail.push(r.result.saturating_sub(r.last_step));
            rss = rss.max(r.peak_rss_kb);
        }
        let (import, result) = (median(import), median(res));
        println!(
            "| {name} | {} | {:.1} ms | {} | {} | {} | {} | {:.0} MB |",
            secs(import),
            median(acc).as_secs_f64() * 1000.0,
            secs(median(step)),
            secs(result),
            secs(result.saturating_sub(import)),
            secs(median(tail)),
            rss as f64 / 1024.0
        );
    }
}
