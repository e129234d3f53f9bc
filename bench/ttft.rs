//! Live text (SPEC §4.1): how soon the model's words reach a client, beside the floor a user
//! would otherwise pick, and what a flood of deltas costs the worker.
//!
//! 1. The shipped LangGraph example agent, its offline model writing `TTFT_PIECES` pieces
//!    (default 40: "Shouted: " and one word per piece) `TTFT_DELAY_MS` apart (default 50, through
//!    `AGENTDISPATCH_EXAMPLE_PIECE_DELAY_MS`), served three ways over SSE: in-process by AWS's
//!    `bedrock-agentcore` with an async generator entrypoint yielding each piece of
//!    `graph.stream(stream_mode="messages")` (`bench/agentcore/serve.py --stream`), through the
//!    worker with a warm parent, and with a cold child per task. All three are alive together
//!    and take turns run by run (`--runs N` each, default 20); medians of request → first word
//!    and → last word, beside the model's own delay (the floor).
//! 2. AG-UI beside plain SSE ([`agui`]): the same warm worker answering the same prompt as a
//!    `RunAgentInput` (AG-UI events) and as its own payload (`task.delta`), run by run in turns.
//! 3. A flood ([`flood`]): a child writing 20,000 deltas a second for 5 s to 4 SSE subscribers.
//! 4. The line path ([`lines`]): the worker's CPU per `task.delta` line beside a plain event line
//!    and the floor of any JSON line, and `protocol::classify` beside the parse alone.
//!
//! ```sh
//! scripts/setup-frameworks.sh langgraph && scripts/setup-frameworks.sh bench/agentcore
//! cargo bench --bench ttft                     # every part, about 7 minutes
//! cargo bench --bench ttft -- --runs 20 flood  # names pick parts: serve, agui, flood, lines
//! ```

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod common;
use common::{knob, percentile, repo, Log, Server};
#[path = "ttft/agui.rs"]
mod agui;
#[path = "ttft/flood.rs"]
mod flood;
#[path = "ttft/lines.rs"]
mod lines;

/// The model's pace: how many pieces its answer has, and the wait before each.
#[derive(Clone, Copy)]
struct Pace {
    pieces: usize,
    delay_ms: usize,
}

impl Pace {
    /// The prompt whose answer comes in `pieces` pieces: "Shouted: " then one per word.
    fn prompt(&self) -> String {
        (1..self.pieces)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn answer(&self) -> String {
        format!("Shouted: {}", self.prompt().to_uppercase())
    }
}

/// The worker serving the LangGraph example agent, warm (`AGENTDISPATCH_WARM=langgraph`) or
/// with a cold child per task (`none`).
async fn start_worker(warm: &str, pace: Pace) -> Server {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = common::worker_command();
    cmd.env("AGENTDISPATCH_FRAMEWORKS_DIR", repo().join("frameworks"))
        .env("AGENTDISPATCH_ARTIFACT_DIR", tmp.path())
        .env("AGENTDISPATCH_SESSION_DIR", tmp.path().join("sessions"))
        .env("AGENTDISPATCH_AGENT_FRAMEWORK", "langgraph")
        .env("AGENTDISPATCH_WARM", warm)
        .env(
            "AGENTDISPATCH_EXAMPLE_PIECE_DELAY_MS",
            pace.delay_ms.to_string(),
        )
        .stderr(Stdio::null());
    let mut s = Server::start(cmd, Log::Keep)
        .await
        .expect("start the worker");
    s.tmp = Some(tmp);
    s
}

/// Waits for `/ping`, and for a worker's warm parent when `warm`.
async fn ready(s: &Server, http: &reqwest::Client, warm: bool) {
    s.first_ping(http, Duration::from_secs(120), Duration::from_millis(5))
        .await
        .expect("/ping");
    if warm {
        s.warm_ready(1).await;
    }
}

/// One streamed answer: request → first piece of the answer's text, → last piece; how many
/// SSE messages carried text.
struct Words {
    first: Duration,
    last: Duration,
    messages: usize,
}

/// Sessions (AG-UI threads) started so far: each run of the AG-UI part in a new one.
static THREADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How an answer's text comes over SSE.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wire {
    /// The floor's bare JSON strings.
    Floor,
    /// The worker's `task.delta` messages of kind text, then its result.
    Worker,
    /// As `Worker`, each run in a new session (as an AG-UI run's new thread).
    WorkerInSession,
    /// The worker's AG-UI events for a `RunAgentInput`: `TEXT_MESSAGE_CONTENT`, then
    /// `RUN_FINISHED`.
    Agui,
}

/// One SSE invocation of `prompt` over `wire`. Checks that the pieces add up to `answer`, and
/// the worker's result too.
async fn words(
    s: &Server,
    http: &reqwest::Client,
    wire: Wire,
    prompt: &str,
    answer: &str,
) -> Words {
    let started = Instant::now();
    let thread = || {
        format!(
            "bench-{}",
            THREADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        )
    };
    let body = match wire {
        Wire::Agui => json!({
            "threadId": thread(), "runId": "r",
            "messages": [{"id": "u", "role": "user", "content": prompt}],
            "tools": [], "context": [], "forwardedProps": {},
        }),
        Wire::WorkerInSession => json!({"prompt": prompt, "sessionId": thread()}),
        _ => json!({"prompt": prompt}),
    };
    // Not `common::post_sse`: the floor's content type carries `; charset=utf-8`.
    let resp = http
        .post(format!("{}/invocations", s.url))
        .header("accept", "text/event-stream")
        .json(&body)
        .send()
        .await
        .expect("POST /invocations");
    assert_eq!(resp.status(), 200, "POST /invocations");
    let (mut first, mut last, mut text, mut messages) = (None, None, String::new(), 0);
    let mut result = None;
    common::read_sse(resp, |_, v| {
        let piece = match wire {
            Wire::Worker | Wire::WorkerInSession => {
                let p = &v["payload"];
                (v["type"] == "task.delta" && p.get("kind").is_none())
                    .then(|| p["text"].as_str())
                    .flatten()
            }
            Wire::Agui => (v["type"] == "TEXT_MESSAGE_CONTENT")
                .then(|| v["delta"].as_str())
                .flatten(),
            Wire::Floor => v.as_str(),
        };
        if let Some(piece) = piece.filter(|p| !p.is_empty()) {
            first.get_or_insert(started.elapsed());
            last = Some(started.elapsed());
            text.push_str(piece);
            messages += 1;
        }
        if v.get("ok").is_some() {
            result = Some(v);
        } else if v["type"] == "RUN_FINISHED" {
            result = Some(json!({"ok": true, "output": v["result"]["output"]}));
        }
    })
    .await
    .expect("SSE body");
    assert_eq!(text, answer, "the streamed pieces add up to the answer");
    if wire != Wire::Floor {
        let r: Value = result.expect("a result");
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["output"], answer, "{r}");
    }
    Words {
        first: first.expect("a first word"),
        last: last.expect("a last word"),
        messages,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "**no**"
    }
}

async fn served_three_ways(runs: usize, pace: Pace) {
    let http = reqwest::Client::new();
    let delay = pace.delay_ms.to_string();
    let floor = common::start_agentcore(
        &["--stream"],
        &[("AGENTDISPATCH_EXAMPLE_PIECE_DELAY_MS", delay)],
    );
    ready(&floor, &http, false).await;
    let warm = start_worker("langgraph", pace).await;
    ready(&warm, &http, true).await;
    let cold = start_worker("none", pace).await;
    ready(&cold, &http, false).await;
    let ways: [(&str, &Server, Wire); 3] = [
        (
            "`bedrock-agentcore` in-process, async generator over `graph.stream(stream_mode=\"messages\")`",
            &floor,
            Wire::Floor,
        ),
        ("worker, warm", &warm, Wire::Worker),
        ("worker, cold", &cold, Wire::Worker),
    ];
    let (prompt, answer) = (pace.prompt(), pace.answer());
    // Two warm-up runs each: the first runs import lazily and fill caches.
    for (_, s, wire) in &ways {
        for _ in 0..2 {
            words(s, &http, *wire, &prompt, &answer).await;
        }
    }
    let mut got: Vec<Vec<Words>> = (0..ways.len()).map(|_| Vec::new()).collect();
    for run in 0..runs {
        // Turns in a rotating order, so that no way always follows the same one.
        for k in 0..ways.len() {
            let i = (run + k) % ways.len();
            let (_, s, wire) = ways[i];
            got[i].push(words(s, &http, wire, &prompt, &answer).await);
        }
    }
    let at = |i: usize, p: f64, f: fn(&Words) -> Duration| {
        ms(percentile(&got[i].iter().map(f).collect::<Vec<_>>(), p))
    };
    // The quartiles beside each median: this shared machine moves single runs by tens of ms.
    let spread = |i: usize, f: fn(&Words) -> Duration| {
        format!("{:.1}–{:.1}", at(i, 25.0, f), at(i, 75.0, f))
    };
    let (first_floor, total_floor) = (pace.delay_ms as f64, (pace.delay_ms * pace.pieces) as f64);
    println!("LangGraph example agent, its model writing {} pieces {} ms apart (\"Shouted: \" and one word each); SSE; median of {runs} runs each, the three ways taking turns run by run (after 2 warm-up runs each)", pace.pieces, pace.delay_ms);
    println!();
    println!("| served by | request → first word (p25–p75) | → last word (p25–p75) | SSE messages with text | first word − model's own | last word − model's own |");
    println!("|---|---|---|---|---|---|");
    println!("| the model's own delay (floor) | {first_floor:.1} ms | {total_floor:.1} ms | {} | — | — |", pace.pieces);
    let mut firsts = Vec::new();
    let mut lasts = Vec::new();
    for (i, (name, _, _)) in ways.iter().enumerate() {
        let (f, l) = (at(i, 50.0, |w| w.first), at(i, 50.0, |w| w.last));
        let msgs = got[i].iter().map(|w| w.messages).max().unwrap_or(0);
        println!(
            "| {name} | {f:.1} ms ({}) | {l:.1} ms ({}) | {msgs} | +{:.1} ms | +{:.1} ms |",
            spread(i, |w| w.first),
            spread(i, |w| w.last),
            f - first_floor,
            l - total_floor
        );
        firsts.push(f);
        lasts.push(l);
    }
    println!();
    println!("| target (issue 22) | warm | bound | met |");
    println!("|---|---|---|---|");
    let bound = firsts[0] + 10.0;
    println!(
        "| warm first word ≤ in-process first word + 10 ms | {:.1} ms | {bound:.1} ms | {} |",
        firsts[1],
        yes(firsts[1] <= bound)
    );
    let bound = lasts[0] + 10.0;
    println!(
        "| warm last word ≤ in-process last word + 10 ms | {:.1} ms | {bound:.1} ms | {} |",
        lasts[1],
        yes(lasts[1] <= bound)
    );
}

fn main() {
    let (runs, only) = common::runs_and_names(20, 3);
    let pace = Pace {
        pieces: knob("TTFT_PIECES", 40).max(2),
        delay_ms: knob("TTFT_DELAY_MS", 50),
    };
    common::venv_python("langgraph");
    let part = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        if part("serve") {
            served_three_ways(runs, pace).await;
        }
        if part("agui") {
            agui::beside_sse(runs, pace).await;
        }
        if part("flood") {
            flood::flood(
                knob("FLOOD_DELTAS_PER_SECOND", 20_000),
                knob("FLOOD_SECONDS", 5),
            )
            .await;
        }
        if part("lines") {
            lines::lines(runs.min(knob("LINES_RUNS", 7)), knob("LINES", 200_000)).await;
        }
    });
}
