//! The agent's own lines on the worker's log (SPEC §10, §12; `AGENTDISPATCH_CHILD_LOG`),
//! through the real binary on the `pyfixture` framework: a `print` and a `logging` record of a
//! cold and of a warm child become JSON log lines with the task's ids; `stderr` and `off`
//! modes; a child flooding millions of lines is held to its rate, the lines held back are
//! counted in the log, `/ping` answers meanwhile and the task's result and events are whole.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// The worker's log lines of child `id`'s own output.
fn child_lines(w: &Worker, id: &str) -> Vec<Value> {
    w.log_lines()
        .into_iter()
        .filter(|l| l["target"] == "child" && l["taskId"] == id)
        .collect()
}

/// Waits until the worker logged the end of task `id` (its child's lines come before).
async fn wait_finished_log(w: &Worker, id: &str) {
    let done = || {
        w.log_lines()
            .iter()
            .any(|l| l["taskId"] == id && l["message"] == "task finished")
    };
    assert!(
        eventually(Duration::from_secs(20), done).await,
        "{id}: no \"task finished\" log line:\n{}",
        w.logs.lock().unwrap().join("\n")
    );
}

#[tokio::test]
async fn a_childs_print_and_logging_lines_are_worker_log_lines_cold_and_warm() {
    for kind in [Kind::Cold, Kind::Warm] {
        let w = fixture_worker(kind, WorkerBuilder::new()).await;
        let id = format!("said-{kind:?}");
        let body = serde_json::to_vec(&fixture(&id, "log hello there")).unwrap();
        let headers = [("X-Amzn-Bedrock-AgentCore-Runtime-Session-Id", "sess-logs")];
        let (status, r) = w.invoke_raw(body, &headers).await;
        assert_eq!((status, &r["ok"]), (200, &json!(true)), "{r:#}");
        assert_eq!(forked_from(&r).is_some(), kind == Kind::Warm, "{r:#}");
        wait_finished_log(&w, &id).await;
        let lines = child_lines(&w, &id);
        for said in ["print: hello there", "INFO:fixture:logging: hello there"] {
            let line = lines
                .iter()
                .find(|l| l["message"] == said)
                .unwrap_or_else(|| panic!("{kind:?}: {said:?} not logged: {lines:#?}"));
            assert_eq!(line["stream"], "stderr", "{line}");
            assert_eq!(line["framework"], "pyfixture", "{line}");
            assert_eq!(line["sessionId"], "sess-logs", "{line}");
            assert_eq!(line["requestId"], r["events"][0]["payload"]["requestId"]);
            assert_eq!(line["level"], "INFO", "{line}");
        }
        // A long line is clipped, and says so.
        let long = lines
            .iter()
            .find(|l| l["clipped"] == true)
            .unwrap_or_else(|| panic!("{kind:?}: no clipped line: {lines:#?}"));
        let text = long["message"].as_str().unwrap();
        assert!(text.starts_with("yyyy") && text.len() < 5000, "{text}");
        assert!(
            text.ends_with("[line clipped: 100000 bytes in all]"),
            "{text}"
        );
        // A stdout line that is not a protocol line is the agent's too (mode `all`).
        let id = format!("stdout-{kind:?}");
        let r = w.run(fixture(&id, "sh echo plain stdout text")).await;
        assert_eq!(r["ok"], true, "{r:#}");
        wait_finished_log(&w, &id).await;
        let lines = child_lines(&w, &id);
        assert!(
            lines
                .iter()
                .any(|l| l["message"] == "plain stdout text" && l["stream"] == "stdout"),
            "{kind:?}: {lines:#?}"
        );
    }
}

#[tokio::test]
async fn stderr_mode_logs_only_stderr_and_off_logs_nothing_while_events_keep_all() {
    for (mode, logged) in [("stderr", vec!["to stderr"]), ("off", vec![])] {
        let w = fixture_worker(
            Kind::Cold,
            WorkerBuilder::new().env("AGENTDISPATCH_CHILD_LOG", mode),
        )
        .await;
        let id = format!("mode-{mode}");
        let r = w
            .run(fixture(&id, "sh echo to stdout; echo to stderr >&2"))
            .await;
        assert_eq!(r["ok"], true, "{r:#}");
        wait_finished_log(&w, &id).await;
        let said: Vec<Value> = child_lines(&w, &id)
            .into_iter()
            .map(|l| l["message"].clone())
            .collect();
        assert_eq!(said, logged, "{mode}");
        let events: Vec<&Value> = events_of(&r, "task.log")
            .into_iter()
            .map(|e| &e["message"])
            .collect();
        for line in ["to stdout", "to stderr"] {
            assert!(events.contains(&&json!(line)), "{mode}: {events:?}");
        }
    }
}

#[tokio::test]
async fn a_flood_is_held_to_its_rate_counted_and_never_blocks_ping() {
    const LINES: u64 = 1_000_000;
    const RATE: u64 = 20;
    let w = fixture_worker(
        Kind::Cold,
        WorkerBuilder::new()
            .env(
                "AGENTDISPATCH_CHILD_LOG_LINES_PER_SECOND",
                &RATE.to_string(),
            )
            .env("AGENTDISPATCH_HEARTBEAT_SECONDS", "1"),
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let gate = tmp.path().join("gate");
    nix::unistd::mkfifo(&gate, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let began = Instant::now();
    let task = {
        let (url, client) = (w.url.clone(), w.client().clone());
        let body = fixture("flood", &format!("flood {LINES} {}", gate.display()));
        tokio::spawn(async move {
            let resp = client
                .post(format!("{url}/invocations"))
                .json(&body)
                .send()
                .await
                .unwrap();
            resp.json::<Value>().await.unwrap()
        })
    };
    // The flood is on once lines were held back and said so.
    let held_back = || {
        child_lines(&w, "flood")
            .iter()
            .any(|l| l["droppedLines"].as_u64() > Some(0))
    };
    assert!(
        eventually(Duration::from_secs(60), held_back).await,
        "no line says lines were held back:\n{}",
        w.logs.lock().unwrap().join("\n")
    );
    for _ in 0..5 {
        assert_eq!(w.ping().await["status"], "HealthyBusy");
    }
    // The second half of the flood, after the pings.
    let opened = tokio::task::spawn_blocking(move || std::fs::write(gate, b"go"));
    let r = task.await.unwrap();
    opened.await.unwrap().unwrap();
    let elapsed = began.elapsed().as_secs_f64();
    assert_eq!(r["ok"], true, "{r:#}");
    assert_eq!(r["output"], format!("flooded {LINES}"), "{r:#}");
    wait_finished_log(&w, "flood").await;

    let lines = child_lines(&w, "flood");
    let logged = lines.iter().filter(|l| l["stream"] == "stderr").count() as u64;
    let dropped: u64 = lines
        .iter()
        .filter_map(|l| l["droppedLines"].as_u64())
        .sum();
    assert_eq!(logged + dropped, LINES, "every line logged or counted");
    // A burst of 5 s of the rate, then the rate, for as long as the task ran.
    let most = 5 * RATE + (RATE as f64 * elapsed).ceil() as u64;
    assert!(logged <= most, "{logged} lines logged in {elapsed:.1}s");
    // Said at each heartbeat (1 s here) that follows held-back lines, and at the end: a few a
    // second at most, however many lines.
    let reports = lines.len() as u64 - logged;
    assert!(
        reports <= 2 * elapsed.ceil() as u64 + 5,
        "{reports} reports in {elapsed:.1}s"
    );
    let total = w.logs.lock().unwrap().len() as u64;
    assert!(total < logged + reports + 50, "{total} worker log lines");
    // The task's own record keeps every line.
    let kept = std::fs::read_to_string(w.task_dir("flood").join("events.ndjson"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"message\":\"flood line\""))
        .count() as u64;
    assert_eq!(kept, LINES);
}

#[tokio::test]
async fn a_warm_parent_flooding_at_import_is_clipped_held_to_the_rate_and_counted() {
    const LINES: u64 = 200_000;
    const RATE: u64 = 20;
    let began = Instant::now();
    let w = fixture_worker(
        Kind::Warm,
        WorkerBuilder::new()
            .env(
                "AGENTDISPATCH_CHILD_LOG_LINES_PER_SECOND",
                &RATE.to_string(),
            )
            .env("FIXTURE_WARMUP_FLOOD", &LINES.to_string()),
    )
    .await;
    // Its lines and its last one (4 MiB): each logged or counted in a droppedLines line.
    let parent = |l: &Value| l["source"] == "warm parent" && l["stream"] == "stderr";
    let seen = || {
        let lines: Vec<Value> = w.log_lines().into_iter().filter(parent).collect();
        let logged = lines.iter().filter(|l| l["droppedLines"].is_null()).count() as u64;
        let dropped: u64 = lines
            .iter()
            .filter_map(|l| l["droppedLines"].as_u64())
            .sum();
        logged + dropped
    };
    assert!(
        eventually(Duration::from_secs(60), || seen() == LINES + 1).await,
        "{} of {} lines logged or counted",
        seen(),
        LINES + 1
    );
    let elapsed = began.elapsed().as_secs_f64();
    let lines: Vec<Value> = w.log_lines().into_iter().filter(parent).collect();
    let logged: Vec<&Value> = lines
        .iter()
        .filter(|l| l["droppedLines"].is_null())
        .collect();
    let most = 5 * RATE + (RATE as f64 * elapsed).ceil() as u64;
    assert!(
        (logged.len() as u64) <= most,
        "{} lines logged in {elapsed:.1}s",
        logged.len()
    );
    for l in &logged {
        assert!(l["message"].as_str().unwrap().len() < 5000, "{l}");
    }
}
