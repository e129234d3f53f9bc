//! The flood part of `cargo bench --bench ttft`: a child (the `flood` framework, a small Python
//! script given to the worker through `AGENTDISPATCH_FRAMEWORK_COMMAND_FLOOD`) writes `rate`
//! deltas a second for `seconds` s, all of one message, to 4 SSE subscribers — the
//! `/invocations` answer and 3 `GET /tasks/{id}/events`, one of which never reads. Checked:
//! every byte of text reaches the 3 reading ones. Measured: the worker's CPU per delta
//! (`/proc/<pid>/stat`, the worker process alone, not the child), its peak RSS (VmHWM), and
//! `/ping` latency during the flood beside the idle worker.

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{self, percentile, pinger, procfs, Log, Server};

/// The child: waits 300 ms (for the subscribers to attach), then writes delta `n` (text
/// `"{n:07} "`) as soon as `n / rate` seconds have passed, one `os.write` each as the runners'
/// helper does, then its result.
fn script(rate: usize, seconds: usize) -> String {
    format!(
        r#"import os, time
rate, total = {rate}, {total}
time.sleep(0.3)
t0 = time.monotonic()
n = 0
while n < total:
    due = min(total, int((time.monotonic() - t0) * rate) + 1)
    while n < due:
        os.write(1, b'{{"type":"task.delta","payload":{{"messageId":"m-1","text":"%07d "}}}}\n' % n)
        n += 1
    time.sleep(0.0005)
took = time.monotonic() - t0
os.write(1, b'{{"type":"task.result","output":"%d deltas in %.3f s"}}\n' % (total, took))
"#,
        total = rate * seconds
    )
}

/// The text the child writes, whole.
fn expected(total: usize) -> String {
    (0..total).map(|n| format!("{n:07} ")).collect()
}

async fn start(rate: usize, seconds: usize) -> Server {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("flood.py");
    std::fs::write(&path, script(rate, seconds)).unwrap();
    let mut cmd = common::worker_command();
    cmd.env("AGENTDISPATCH_ARTIFACT_DIR", tmp.path().join("artifacts"))
        .env("AGENTDISPATCH_FRAMEWORKS_DIR", "/nonexistent")
        .env(
            "AGENTDISPATCH_FRAMEWORK_COMMAND_FLOOD",
            format!("python3 {}", path.display()),
        )
        .stderr(Stdio::null());
    let mut w = Server::start(cmd, Log::Drop)
        .await
        .expect("start the release worker");
    w.tmp = Some(tmp);
    w
}

/// `/ping` latencies over `d` of the idle worker.
async fn idle_pings(url: &str, d: Duration) -> Vec<Duration> {
    let stop = Arc::new(AtomicBool::new(false));
    let p = tokio::spawn(pinger(
        reqwest::Client::new(),
        url.to_string(),
        stop.clone(),
    ));
    tokio::time::sleep(d).await;
    stop.store(true, Ordering::Relaxed);
    p.await.unwrap()
}

/// What one reading subscriber got: the text of the deltas, and how many SSE messages held it.
#[derive(Default)]
struct Got {
    text: String,
    deltas: usize,
    /// The result's output (the child says how long its writing took).
    output: String,
}

/// Reads an SSE answer to its end, keeping the text of message `m-1`'s deltas; sends the task
/// id of the first message that names one to `task_id`.
async fn read(
    resp: reqwest::Response,
    mut task_id: Option<tokio::sync::oneshot::Sender<String>>,
) -> Got {
    let mut got = Got::default();
    common::read_sse(resp, |_, v| {
        if let Some(id) = v["taskId"].as_str() {
            if let Some(tx) = task_id.take() {
                let _ = tx.send(id.to_string());
            }
        }
        if v["type"] == "task.delta" && v["payload"]["messageId"] == "m-1" {
            got.text
                .push_str(v["payload"]["text"].as_str().unwrap_or_default());
            got.deltas += 1;
        }
        if v.get("ok").is_some() {
            got.output = v["output"].as_str().unwrap_or_default().to_string();
        }
    })
    .await
    .expect("SSE body");
    got
}

/// `GET /tasks/{id}/events` as SSE.
async fn subscribe(http: &reqwest::Client, url: &str, id: &str) -> reqwest::Response {
    let r = http
        .get(format!("{url}/tasks/{id}/events"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("GET /tasks/{id}/events");
    assert_eq!(r.status(), 200, "GET /tasks/{id}/events");
    r
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub async fn flood(rate: usize, seconds: usize) {
    let total = rate * seconds;
    let w = start(rate, seconds).await;
    let pid = w.pid();
    let http = reqwest::Client::new();
    w.first_ping(&http, Duration::from_secs(20), Duration::from_millis(5))
        .await
        .expect("/ping");
    let idle = idle_pings(&w.url, Duration::from_secs(3)).await;
    let rss_before = procfs::status_kb(pid, "VmRSS").unwrap_or(0);
    let cpu0 = common::cpu_seconds(pid);
    let stop = Arc::new(AtomicBool::new(false));
    let pings = tokio::spawn(pinger(reqwest::Client::new(), w.url.clone(), stop.clone()));
    let started = Instant::now();
    let body = json!({"prompt": "flood", "framework": "flood"});
    let resp = common::post_sse(&http, &w.url, &body)
        .await
        .expect("POST /invocations");
    // The first message names the task; the other subscribers attach then, while the child
    // is still in its 300 ms pause.
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    let first = tokio::spawn(read(resp, Some(tx)));
    let id = rx.await.expect("a task id on the stream");
    let attached = started.elapsed();
    let stalled = subscribe(&http, &w.url, &id).await; // never read
    let mut readers = vec![first];
    for _ in 0..2 {
        let r = subscribe(&http, &w.url, &id).await;
        readers.push(tokio::spawn(read(r, None)));
    }
    let peak = common::Sampler::every(Duration::from_millis(10), move || {
        procfs::status_kb(pid, "VmRSS").unwrap_or(0)
    });
    let mut got = Vec::new();
    for r in readers {
        got.push(r.await.unwrap());
    }
    let took = started.elapsed();
    let cpu = common::cpu_seconds(pid) - cpu0;
    stop.store(true, Ordering::Relaxed);
    let during = pings.await.unwrap();
    let samples = peak.finish();
    let hwm = procfs::status_kb(pid, "VmHWM").unwrap_or(0);
    drop(stalled);
    let want = expected(total);
    println!();
    println!("Flood: one child writing {rate} deltas a second for {seconds} s ({total} deltas of 8 bytes, one message) to 4 SSE subscribers: the `/invocations` answer and 2 `GET /tasks/{{id}}/events` reading, 1 `GET /tasks/{{id}}/events` never reading (subscribers attached {:.0} ms after the request; the child: {}; request → last reader done {:.2} s)", ms(attached), got[0].output, took.as_secs_f64());
    println!();
    println!("| reading subscriber | text received | every byte | SSE delta messages (merged) |");
    println!("|---|---|---|---|");
    for (i, g) in got.iter().enumerate() {
        let name = if i == 0 {
            "`/invocations` answer"
        } else {
            "`GET /tasks/{id}/events`"
        };
        println!(
            "| {name} | {} of {} bytes | {} | {} |",
            g.text.len(),
            want.len(),
            if g.text == want { "yes" } else { "**no**" },
            g.deltas
        );
    }
    println!();
    println!("| worker | figure |");
    println!("|---|---|");
    println!(
        "| CPU (the worker process, user + system) per delta | {:.2} µs ({:.2} s over {:.2} s) |",
        cpu * 1e6 / total as f64,
        cpu,
        took.as_secs_f64()
    );
    println!(
        "| RSS before → peak (VmRSS every 10 ms, and VmHWM) | {} → {} |",
        common::mb(rss_before),
        common::mb(samples.into_iter().max().unwrap_or(0).max(hwm))
    );
    println!();
    println!("| `/ping`, every 5 ms | n | p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    for (what, t) in [("idle", &idle), ("during the flood", &during)] {
        println!(
            "| {what} | {} | {:.2} ms | {:.2} ms | {:.2} ms |",
            t.len(),
            ms(percentile(t, 50.0)),
            ms(percentile(t, 99.0)),
            ms(*t.iter().max().unwrap())
        );
    }
}
