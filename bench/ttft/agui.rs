//! The AG-UI part of `cargo bench --bench ttft`: one warm worker serving the LangGraph example
//! agent answers the same prompt over SSE two ways, run by run in turns — as its own payload
//! (`task.delta` messages) and as a `RunAgentInput` (AG-UI's `TEXT_MESSAGE_CONTENT` events) —
//! and the two are set side by side (target, issue 24: AG-UI within 2 ms of plain SSE).

use super::{ms, ready, start_worker, words, yes, Pace, Wire, Words};
use crate::common::percentile;

pub async fn beside_sse(runs: usize, pace: Pace) {
    let http = reqwest::Client::new();
    let s = start_worker("langgraph", pace).await;
    ready(&s, &http, true).await;
    let (prompt, answer) = (pace.prompt(), pace.answer());
    let ways = [
        ("plain SSE (`task.delta`)", Wire::Worker),
        ("AG-UI (`TEXT_MESSAGE_CONTENT`)", Wire::Agui),
    ];
    for (_, wire) in ways {
        for _ in 0..2 {
            words(&s, &http, wire, &prompt, &answer).await;
        }
    }
    let mut got: [Vec<Words>; 2] = [Vec::new(), Vec::new()];
    for run in 0..runs {
        for k in 0..2 {
            let i = (run + k) % 2;
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
    let (plain, agui) = (at(0, 50.0, |w| w.first), at(1, 50.0, |w| w.first));
    println!();
    println!("| target (issue 24) | AG-UI − plain SSE | met |");
    println!("|---|---|---|");
    println!(
        "| AG-UI first word within 2 ms of plain SSE's | {:+.1} ms | {} |",
        agui - plain,
        yes(agui - plain <= 2.0)
    );
}
