//! The worker's benchmark harness: `cargo bench --bench worker`.
//!
//! Starts the real release binary on a free loopback port (a fresh worker per section, so that
//! one section's memory or disk does not colour the next) and prints every figure beside a floor
//! measured in the same run, with the ratio, the target and whether it was met. Figures and how
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

/// A worker on a loopback port it picked, stopped with SIGTERM when dropped.
struct Worker {
    server: Server,
    url: String,
    artifacts: PathBuf,
    client: reqwest::Client,
}

impl Worker {
    async fn start(extra: &[(&str, &str)]) -> Worker {
        Worker::start_in(None, extra).await
    }

    /// A worker whose artifact directory is under `base` (default: the system temp dir).
    async fn start_in(base: Option<&Path>, extra: &[(&str, &str)]) -> Worker {
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

    fn pid(&self) -> i32 {
        self.server.pid()
    }

    async fn invoke(&self, body: &Value) -> Value {
        common::post_json(&self.client, &self.url, body)
            .await
            .expect("POST /invocations")
            .1
    }

    async fn ping(&self) -> Duration {
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

    async fn pings(&self, n: usize) -> Vec<Duration> {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.ping().await);
        }
        v
    }

    /// Starts `n` async `command.run` tasks `<prefix>-<i>` with this `input`; their ids.
    async fn start_async(&self, prefix: &str, n: usize, input: Value) -> Vec<String> {
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

    async fn cancel(&self, task_id: &str) {
        let r = self
            .invoke(&json!({"taskType": "task.cancel", "taskId": task_id}))
            .await;
        assert_eq!(r["taskId"], task_id, "{r}");
    }

    async fn wait_idle(&self) {
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
fn proc_kb(pid: i32, field: &str) -> u64 {
    procfs::status_kb(pid, field).unwrap_or(0)
}

/// Nearest-rank percentile of durations, in milliseconds.
fn pct(v: &[Duration], p: f64) -> f64 {
    common::percentile(v, p).as_secs_f64() * 1000.0
}

fn spawn_true() -> Duration {
    let t = Instant::now();
    let status = Command::new("true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run true");
    assert!(status.success());
    t.elapsed()
}

/// One row of the table.
struct Row {
    figure: String,
    value: String,
    floor: String,
    ratio: String,
    target: String,
    met: Option<bool>,
}

fn row(figure: &str, value: String, floor: String, ratio: String, target: &str) -> Row {
    Row {
        figure: figure.into(),
        value,
        floor,
        ratio,
        target: target.into(),
        met: None,
    }
}

fn row_of(figure: &str, value: String, floor: String, ratio: String) -> Row {
    row(figure, value, floor, ratio, "-")
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}x", a / b)
    } else {
        "-".into()
    }
}

fn ms(v: f64) -> String {
    format!("{v:.3} ms")
}

fn rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M/s", r / 1e6)
    } else {
        format!("{:.0} k/s", r / 1e3)
    }
}

/// An `events.ndjson`: its line count, and the seconds between its first and last
/// `task.log` events (the streaming span, without start-up and the final answer).
fn scan_events(path: &Path) -> (u64, f64) {
    use std::io::BufRead;
    let Ok(f) = std::fs::File::open(path) else {
        return (0, 0.0);
    };
    let mut reader = std::io::BufReader::with_capacity(1 << 20, f);
    let (mut n, mut first, mut last) = (0u64, None, None);
    const LOG: &[u8] = b"\"type\":\"task.log\"";
    let mut line = Vec::new();
    while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
        n += 1;
        if line.windows(LOG.len()).any(|w| w == LOG) {
            let ts = serde_json::from_slice::<Value>(&line)
                .ok()
                .and_then(|v| chrono::DateTime::parse_from_rfc3339(v["ts"].as_str()?).ok());
            if first.is_none() {
                first = ts;
            }
            last = ts.or(last);
        }
        line.clear();
    }
    let span = match (first, last) {
        (Some(a), Some(b)) => (b - a).num_milliseconds() as f64 / 1000.0,
        _ => 0.0,
    };
    (n, span)
}

/// Lines of a task's `events.ndjson`.
fn count_lines(path: &Path) -> u64 {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(_) => return 0,
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => return n,
            Ok(k) => n += buf[..k].iter().filter(|b| **b == b'\n').count() as u64,
        }
    }
}

/// Figure 1: command.run `true` round trip against spawn+wait of `true` from here,
/// interleaved so that both see the same machine load.
async fn round_trip(w: &Worker, rows: &mut Vec<Row>, place: &str) {
    let n = knob("BENCH_ROUND_TRIPS", 300);
    let body = json!({"taskType": "command.run", "input": {"command": "true"}});
    for _ in 0..20 {
        spawn_true();
        let r = w.invoke(&body).await;
        assert_eq!(r["ok"], true, "{r}");
    }
    let (mut worker, mut floor) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let cpu0 = cpu_seconds(w.pid());
    for _ in 0..n {
        floor.push(spawn_true());
        let t = Instant::now();
        let r = w.invoke(&body).await;
        worker.push(t.elapsed());
        assert_eq!(r["ok"], true, "{r}");
    }
    let cpu = cpu_seconds(w.pid()) - cpu0;
    let (p50, p99, f50, f99) = (
        pct(&worker, 50.0),
        pct(&worker, 99.0),
        pct(&floor, 50.0),
        pct(&floor, 99.0),
    );
    let mut r = row(
        &format!("1. command.run `true` round trip p50 (n={n}{place})"),
        ms(p50),
        ms(f50),
        ratio(p50, f50),
        "p50 - floor <= 1.5 ms",
    );
    r.met = Some(p50 - f50 <= 1.5);
    r.ratio = format!("{} (+{:.3} ms)", r.ratio, p50 - f50);
    if !place.is_empty() {
        r.target = "-".into();
        r.met = None;
    }
    rows.push(r);
    rows.push(row_of(
        &format!("1. command.run `true` round trip p99{place}"),
        ms(p99),
        ms(f99),
        ratio(p99, f99),
    ));
    rows.push(row_of(
        &format!("1. (worker CPU time per round trip{place})"),
        ms(cpu * 1000.0 / n as f64),
        "-".into(),
        "-".into(),
    ));
}

/// Figures 2 and 6: `/ping` idle, with 8 sleeping async tasks, and while 4 children flood stdout.
async fn pings(w: &Worker, rows: &mut Vec<Row>) {
    let n = knob("BENCH_PINGS", 1000);
    w.pings(100).await;
    let idle = w.pings(n).await;
    let (i50, i99) = (pct(&idle, 50.0), pct(&idle, 99.0));

    // 6: eight async `sleep` tasks (the default capacity).
    let ids = w
        .start_async("sleep", 8, json!({"command": "sleep 30"}))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let busy = w.pings(n).await;
    for id in &ids {
        w.cancel(id).await;
    }
    w.wait_idle().await;

    // 2: four children writing "y" lines as fast as they can.
    let ids = w
        .start_async("flood", 4, json!({"command": "yes", "timeoutSeconds": 8}))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut flood = Vec::new();
    let began = Instant::now();
    while flood.len() < n || began.elapsed() < Duration::from_secs(3) {
        flood.push(w.ping().await);
        if began.elapsed() > Duration::from_secs(6) {
            break;
        }
    }
    let window = began.elapsed();
    // How many lines the floods had turned into events when the pings ended.
    let mut carried = 0u64;
    for id in &ids {
        let v = w
            .invoke(&json!({"taskType": "task.status", "taskId": id, "afterSeq": u64::MAX / 2}))
            .await;
        assert!(v["taskId"] == id.as_str(), "{v}");
        carried += count_lines(&w.artifacts.join(id).join("events.ndjson"));
    }
    for id in &ids {
        w.cancel(id).await;
    }
    w.wait_idle().await;

    // The same load outside the worker: four `yes > /dev/null` beside an idle worker. What
    // is left of the flood figure above this is the worker's own doing.
    let mut hogs: Vec<Child> = (0..4)
        .map(|_| {
            Command::new("yes")
                .stdout(Stdio::null())
                .spawn()
                .expect("yes")
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut contended = Vec::new();
    let began = Instant::now();
    while contended.len() < n || began.elapsed() < Duration::from_secs(3) {
        contended.push(w.ping().await);
        if began.elapsed() > Duration::from_secs(6) {
            break;
        }
    }
    for h in &mut hogs {
        let _ = h.kill();
        let _ = h.wait();
    }

    let (f50, f99) = (pct(&flood, 50.0), pct(&flood, 99.0));
    rows.push(row(
        &format!("2. /ping p50 during 4 `yes` floods (n={})", flood.len()),
        ms(f50),
        ms(i50),
        ratio(f50, i50),
        "-",
    ));
    let mut r = row(
        "2. /ping p99 during 4 `yes` floods",
        ms(f99),
        ms(i99),
        ratio(f99, i99),
        "< 5 ms",
    );
    r.met = Some(f99 < 5.0);
    rows.push(r);
    rows.push(row(
        &format!(
            "2. (CPU contention alone: /ping p50/p99 beside 4 `yes > /dev/null`, n={})",
            contended.len()
        ),
        format!(
            "{} / {}",
            ms(pct(&contended, 50.0)),
            ms(pct(&contended, 99.0))
        ),
        format!("{} / {}", ms(i50), ms(i99)),
        ratio(pct(&contended, 99.0), i99),
        "-",
    ));
    let mut r = row(
        "2. (lines carried by the floods meanwhile)",
        rate(carried as f64 / (window.as_secs_f64() + 0.3)),
        "-".into(),
        "-".into(),
        "-",
    );
    r.value = format!("~{}", r.value);
    rows.push(r);

    let (b50, b99) = (pct(&busy, 50.0), pct(&busy, 99.0));
    rows.push(row(
        &format!("6. /ping p50 with 8 async `sleep` tasks (n={n})"),
        ms(b50),
        ms(i50),
        ratio(b50, i50),
        "-",
    ));
    let mut r = row(
        "6. /ping p99 with 8 async `sleep` tasks",
        ms(b99),
        ms(i99),
        ratio(b99, i99),
        "< 5 ms",
    );
    r.met = Some(b99 < 5.0);
    rows.push(r);
}

/// Figure 3: lines per second from a child's stdout into events (JSON answer), against the
/// same child into `cat > /dev/null`. Returns the worker's rate.
async fn lines_per_second(rows: &mut Vec<Row>) -> f64 {
    let n = knob("BENCH_LINES", 2_000_000);
    let w = Worker::start(&[]).await;
    let t = Instant::now();
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("seq 1 {n} | cat > /dev/null"))
        .status()
        .expect("sh");
    let floor = t.elapsed();
    assert!(status.success());
    let cpu0 = cpu_seconds(w.pid());
    let t = Instant::now();
    let r = w
        .invoke(&json!({"taskType": "command.run", "taskId": "lines",
            "input": {"command": format!("seq 1 {n}")}}))
        .await;
    let took = t.elapsed();
    let cpu = cpu_seconds(w.pid()) - cpu0;
    assert_eq!(r["ok"], true, "{}", r["error"]);
    let (logged, span) = scan_events(&w.artifacts.join("lines").join("events.ndjson"));
    assert!(logged >= n as u64, "events.ndjson holds {logged} events");
    let (v, f) = (
        n as f64 / took.as_secs_f64(),
        n as f64 / floor.as_secs_f64(),
    );
    let mut r = row(
        &format!("3. lines/s, child stdout -> events (`seq 1 {n}`, {took:.2?})"),
        rate(v),
        rate(f),
        ratio(v, f),
        ">= 1 M/s",
    );
    r.met = Some(v >= 1e6);
    rows.push(r);
    if span > 0.0 {
        rows.push(row_of(
            &format!("3. (streaming only: first to last task.log event, {span:.2}s)"),
            rate(n as f64 / span),
            rate(f),
            ratio(n as f64 / span, f),
        ));
    }
    rows.push(row_of(
        "3. (worker CPU time for the task, per million lines)",
        format!("{:.2} s", cpu / (n as f64 / 1e6)),
        "-".into(),
        "-".into(),
    ));
    v
}

/// Figure 4: worker RSS idle after a few echo tasks, and its peak during a 200 MB flood.
async fn memory(rows: &mut Vec<Row>) {
    let bytes = knob("BENCH_FLOOD_BYTES", 200_000_000);
    let w = Worker::start(&[]).await;
    for i in 0..5 {
        let r = w.invoke(&json!({"prompt": format!("hello {i}")})).await;
        assert_eq!(r["ok"], true, "{r}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = w.pid();
    let idle = proc_kb(pid, "VmRSS");

    // Reset the high-water mark (clear_refs 5), then also sample every 10 ms.
    let reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
    let sampler = Sampler::every(Duration::from_millis(10), move || proc_kb(pid, "VmRSS"));
    // 100-byte lines (99 characters and a newline).
    let line = "x".repeat(99);
    let t = Instant::now();
    let r = w
        .invoke(&json!({"taskType": "command.run", "taskId": "flood",
            "input": {"command": format!("sh -c 'yes {line} | head -c {bytes}'")}}))
        .await;
    let took = t.elapsed();
    let mut samples = sampler.finish();
    assert_eq!(r["ok"], true, "{}", r["error"]);
    drop(r);
    let mut top = samples.iter().copied().max().unwrap_or(0);
    if reset {
        top = top.max(proc_kb(pid, "VmHWM"));
    }
    // The plateau while lines stream (the median sample), and what stays after the answer.
    samples.sort_unstable();
    let plateau = samples.get(samples.len() / 2).copied().unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = proc_kb(pid, "VmRSS");
    let mut r = row(
        "4. worker RSS idle (after 5 echo tasks)",
        mb(idle),
        "-".into(),
        "-".into(),
        "< 15 MB",
    );
    r.met = Some(idle < 15 * 1024);
    rows.push(r);
    let mut r = row(
        &format!(
            "4. worker RSS peak, {} MB flood of 100 B lines ({took:.2?})",
            bytes / 1_000_000
        ),
        mb(top),
        mb(idle),
        ratio(top as f64, idle as f64),
        "< 64 MB",
    );
    r.met = Some(top < 64 * 1024);
    rows.push(r);
    rows.push(row_of(
        "4. (worker RSS median during that flood / after its answer)",
        format!("{} / {}", mb(plateau), mb(after)),
        mb(idle),
        ratio(after as f64, idle as f64),
    ));
}

/// Counts `data:` messages in an SSE body, across chunk boundaries.
#[derive(Default)]
struct SseCounter {
    partial: Vec<u8>,
    messages: u64,
    last: Vec<u8>,
}

impl SseCounter {
    fn feed(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        while let Some(i) = rest.iter().position(|b| *b == b'\n') {
            let line: &[u8] = if self.partial.is_empty() {
                &rest[..i]
            } else {
                self.partial.extend_from_slice(&rest[..i]);
                &self.partial
            };
            if let Some(data) = line.strip_prefix(b"data: ") {
                self.messages += 1;
                self.last.clear();
                self.last.extend_from_slice(data);
            }
            self.partial.clear();
            rest = &rest[i + 1..];
        }
        self.partial.extend_from_slice(rest);
    }
}

/// Figure 5: events per second delivered to an SSE client from one chatty child.
async fn sse_rate(rows: &mut Vec<Row>, n: usize, json_rate: f64) {
    let w = Worker::start(&[]).await;
    let t = Instant::now();
    let resp = w
        .client
        .post(format!("{}/invocations", w.url))
        .header("accept", "text/event-stream")
        .json(&json!({"taskType": "command.run", "taskId": "sse",
            "input": {"command": format!("seq 1 {n}")}}))
        .send()
        .await
        .expect("POST /invocations (SSE)");
    let mut body = resp.bytes_stream();
    let mut counter = SseCounter::default();
    let bound = Duration::from_secs(30);
    let mut timed_out = false;
    loop {
        match tokio::time::timeout(bound.saturating_sub(t.elapsed()), body.next()).await {
            Ok(Some(chunk)) => counter.feed(&chunk.expect("SSE body")),
            Ok(None) => break,
            Err(_) => {
                timed_out = true;
                break;
            }
        }
    }
    let took = t.elapsed();
    let v = counter.messages as f64 / took.as_secs_f64();
    let label = if timed_out {
        format!(
            "5. SSE events/s, `seq 1 {n}` (STOPPED at {}s: {} of {n} events)",
            bound.as_secs(),
            counter.messages
        )
    } else {
        let result: Value = serde_json::from_slice(&counter.last).unwrap_or(Value::Null);
        assert_eq!(result["ok"], true, "last SSE message: {result}");
        format!(
            "5. SSE events/s, `seq 1 {n}` ({} messages, {took:.2?})",
            counter.messages
        )
    };
    rows.push(row(
        &label,
        rate(v),
        format!("{} (fig. 3)", rate(json_rate)),
        ratio(v, json_rate),
        "-",
    ));
}

/// Figure 7: memory per idle async task.
async fn per_task_memory(rows: &mut Vec<Row>) {
    let n = knob("BENCH_IDLE_TASKS", 100);
    let cap = (2 * n).max(200).to_string();
    let w = Worker::start(&[("AGENTDISPATCH_MAX_CONCURRENT_TASKS", &cap)]).await;
    // Warm up the paths a sleeping task uses (spawn, heartbeat, cancel), then measure.
    for i in 0..5 {
        let id = format!("warm-{i}");
        w.invoke(
            &json!({"taskType": "command.run", "taskId": id, "async": true,
            "input": {"command": "sleep 30"}}),
        )
        .await;
        w.cancel(&id).await;
    }
    w.wait_idle().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = proc_kb(w.pid(), "VmRSS");
    let ids = w
        .start_async("idle", n, json!({"command": "sleep 30"}))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = proc_kb(w.pid(), "VmRSS");
    let t = Instant::now();
    futures_util::future::join_all(ids.iter().map(|id| w.cancel(id))).await;
    let cancelled = t.elapsed();
    w.wait_idle().await;
    let per = after.saturating_sub(before) as f64 / n as f64;
    let mut r = row(
        &format!(
            "7. RSS per idle async task ({n} x `sleep 30`: {} -> {}; cancel all {cancelled:.2?})",
            mb(before),
            mb(after)
        ),
        format!("{per:.1} KB"),
        "-".into(),
        "-".into(),
        "< 100 KB",
    );
    r.met = Some(per < 100.0);
    rows.push(r);
}

fn print_table(rows: &[Row]) {
    let heads = ["figure", "value", "floor", "ratio", "target", "met?"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.figure.clone(),
                r.value.clone(),
                r.floor.clone(),
                r.ratio.clone(),
                r.target.clone(),
                match r.met {
                    Some(true) => "yes".into(),
                    Some(false) => "NO".into(),
                    None => "".into(),
                },
            ]
        })
        .collect();
    let mut width = heads.map(str::len);
    for c in &cells {
        for (w, s) in width.iter_mut().zip(c) {
            *w = (*w).max(s.chars().count());
        }
    }
    let line = |c: &[&str]| {
        let mut s = String::from("|");
        for (w, cell) in width.iter().zip(c) {
            let _ = write!(s, " {cell:<w$} |");
        }
        s
    };
    println!("{}", line(&heads));
    let dashes: Vec<String> = width.iter().map(|w| "-".repeat(*w)).collect();
    println!(
        "{}",
        line(&dashes.iter().map(String::as_str).collect::<Vec<_>>())
    );
    for c in &cells {
        println!(
            "{}",
            line(&c.iter().map(String::as_str).collect::<Vec<_>>())
        );
    }
}

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
