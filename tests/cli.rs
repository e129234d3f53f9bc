//! The command line: `run` (flags, file, stdin, --json, exit status, a terminal) and
//! `frameworks`.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::{script, worker_command, worker_shell};
use serde_json::Value;

fn worker_cmd(artifacts: &std::path::Path) -> Command {
    let mut c = worker_command();
    c.env("AGENTDISPATCH_ARTIFACT_DIR", artifacts)
        .env(
            "AGENTDISPATCH_FRAMEWORKS_DIR",
            "/nonexistent-frameworks-dir",
        )
        .env_remove("AGENTDISPATCH_COMMAND_ALLOWLIST");
    c
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn run_with_flags_shows_events_and_exits_0_when_ok() {
    let tmp = tempfile::tempdir().unwrap();
    let out = worker_cmd(tmp.path())
        .args(["run", "--instruction", "hello"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s = text(&out);
    assert!(s.contains("progress  accepted"), "{s}");
    assert!(s.contains("ok: succeeded"), "{s}");
    assert!(s.contains("Accepted instruction: hello"), "{s}");
    assert!(s.contains("result.json"), "{s}");
}

#[test]
fn run_json_prints_ndjson_events_ending_with_the_result() {
    let tmp = tempfile::tempdir().unwrap();
    let out = worker_cmd(tmp.path())
        .env("AGENTDISPATCH_COMMAND_ALLOWLIST", "sh")
        .args(["run", "--json", "--command", "sh -c 'echo out; exit 3'"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let mut events: Vec<Value> = text(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The answer last, with the text the events never carry whole.
    let answer = events.pop().unwrap();
    assert_eq!(answer["ok"], false, "{answer}");
    assert_eq!(answer["output"], "out\n", "{answer}");
    assert_eq!(answer["errorCode"], "exit_nonzero", "{answer}");
    assert_eq!(answer["exitCode"], 3, "{answer}");
    assert!(answer.get("type").is_none(), "{answer}");
    assert_eq!(events[0]["message"], "accepted");
    assert!(events.iter().any(|e| e["message"] == "out"));
    let last = events.last().unwrap();
    assert_eq!(last["type"], "task.result");
    // The task.result payload is the task's result value; its message the status.
    assert_eq!(last["payload"], serde_json::json!({"exitCode": 3}));
    assert_eq!(last["message"], "failed");
    assert!(events.iter().any(|e| e["type"] == "task.log"
        && e["payload"] == serde_json::json!({"stream": "stderr", "exitCode": 3})
        && e["message"] == "Command exited with code 3."));
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["seq"], i as u64 + 1);
    }
}

#[test]
fn run_reads_a_payload_file_or_stdin_and_flags_win() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("p.json");
    std::fs::write(
        &file,
        r#"{"prompt":"from file","input":{"context":{"a":1}}}"#,
    )
    .unwrap();
    let out = worker_cmd(tmp.path())
        .args(["run", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(text(&out).contains("Accepted instruction: from file"));
    let out = worker_cmd(tmp.path())
        .args(["run", file.to_str().unwrap(), "--instruction", "flag"])
        .output()
        .unwrap();
    assert!(text(&out).contains("Accepted instruction: flag"));
    let mut child = worker_cmd(tmp.path())
        .args(["run", "-", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"prompt":"from stdin"}"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    // --json prints events, the task.result one carrying the echo's result value, then the
    // answer with its text.
    assert!(text(&out).contains(r#""instruction":"from stdin""#));
    let answer: Value = serde_json::from_str(text(&out).lines().last().unwrap()).unwrap();
    assert_eq!(
        answer["output"], "Accepted instruction: from stdin",
        "{answer}"
    );
    // Refusals and bad payloads: exit non-zero with the reason.
    let out = worker_cmd(tmp.path())
        .args(["run", "--command", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("command_rejected"), "{}", text(&out));
    std::fs::write(&file, "[1]").unwrap();
    let out = worker_cmd(tmp.path())
        .args(["run", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("JSON object"));
}

#[test]
fn run_on_a_terminal_shows_a_spinner_and_elapsed_time() {
    let tmp = tempfile::tempdir().unwrap();
    let inner = format!(
        "AGENTDISPATCH_ARTIFACT_DIR={} AGENTDISPATCH_FRAMEWORKS_DIR=/none AGENTDISPATCH_COMMAND_ALLOWLIST=sleep {} run --command 'sleep 1'",
        tmp.path().display(),
        worker_shell()
    );
    // util-linux `script` gives the command a pseudo-terminal.
    let out = Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .output()
        .unwrap();
    let s = text(&out);
    assert_eq!(out.status.code(), Some(0), "{s}");
    assert!(s.contains("running,"), "no spinner message in {s:?}");
    assert!(s.contains("ok: succeeded"));
}

#[test]
fn frameworks_lists_each_definition_with_its_source() {
    let tmp = tempfile::tempdir().unwrap();
    let fw = tmp.path().join("fw");
    std::fs::create_dir_all(fw.join("good")).unwrap();
    std::fs::write(
        fw.join("good/framework.json"),
        r#"{"name":"good","description":"A good one","command":["./run.sh"]}"#,
    )
    .unwrap();
    script(&fw.join("good"), "run.sh", "#!/bin/sh\necho hi\n");
    std::fs::create_dir_all(fw.join("bad")).unwrap();
    std::fs::write(fw.join("bad/framework.json"), "{oops").unwrap();
    let out = worker_command()
        .arg("frameworks")
        .env("AGENTDISPATCH_FRAMEWORKS_DIR", &fw)
        .env("AGENTDISPATCH_FRAMEWORK_COMMAND_GHOST", "/no/such/program")
        .output()
        .unwrap();
    let s = text(&out);
    assert_eq!(out.status.code(), Some(0));
    assert!(s.contains("echo") && s.contains("built-in"), "{s}");
    assert!(
        s.contains("good") && s.contains("good/framework.json") && s.contains("A good one"),
        "{s}"
    );
    assert!(
        s.contains("ghost") && s.contains("env AGENTDISPATCH_FRAMEWORK_COMMAND_GHOST"),
        "{s}"
    );
    let ghost = s.lines().find(|l| l.starts_with("ghost")).unwrap();
    assert!(ghost.contains("[program not found]"), "{ghost}");
    let good = s.lines().find(|l| l.starts_with("good")).unwrap();
    assert!(!good.contains("not found"), "{good}");
    assert!(
        s.contains("warning: skipping framework") && s.contains("bad/framework.json"),
        "{s}"
    );
}

#[test]
fn run_with_nothing_to_run_says_what_to_give_and_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let out = worker_cmd(tmp.path()).arg("run").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nothing to run") && err.contains("--instruction"),
        "{err}"
    );
    assert!(std::fs::read_dir(tmp.path()).map_or(true, |mut d| d.next().is_none()));
}

#[test]
fn runs_warnings_are_plain_lines_for_a_person_and_json_with_json() {
    let tmp = tempfile::tempdir().unwrap();
    // An unknown default framework warns at start, naming the known ones.
    let run = |json: bool| {
        let mut c = worker_cmd(tmp.path());
        c.env("AGENTDISPATCH_AGENT_FRAMEWORK", "nosuch").args([
            "run",
            "--framework",
            "echo",
            "--instruction",
            "hi",
        ]);
        if json {
            c.arg("--json");
        }
        c.output().unwrap()
    };
    let out = run(false);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let warning = err
        .lines()
        .find(|l| l.contains("AGENTDISPATCH_AGENT_FRAMEWORK=nosuch"))
        .unwrap_or_else(|| panic!("no warning: {err}"));
    assert!(
        warning.starts_with("agentdispatch-worker: warning: ") && warning.contains("known: echo"),
        "{warning}"
    );
    assert!(
        !err.lines().any(|l| l.starts_with('{')),
        "no JSON on a person's stderr: {err}"
    );
    let out = run(true);
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.contains("AGENTDISPATCH_AGENT_FRAMEWORK=nosuch"))
        .unwrap();
    let v: Value = serde_json::from_str(line).expect("a JSON log line with --json");
    assert_eq!(v["level"], "WARN");
}

#[test]
fn an_unknown_framework_is_answered_with_the_names_that_exist() {
    let tmp = tempfile::tempdir().unwrap();
    let out = worker_cmd(tmp.path())
        .args(["run", "--framework", "ecko", "--instruction", "hi"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let s = text(&out);
    assert!(s.contains("Unsupported agent framework: ecko"), "{s}");
    assert!(s.contains("known frameworks: echo"), "{s}");
}
