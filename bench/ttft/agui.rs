//! The AG-UI part of `cargo bench --bench ttft`: one warm worker serving the LangGraph example
//! agent answers the same prompt over SSE three ways, run by run in turns — as its own payload
//! (`task.delta` messages) without a session and in a new session, and as a `RunAgentInput` in a
//! new thread (AG-UI's `TEXT_MESSAGE_CONTENT` events; a thread is a session) — and AG-UI is set
//! beside the plain payload in a new session, the same work but the framing (target, issue 24:
//! within 2 ms).

use std::time::{Duration, Instant};

use agentdispatch_worker::agui::Translator;
use agentdispatch_worker::live::{Delta, Kind};

use super::{ms, ready, start_worker, words, yes, Pace, Wire, Words};
use crate::common::percentile;

/// The worker's own cost per piece of text, in-process: as a `task.delta` SSE message, and as
/// AG-UI's (the translator, then the event's JSON), `n` pieces of one message each way.
fn framing_cost(n: u32) -> (Duration, Duration) {
    let d = Delta {
        message_id: "m-1".into(),
        kind: Kind::Text,
        text: "WORD ".into(),
        after_seq: 3,
        ts: "2026-12-07T00:00:00.000Z".into(),
    };
    let mut bytes = 0;
    let t0 = Instant::now();
    for _ in 0..n {
        bytes += format!("data: {}\n\n", d.to_json("task-1")).len();
    }
    let plain = t0.elapsed();
    let mut t = Translator::new("thread-1", "run-1", None, "task-1");
    let mut out = Vec::new();
    let t0 = Instant::now();
    for _ in 0..n {
        t.delta(&d, &mut out);
        for e in out.drain(..) {
            bytes += format!("data: {}\n\n", e.to_json()).len();
        }
    }
    let agui = t0.elapsed();
    std::hint::black_box(bytes);
    (plain / n, agui / n)
}

pub async fn beside_sse(runs: usize, pace: Pace) {
    let http = reqwest::Client::new();
    let s = start_worker("langgraph", pace).await;
    ready(&s, &http, true).await;
    let (prompt, answer) = (pace.prompt(), pace.answer());
    let ways = [
        ("plain SSE (`task.delta`), no session", Wire::Worker),
        (
            "plain SSE (`task.delta`), a new session",
            Wire::WorkerInSession,
        ),
        ("AG-UI (`TEXT_MESSAGE_CONTENT`), a new thread", Wire::Agui),
    ];
    for (_, wire) in ways {
        for _ in 0..2 {
            words(&s, &http, wire, &prompt, &answer).await;
        }
    }
    let mut got: [Vec<Words>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for run in 0..runs {
        for k in 0..ways.len() {
            let i = (run + k) % ways.len();
            got[i].push(words(&s, &http, ways[i].1, &prompt, &answer).await);
        }
    }
    let at = |i: usize, p: f64, f: fn(&Words) -> std::time::Duration| {
        ms(percentile(&got[i].iter().map(f).collect::<Vec<_>>(), p))
    };
    println!();
    println!("AG-UI beside plain SSE: the same warm worker (LangGraph example agent, {} pieces {} ms apart), median of {runs} runs each, taking turns run by run (after 2 warm-up runs each)", pace.pieces, pace.delay_ms);
    println!();
    println!("| over | request → first word (p25–p75) | → last word (p25–p75) |");
    println!("|---|---|---|");
    for (i, (name, _)) in ways.iter().enumerate() {
        println!(
            "| {name} | {:.1} ms ({:.1}–{:.1}) | {:.1} ms ({:.1}–{:.1}) |",
            at(i, 50.0, |w| w.first),
            at(i, 25.0, |w| w.first),
            at(i, 75.0, |w| w.first),
            at(i, 50.0, |w| w.last),
            at(i, 25.0, |w| w.last),
            at(i, 75.0, |w| w.last),
        );
    }
    let (plain, agui) = (at(1, 50.0, |w| w.first), at(2, 50.0, |w| w.first));
    println!();
    println!("| target (issue 24) | AG-UI − plain SSE, both in a new session | met |");
    println!("|---|---|---|");
    println!(
        "| AG-UI first word within 2 ms of plain SSE's | {:+.1} ms | {} |",
        agui - plain,
        yes(agui - plain <= 2.0)
    );
    let (plain, agui) = framing_cost(200_000);
    println!();
    println!("| the worker's own cost per piece, in-process (200000 pieces) | per piece |");
    println!("|---|---|");
    println!(
        "| as a `task.delta` SSE message | {:.2} µs |",
        plain.as_secs_f64() * 1e6
    );
    println!(
        "| as AG-UI (translator + `TEXT_MESSAGE_CONTENT` JSON) | {:.2} µs |",
        agui.as_secs_f64() * 1e6
    );
}
