//! Hostile children and callers against the release worker (issue "hostile children and
//! callers"; SPEC §8), with the floor measured in the same run:
//!
//! 1. `/ping` latency (p50, p99, max) from one client pinging every 5 ms: first with the worker
//!    idle (the floor), then while 4 clients keep hostile tasks running — a child that leaves a
//!    FIFO, a 6 GB sparse file, a hard link and a symlink in its folder and declares them with
//!    5,000 more artifacts; a child that floods stdout; a `setsid` escapee holding stdout.
//!    Then while 4 clients read back task folders whose `result.json` / `events.ndjson` are
//!    FIFOs (`task.status`, `GET /tasks/{id}/events`): each gets an error answer at once.
//! 2. `/ping` the same way while 1,000 connections that opened with the HTTP/2 preface and
//!    1,000 event-stream subscribers of one running task are held open, then while 4 clients
//!    send requests with a 300 KB request-id header (issue 21, findings 3 and 5).
//! 3. Worker RSS after 100 echo requests with a 20 MB prompt each (4 clients), against its idle
//!    RSS.
//!
//! ```sh
//! cargo bench --bench hostile                  # about a minute
//! cargo bench --bench hostile -- --seconds 30  # the hostile phase's length (default 15)
//! ```

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

mod common;
use common::{percentile, pinger, procfs, Log, Server};

const HOSTILE_SH: &str = r#"#!/bin/sh
d="$AGENTDISPATCH_TASK_DIR"
mkfifo "$d/pipe"
truncate -s 6G "$d/sparse.bin"
echo shared > "$d/one.txt"; ln "$d/one.txt" "$d/two.txt"
ln -s /etc/hostname "$d/link.txt"
decl=$(seq 1 5000 | sed 's/.*/"x&.txt"/' | paste -sd, -)
printf '{"type":"task.result","output":"done","artifacts":["pipe","sparse.bin","two.txt","link.txt",%s]}\n' "$decl"
"#;

/// The release worker on `PORT=0` (the port read from its log), allowing `sh` and `yes`, with
/// the `hostile` framework.
async fn start() -> Server {
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("hostile.sh");
    std::fs::write(&script, HOSTILE_SH).unwrap();
    let mut perms = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).unwrap();
    let mut cmd = common::worker_command();
    cmd.env("AGENTDISPATCH_ARTIFACT_DIR", tmp.path().join("artifacts"))
        .env("AGENTDISPATCH_FRAMEWORK_COMMAND_HOSTILE", &script)
        .env("AGENTDISPATCH_COMMAND_ALLOWLIST", "sh,yes,sleep")
        .env("AGENTDISPATCH_MAX_PAYLOAD_BYTES", (32 << 20).to_string())
        .env("AGENTDISPATCH_MAX_CONCURRENT_TASKS", "16")
        .stderr(Stdio::null());
    let mut w = Server::start(cmd, Log::Drop)
        .await
        .expect("start the release worker");
    w.tmp = Some(tmp);
    w
}

fn rss_kb(pid: i32) -> u64 {
    procfs::status_kb(pid, "VmRSS").unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn row(what: &str, t: &[Duration]) {
    println!(
        "| {what} | {} | {:.2} ms | {:.2} ms | {:.2} ms |",
        t.len(),
        ms(percentile(t, 50.0)),
        ms(percentile(t, 99.0)),
        ms(t[t.len() - 1])
    );
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> Value {
    common::post_json(client, url, body)
        .await
        .map(|(_, v)| v)
        .unwrap_or_default()
}

/// Plants `<ART>/fifo-result/result.json` and `<ART>/fifo-log/events.ndjson` (beside a real
/// result) as FIFOs; 4 clients read them back for `seconds` (`task.status`, `GET
/// /tasks/{id}/events`), each answer an error naming the file. The `/ping` latencies during it
/// and the reads made.
async fn fifo_reads(w: &Server, client: &reqwest::Client, seconds: u64) -> (Vec<Duration>, u64) {
    let art = w
        .tmp
        .as_ref()
        .expect("the worker's folder")
        .path()
        .join("artifacts");
    let real = post(client, &w.url, &json!({"taskId":"real","prompt":"x"})).await;
    assert_eq!(real["ok"], true, "{real}");
    let fifo = |path: std::path::PathBuf| {
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap()
    };
    std::fs::create_dir_all(art.join("fifo-result")).unwrap();
    fifo(art.join("fifo-result/result.json"));
    std::fs::create_dir_all(art.join("fifo-log")).unwrap();
    std::fs::copy(
        art.join("real/result.json"),
        art.join("fifo-log/result.json"),
    )
    .unwrap();
    fifo(art.join("fifo-log/events.ndjson"));
    let clients = (0..4).map(|n| {
        let (client, url) = (client.clone(), w.url.clone());
        move || {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let text = if n % 2 == 0 {
                    let body = json!({"taskType":"task.status","taskId":"fifo-result"});
                    post(&client, &url, &body).await.to_string()
                } else {
                    let r = client
                        .get(format!("{url}/tasks/fifo-log/events"))
                        .send()
                        .await;
                    r.expect("an answer").text().await.unwrap_or_default()
                };
                assert!(text.contains("artifact_read_failed"), "{text}");
            }
        }
    });
    under_load(client, &w.url, seconds, clients.collect()).await
}

/// Runs each of `clients` (a request, made again and again) for `seconds` while one more
/// client pings: the `/ping` latencies, sorted, and the requests made.
async fn under_load<F, Fut>(
    client: &reqwest::Client,
    url: &str,
    seconds: u64,
    clients: Vec<F>,
) -> (Vec<Duration>, u64)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let p = tokio::spawn(pinger(client.clone(), url.to_string(), stop.clone()));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for request in clients {
        let (stop, done) = (stop.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                request().await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let times = p.await.unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    (times, done.load(Ordering::Relaxed))
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
        let w = start().await;
        let client = reqwest::Client::new();
        w.first_ping(&client, Duration::from_secs(5), Duration::from_millis(10))
            .await
            .expect("the worker answers /ping");
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
        let kinds = [
            json!({"framework":"hostile"}),
            json!({"taskType":"command.run","input":{"command":"sh -c 'yes | head -c 50000000'"}}),
            json!({"taskType":"command.run","input":{"command":"sh -c 'setsid sh -c \"sleep 30\" & echo started'"}}),
            json!({"framework":"hostile"}),
        ];
        let clients = kinds.map(|body| {
            let (client, url) = (client.clone(), w.url.clone());
            move || {
                let (client, url, body) = (client.clone(), url.clone(), body.clone());
                async move {
                    let r = post(&client, &url, &body).await;
                    assert!(r["status"].is_string(), "{r}");
                }
            }
        });
        let (hostile, done) = under_load(&client, &w.url, seconds, clients.into()).await;
        row(&format!("4 clients of hostile tasks ({done} tasks)"), &hostile);

        // 1c. Read-backs of folders with FIFOs, 4 clients.
        let (fifo, reads) = fifo_reads(&w, &client, seconds).await;
        row(&format!("4 clients reading FIFO folders back ({reads} reads)"), &fifo);
        for (what, t) in [("hostile tasks run", &hostile), ("FIFO folders are read back", &fifo)] {
            println!(
                "\np99 while {what} / idle p99: {:.1}×",
                ms(percentile(t, 99.0)) / ms(percentile(&idle, 99.0))
            );
        }

        connections(&w, &client, seconds, &idle).await;

        // 3. 100 echo requests with a 20 MB prompt, 4 clients.
        let pid = w.pid();
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

/// Opens `n` connections to `port`, each sending `opening`, and holds them (not reading).
async fn hold(port: u16, n: usize, opening: &'static [u8]) -> Vec<std::net::TcpStream> {
    tokio::task::spawn_blocking(move || {
        (0..n)
            .filter_map(|_| {
                let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
                std::io::Write::write_all(&mut s, opening).ok()?;
                Some(s)
            })
            .collect()
    })
    .await
    .unwrap()
}

/// Phase 2: idle HTTP/2 attempts and SSE subscribers held open, then long id headers.
async fn connections(w: &Server, client: &reqwest::Client, seconds: u64, idle: &[Duration]) {
    let port: u16 = w
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap();
    let r = post(
        client,
        &w.url,
        &json!({"taskType":"command.run","taskId":"bench-watched","async":true,
                "input":{"command":"sleep 600","timeoutSeconds":600}}),
    )
    .await;
    assert_eq!(r["status"], "running", "{r}");
    println!("\n| phase | pings | p50 | p99 | max |\n|---|---|---|---|---|");
    // The HTTP/2 preface and an empty SETTINGS frame, as a client with prior knowledge opens.
    const H2: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";
    const SSE: &[u8] =
        b"GET /tasks/bench-watched/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n";
    let stop = Arc::new(AtomicBool::new(false));
    let p = tokio::spawn(pinger(client.clone(), w.url.clone(), stop.clone()));
    let h2 = hold(port, 1000, H2).await;
    let sse = hold(port, 1000, SSE).await;
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let held = p.await.unwrap();
    row(
        &format!(
            "{} HTTP/2 attempts + {} SSE subscribers held open",
            h2.len(),
            sse.len()
        ),
        &held,
    );
    drop((h2, sse));

    let long = Arc::new("r".repeat(300_000));
    let clients = (0..4).map(|_| {
        let (client, url, long) = (client.clone(), w.url.clone(), long.clone());
        move || {
            let (client, url, long) = (client.clone(), url.clone(), long.clone());
            async move {
                let r = client
                    .post(format!("{url}/invocations"))
                    .header("x-amzn-bedrock-agentcore-runtime-request-id", long.as_str())
                    .json(&json!({"prompt":"x"}))
                    .send()
                    .await;
                assert!(
                    r.is_ok_and(|r| r.status() == 400),
                    "a long id header was not a 400"
                );
            }
        }
    });
    let (long_ids, refused) = under_load(client, &w.url, seconds, clients.collect()).await;
    row(
        &format!("4 clients of 300 KB request-id headers ({refused} refused)"),
        &long_ids,
    );
    println!(
        "\np99 with held connections / idle p99: {:.1}×; with long id headers: {:.1}×",
        ms(percentile(&held, 99.0)) / ms(percentile(idle, 99.0)),
        ms(percentile(&long_ids, 99.0)) / ms(percentile(idle, 99.0))
    );
    post(
        client,
        &w.url,
        &json!({"taskType":"task.cancel","taskId":"bench-watched"}),
    )
    .await;
}
