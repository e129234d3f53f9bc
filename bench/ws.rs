//! `/ws` (SPEC §13): how soon the model's words reach a WebSocket client beside an SSE client
//! of the same worker, and what open idle sockets cost.
//!
//! 1. `ttft`: the shipped LangGraph example agent, warm, its offline model writing
//!    `TTFT_PIECES` pieces (default 10) `TTFT_DELAY_MS` apart (default 50). Each run asks once
//!    over SSE (`POST /invocations`, a kept-alive connection) and once over `/ws` (one socket,
//!    kept open, as a chat client keeps it), taking turns; medians of request → first word and
//!    → last word. Target: `/ws` within 2 ms of SSE.
//! 2. `idle`: `WS_SOCKETS` (default 1,000) open idle sockets on a worker: its RSS before and
//!    after, and `/ping` latency (p50, p99 of 500 sequential pings) with none open (the floor,
//!    same run) and with all open.
//!
//! ```sh
//! scripts/setup-frameworks.sh langgraph
//! cargo bench --bench ws                      # both parts, about a minute
//! cargo bench --bench ws -- --runs 40 ttft    # names pick parts: ttft, idle
//! ```

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

mod common;
use common::{knob, percentile, Log, Server};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Request → first and → last piece of the answer's text.
struct Words {
    first: Duration,
    last: Duration,
}

/// The text of a `task.delta` of kind text, if `v` is one.
fn piece(v: &Value) -> Option<&str> {
    let p = &v["payload"];
    (v["type"] == "task.delta" && p.get("kind").is_none())
        .then(|| p["text"].as_str())
        .flatten()
        .filter(|t| !t.is_empty())
}

/// Adds the piece of text `v` carries, if any, to `text`, and times it from `started`.
fn clock(started: Instant, text: &mut String, w: &mut Option<Words>, v: &Value) {
    if let Some(p) = piece(v) {
        let now = started.elapsed();
        text.push_str(p);
        match w {
            Some(w) => w.last = now,
            None => {
                *w = Some(Words {
                    first: now,
                    last: now,
                })
            }
        }
    }
}

async fn over_sse(s: &Server, http: &reqwest::Client, prompt: &str, answer: &str) -> Words {
    let started = Instant::now();
    let resp = common::post_sse(http, &s.url, &json!({"prompt": prompt}))
        .await
        .expect("SSE answer");
    let (mut text, mut w) = (String::new(), None);
    common::read_sse(resp, |_, v| clock(started, &mut text, &mut w, &v))
        .await
        .expect("SSE body");
    assert_eq!(text, answer);
    w.expect("a first word")
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn over_ws(ws: &mut Socket, prompt: &str, answer: &str) -> Words {
    let started = Instant::now();
    ws.send(Message::text(json!({"prompt": prompt}).to_string()))
        .await
        .expect("send");
    let (mut text, mut w) = (String::new(), None);
    while let Some(m) = ws.next().await {
        let Message::Text(t) = m.expect("a message") else {
            continue;
        };
        let v: Value = serde_json::from_str(t.as_str()).expect("JSON");
        clock(started, &mut text, &mut w, &v);
        if v.get("ok").is_some() && v.get("status").is_some() {
            assert_eq!(v["output"], answer, "{v}");
            break;
        }
    }
    assert_eq!(text, answer);
    w.expect("a first word")
}

async fn ttft(runs: usize) {
    let (pieces, delay) = (knob("TTFT_PIECES", 10).max(2), knob("TTFT_DELAY_MS", 50));
    let prompt = (1..pieces)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    let answer = format!("Shouted: {}", prompt.to_uppercase());
    common::venv_python("langgraph");
    let s = common::langgraph_worker("langgraph", delay).await;
    let http = reqwest::Client::new();
    common::ready(&s, &http, true).await;
    let url = format!("{}/ws", s.url.replacen("http://", "ws://", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("connect /ws");
    for _ in 0..2 {
        over_sse(&s, &http, &prompt, &answer).await;
        over_ws(&mut ws, &prompt, &answer).await;
    }
    let (mut sse, mut sock) = (Vec::new(), Vec::new());
    for run in 0..runs {
        if run % 2 == 0 {
            sse.push(over_sse(&s, &http, &prompt, &answer).await);
            sock.push(over_ws(&mut ws, &prompt, &answer).await);
        } else {
            sock.push(over_ws(&mut ws, &prompt, &answer).await);
            sse.push(over_sse(&s, &http, &prompt, &answer).await);
        }
    }
    let at = |v: &[Words], p: f64, f: fn(&Words) -> Duration| {
        ms(percentile(&v.iter().map(f).collect::<Vec<_>>(), p))
    };
    println!("LangGraph example agent (warm), its model writing {pieces} pieces {delay} ms apart; median of {runs} runs each, SSE and /ws taking turns (after 2 warm-up runs each)");
    println!();
    println!("| door | request → first word (p25–p75) | → last word (p25–p75) |");
    println!("|---|---|---|");
    for (name, v) in [
        ("SSE `POST /invocations`", &sse),
        ("WebSocket `/ws`", &sock),
    ] {
        println!(
            "| {name} | {:.1} ms ({:.1}–{:.1}) | {:.1} ms ({:.1}–{:.1}) |",
            at(v, 50.0, |w| w.first),
            at(v, 25.0, |w| w.first),
            at(v, 75.0, |w| w.first),
            at(v, 50.0, |w| w.last),
            at(v, 25.0, |w| w.last),
            at(v, 75.0, |w| w.last),
        );
    }
    let gap = at(&sock, 50.0, |w| w.first) - at(&sse, 50.0, |w| w.first);
    println!();
    println!(
        "/ws first word − SSE first word: {gap:+.1} ms (target ≤ +2 ms: {})",
        if gap <= 2.0 { "met" } else { "**not met**" }
    );
}

/// `n` sequential pings: p50 and p99.
async fn pings(http: &reqwest::Client, url: &str, n: usize) -> (f64, f64, String) {
    let mut times = Vec::with_capacity(n);
    let mut status = String::new();
    for _ in 0..n {
        let t = Instant::now();
        let v: Value = http
            .get(format!("{url}/ping"))
            .send()
            .await
            .expect("/ping")
            .json()
            .await
            .expect("/ping JSON");
        times.push(t.elapsed());
        status = v["status"].as_str().unwrap_or("").to_string();
    }
    (
        ms(percentile(&times, 50.0)),
        ms(percentile(&times, 99.0)),
        status,
    )
}

async fn idle(sockets: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = common::worker_command();
    cmd.env("AGENTDISPATCH_ARTIFACT_DIR", tmp.path())
        .env("AGENTDISPATCH_FRAMEWORKS_DIR", "/nonexistent")
        .env("AGENTDISPATCH_MAX_CONNECTIONS", (sockets + 16).to_string())
        .stderr(Stdio::null());
    let s = Server::start(cmd, Log::Drop).await.expect("start");
    let http = reqwest::Client::new();
    common::ready(&s, &http, false).await;
    let rss = || common::procfs::status_kb(s.pid(), "VmRSS").unwrap_or(0);
    let (p50_0, p99_0, _) = pings(&http, &s.url, 500).await;
    let rss_0 = rss();
    let url = format!("{}/ws", s.url.replacen("http://", "ws://", 1));
    let started = Instant::now();
    let mut open = Vec::with_capacity(sockets);
    for _ in 0..sockets {
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("connect /ws");
        open.push(ws);
    }
    let took = started.elapsed();
    let (p50_n, p99_n, status) = pings(&http, &s.url, 500).await;
    let rss_n = rss();
    println!();
    println!("{sockets} idle `/ws` sockets on one worker (opened one after another in {:.0} ms); 500 sequential `GET /ping` each way", ms(took));
    println!();
    println!("| | worker RSS | `/ping` p50 | `/ping` p99 | `/ping` status |");
    println!("|---|---|---|---|---|");
    println!(
        "| no socket (floor) | {} | {p50_0:.2} ms | {p99_0:.2} ms | Healthy |",
        common::mb(rss_0)
    );
    println!(
        "| {sockets} sockets open | {} | {p50_n:.2} ms | {p99_n:.2} ms | {status} |",
        common::mb(rss_n)
    );
    println!();
    println!(
        "RSS per idle socket: {:.1} kB",
        rss_n.saturating_sub(rss_0) as f64 / sockets as f64
    );
    drop(open);
}

fn main() {
    let (runs, only) = common::runs_and_names(20, 3);
    let part = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        if part("ttft") {
            ttft(runs).await;
        }
        if part("idle") {
            idle(knob("WS_SOCKETS", 1000)).await;
        }
    });
}
