//! Warm starts against the floor a user would otherwise pick, in one run (SPEC §6.3):
//!
//! 1. The shipped LangGraph example agent served three ways: in-process by AWS's
//!    `bedrock-agentcore` (`bench/agentcore/serve.py`, the floor), through the worker with a
//!    warm parent, and through the worker with a cold child per task. For each: start → first
//!    `/ping`, sequential invocation p50/p90, agent runs/s with 4 clients, request → first
//!    framework step over SSE (the worker only: the floor has no per-step events), and the peak
//!    PSS of the server and every process under it while 4 clients run.
//! 2. All six frameworks, cold and warm: request → first step and → result over SSE.
//!
//! ```sh
//! scripts/setup-frameworks.sh && scripts/setup-frameworks.sh bench/agentcore
//! cargo bench --bench warm                      # both parts
//! cargo bench --bench warm -- --runs 200 langgraph
//! ```

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};

#[path = "../tests/common/procfs.rs"]
mod procfs;
#[path = "../tests/common/sse.rs"]
mod sse;

const BIN: &str = env!("CARGO_BIN_EXE_agentdispatch-worker");
const SIX: [&str; 6] = [
    "langchain",
    "langgraph",
    "crewai",
    "strands",
    "openai-agents",
    "pydantic-ai",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server under test: its process, URL, and its stdout lines.
struct Server {
    child: Child,
    url: String,
    logs: Arc<Mutex<Vec<String>>>,
    started: Instant,
    _tmp: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(mut cmd: Command, port: u16, tmp: Option<tempfile::TempDir>) -> Server {
    let started = Instant::now();
    let mut child = cmd
        .env("PORT", port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the server");
    let logs = Arc::new(Mutex::new(Vec::new()));
    let sink = logs.clone();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
        logs,
        started,
        _tmp: tmp,
    }
}

fn start_floor() -> Server {
    let python = root().join("bench/agentcore/.venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-frameworks.sh bench/agentcore",
        python.display()
    );
    let mut cmd = Command::new(python);
    cmd.arg(root().join("bench/agentcore/serve.py"));
    spawn(cmd, free_port(), None)
}

fn start_worker(warm: &str, default_framework: &str) -> Server {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.env("AGENTDISPATCH_HOST", "127.0.0.1")
        .env("AGENTDISPATCH_FRAMEWORKS_DIR", root().join("frameworks"))
        .env("AGENTDISPATCH_ARTIFACT_DIR", tmp.path())
        .env("AGENTDISPATCH_AGENT_FRAMEWORK", default_framework)
        .env("AGENTDISPATCH_WARM", warm)
        .env("RUST_LOG", "info");
    spawn(cmd, free_port(), Some(tmp))
}

impl Server {
    /// Start → first 200 from `/ping`.
    async fn first_ping(&self, http: &reqwest::Client) -> Duration {
        loop {
            if let Ok(r) = http.get(format!("{}/ping", self.url)).send().await {
                if r.status().is_success() {
                    return self.started.elapsed();
                }
            }
            assert!(
                self.started.elapsed() < Duration::from_secs(120),
                "no /ping"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Waits until the worker logged `n` warm parents ready; start → then.
    async fn warm_ready(&self, n: usize) -> Duration {
        loop {
            let ready = self
                .logs
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains("\"warm parent ready\""))
                .count();
            if ready >= n {
                return self.started.elapsed();
            }
            assert!(
                self.started.elapsed() < Duration::from_secs(180),
                "warm parents not ready"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// One invocation of the hello-world prompt, JSON; its wall time.
    async fn invoke(&self, http: &reqwest::Client, framework: &str) -> Duration {
        let started = Instant::now();
        let v: Value = http
            .post(format!("{}/invocations", self.url))
            .json(&json!({"prompt": "hello world", "framework": framework}))
            .send()
            .await
            .expect("POST /invocations")
            .json()
            .await
            .expect("JSON answer");
        assert_eq!(v["ok"], true, "{v}");
        assert_eq!(v["output"], "Shouted: HELLO WORLD", "{v}");
        started.elapsed()
    }

    /// One SSE invocation: (request → first framework step, request → result).
    async fn stream(&self, http: &reqwest::Client, framework: &str) -> (Duration, Duration) {
        let started = Instant::now();
        let resp = http
            .post(format!("{}/invocations", self.url))
            .header("accept", "text/event-stream")
            .json(&json!({"prompt": "hello world", "framework": framework}))
            .send()
            .await
            .expect("POST /invocations");
        let (mut step, mut result) = (None, None);
        let mut buf = String::new();
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            buf.push_str(&String::from_utf8_lossy(&chunk.expect("SSE body")));
            while let Some((_, data)) = sse::next_message(&mut buf) {
                let v: Value = serde_json::from_str(&data).expect("SSE data is JSON");
                if v["type"] == "task.progress" && v["payload"]["step"].is_string() {
                    step.get_or_insert(started.elapsed());
                }
                if v.get("ok").is_some() {
                    assert_eq!(v["ok"], true, "{framework}: {v}");
                    result = Some(started.elapsed());
                }
            }
        }
        (
            step.unwrap_or_else(|| panic!("{framework}: no step event")),
            result.expect("a result"),
        )
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

/// PSS of `pid` and all its descendants, in kB (`/proc/<pid>/smaps_rollup`).
fn tree_pss_kb(pid: i32) -> u64 {
    let mut total = 0;
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{p}/smaps_rollup")) {
            total += text
                .lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
        todo.extend(procfs::children_with_state(p).into_iter().map(|(c, _)| c));
    }
    total
}

/// 4 clients, `per_client` invocations each: (runs per second, peak tree PSS in kB).
async fn four_clients(s: &Server, framework: &str, per_client: usize) -> (f64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let pid = s.pid();
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(tree_pss_kb(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..4 {
        let url = s.url.clone();
        let framework = framework.to_string();
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            for _ in 0..per_client {
                let v: Value = http
                    .post(format!("{url}/invocations"))
                    .json(&json!({"prompt": "hello world", "framework": framework}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert_eq!(v["ok"], true, "{v}");
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    let rate = (4 * per_client) as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    (rate, peak.load(Ordering::Relaxed))
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The figures of one way of serving the LangGraph agent.
struct Served {
    name: &'static str,
    first_ping: Duration,
    ready: Option<Duration>,
    p50: Duration,
    p90: Duration,
    rate: f64,
    first_step: Option<Duration>,
    pss_kb: u64,
}

async fn measure(
    name: &'static str,
    s: &Server,
    warm_parents: usize,
    runs: usize,
    per_client: usize,
    worker: bool,
) -> Served {
    let http = reqwest::Client::new();
    let first_ping = s.first_ping(&http).await;
    let ready = if warm_parents > 0 {
        Some(s.warm_ready(warm_parents).await)
    } else {
        None
    };
    // Warm-up: the first runs learn, import lazily, fill caches.
    for _ in 0..3.min(runs) {
        s.invoke(&http, "langgraph").await;
    }
    let mut seq = Vec::new();
    for _ in 0..runs {
        seq.push(s.invoke(&http, "langgraph").await);
    }
    let first_step = if worker {
        let mut steps = Vec::new();
        for _ in 0..runs.min(50) {
            steps.push(s.stream(&http, "langgraph").await.0);
        }
        Some(pct(&mut steps, 0.5))
    } else {
        None
    };
    let (rate, pss_kb) = four_clients(s, "langgraph", per_client).await;
    Served {
        name,
        first_ping,
        ready,
        p50: pct(&mut seq, 0.5),
        p90: pct(&mut seq, 0.9),
        rate,
        first_step,
        pss_kb,
    }
}

async fn langgraph_against_the_floor(runs: usize) {
    let floor = {
        let s = start_floor();
        measure(
            "`bedrock-agentcore` in-process (floor)",
            &s,
            0,
            runs,
            runs / 2,
            false,
        )
        .await
    };
    let warm = {
        let s = start_worker("langgraph", "langgraph");
        measure("worker, warm", &s, 1, runs, runs / 2, true).await
    };
    let cold = {
        let s = start_worker("none", "langgraph");
        measure("worker, cold", &s, 0, 5, 3, true).await
    };
    println!("LangGraph example agent, \"hello world\"; {runs} sequential runs (cold: 5), 4 clients × {} runs (cold: 3)", runs / 2);
    println!();
    println!("| served by | start → first `/ping` | warm parent ready | invocation p50 | p90 | 4 clients, runs/s | request → first step (SSE) | peak PSS, 4 clients |");
    println!("|---|---|---|---|---|---|---|---|");
    for s in [&floor, &warm, &cold] {
        println!(
            "| {} | {} | {} | {} | {} | {:.1} | {} | {:.0} MB |",
            s.name,
            ms(s.first_ping),
            s.ready.map_or("—".into(), ms),
            ms(s.p50),
            ms(s.p90),
            s.rate,
            s.first_step.map_or("—".into(), ms),
            s.pss_kb as f64 / 1024.0
        );
    }
    let f = floor.p50.as_secs_f64() * 1000.0;
    let w = warm.p50.as_secs_f64() * 1000.0;
    println!();
    println!("| target (issue: warm agents) | warm figure | bound | met |");
    println!("|---|---|---|---|");
    let bound = 2.0 * f + 5.0;
    println!(
        "| sequential p50 ≤ 2 × in-process + 5 ms | {w:.1} ms | {bound:.1} ms | {} |",
        yes(w <= bound)
    );
    let half = floor.rate / 2.0;
    println!(
        "| 4-client runs/s ≥ 50 % of in-process | {:.1} | {half:.1} | {} |",
        warm.rate,
        yes(warm.rate >= half)
    );
    let step = warm.first_step.unwrap().as_secs_f64() * 1000.0;
    println!(
        "| request → first step over SSE ≤ 20 ms | {step:.1} ms | 20 ms | {} |",
        yes(step <= 20.0)
    );
    let pss_bound = floor.pss_kb as f64 * 1.5;
    println!(
        "| PSS with 4 concurrent tasks ≤ 1.5 × in-process | {:.0} MB | {:.0} MB | {} |",
        warm.pss_kb as f64 / 1024.0,
        pss_bound / 1024.0,
        yes(warm.pss_kb as f64 <= pss_bound)
    );
    println!(
        "\nratios: p50 warm/in-process {:.2}×, cold/in-process {:.0}×; runs/s warm/in-process {:.0} %",
        w / f,
        cold.p50.as_secs_f64() * 1000.0 / f,
        warm.rate / floor.rate * 100.0
    );
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "**no**"
    }
}

async fn six_frameworks(runs: usize, only: &[String]) {
    let chosen: Vec<&str> = SIX
        .iter()
        .copied()
        .filter(|n| only.is_empty() || only.iter().any(|o| o == n))
        .collect();
    let http = reqwest::Client::new();
    let warm = start_worker("all", "echo");
    warm.first_ping(&http).await;
    let cold = start_worker("none", "echo");
    cold.first_ping(&http).await;
    warm.warm_ready(SIX.len()).await;
    println!("\nEach framework's example agent, \"hello world\" over SSE, median of {runs} (after one warm-up run each)");
    println!();
    println!("| framework | cold: first step | cold: result | warm: first step | warm: result | result, cold / warm |");
    println!("|---|---|---|---|---|---|");
    for name in chosen {
        let mut figures = Vec::new();
        for s in [&cold, &warm] {
            s.stream(&http, name).await;
            let (mut step, mut result) = (Vec::new(), Vec::new());
            for _ in 0..runs {
                let (a, b) = s.stream(&http, name).await;
                step.push(a);
                result.push(b);
            }
            figures.push((pct(&mut step, 0.5), pct(&mut result, 0.5)));
        }
        let ((cs, cr), (ws, wr)) = (figures[0], figures[1]);
        println!(
            "| {name} | {} | {} | {} | {} | {:.0}× |",
            ms(cs),
            ms(cr),
            ms(ws),
            ms(wr),
            cr.as_secs_f64() / wr.as_secs_f64()
        );
    }
}

fn main() {
    let mut runs = 100usize;
    let mut only: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bench" => {}
            "--runs" => {
                runs = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n >= 4)
                    .expect("--runs N (at least 4)")
            }
            other if other.starts_with('-') => panic!("unknown option {other}"),
            name => only.push(name.to_string()),
        }
    }
    for name in SIX {
        let python = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("frameworks")
            .join(name)
            .join(".venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run scripts/setup-frameworks.sh",
            python.display()
        );
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        if only.is_empty() || only.iter().any(|o| o == "langgraph") {
            langgraph_against_the_floor(runs).await;
        }
        six_frameworks(3, &only).await;
    });
}
