//! Per-framework figures for the Python frameworks of `frameworks/`, through the real release
//! binary over HTTP with SSE:
//!
//! - time from the invocation to the first event (`accepted`, the worker's own), to the first
//!   agent step the child streams (`task.progress` with `payload.step`), and to the result;
//!   and from the last step to the result (the child's exit: interpreter teardown);
//! - the child's peak RSS (`VmHWM` of every process carrying the task's `AGENTDISPATCH_TASK_ID`,
//!   polled from `/proc` every 10 ms while the task runs; the largest one);
//! - beside them, the bare `.venv/bin/python -c 'import <module>'` time, measured in the same run.
//!
//! Each figure is the median of `--runs` runs (default 3); frameworks run one after another.
//!
//! ```sh
//! scripts/setup-frameworks.sh
//! cargo bench --bench frameworks                      # all six
//! cargo bench --bench frameworks -- --runs 5 langgraph strands
//! ```

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

mod common;
use common::{median, procfs, Log, Sampler, Server};

/// The release worker on the repository's `frameworks/`, its artifacts in a temp dir.
async fn start_worker(frameworks: &Path) -> Server {
    let artifacts = tempfile::tempdir().unwrap();
    let mut cmd = common::worker_command();
    cmd.env("AGENTDISPATCH_FRAMEWORKS_DIR", frameworks)
        .env("AGENTDISPATCH_ARTIFACT_DIR", artifacts.path())
        // info, not warn: the `listening` line names the port bound.
        .env("RUST_LOG", "info");
    let mut w = Server::start(cmd, Log::Drop)
        .await
        .expect("start the worker");
    w.tmp = Some(artifacts);
    w
}

/// One run's figures.
struct Run {
    accepted: Duration,
    first_step: Duration,
    last_step: Duration,
    result: Duration,
    peak_rss_kb: u64,
}

/// Polls the task's processes' `VmHWM` every 10 ms; the largest seen so far, each time.
fn watch_rss(task_id: String) -> Sampler {
    let marker = format!("AGENTDISPATCH_TASK_ID={task_id}").into_bytes();
    let mut pids: Vec<i32> = Vec::new();
    let mut last_scan = Instant::now() - Duration::from_secs(1);
    let mut peak: HashMap<i32, u64> = HashMap::new();
    Sampler::every(Duration::from_millis(10), move || {
        // A full /proc scan is costly; rescan for new processes every 100 ms, read the
        // known ones every 10 ms.
        if last_scan.elapsed() >= Duration::from_millis(100) {
            pids = procfs::marked_processes(&marker);
            last_scan = Instant::now();
        }
        for &pid in &pids {
            if let Some(kb) = procfs::status_kb(pid, "VmHWM") {
                let e = peak.entry(pid).or_default();
                *e = (*e).max(kb);
            }
        }
        peak.values().copied().max().unwrap_or(0)
    })
}

async fn run_once(client: &reqwest::Client, w: &Server, name: &str, n: usize) -> Run {
    let task_id = format!("bench-{name}-{}-{n}", std::process::id());
    let rss = watch_rss(task_id.clone());
    let started = Instant::now();
    let resp = common::post_sse(
        client,
        &w.url,
        &json!({"taskId": task_id, "framework": name,
                "input": {"instruction": "hello world"}}),
    )
    .await
    .expect("POST /invocations");
    let (mut accepted, mut first_step, mut last_step, mut result) = (None, None, None, None);
    let mut last = None;
    common::read_sse(resp, |_, v| {
        let at = started.elapsed();
        accepted.get_or_insert(at);
        if v["type"] == "task.progress" && v["payload"]["step"].is_string() {
            first_step.get_or_insert(at);
            last_step = Some(at);
        }
        if v.get("ok").is_some() {
            result = Some(at);
        }
        last = Some(v);
    })
    .await
    .expect("SSE body");
    let peak_rss_kb = rss.finish().into_iter().max().unwrap_or(0);
    let last = last.expect("an SSE message");
    assert_eq!(last["ok"], true, "{name}: {last}");
    assert_eq!(last["output"], "Shouted: HELLO WORLD", "{name}");
    Run {
        accepted: accepted.unwrap(),
        first_step: first_step.unwrap_or_else(|| panic!("{name}: no step event")),
        last_step: last_step.unwrap(),
        result: result.unwrap(),
        peak_rss_kb,
    }
}

/// Wall time of `python -c 'import module'`.
fn import_time(python: &Path, module: &str) -> Duration {
    let started = Instant::now();
    let status = Command::new(python)
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .status()
        .expect("run python");
    assert!(
        status.success(),
        "{} -c 'import {module}' failed",
        python.display()
    );
    started.elapsed()
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn main() {
    let (runs, only) = common::runs_and_names(3, 1);
    let dir = common::repo()
        .join("frameworks")
        .canonicalize()
        .expect("frameworks/");
    let chosen: Vec<(&str, &str)> = common::FRAMEWORKS
        .iter()
        .copied()
        .filter(|(n, _)| only.is_empty() || only.iter().any(|o| o == n))
        .collect();
    assert!(!chosen.is_empty(), "no framework named {only:?}");
    for (name, _) in &chosen {
        common::venv_python(name);
    }

    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let w = rt.block_on(async {
        let w = start_worker(&dir).await;
        w.first_ping(&client, Duration::from_secs(20), Duration::from_millis(20))
            .await
            .expect("the worker answers /ping");
        w
    });
    println!(
        "hello-world run of each example agent, median of {runs} (peak RSS: largest of the runs)"
    );
    println!(
        "| framework | `import` alone | first event (accepted) | first step | result | result − import | last step → result | child peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, module) in chosen {
        let python = dir.join(name).join(".venv/bin/python");
        let mut import = Vec::new();
        let (mut acc, mut step, mut res, mut tail, mut rss) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), 0);
        for n in 0..runs {
            // Interleaved, so that both see the same machine load.
            import.push(import_time(&python, module));
            let r = rt.block_on(run_once(&client, &w, name, n));
            acc.push(r.accepted);
            step.push(r.first_step);
            res.push(r.result);
            tail.push(r.result.saturating_sub(r.last_step));
            rss = rss.max(r.peak_rss_kb);
        }
        let (import, result) = (median(&import), median(&res));
        println!(
            "| {name} | {} | {:.1} ms | {} | {} | {} | {} | {:.0} MB |",
            secs(import),
            median(&acc).as_secs_f64() * 1000.0,
            secs(median(&step)),
            secs(result),
            secs(result.saturating_sub(import)),
            secs(median(&tail)),
            rss as f64 / 1024.0
        );
    }
}
