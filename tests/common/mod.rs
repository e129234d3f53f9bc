//! Shared test helpers: start the real binary on a free port, post payloads, read SSE streams,
//! and look at processes through `/proc`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::panic::Location;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;

pub mod files;
pub mod fixtures;
pub mod gate;
pub mod listening;
pub mod procfs;
pub mod sse;
pub mod talker;
pub mod wait;
use listening::listening_port;
// Not every test binary uses the `/proc` helpers.
#[allow(unused_imports)]
pub use files::*;
#[allow(unused_imports)]
pub use fixtures::*;
#[allow(unused_imports)]
pub use procfs::*;
pub use wait::*;

/// The binary cargo built for this machine.
pub const BIN: &str = env!("CARGO_BIN_EXE_agentdispatch-worker");

/// The worker command under test: `AGENTDISPATCH_TEST_WORKER` split on whitespace (e.g.
/// `qemu-aarch64 -L /usr/aarch64-linux-gnu target/…/agentdispatch-worker`, as
/// `scripts/test-arm64.sh` sets it), else the native binary alone.
pub fn worker_argv() -> Vec<String> {
    match std::env::var("AGENTDISPATCH_TEST_WORKER") {
        Ok(v) if !v.trim().is_empty() => v.split_whitespace().map(str::to_owned).collect(),
        _ => vec![BIN.to_owned()],
    }
}

/// A `Command` for the worker under test (see [`worker_argv`]); add its arguments.
pub fn worker_command() -> Command {
    let argv = worker_argv();
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..]);
    c
}

/// The worker under test as words of a `sh -c` line.
pub fn worker_shell() -> String {
    worker_argv()
        .iter()
        .map(|w| format!("'{}'", w.replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Builds a worker process.
pub struct WorkerBuilder {
    env: HashMap<String, String>,
    remove: Vec<String>,
    wrapper: Vec<String>,
    args: Vec<String>,
}

/// A running worker; killed when dropped.
pub struct Worker {
    /// The worker process.
    pub child: Child,
    /// Its port.
    pub port: u16,
    /// Base URL.
    pub url: String,
    /// Its artifact directory (a temp dir kept alive here).
    pub artifacts: PathBuf,
    _tmp: tempfile::TempDir,
    /// Every stdout line (JSON logs).
    pub logs: Arc<Mutex<Vec<String>>>,
    /// Set once the thread reading stdout has read to its end.
    read_all: Arc<std::sync::atomic::AtomicBool>,
    client: reqwest::Client,
}

impl Default for WorkerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl WorkerBuilder {
    /// A worker with no frameworks directory, short heartbeats and every command allowed.
    pub fn new() -> Self {
        let mut env = HashMap::new();
        env.insert(
            "AGENTDISPATCH_FRAMEWORKS_DIR".into(),
            "/nonexistent-frameworks-dir".into(),
        );
        env.insert("AGENTDISPATCH_COMMAND_ALLOWLIST".into(), "*".into());
        env.insert("AGENTDISPATCH_HOST".into(), "127.0.0.1".into());
        env.insert("RUST_LOG".into(), "info".into());
        WorkerBuilder {
            env,
            remove: Vec::new(),
            wrapper: Vec::new(),
            args: Vec::new(),
        }
    }

    /// Sets a variable.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.insert(k.into(), v.into());
        self
    }

    /// Removes a variable from the worker's environment.
    pub fn env_remove(mut self, k: &str) -> Self {
        self.env.remove(k);
        self.remove.push(k.into());
        self
    }

    /// Runs the binary through a wrapper command (e.g. `unshare`).
    pub fn wrapper(mut self, argv: &[&str]) -> Self {
        self.wrapper = argv.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Gives the worker these arguments (e.g. `serve --dev`); none: `serve` by default.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args = args.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Starts the worker and waits until `/ping` answers. A failure names the caller's line
    /// (`#[track_caller]` does not reach into an `async fn`, so the future carries it).
    #[track_caller]
    pub fn start(self) -> impl Future<Output = Worker> {
        let at = Location::caller();
        self.start_at(at)
    }

    async fn start_at(self, at: &'static Location<'static>) -> Worker {
        let tmp = tempfile::tempdir().unwrap();
        let artifacts = tmp.path().join("artifacts");
        let mut cmd = if self.wrapper.is_empty() {
            worker_command()
        } else {
            let mut c = Command::new(&self.wrapper[0]);
            c.args(&self.wrapper[1..]).args(worker_argv());
            c
        };
        cmd.args(&self.args);
        for k in &self.remove {
            cmd.env_remove(k);
        }
        // PORT=0: the system picks a free port and the worker's "listening" line says which
        // (no race with another test taking a port probed free).
        cmd.env("PORT", "0")
            .env("AGENTDISPATCH_ARTIFACT_DIR", &artifacts)
            .envs(&self.env)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("start the worker");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = logs.clone();
        let read_all = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let at_end = read_all.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
            at_end.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let started = Instant::now();
        let port = loop {
            if let Some(port) = logs.lock().unwrap().iter().find_map(|l| listening_port(l)) {
                break port;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the worker exited with {status} before listening (started at {at})");
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the worker logged no \"listening\" line within 20 s (started at {at})"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let w = Worker {
            child,
            port,
            url: format!("http://127.0.0.1:{port}"),
            artifacts,
            _tmp: tmp,
            logs,
            read_all,
            client: reqwest::Client::new(),
        };
        loop {
            if let Ok(r) = w.client.get(format!("{}/ping", w.url)).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "worker did not answer /ping (started at {at})"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        w
    }
}

/// One parsed SSE message.
#[derive(Debug, Clone)]
pub struct SseMessage {
    /// `id:` value.
    pub id: Option<u64>,
    /// `data:` JSON.
    pub data: Value,
    /// When it arrived.
    pub at: Instant,
}

impl Worker {
    /// The worker's pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// A client.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// `POST /invocations` with a JSON body; returns status and JSON answer.
    #[track_caller]
    pub fn invoke(&self, body: &Value) -> impl Future<Output = (u16, Value)> + '_ {
        let at = Location::caller();
        self.invoke_raw_at(serde_json::to_vec(body).unwrap(), &[], at)
    }

    /// Posts raw bytes with extra headers.
    #[track_caller]
    pub fn invoke_raw<'a>(
        &'a self,
        body: Vec<u8>,
        headers: &'a [(&'a str, &'a str)],
    ) -> impl Future<Output = (u16, Value)> + 'a {
        let at = Location::caller();
        self.invoke_raw_at(body, headers, at)
    }

    async fn invoke_raw_at(
        &self,
        body: Vec<u8>,
        headers: &[(&str, &str)],
        at: &'static Location<'static>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .post(format!("{}/invocations", self.url))
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let v =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON (at {at}): {text}"));
        (status, v)
    }

    /// Posts and asserts 200; returns the answer.
    #[track_caller]
    pub fn run(&self, body: Value) -> impl Future<Output = Value> + '_ {
        let at = Location::caller();
        self.run_at(body, at)
    }

    async fn run_at(&self, body: Value, at: &'static Location<'static>) -> Value {
        let (status, v) = self
            .invoke_raw_at(serde_json::to_vec(&body).unwrap(), &[], at)
            .await;
        assert_eq!(status, 200, "at {at}: {v}");
        v
    }

    /// `GET <path>`: status and JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        (
            resp.status().as_u16(),
            resp.json().await.unwrap_or(Value::Null),
        )
    }

    /// `POST /` with an A2A JSON-RPC body; the JSON answer.
    pub async fn rpc(&self, body: Value) -> Value {
        self.rpc_with(body, &[]).await
    }

    /// `POST /` with an A2A JSON-RPC body; the response, unread (a streaming method's SSE).
    pub async fn rpc_response(&self, body: &Value) -> reqwest::Response {
        let url = format!("{}/", self.url);
        self.client.post(url).json(body).send().await.unwrap()
    }

    /// [`Worker::rpc`] with extra headers.
    pub async fn rpc_with(&self, body: Value, headers: &[(&str, &str)]) -> Value {
        let mut req = self.client.post(format!("{}/", self.url)).json(&body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap().json().await.unwrap()
    }

    /// `GET /ping`.
    pub async fn ping(&self) -> Value {
        self.get("/ping").await.1
    }

    /// Polls `task.status` until the task is no longer running (20 s at most).
    #[track_caller]
    pub fn wait_done<'a>(&'a self, id: &'a str) -> impl Future<Output = Value> + 'a {
        let at = Location::caller();
        self.wait_done_at(id, at)
    }

    async fn wait_done_at(&self, id: &str, at: &'static Location<'static>) -> Value {
        let started = Instant::now();
        loop {
            let s = self
                .run_at(
                    serde_json::json!({"taskType":"task.status","taskId":id,"afterSeq":u64::MAX - 1}),
                    at,
                )
                .await;
            if s["status"] != "running" {
                return s;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{id} still running (at {at}): {s}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Posts with `Accept: text/event-stream` and reads every message until the stream ends.
    #[track_caller]
    pub fn stream<'a>(&'a self, body: &'a Value) -> impl Future<Output = Vec<SseMessage>> + 'a {
        let at = Location::caller();
        self.stream_at(body, at)
    }

    async fn stream_at(&self, body: &Value, at: &'static Location<'static>) -> Vec<SseMessage> {
        let resp = self
            .client
            .post(format!("{}/invocations", self.url))
            .header("accept", "text/event-stream")
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "at {at}");
        assert_eq!(
            resp.headers()["content-type"],
            "text/event-stream",
            "at {at}"
        );
        read_sse(resp, usize::MAX).await
    }

    /// A task's folder.
    pub fn task_dir(&self, id: &str) -> PathBuf {
        self.artifacts.join(id)
    }

    /// The events in a task's folder (`events.ndjson`) so far; none before it exists.
    pub fn folder_events(&self, id: &str) -> Vec<Value> {
        std::fs::read_to_string(self.task_dir(id).join("events.ndjson"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Log lines (JSON) so far.
    pub fn log_lines(&self) -> Vec<Value> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Whether a log line matching `line` comes within 5 s. The log is read on a thread, so a
    /// line written just before an answer may land just after it: check through this, not
    /// through [`Worker::log_lines`] at the instant of the answer.
    pub async fn logged(&self, line: impl Fn(&Value) -> bool) -> bool {
        let seen = || self.log_lines().iter().any(&line);
        wait::eventually(Duration::from_secs(5), seen).await
    }

    /// Sends a signal to the worker.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).unwrap();
    }

    /// Waits for the worker to exit, and for its log to be read to the end (up to 5 s more: a
    /// line written just before the exit is read on a thread); returns its exit code.
    #[track_caller]
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let exited = Instant::now();
                while !self.read_all.load(std::sync::atomic::Ordering::SeqCst)
                    && exited.elapsed() < Duration::from_secs(5)
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                return status.code();
            }
            assert!(
                started.elapsed() < within,
                "worker did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `command.run` payload.
pub fn cmd(command: &str) -> Value {
    serde_json::json!({"taskType":"command.run","input":{"command":command}})
}

/// Reads SSE messages from a response, at most `max`.
pub async fn read_sse(resp: reqwest::Response, max: usize) -> Vec<SseMessage> {
    let mut out = Vec::new();
    let mut buf = String::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        buf.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some((id, data)) = sse::next_message(&mut buf) {
            out.push(SseMessage {
                id,
                data: serde_json::from_str(&data).unwrap(),
                at: Instant::now(),
            });
            if out.len() >= max {
                return out;
            }
        }
    }
    out
}

/// Events of a result by type.
pub fn events_of<'a>(result: &'a Value, kind: &str) -> Vec<&'a Value> {
    result["events"]
        .as_array()
        .map(|a| a.iter().filter(|e| e["type"] == kind).collect())
        .unwrap_or_default()
}
