//! Live text in the CLI's `run`: NDJSON delta lines as they come (`--json`), and the text on
//! a line of its own for a person.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use serde_json::Value;

use super::{go, talker};
use crate::common::worker_command;

fn run(dir: &std::path::Path, json: bool) -> std::process::Child {
    let talker = talker(dir, &["Hel", "lo"]);
    let mut c = worker_command();
    c.env("AGENTDISPATCH_ARTIFACT_DIR", dir.join("artifacts"))
        .env(
            "AGENTDISPATCH_FRAMEWORKS_DIR",
            "/nonexistent-frameworks-dir",
        )
        .env("AGENTDISPATCH_FRAMEWORK_COMMAND_TALKER", &talker)
        .args(["run", "--framework", "talker", "--instruction", "hi"]);
    if json {
        c.arg("--json");
    }
    c.stdout(Stdio::piped()).spawn().unwrap()
}

#[test]
fn run_json_prints_each_delta_as_it_comes() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = run(dir.path(), true);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_delta = |seen: &mut Vec<Value>| loop {
        let line = lines.next().expect("a delta line").unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["type"] == "task.delta" {
            return v;
        }
        seen.push(v);
    };
    let mut events = Vec::new();
    // The next piece is written only once this one was printed.
    let first = next_delta(&mut events);
    assert_eq!(first["payload"]["text"], "Hel");
    assert!(first.get("seq").is_none());
    go(dir.path(), 0);
    assert_eq!(next_delta(&mut events)["payload"]["text"], "lo");
    go(dir.path(), 1);
    let rest: Vec<Value> = lines
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    let (answer, rest) = rest.split_last().unwrap();
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(rest.last().unwrap()["type"], "task.result");
    assert!(rest.iter().all(|e| e["type"] != "task.delta"));
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn run_prints_the_text_on_a_line_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    go(dir.path(), 0);
    go(dir.path(), 1);
    let out = run(dir.path(), false).wait_with_output().unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{s}");
    // One line per run of pieces: an event shown between two pieces (a loaded machine's
    // timing) starts a new text line, so the text is what the text lines hold together.
    let text: String = s
        .lines()
        .filter_map(|l| l.split_once(" text      ").map(|(_, t)| t.trim_end()))
        .collect();
    assert_eq!(text, "Hello", "{s}");
    assert!(s.contains("model_turn"), "{s}");
}
