//! The README's commands, run as written and in order: "Try it" against the worker its first
//! command starts (`cargo run --release` on port 8080, `./frameworks`), and "Bring your own
//! framework" after dropping its folders into a frameworks directory and starting the worker on
//! it. Only what a test must change is changed: the binary under test for `cargo run
//! --release`, free ports for 8080/8081, a temporary frameworks directory (named by
//! `AGENTDISPATCH_FRAMEWORKS_DIR`, as the README allows) and artifact directory. Every line must
//! exit 0; the answers are then checked for what the comments beside them promise. Also: the
//! walkthrough of "Your own agent: `init`", and the error-code table (docs/errors.md, linked
//! from the README's "Behaviour") against `ErrorCode`.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{eventually, worker_shell, WorkerBuilder};
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn readme() -> String {
    std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap()
}

/// The section of the README under `heading`, to the next `## `.
fn section(heading: &str) -> String {
    let text = readme();
    let from = text.find(&format!("\n{heading}\n")).expect(heading) + heading.len() + 2;
    let to = text[from..].find("\n## ").map_or(text.len(), |i| from + i);
    text[from..to].to_string()
}

/// The first plain `sh` block (one without a file name) of `section`.
fn commands(section: &str) -> String {
    let start = section.find("```sh\n").expect("an sh block") + "```sh\n".len();
    let end = start + section[start..].find("```").unwrap();
    section[start..end].to_string()
}

/// The blocks of `section` that name a file (```` ```json frameworks/x/framework.json ````).
fn files(section: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = section;
    while let Some(i) = rest.find("```") {
        let after = &rest[i + 3..];
        let header_end = after.find('\n').unwrap();
        let header = &after[..header_end];
        let body_start = header_end + 1;
        let body_end = body_start + after[body_start..].find("```").unwrap();
        if let Some((_, path)) = header.split_once(' ') {
            out.push((
                path.trim().to_string(),
                after[body_start..body_end].to_string(),
            ));
        }
        rest = &after[body_end + 3..];
    }
    out
}

fn try_it_block() -> String {
    commands(&section("## Try it"))
}

/// The block as a bash script: each command echoed, then run; the first failure stops it.
fn as_script(block: &str, port1: u16, port2: u16) -> String {
    let mut script =
        String::from("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true; wait' EXIT\n");
    // The binary under test in place of `cargo run --release`.
    // A background one replaces its subshell, so that the exit trap's kill reaches it.
    script.push_str(&format!(
        "worker() {{ {w} \"$@\"; }}\nbg_worker() {{ exec {w} \"$@\"; }}\n",
        w = worker_shell()
    ));
    for line in block.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let worker = if line.ends_with('&') {
            "bg_worker"
        } else {
            "worker"
        };
        let cmd = line
            .replace("cargo run --release --", worker)
            .replace("cargo run --release", worker)
            .replace("localhost:8080", &format!("localhost:{port1}"))
            .replace("localhost:8081", &format!("localhost:{port2}"))
            .replace("PORT=8081", &format!("PORT={port2}"));
        let shown = cmd.replace('\'', "'\\''");
        script.push_str(&format!("echo '+ {shown}' >&2\n{cmd}\necho\n"));
    }
    script
}

/// Runs `script` with bash from the repository root, with `env` and without the worker
/// variables a caller's shell may have set; fails unless it exits 0. Its stdout and stderr.
#[track_caller]
fn run_script(script: &str, env: &[(&str, &str)]) -> (String, String) {
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(ROOT)
        .envs(env.iter().copied())
        .env_remove("AGENTDISPATCH_COMMAND_ALLOWLIST")
        .env_remove("AGENTDISPATCH_AGENT_FRAMEWORK")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "a README command failed\n--- stderr (commands as run)\n{stderr}\n--- stdout\n{stdout}"
    );
    (stdout, stderr)
}

#[tokio::test]
async fn the_try_it_commands_run_as_written() {
    let python = Path::new(ROOT).join("frameworks/langgraph/.venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-frameworks.sh langgraph",
        python.display()
    );
    let block = try_it_block();
    assert!(block.contains("cargo run --release"), "{block}");
    // The worker of the README's first command: its defaults, from the repository root.
    let w = WorkerBuilder::new()
        .env(
            "AGENTDISPATCH_FRAMEWORKS_DIR",
            &format!("{ROOT}/frameworks"),
        )
        .start()
        .await;
    let port2 = common::free_port();
    let artifacts = tempfile::tempdir().unwrap();
    let sessions = tempfile::tempdir().unwrap();
    let (stdout, stderr) = run_script(
        &as_script(&block, w.port, port2),
        &[
            (
                "AGENTDISPATCH_ARTIFACT_DIR",
                artifacts.path().to_str().unwrap(),
            ),
            (
                "AGENTDISPATCH_SESSION_DIR",
                sessions.path().to_str().unwrap(),
            ),
        ],
    );
    // The answers, in order: the JSON ones as objects.
    let answers: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.is_object())
        .collect();
    let ok = |pred: &dyn Fn(&Value) -> bool, what: &str| {
        assert!(
            answers.iter().any(pred),
            "no answer {what}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        );
    };
    ok(
        &|v| v["ok"] == true && v["output"].as_str().is_some_and(|o| o.contains("hello")),
        "from echo",
    );
    ok(
        &|v| {
            v["ok"] == true
                && v["output"]
                    .as_str()
                    .is_some_and(|o| o.contains("HELLO WORLD"))
        },
        "from the LangGraph example agent",
    );
    ok(
        &|v| {
            v["ok"] == true
                && v["result"]["exitCode"] == 0
                && v["output"]
                    .as_str()
                    .is_some_and(|o| o.contains("Cargo.toml"))
        },
        "from command.run ls -la on the second worker",
    );
    ok(
        &|v| v["taskId"] == "job-1" && v["status"].is_string(),
        "about job-1",
    );
    ok(&|v| v["tasks"].is_array(), "listing the tasks");
    ok(
        &|v| v["status"] == "Healthy" || v["status"] == "HealthyBusy",
        "from /ping",
    );
    assert!(stdout.contains("data: "), "the SSE answer: {stdout}");
    assert!(
        stdout.contains("langgraph"),
        "the frameworks listing: {stdout}"
    );
    // The background worker of the command.run example is gone with the script.
    assert!(
        eventually(std::time::Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port2)).is_err()
        })
        .await,
        "the second worker still listens"
    );
}

#[tokio::test]
async fn the_bring_your_own_framework_commands_run_as_written() {
    // The README's folders, dropped into a frameworks directory (a temporary one, named by
    // AGENTDISPATCH_FRAMEWORKS_DIR as the README allows), then the worker (re)started on it.
    let byo = section("## Bring your own framework");
    let dir = tempfile::tempdir().unwrap();
    let written = files(&byo);
    assert!(written.len() >= 4, "{written:?}");
    for (path, body) in &written {
        let rel = path
            .strip_prefix("frameworks/")
            .expect("files under frameworks/");
        let file = dir.path().join(rel);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, body).unwrap();
        if body.starts_with("#!") {
            let mut perms = std::fs::metadata(&file).unwrap().permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755); // "chmod +x run.sh"
            std::fs::set_permissions(&file, perms).unwrap();
        }
    }
    let frameworks = dir.path().to_str().unwrap().to_string();
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_FRAMEWORKS_DIR", &frameworks)
        .start()
        .await;
    let artifacts = tempfile::tempdir().unwrap();
    let script = as_script(&commands(&byo).replace("\\\n", " "), w.port, 0);
    let (stdout, _stderr) = run_script(
        &script,
        &[
            ("AGENTDISPATCH_FRAMEWORKS_DIR", &frameworks),
            (
                "AGENTDISPATCH_ARTIFACT_DIR",
                artifacts.path().to_str().unwrap(),
            ),
        ],
    );
    // `frameworks` lists both folders; `run` and the stream get the Node framework's answer.
    for name in ["shout-node", "hello-sh"] {
        assert!(stdout.contains(name), "{name} not listed\n{stdout}");
    }
    assert!(stdout.matches("HELLO WORLD").count() >= 2, "{stdout}");
    assert!(stdout.contains("data: "), "the SSE answer\n{stdout}");
}

#[tokio::test]
async fn the_own_agent_walkthrough_runs_as_written() {
    // "Your own agent: `init`" from `init` to a streamed answer. Changed only where a test must:
    // the binary under test for `agentdispatch-worker`, a temporary frameworks directory
    // (AGENTDISPATCH_FRAMEWORKS_DIR, holding links to the shipped `_shared` and `strands`), the
    // venv linked to the shipped strands one in place of `scripts/setup-frameworks.sh` (the same
    // pinned packages; building one takes minutes), and a free port for 8080 (PORT).
    let venv = Path::new(ROOT).join("frameworks/strands/.venv");
    assert!(
        venv.join("bin/python").exists(),
        "{} is missing: run scripts/setup-frameworks.sh strands",
        venv.display()
    );
    let dir = tempfile::tempdir().unwrap();
    for name in ["_shared", "strands"] {
        std::os::unix::fs::symlink(
            Path::new(ROOT).join("frameworks").join(name),
            dir.path().join(name),
        )
        .unwrap();
    }
    let frameworks = dir.path().to_str().unwrap().to_string();
    let block = commands(&section("## Your own agent: `init`"));
    let setup = "scripts/setup-frameworks.sh my-agent";
    assert!(block.contains(setup), "{block}");
    let block = block
        .replace(
            setup,
            &format!(
                "ln -s '{}' \"$AGENTDISPATCH_FRAMEWORKS_DIR/my-agent/.venv\"",
                venv.display()
            ),
        )
        .replace("agentdispatch-worker", "cargo run --release --");
    let port = common::free_port();
    let artifacts = tempfile::tempdir().unwrap();
    let sessions = tempfile::tempdir().unwrap();
    let (stdout, stderr) = run_script(
        &as_script(&block, port, 0),
        &[
            ("AGENTDISPATCH_FRAMEWORKS_DIR", &frameworks),
            ("PORT", &port.to_string()),
            (
                "AGENTDISPATCH_ARTIFACT_DIR",
                artifacts.path().to_str().unwrap(),
            ),
            (
                "AGENTDISPATCH_SESSION_DIR",
                sessions.path().to_str().unwrap(),
            ),
        ],
    );
    let said = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");
    // `init` wrote the folder; `run` printed the own agent's answer (its `reverse` tool).
    assert!(dir.path().join("my-agent/my_agent.py").exists(), "{said}");
    let answers: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.is_object())
        .collect();
    let ran = stdout
        .lines()
        .take_while(|l| serde_json::from_str::<Value>(l).is_err())
        .any(|l| l.contains("Shouted: dlrow olleh"));
    assert!(ran, "`run` did not print the own agent's answer\n{said}");
    // The session: the first task answers alone, the second sees one earlier turn.
    let outputs: Vec<&str> = answers
        .iter()
        .filter(|v| v["ok"] == true)
        .filter_map(|v| v["output"].as_str())
        .collect();
    assert!(
        outputs.first() == Some(&"Shouted: dlrow olleh")
            && outputs.get(1) == Some(&"Shouted: niaga olleh (earlier turns: 1)"),
        "the session's two answers: {outputs:?}\n{said}"
    );
    // The stream: task.delta messages of the answer, then the whole answer, last.
    let data: Vec<Value> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    assert!(
        data.iter().any(|d| d["type"] == "task.delta"),
        "no task.delta message\n{said}"
    );
    let last = data
        .last()
        .unwrap_or_else(|| panic!("no SSE message\n{said}"));
    assert_eq!(last["output"], "Shouted: dlrow olleh", "{said}");
}

/// The codes in the error-code table of docs/errors.md (the README points there). Its shape: a
/// heading `## Error codes` (or `### Error codes`), then, before any other heading, a Markdown
/// table: a header row, a `|---|…` row, and one row per code whose first cell is the code in backticks
/// (`` | `spawn_failed` | … | ``; the other columns are free). The table ends at the first line
/// that does not start with `|`.
fn error_codes_table(text: &str) -> Vec<String> {
    let mut lines = text.lines();
    lines
        .by_ref()
        .find(|l| matches!(l.trim_end(), "## Error codes" | "### Error codes"))
        .expect("docs/errors.md has no heading `## Error codes` (or `### Error codes`)");
    let mut table = lines
        .skip_while(|l| {
            assert!(
                !l.starts_with('#'),
                "no table under `Error codes` before the heading {l:?}"
            );
            !l.starts_with('|')
        })
        .take_while(|l| l.starts_with('|'));
    table.next().expect("an `Error codes` table");
    let separator = table.next().unwrap_or_default();
    assert!(
        separator.contains('-') && separator.chars().all(|c| "|-: ".contains(c)),
        "the `Error codes` table's second row is not a `|---|` row: {separator:?}"
    );
    table
        .map(|row| {
            let first = row[1..].split('|').next().unwrap_or_default().trim();
            first
                .strip_prefix('`')
                .and_then(|c| c.strip_suffix('`'))
                .filter(|c| !c.is_empty() && !c.contains('`'))
                .unwrap_or_else(|| panic!("a row whose first cell is not one `code`: {row:?}"))
                .to_string()
        })
        .collect()
}

#[test]
fn the_documented_error_codes_are_exactly_the_ones_the_worker_answers_with() {
    use agentdispatch_worker::wire::ErrorCode;
    let errors = std::fs::read_to_string(Path::new(ROOT).join("docs/errors.md")).unwrap();
    assert!(
        readme().contains("](docs/errors.md)"),
        "README.md no longer links to docs/errors.md, where the error codes are listed"
    );
    let listed = error_codes_table(&errors);
    let mut seen = std::collections::HashSet::new();
    let twice: Vec<&String> = listed.iter().filter(|c| !seen.insert(*c)).collect();
    let missing: Vec<&str> = ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|c| !seen.contains(&c.to_string()))
        .collect();
    let unknown: Vec<&String> = listed
        .iter()
        .filter(|c| ErrorCode::from_wire(c).is_none())
        .collect();
    assert!(
        missing.is_empty() && unknown.is_empty() && twice.is_empty(),
        "docs/errors.md's `Error codes` table: missing {missing:?} (add a row each); \
         not a code of ErrorCode (src/wire/error_code.rs) {unknown:?}; listed twice {twice:?}"
    );
}
