//! The harness the four benches share (`mod common;` in `worker.rs`, `warm.rs`, `frameworks.rs`
//! and `soak.rs`): start the release worker on `PORT=0` and read the port it bound from its
//! `listening` log line, plain HTTP and SSE requests, percentiles, and sampling `/proc`. The
//! SSE framing, the `/proc` readers and the log-line parser are the tests' own files
//! (`tests/common/*.rs`, through `#[path]`).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;

#[path = "../../tests/common/listening.rs"]
pub mod listening;
#[path = "../../tests/common/procfs.rs"]
pub mod procfs;
#[path = "../../tests/common/sse.rs"]
pub mod sse;
mod usage;
// Not every bench samples `/proc`.
#[allow(unused_imports)]
pub use usage::*;

/// The release binary cargo built for the bench.
pub const BIN: &str = env!("CARGO_BIN_EXE_agentdispatch-worker");

/// The repository (where `frameworks/` and `scripts/` are).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The six shipped frameworks, each with the module its runner imports.
pub const FRAMEWORKS: [(&str, &str); 6] = [
    ("langchain", "langchain.agents"),
    ("langgraph", "langgraph.graph"),
    ("crewai", "crewai"),
    ("strands", "strands"),
    ("openai-agents", "agents"),
    ("pydantic-ai", "pydantic_ai"),
];

/// `frameworks/<name>/.venv/bin/python`, or a panic saying how to make it.
pub fn venv_python(name: &str) -> PathBuf {
    let python = repo()
        .join("frameworks")
        .join(name)
        .join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-frameworks.sh {name}",
        python.display()
    );
    python
}

/// `--runs N` (at least `min`, else `default`) and framework names, from the command line
/// (`--bench`, which `cargo bench` passes, is ignored).
pub fn runs_and_names(default: usize, min: usize) -> (usize, Vec<String>) {
    let mut runs = default;
    let mut only: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bench" => {}
            "--runs" => {
                runs = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n >= min)
                    .unwrap_or_else(|| panic!("--runs N (at least {min})"))
            }
            other if other.starts_with('-') => panic!("unknown option {other}"),
            name => only.push(name.to_string()),
        }
    }
    (runs, only)
}

/// An environment knob: a whole number, or `default` when unset or not a number.
pub fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// `Err(what())` unless `cond`.
pub fn ensure(cond: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what())
    }
}

/// The release worker on loopback with `PORT=0` (the system picks a free port; the worker's
/// `listening` line says which, so no port is probed free and then raced for). Add the rest of
/// its environment and its stderr.
pub fn worker_command() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("PORT", "0")
        .env("AGENTDISPATCH_HOST", "127.0.0.1")
        .stdin(Stdio::null());
    cmd
}

/// Where a server's stdout lines go (each is also read for the `listening` line).
pub enum Log {
    /// Read and dropped (written as in production, not kept).
    Drop,
    /// Kept in [`Server::logs`].
    Keep,
    /// Appended to this file, one line each.
    File(std::fs::File),
}

/// A server process under test; killed (SIGKILL) when dropped, see [`Server::terminate`].
pub struct Server {
    pub child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// When it was spawned.
    pub started: Instant,
    /// Its stdout lines, with [`Log::Keep`].
    pub logs: Arc<Mutex<Vec<String>>>,
    /// A temp dir that lives as long as the server (its artifact directory, say).
    pub tmp: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts a worker command (see [`worker_command`]) and waits (20 s at most) for the port it
    /// bound, from its `listening` log line.
    pub async fn start(cmd: Command, log: Log) -> Result<Server, String> {
        let port = Arc::new(Mutex::new(None));
        let mut s = Server::spawn(cmd, log, Some(port.clone()))?;
        loop {
            if let Some(p) = *port.lock().unwrap() {
                s.url = format!("http://127.0.0.1:{p}");
                return Ok(s);
            }
            if let Ok(Some(status)) = s.child.try_wait() {
                return Err(format!("the worker exited with {status} before listening"));
            }
            ensure(s.started.elapsed() < Duration::from_secs(20), || {
                "the worker logged no \"listening\" line within 20 s".into()
            })?;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Starts a server that cannot say which port it bound (the bench's Python floor) on
    /// `PORT=port`.
    pub fn start_on(mut cmd: Command, port: u16, log: Log) -> Result<Server, String> {
        cmd.env("PORT", port.to_string());
        let mut s = Server::spawn(cmd, log, None)?;
        s.url = format!("http://127.0.0.1:{port}");
        Ok(s)
    }

    fn spawn(
        mut cmd: Command,
        log: Log,
        port: Option<Arc<Mutex<Option<u16>>>>,
    ) -> Result<Server, String> {
        let started = Instant::now();
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
        let logs = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("piped stdout");
        let keep = logs.clone();
        std::thread::spawn(move || {
            let (keep_lines, mut file) = match log {
                Log::Drop => (false, None),
                Log::Keep => (true, None),
                Log::File(f) => (false, Some(f)),
            };
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(slot) = &port {
                    if let Some(p) = listening::listening_port(&line) {
                        slot.lock().unwrap().get_or_insert(p);
                    }
                }
                if let Some(f) = &mut file {
                    let _ = writeln!(f, "{line}");
                }
                if keep_lines {
                    keep.lock().unwrap().push(line);
                }
            }
        });
        Ok(Server {
            child,
            url: String::new(),
            started,
            logs,
            tmp: None,
        })
    }

    /// Waits until the worker logged `n` warm parents ready (3 minutes at most); start → then.
    pub async fn warm_ready(&self, n: usize) -> Duration {
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
    /// The server's pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Polls `/ping` every `every` until it answers 200 (`within` at most); start → then.
    pub async fn first_ping(
        &self,
        http: &reqwest::Client,
        within: Duration,
        every: Duration,
    ) -> Result<Duration, String> {
        loop {
            if let Ok(r) = http.get(format!("{}/ping", self.url)).send().await {
                if r.status().is_success() {
                    return Ok(self.started.elapsed());
                }
            }
            ensure(self.started.elapsed() < within, || {
                format!("{} did not answer /ping within {within:?}", self.url)
            })?;
            tokio::time::sleep(every).await;
        }
    }

    /// SIGTERM, then waits (`within` at most) for the exit; its status.
    pub fn terminate(&mut self, within: Duration) -> Result<ExitStatus, String> {
        let pid = nix::unistd::Pid::from_raw(self.pid());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
            .map_err(|e| format!("SIGTERM: {e}"))?;
        let began = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if began.elapsed() < within => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Ok(None) => return Err(format!("did not exit within {within:?} of SIGTERM")),
                Err(e) => return Err(format!("wait: {e}")),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The floor the warm-start and live-text benches measure against: `bench/agentcore/serve.py`
/// (AWS's `bedrock-agentcore` serving the LangGraph example agent in-process) with `args` and
/// `env`. It binds the `PORT` it is given and does not log the port, so this one port is probed
/// free first.
pub fn start_agentcore(args: &[&str], env: &[(&str, String)]) -> Server {
    let python = repo().join("bench/agentcore/.venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-frameworks.sh bench/agentcore",
        python.display()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = Command::new(python);
    cmd.arg(repo().join("bench/agentcore/serve.py"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stderr(Stdio::null());
    Server::start_on(cmd, port, Log::Keep).expect("start the bedrock-agentcore floor")
}

/// Pings every 5 ms until `stop`; the latencies, sorted.
pub async fn pinger(client: reqwest::Client, url: String, stop: Arc<AtomicBool>) -> Vec<Duration> {
    let mut times = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        let r = client.get(format!("{url}/ping")).send().await;
        assert!(r.is_ok_and(|r| r.status().is_success()), "/ping failed");
        times.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    times.sort();
    times
}

/// `POST <url>/invocations` with a JSON body: the HTTP status and the JSON answer.
pub async fn post_json(
    http: &reqwest::Client,
    url: &str,
    body: &Value,
) -> Result<(u16, Value), String> {
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
    let v = serde_json::from_slice(&bytes)
        .map_err(|_| format!("not JSON: {}", String::from_utf8_lossy(&bytes)))?;
    Ok((status, v))
}

/// `POST <url>/invocations` with `Accept: text/event-stream`; the response, once it is a 200
/// event stream.
pub async fn post_sse(
    http: &reqwest::Client,
    url: &str,
    body: &Value,
) -> Result<reqwest::Response, String> {
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
    Ok(resp)
}

/// Reads an event stream to its end, handing each message's `id:` and JSON `data:` to `each`
/// as it arrives; returns what was left after the last complete message (nothing, for a
/// stream that ended cleanly).
pub async fn read_sse(
    resp: reqwest::Response,
    mut each: impl FnMut(Option<u64>, Value),
) -> Result<String, String> {
    let mut buf = String::new();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| format!("stream broke: {e}"))?;
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some((id, data)) = sse::next_message(&mut buf) {
            let v =
                serde_json::from_str(&data).map_err(|_| format!("SSE data is not JSON: {data}"))?;
            each(id, v);
        }
    }
    Ok(buf)
}

/// Nearest-rank percentile `p` (0–100) of durations.
pub fn percentile(v: &[Duration], p: f64) -> Duration {
    let mut s: Vec<Duration> = v.to_vec();
    s.sort();
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

/// The median (the nearest-rank 50th percentile).
pub fn median(v: &[Duration]) -> Duration {
    percentile(v, 50.0)
}

/// kB as MB with one decimal.
pub fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

/// Waits for `/ping`, and for a worker's warm parent when `warm`.
pub async fn ready(s: &Server, http: &reqwest::Client, warm: bool) {
    s.first_ping(http, Duration::from_secs(120), Duration::from_millis(5))
        .await
        .expect("/ping");
    if warm {
        s.warm_ready(1).await;
    }
}

/// The release worker on the repository's `frameworks/`, `default_framework` the default,
/// `AGENTDISPATCH_WARM=warm`, its artifact and session directories in a temporary folder it
/// keeps, and `env` beside.
pub async fn frameworks_worker(
    warm: &str,
    default_framework: &str,
    env: &[(&str, String)],
) -> Server {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = worker_command();
    cmd.env("AGENTDISPATCH_FRAMEWORKS_DIR", repo().join("frameworks"))
        .env("AGENTDISPATCH_ARTIFACT_DIR", tmp.path().join("artifacts"))
        .env("AGENTDISPATCH_SESSION_DIR", tmp.path().join("sessions"))
        .env("AGENTDISPATCH_AGENT_FRAMEWORK", default_framework)
        .env("AGENTDISPATCH_WARM", warm)
        .env("RUST_LOG", "info")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stderr(Stdio::null());
    let mut s = Server::start(cmd, Log::Keep)
        .await
        .expect("start the worker");
    s.tmp = Some(tmp);
    s
}

/// The worker serving the LangGraph example agent, warm (`AGENTDISPATCH_WARM=langgraph`) or
/// with a cold child per task (`none`); its offline model waits `delay_ms` before each piece
/// (`AGENTDISPATCH_EXAMPLE_PIECE_DELAY_MS`).
pub async fn langgraph_worker(warm: &str, delay_ms: usize) -> Server {
    let delay = [("AGENTDISPATCH_EXAMPLE_PIECE_DELAY_MS", delay_ms.to_string())];
    frameworks_worker(warm, "langgraph", &delay).await
}
