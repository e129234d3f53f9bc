//! A task that asks (SPEC §14), answered: the time from the answer's request to the resumed
//! run's first framework step, warm, for each shipped framework's example agent (its `refund`
//! tool asks for approval), beside the floor measured in the same run on the same worker: a
//! fresh warm task's request → first step. What the answer adds over a fresh task is reading the
//! session's questions, marking them answered, and the framework reading back what it saved.
//! Asks and fresh tasks alternate, so that a slower spell of the machine lands on both.
//!
//! ```sh
//! scripts/setup-frameworks.sh
//! cargo bench --bench interrupts                       # all six, 20 answers each
//! cargo bench --bench interrupts -- --runs 50 langgraph
//! ```

use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod common;
use common::{percentile, Server};

const REFUND: &str = "refund 5 for order 42";

async fn start_worker(framework: &str) -> Server {
    let s = common::frameworks_worker(framework, framework, &[]).await;
    s.warm_ready(1).await;
    s
}

/// One request over SSE: (request → first framework step, request → result, the result).
async fn timed(http: &reqwest::Client, url: &str, body: &Value) -> (Duration, Duration, Value) {
    let started = Instant::now();
    let resp = common::post_sse(http, url, body)
        .await
        .expect("POST /invocations");
    let (mut step, mut done, mut result) = (None, None, Value::Null);
    common::read_sse(resp, |_, v| {
        if v["type"] == "task.progress" && v["payload"]["step"].is_string() {
            step.get_or_insert(started.elapsed());
        }
        if v.get("ok").is_some() {
            done = Some(started.elapsed());
            result = v;
        }
    })
    .await
    .expect("the stream");
    let done = done.expect("a result");
    (step.unwrap_or(done), done, result)
}

struct Figures {
    answer_step: Vec<Duration>,
    answer_done: Vec<Duration>,
    fresh_step: Vec<Duration>,
    fresh_done: Vec<Duration>,
}

async fn measure(framework: &str, runs: usize) -> Figures {
    let w = start_worker(framework).await;
    let http = reqwest::Client::new();
    let mut f = Figures {
        answer_step: Vec::new(),
        answer_done: Vec::new(),
        fresh_step: Vec::new(),
        fresh_done: Vec::new(),
    };
    for run in 0..runs + 1 {
        let session = format!("bench-{framework}-{run}");
        let ask = json!({"framework": framework, "sessionId": session,
                         "input": {"instruction": REFUND}});
        let (_, v) = common::post_json(&http, &w.url, &ask).await.expect("ask");
        assert_eq!(v["status"], "input_required", "{v}");
        let answer = json!({"framework": framework, "sessionId": session,
                            "input": {"instruction": REFUND, "resume": true}});
        let (step, done, r) = timed(&http, &w.url, &answer).await;
        assert_eq!(r["status"], "succeeded", "{r}");
        assert!(
            r["output"].as_str().unwrap_or("").contains("refunded"),
            "{r}"
        );
        let fresh = json!({"framework": framework, "input": {"instruction": "hello world"}});
        let (fstep, fdone, r) = timed(&http, &w.url, &fresh).await;
        assert_eq!(r["ok"], true, "{r}");
        if run == 0 {
            continue; // the first of each warms the caches of both paths
        }
        f.answer_step.push(step);
        f.answer_done.push(done);
        f.fresh_step.push(fstep);
        f.fresh_done.push(fdone);
    }
    f
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let (runs, only) = common::runs_and_names(20, 3);
    let names: Vec<&str> = common::FRAMEWORKS
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| only.is_empty() || only.iter().any(|o| o == n))
        .collect();
    println!(
        "answer → resumed run's first step, warm, {runs} answers per framework (ms, p50 / p90)"
    );
    println!(
        "| framework | answer → first step | floor: fresh task → first step | answer → result | fresh task → result |"
    );
    println!("|---|---|---|---|---|");
    for name in names {
        common::venv_python(name);
        let f = measure(name, runs).await;
        let pair =
            |v: &[Duration]| format!("{} / {}", ms(percentile(v, 50.0)), ms(percentile(v, 90.0)));
        println!(
            "| {name} | {} | {} | {} | {} |",
            pair(&f.answer_step),
            pair(&f.fresh_step),
            pair(&f.answer_done),
            pair(&f.fresh_done)
        );
    }
}
