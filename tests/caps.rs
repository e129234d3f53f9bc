//! One cap for a whole answer (SPEC §8; issue "hostile children and callers" #2): output,
//! result and events together stay within `AGENTDISPATCH_MAX_OUTPUT_BYTES` plus a small
//! envelope — in the JSON answer, in `task.status` from memory and from the task folder — and
//! paging with `afterSeq` still reaches every event, so nothing is lost.

mod common;

use common::WorkerBuilder;
use serde_json::{json, Value};

const CAP: usize = 256 * 1024;
/// The answer's own fields, artifacts and JSON escaping, beyond the cap.
const ENVELOPE: usize = 64 * 1024;
/// Enough for output and events each to pass the cap three times over, and for ~10 pages of
/// `afterSeq` paging. More proves nothing more here: paging a task from its folder reads the
/// log from its start for every page (`events::read_log`), so its cost grows with the square of
/// the lines (40,000 took ~10 s of a debug worker's CPU).
const LINES: u64 = 8_000;

/// `LINES` stdout lines of ~100 bytes (800 KB): output and events each alone pass the cap.
fn flood(id: &str) -> Value {
    let cmd = format!(
        "python3 -c \"import sys\nfor i in range({LINES}): sys.stdout.write('%08d ' % i + 'y' * 90 + '\\n')\""
    );
    json!({"taskType":"command.run","taskId":id,"input":{"command":cmd}})
}

#[track_caller]
fn assert_within_cap(answer: &Value, what: &str) {
    let bytes = serde_json::to_vec(answer).unwrap().len();
    assert!(
        bytes <= CAP + ENVELOPE,
        "{what}: {bytes} bytes for a cap of {CAP}"
    );
}

#[track_caller]
fn assert_events_have_room(answer: &Value, what: &str) {
    assert_within_cap(answer, what);
    let events: usize = answer["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| serde_json::to_vec(e).unwrap().len())
        .sum();
    assert!(
        events >= CAP / 2 - 1024,
        "{what}: the events got {events} bytes"
    );
}

/// Every stdout line of the task, paging `task.status` with `afterSeq`.
async fn page_all(w: &common::Worker, id: &str) -> u64 {
    let (mut after, mut lines) = (0u64, 0u64);
    loop {
        let page = w
            .run(json!({"taskType":"task.status","taskId":id,"afterSeq":after}))
            .await;
        assert_within_cap(&page, "a task.status page");
        let events = page["events"].as_array().unwrap();
        if events.is_empty() {
            return lines;
        }
        for e in events {
            after = e["seq"].as_u64().unwrap();
            if e["payload"]["stream"] == "stdout" {
                lines += 1;
            }
        }
    }
}

#[tokio::test]
async fn an_answer_holds_output_and_events_within_one_cap_and_paging_loses_nothing() {
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_COMMAND_ALLOWLIST", "python3")
        .env("AGENTDISPATCH_MAX_OUTPUT_BYTES", &CAP.to_string())
        .env("AGENTDISPATCH_MAX_RETAINED_TASKS", "1")
        .start()
        .await;
    let r = w.run(flood("big")).await;
    assert_eq!(r["status"], "succeeded", "{}", r["error"]);
    assert_events_have_room(&r, "the JSON answer");
    assert_eq!(r["eventsTruncated"], true);
    // The output gave way and says so; result.json keeps it (up to the output cap).
    let output = r["output"].as_str().unwrap();
    assert!(
        output.ends_with("bytes in result.json]"),
        "{}",
        &output[output.len().saturating_sub(80)..]
    );
    let on_disk: Value =
        serde_json::from_slice(&std::fs::read(w.task_dir("big").join("result.json")).unwrap())
            .unwrap();
    assert!(on_disk["output"].as_str().unwrap().len() > output.len());

    // From memory: every line, page by page.
    assert_eq!(page_all(&w, "big").await, LINES);
    // From the folder, once another task has pushed it out of memory: the same.
    let other = w.run(json!({"prompt":"next"})).await;
    assert_eq!(other["ok"], true);
    let again = w
        .run(json!({"taskType":"task.status","taskId":"big","afterSeq":0}))
        .await;
    assert_eq!(again["status"], "succeeded");
    assert_events_have_room(&again, "task.status from the folder");
    assert_eq!(page_all(&w, "big").await, LINES);
}
