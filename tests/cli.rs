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

/// `run` on the `pyfixture` framework, its sessions under `sessions`.
fn fixture_run(artifacts: &std::path::Path, sessions: &std::path::Path) -> Command {
    let mut c = worker_cmd(artifacts);
    c.env("AGENTDISPATCH_FRAMEWORKS_DIR", common::fixture_frameworks())
        .env("AGENTDISPATCH_SESSION_DIR", sessions)
        .args(["run", "--framework", "pyfixture"]);
    c
}

fn refunds(folder: &std::path::Path) -> usize {
    std::fs::read_to_string(folder.join("refunds.log")).map_or(0, |s| s.lines().count())
}

#[test]
fn a_run_that_asks_says_how_to_answer_and_resume_answers_it_once() {
    let tmp = tempfile::tempdir().unwrap();
    let sessions = tmp.path().join("sessions");
    let out = fixture_run(tmp.path(), &sessions)
        .args(["--instruction", "ask"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let s = text(&out);
    assert_eq!(out.status.code(), Some(0), "{s}");
    assert!(
        s.contains("refund-1 (approval): refund {\"amount\":5}"),
        "{s}"
    );
    // The session it names, in the command that answers.
    let line = s
        .lines()
        .find(|l| l.starts_with("answer with: "))
        .unwrap_or_else(|| panic!("no way to answer in {s}"));
    let session = line
        .split("--session ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_string();
    assert!(
        line.contains("--framework pyfixture") && line.ends_with("--resume true"),
        "{line}"
    );
    assert_eq!(refunds(&sessions.join(&session)), 0, "asking runs nothing");

    // Bad answers: named, nothing started.
    let out = fixture_run(tmp.path(), &sessions)
        .args(["--resume", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--session"));
    let out = fixture_run(tmp.path(), &sessions)
        .args(["--session", &session, "--resume", "yes please"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resume takes JSON"));

    let out = fixture_run(tmp.path(), &sessions)
        .args([
            "--instruction",
            "ask",
            "--session",
            &session,
            "--resume",
            "true",
        ])
        .output()
        .unwrap();
    let s = text(&out);
    assert_eq!(out.status.code(), Some(0), "{s}");
    assert!(
        s.contains("ok: succeeded") && s.contains("\"refunded\": true"),
        "{s}"
    );
    assert_eq!(refunds(&sessions.join(&session)), 1);
    // Twice: refused, the refund not run again.
    let out = fixture_run(tmp.path(), &sessions)
        .args(["--session", &session, "--resume", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("interrupt_not_open"), "{}", text(&out));
    assert_eq!(refunds(&sessions.join(&session)), 1);
}

#[test]
fn on_a_terminal_a_run_that_asks_prompts_and_the_answer_resumes_it() {
    use std::io::Read;
    let tmp = tempfile::tempdir().unwrap();
    let sessions = tmp.path().join("sessions");
    let inner = format!(
        "AGENTDISPATCH_ARTIFACT_DIR={} AGENTDISPATCH_SESSION_DIR={} AGENTDISPATCH_FRAMEWORKS_DIR={} {} run --framework pyfixture --session by-hand --instruction ask",
        tmp.path().display(),
        sessions.display(),
        common::fixture_frameworks().display(),
        worker_shell()
    );
    // util-linux `script` gives the command a pseudo-terminal and passes our stdin to it.
    let mut child = Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    // The answer is typed only once the question is on the screen.
    while !String::from_utf8_lossy(&seen).contains("approve? [y/n") {
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "no prompt in {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    assert_eq!(refunds(&sessions.join("by-hand")), 0);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"n over the limit\n").unwrap();
    stdout.read_to_end(&mut seen).unwrap();
    let status = child.wait().unwrap();
    let s = String::from_utf8_lossy(&seen);
    assert_eq!(status.code(), Some(0), "{s}");
    assert!(
        s.contains("refund-1 (approval): refund {\"amount\":5}"),
        "{s}"
    );
    assert!(s.contains("\"rejection\": \"over the limit\""), "{s}");
    assert!(s.contains("ok: succeeded"), "{s}");
    assert_eq!(
        refunds(&sessions.join("by-hand")),
        0,
        "a rejection runs no refund"
    );
}
