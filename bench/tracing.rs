//! What tracing costs a warm task (SPEC §12: under 1 ms on the worker's side; the child's own
//! set-up after a fork measured and reported), in one run:
//!
//! 1. The worker's side: two workers alive together on the `pyfixture` framework (stdlib only:
//!    its child has no OpenTelemetry, so what differs is the worker's), warm, one exporting to
//!    a local OTLP sink (`OTEL_EXPORTER_OTLP_ENDPOINT`), one with no `OTEL_*`; every request
//!    carries a `traceparent`. Sequential tasks in alternating blocks; p50 of request → answer,
//!    and the worker process's CPU time per task (`/proc/<pid>/stat`).
//! 2. The child's side: the Strands example agent warm, exporting through the OTLP/HTTP
//!    exporter (the `otel` client venv of scripts/setup-clients.sh on its path), against the
//!    same agent without tracing: the `setupMs` its runner reports after each fork (making the
//!    exporter and the batch processor, attaching the context), and p50 of request → answer.
//!
//! ```sh
//! scripts/setup-frameworks.sh strands && scripts/setup-clients.sh otel
//! cargo bench --bench tracing                      # both parts
//! cargo bench --bench tracing -- --runs 400        # tasks per side in part 1 (part 2: runs/10)
//! ```

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::{cpu_seconds, median, percentile, repo, Log, Server};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// Tasks per block before the other worker's turn.
const BLOCK: usize = 20;

/// A minimal OTLP/HTTP sink: answers every request 200 and counts them and their bytes (the
/// decoding receiver of the tests would take CPU from the workers on a 2-core machine).
async fn sink() -> (u16, Arc<AtomicU64>, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (requests, bytes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (r, b) = (requests.clone(), bytes.clone());
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let (r, b) = (r.clone(), b.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 16384];
                loop {
                    // One request: headers, then Content-Length bytes of body.
                    let end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < end + len {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..end + len);
                    r.fetch_add(1, Ordering::Relaxed);
                    b.fetch_add(len as u64, Ordering::Relaxed);
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                    if conn.write_all(ok).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, requests, bytes)
}

async fn start(frameworks: &std::path::Path, warm: &str, env: &[(&str, String)]) -> Server {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = common::worker_command();
    cmd.env("AGENTDISPATCH_FRAMEWORKS_DIR", frameworks)
        .env("AGENTDISPATCH_ARTIFACT_DIR", tmp.path())
        .env("AGENTDISPATCH_WARM", warm)
        .env("RUST_LOG", "info")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut s = Server::start(cmd, Log::Keep)
        .await
        .expect("start the worker");
    s.tmp = Some(tmp);
    s.warm_ready(1).await;
    s
}

/// The site-packages of client venv `name` of scripts/setup-clients.sh, when it was made.
fn client_site_packages(name: &str) -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let lib = cache
        .join("agentdispatch-worker/clients")
        .join(name)
        .join("lib");
    let python = std::fs::read_dir(lib).ok()?.filter_map(Result::ok).next()?;
    Some(python.path().join("site-packages"))
}

/// One traced request; its wall time and the answer.
async fn task(http: &reqwest::Client, s: &Server, body: &Value) -> (Duration, Value) {
    let began = Instant::now();
    let resp = http
        .post(format!("{}/invocations", s.url))
        .header("traceparent", TRACEPARENT)
        .json(body)
        .send()
        .await
        .expect("POST");
    let v: Value = resp.json().await.expect("JSON answer");
    let took = began.elapsed();
    assert_eq!(v["status"], "succeeded", "{v:#}");
    let forked = v["events"]
        .as_array()
        .is_some_and(|e| e.iter().any(|e| e["payload"]["warm"] == true));
    assert!(forked, "not forked warm: {v:#}");
    (took, v)
}

struct Side {
    walls: Vec<Duration>,
    cpu: f64,
    setup_ms: Vec<f64>,
}

/// `runs` tasks on each of `on` and `off`, in alternating blocks.
async fn alternate(
    http: &reqwest::Client,
    on: &Server,
    off: &Server,
    body: &Value,
    runs: usize,
) -> (Side, Side) {
    for s in [on, off] {
        for _ in 0..3 {
            task(http, s, body).await; // warm-up: the first forks learn pages
        }
    }
    let mut sides: Vec<Side> = (0..2)
        .map(|_| Side {
            walls: Vec::new(),
            cpu: 0.0,
            setup_ms: Vec::new(),
        })
        .collect();
    let mut done = 0;
    while done < runs {
        let n = BLOCK.min(runs - done);
        for (i, s) in [on, off].into_iter().enumerate() {
            let cpu = cpu_seconds(s.pid());
            for _ in 0..n {
                let (wall, v) = task(http, s, body).await;
                sides[i].walls.push(wall);
                let setup = v["events"].as_array().and_then(|e| {
                    e.iter()
                        .find(|e| e["message"] == "tracing set up")
                        .and_then(|e| e["payload"]["setupMs"].as_f64())
                });
                sides[i].setup_ms.extend(setup);
            }
            sides[i].cpu += cpu_seconds(s.pid()) - cpu;
        }
        done += n;
    }
    let off_side = sides.pop().unwrap();
    (sides.pop().unwrap(), off_side)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(what: &str, on: &Side, off: &Side, runs: usize) {
    let (p50_on, p50_off) = (ms(median(&on.walls)), ms(median(&off.walls)));
    let (cpu_on, cpu_off) = (
        on.cpu * 1000.0 / runs as f64,
        off.cpu * 1000.0 / runs as f64,
    );
    println!("{what}: {runs} tasks per side");
    println!("  request → answer p50: tracing on {p50_on:.2} ms, off {p50_off:.2} ms (on − off {:+.2} ms); p90 on {:.2}, off {:.2}",
        p50_on - p50_off, ms(percentile(&on.walls, 90.0)), ms(percentile(&off.walls, 90.0)));
    println!("  worker CPU per task: on {cpu_on:.3} ms, off {cpu_off:.3} ms (on − off {:+.3} ms; target < 1 ms: {})",
        cpu_on - cpu_off, if cpu_on - cpu_off < 1.0 { "met" } else { "NOT met" });
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (runs, _) = common::runs_and_names(200, 20);
    let http = reqwest::Client::new();
    let (port, requests, bytes) = sink().await;
    let endpoint = vec![(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        format!("http://127.0.0.1:{port}"),
    )];

    // 1. The worker's side.
    let fixtures = repo().join("tests/fixtures/frameworks");
    let on = start(&fixtures, "pyfixture", &endpoint).await;
    let off = start(&fixtures, "pyfixture", &[]).await;
    let body = json!({"framework": "pyfixture", "input": {"instruction": "state"}});
    let before = requests.load(Ordering::Relaxed);
    let (a, b) = alternate(&http, &on, &off, &body, runs).await;
    report("1. worker's side (pyfixture, warm)", &a, &b, runs);
    drop((on, off));
    println!(
        "  sink: {} export requests, {} bytes in all",
        requests.load(Ordering::Relaxed) - before,
        bytes.load(Ordering::Relaxed)
    );

    // 2. The child's side: Strands, whose runner sets up the SDK after each fork.
    let venv = client_site_packages("otel");
    let strands = repo().join("frameworks/strands/.venv/bin/python");
    if !strands.exists() || venv.is_none() {
        println!("2. skipped: needs scripts/setup-frameworks.sh strands and scripts/setup-clients.sh otel");
        return;
    }
    let path = ("PYTHONPATH", venv.unwrap().display().to_string());
    let frameworks = repo().join("frameworks");
    let mut env = endpoint.clone();
    env.push(path.clone());
    let on = start(&frameworks, "strands", &env).await;
    let off = start(&frameworks, "strands", &[path]).await;
    let runs = (runs / 10).max(10);
    let body = json!({"framework": "strands", "input": {"instruction": "hello world"}});
    let (a, b) = alternate(&http, &on, &off, &body, runs).await;
    report(
        "2. Strands warm (the child exports its own spans too)",
        &a,
        &b,
        runs,
    );
    let setup: Vec<Duration> = a
        .setup_ms
        .iter()
        .map(|m| Duration::from_secs_f64(m / 1000.0))
        .collect();
    assert_eq!(setup.len(), runs, "every traced task reports its set-up");
    println!("  the child's tracing set-up after its fork (setupMs): p50 {:.2} ms, p90 {:.2} ms, max {:.2} ms",
        ms(median(&setup)), ms(percentile(&setup, 90.0)), ms(percentile(&setup, 100.0)));
}
