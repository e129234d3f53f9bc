//! Hostile children and callers against the release worker (issue "hostile children and
//! callers"; SPEC §8), with the floor measured in the same run:
//!
//! 1. `/ping` latency (p50, p99, max) from one client pinging every 5 ms: first with the worker
//!    idle (the floor), then while 4 clients keep hostile tasks running — a child that leaves a
//!    FIFO, a 6 GB sparse file, a hard link and a symlink in its folder and declares them with
//!    5,000 more artifacts; a child that floods stdout; a `setsid` escapee holding stdout.
//! 2. Worker RSS after 100 echo requests with a 20 MB prompt each (4 clients), against its idle
//!    RSS.
//!
//! ```sh
//! cargo bench --bench hostile                  # about a minute
//! cargo bench --bench hostile -- --seconds 30  # the hostile phase's length (default 15)
//! ```

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_agentdispatch-worker");

const HOSTILE_SH: &str = r#"#!/bin/sh
d="$AGENTDISPATCH_TASK_DIR"
mkfifo "$d/pipe"
truncate -s 6G "$d/sparse.bin"
echo shared > "$d/one.txt"; ln "$d/one.txt" "$d/two.txt"
ln -s /etc/hostname "$d/link.txt"
decl=$(seq 1 5000 | sed 's/.*/"x&.txt"/' | paste -sd, -)
printf '{"type":"task.result","output":"done","artifacts":["pipe","sparse.bin","two.txt","link.txt",%s]}\n' "$decl"
"#;

struct Worker {
    child: Child,
    url: String,
    _tmp: tempfile::TempDir,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Worker {
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("hostile.sh");
    std::fs::write(&script, HOSTILE_SH).unwrap();
    let mut perms = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).unwrap();
    let mut child = Command::new(BIN)
        .env("PORT", "0")
        .env("AGENTDISPATCH_ARTIFACT_DIR", tmp.path().join("artifacts"))
        .env("AGENTDISPATCH_FRAMEWORK_COMMAND_HOSTILE", &script)
        .env("AGENTDISPATCH_COMMAND_ALLOWLIST", "sh,yes")
        .env("AGENTDISPATCH_MAX_PAYLOAD_BYTES", (32 << 20).to_string())
        .env("AGENTDISPATCH_MAX_CONCURRENT_TASKS", "16")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the release worker");
    // The bound port, from the "listening" line; the rest of the log is drained.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port = loop {
        let line = lines.next().expect("the worker logged nothing").unwrap();
        let v: Value = serde_json::from_str(&line).unwrap_or_default();
        if v["message"] == "listening" {
            break v["address"]
                .as_str()
                .unwrap()
                .rsplit(':')
                .next()
                .unwrap()
                .to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Worker {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _tmp: tmp,
    }
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// Pings every 5 ms until `stop`; sorted latencies in ms.
async fn pinger(client: reqwest::Client, url: String, stop: Arc<AtomicBool>) -> Vec<f64> {
    let mut times = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        let r = client.get(format!("{url}/ping")).send().await;
        assert!(r.is_ok_and(|r| r.status().is_success()), "/ping failed");
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    times.sort_by(f64::total_cmp);
    times
}

fn row(what: &str, t: &[f64]) {
    println!(
        "| {what} | {} | {:.2} ms | {:.2} ms | {:.2} ms |",
        t.len(),
        pct(t, 0.5),
        pct(t, 0.99),
        t[t.len() - 1]
    );
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> Value {
    client
        .post(format!("{url}/invocations"))
        .json(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or_default()
}

fn main() {
    let mut seconds = 15u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bench" => {}
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--seconds N")
            }
            other => panic!("unknown option {other}"),
        }
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let w = start();
        let client = reqwest::Client::new();
        let mut ready = false;
        for _ in 0..500 {
            if client.get(format!("{}/ping", w.url)).send().await.is_ok() {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(ready, "the worker did not answer /ping");
        println!("/ping from one client every 5 ms, {seconds} s per phase (release build)\n");
        println!("| phase | pings | p50 | p99 | max |\n|---|---|---|---|---|");

        // 1a. The floor: nothing running.
        let stop = Arc::new(AtomicBool::new(false));
        let p = tokio::spawn(pinger(client.clone(), w.url.clone(), stop.clone()));
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        let idle = p.await.unwrap();
        row("idle (floor)", &idle);

        // 1b. Hostile tasks, 4 clients, one kind each, back to back.
        let stop = Arc::new(AtomicBool::new(false));
        let p = tokio::spawn(pinger(client.clone(), w.url.clone(), stop.clone()));
        let done = Arc::new(AtomicU64::new(0));
        let kinds = [
            json!({"framework":"hostile"}),
            json!({"taskType":"command.run","input":{"command":"sh -c 'yes | head -c 50000000'"}}),
            json!({"taskType":"command.run","input":{"command":"sh -c 'setsid sh -c \"sleep 30\" & echo started'"}}),
            json!({"framework":"hostile"}),
        ];
        let mut clients = Vec::new();
        for body in kinds {
            let (client, url, stop, done) = (client.clone(), w.url.clone(), stop.clone(), done.clone());
            clients.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let r = post(&client, &url, &body).await;
                    assert!(r["status"].is_string(), "{r}");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        let hostile = p.await.unwrap();
        for c in clients {
            c.await.unwrap();
        }
        row(
            &format!("4 clients of hostile tasks ({} tasks)", done.load(Ordering::Relaxed)),
            &hostile,
        );
        println!(
            "\np99 while hostile tasks run / idle p99: {:.1}×",
            pct(&hostile, 0.99) / pct(&idle, 0.99)
        );

        // 2. 100 echo requests with a 20 MB prompt, 4 clients.
        let pid = w.child.id();
        let idle_rss = rss_kb(pid);
        let prompt = "p".repeat(20 << 20);
        let body = Arc::new(json!({ "prompt": prompt }));
        let mut peak = idle_rss;
        let mut clients = Vec::new();
        for _ in 0..4 {
            let (client, url, body) = (client.clone(), w.url.clone(), body.clone());
            clients.push(tokio::spawn(async move {
                for _ in 0..25 {
                    let r = post(&client, &url, &body).await;
                    assert_eq!(r["ok"], true, "{}", r["error"]);
                }
            }));
        }
        while clients.iter().any(|c| !c.is_finished()) {
            peak = peak.max(rss_kb(pid));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for c in clients {
            c.await.unwrap();
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = rss_kb(pid);
        println!("\n100 echo requests with a 20 MB prompt (4 clients)\n");
        println!("| worker RSS | idle (floor) | peak | after |\n|---|---|---|---|");
        println!(
            "| | {:.1} MB | {:.1} MB | {:.1} MB |",
            idle_rss as f64 / 1024.0,
            peak as f64 / 1024.0,
            after as f64 / 1024.0
        );
    });
}
