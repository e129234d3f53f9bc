//! The worker's benchmark harness: `cargo bench --bench worker`.
//!
//! Starts the real release binary on loopback, on a port it picks (`PORT=0`), a fresh worker per
//! section, so that one section's memory or disk does not colour the next, and prints every
//! figure beside a floor measured in the same run, with the ratio, the target and whether it was met. Figures and how
//! to read them are in `bench/README.md`.
//!
//! Environment knobs (all optional): `BENCH_ROUND_TRIPS` (300), `BENCH_PINGS` (1000),
//! `BENCH_LINES` (2000000), `BENCH_SSE_SHORT_LINES` (100000), `BENCH_SSE_LINES` (same as
//! `BENCH_LINES`), `BENCH_FLOOD_BYTES`
//! (200000000), `BENCH_IDLE_TASKS` (100).

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};

mod common;
use common::{cpu_seconds, knob, mb, procfs, Log, Sampler, Server};

// The figures (figures 1–4 and 6; 5 and 7) and their table, under bench/worker/.
#[path = "worker/figures.rs"]
mod figures;
#[path = "worker/long_running.rs"]
mod long_running;
#[path = "worker/table.rs"]
mod table;

/// A worker on a loopback port it picked, stopped with SIGTERM when dropped.
pub(crate) struct Worker {
    pub(crate) server: Server,
    pub(crate) url: String,
    pub(crate) artifacts: PathBuf,
    pub(crate) client: reqwest::Client,
}

impl Worker {
    pub(crate) async fn start(extra: &[(&str, &str)]) -> Worker {
        Worker::start_in(None, extra).await
    }

    /// A worker whose artifact directory is under `base` (default: the system temp dir).
    pub(crate) async fn start_in(base: Option<&Path>, extra: &[(&str, &str)]) -> Worker {
        let tmp = match base {
            Some(b) => tempfile::tempdir_in(b),
            None => tempfile::tempdir(),
        }
        .expect("temp dir");
        let artifacts = tmp.path().join("artifacts");
        let mut cmd = common::worker_command();
        cmd.env("AGENTDISPATCH_COMMAND_ALLOWLIST", "*")
            .env("AGENTDISPATCH_ARTIFACT_DIR", &artifacts)
            .env("AGENTDISPATCH_FRAMEWORKS_DIR", "/nonexistent")
            .envs(extra.iter().copied())
            .stderr(Stdio::inherit());
        // JSON log lines: written as in production, read for the port, not kept.
        let mut server = Server::start(cmd, Log::Drop)
            .await
            .expect("start the worker");
        server.tmp = Some(tmp);
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("http client");
        server
            .first_ping(&client, Duration::from_secs(20), Duration::from_millis(10))
            .await
            .expect("the worker answers /ping");
        Worker {
            url: server.url.clone(),
            server,
            artifacts,
            client,
        }
    }

    pub(crate) fn pid(&self) -> i32 {
        self.server.pid()
    }

    pub(crate) async fn invoke(&self, body: &Value) -> Value {
        common::post_json(&self.client, &self.url, body)
            .await
            .expect("POST /invocations")
            .1
    }

    pub(crate) async fn ping(&self) -> Duration {
        let t = Instant::now();
        let resp = self
            .client
            .get(format!("{}/ping", self.url))
            .send()
            .await
            .expect("GET /ping");
        let body = resp.bytes().await.expect("ping body");
        let took = t.elapsed();
        assert!(body.starts_with(b"{\"status\":\"Healthy"), "{body:?}");
        took
    }

    pub(crate) async fn pings(&self, n: usize) -> Vec<Duration> {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.ping().await);
        }
        v
    }

    /// Starts `n` async `command.run` tasks `<prefix>-<i>` with this `input`; their ids.
    pub(crate) async fn start_async(&self, prefix: &str, n: usize, input: Value) -> Vec<String> {
        let mut ids = Vec::new();
        for i in 0..n {
            let id = format!("{prefix}-{i}");
            let r = self
                .invoke(&json!({"taskType": "command.run", "taskId": id, "async": true, "input": input}))
                .await;
            assert_eq!(r["status"], "running", "{r}");
            ids.push(id);
        }
        ids
    }

    pub(crate) async fn cancel(&self, task_id: &str) {
        let r = self
            .invoke(&json!({"taskType": "task.cancel", "taskId": task_id}))
            .await;
        assert_eq!(r["taskId"], task_id, "{r}");
    }

    pub(crate) async fn wait_idle(&self) {
        let began = Instant::now();
        while began.elapsed() < Duration::from_secs(20) {
            let r = self
                .client
                .get(format!("{}/ping", self.url))
                .send()
                .await
                .expect("GET /ping");
            let v: Value = r.json().await.expect("ping JSON");
            if v["status"] == "Healthy" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the worker stayed busy");
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // SIGKILL (the server's own drop) if it is not gone within 15 s.
        let _ = self.server.terminate(Duration::from_secs(15));
    }
}

/// A `/proc/<pid>/status` field in kB (VmRSS, VmHWM); 0 if missing.
pub(crate) fn proc_kb(pid: i32, field: &str) -> u64 {
    procfs::status_kb(pid, field).unwrap_or(0)
}

/// Nearest-rank percentile of durations, in milliseconds.
pub(crate) fn pct(v: &[Duration], p: f64) -> f64 {
    common::percentile(v, p).as_secs_f64() * 1000.0
}

use figures::{lines_per_second, memory, pings, round_trip};
use long_running::{per_task_memory, sse_rate};
use table::print_table;

fn main() {
    // `cargo bench` passes `--bench`; a name filter is not supported (the run is one piece).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let began = Instant::now();
    let mut rows = Vec::new();
    rt.block_on(async {
        {
            let w = Worker::start(&[]).await;
            eprintln!("bench: round trips");
            round_trip(&w, &mut rows, "").await;
            eprintln!("bench: pings");
            pings(&w, &mut rows).await;
        }
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            // The same with the task folders on tmpfs: what the file system adds.
            let w = Worker::start_in(Some(shm), &[]).await;
            eprintln!("bench: round trips, artifacts on tmpfs");
            round_trip(&w, &mut rows, ", artifacts on tmpfs").await;
        }
        eprintln!("bench: lines per second");
        let json_rate = lines_per_second(&mut rows).await;
        eprintln!("bench: SSE");
        // A stream that stays within the in-memory event window, then the long one.
        sse_rate(&mut rows, knob("BENCH_SSE_SHORT_LINES", 100_000), json_rate).await;
        let long = knob("BENCH_SSE_LINES", knob("BENCH_LINES", 2_000_000));
        sse_rate(&mut rows, long, json_rate).await;
        eprintln!("bench: memory");
        memory(&mut rows).await;
        eprintln!("bench: idle tasks");
        per_task_memory(&mut rows).await;
    });
    rows.sort_by_key(|r| r.figure.chars().next());
    println!();
    println!(
        "agentdispatch-worker bench, {} CPUs, load average {}, {:.1?} in all",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        began.elapsed()
    );
    print_table(&rows);
}
