//! `scripts/smoke-image.sh` against a fake `docker` that runs the real worker.

use super::*;

/// Fake `docker` for `scripts/smoke-image.sh`: the "container" is the worker binary started on
/// this machine (`FAKE_WORKER`, on `PORT`), its state kept in `FAKE_STATE`.
pub(crate) const FAKE_DOCKER_RUNNING_THE_WORKER: &str = r#"#!/bin/sh
state="$FAKE_STATE"
echo "docker $*" >>"$state/calls.log"
case "$1" in
run)
  setsid sh -c '"$FAKE_WORKER" serve >"$0/logs" 2>&1 & echo $! >"$0/pid"; wait $!; echo $? >"$0/code"' \
    "$state" </dev/null >/dev/null 2>&1 &
  echo fake-container-id ;;
port) echo "127.0.0.1:$PORT" ;;
inspect)
  case "$3" in
  *Running*) if [ -f "$state/code" ]; then echo false; else echo true; fi ;;
  *ExitCode*) cat "$state/code" ;;
  esac ;;
stop)
  kill -TERM "$(cat "$state/pid")"
  i=0; while [ ! -f "$state/code" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done ;;
logs) cat "$state/logs" ;;
rm) if [ ! -f "$state/code" ]; then kill -KILL "$(cat "$state/pid")"; fi ;;
*) echo "fake docker: unexpected call: $*" >&2; exit 2 ;;
esac
"#;

/// The real interpreter behind `python3` (pyenv puts a shell shim on PATH).
pub(crate) fn real_python3() -> PathBuf {
    let python = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .unwrap();
    PathBuf::from(String::from_utf8_lossy(&python.stdout).trim())
}

/// Runs `scripts/smoke-image.sh` with the fake docker; `with_jq: false` leaves jq off PATH so
/// the python3 fallback reads the JSON. Returns the run and the fake's state directory.
pub(crate) fn run_smoke(frameworks: &Path, with_jq: bool) -> (ScriptRun, tempfile::TempDir) {
    let state = tempfile::tempdir().unwrap();
    let bin = state.path().join("bin");
    fs::create_dir(&bin).unwrap();
    write_executable(&bin.join("docker"), FAKE_DOCKER_RUNNING_THE_WORKER);
    let mut tools = vec![
        "bash", "sh", "env", "curl", "head", "sleep", "setsid", "cat",
    ];
    tools.extend(with_jq.then_some("jq"));
    for tool in tools {
        symlink(which(tool).unwrap(), bin.join(tool)).unwrap();
    }
    symlink(real_python3(), bin.join("python3")).unwrap();
    let output = Command::new(repo_root().join("scripts/smoke-image.sh"))
        .arg("agentdispatch-worker:smoke")
        .env_clear()
        .env("PATH", &bin)
        .env("FAKE_STATE", state.path())
        .env("FAKE_WORKER", env!("CARGO_BIN_EXE_agentdispatch-worker"))
        // A port probed free: the script asks the fake `docker port` for it before the worker
        // it starts could say which port it bound.
        .env("PORT", common::free_port().to_string())
        .env("AGENTDISPATCH_HOST", "127.0.0.1")
        .env("AGENTDISPATCH_FRAMEWORKS_DIR", frameworks)
        .env("AGENTDISPATCH_ARTIFACT_DIR", state.path().join("artifacts"))
        .output()
        .unwrap();
    let calls = fs::read_to_string(state.path().join("calls.log")).unwrap_or_default();
    let run = ScriptRun {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        calls: calls.lines().map(str::to_owned).collect(),
    };
    (run, state)
}

#[test]
fn smoke_script_passes_against_a_worker_with_the_langgraph_framework() {
    let frameworks = repo_root().join("frameworks");
    if which("curl").is_none() || !frameworks.join("langgraph/.venv/bin/python").exists() {
        panic!("needs curl and frameworks/langgraph/.venv (scripts/setup-frameworks.sh langgraph)");
    }
    let (run, state) = run_smoke(&frameworks, false);
    assert!(run.success, "{}", run.describe());
    assert!(
        run.stderr.contains("PASS agentdispatch-worker:smoke"),
        "{}",
        run.describe()
    );
    let commands: Vec<&str> = run
        .calls
        .iter()
        .map(|c| c.split(' ').nth(1).unwrap())
        .collect();
    assert_eq!(commands.first(), Some(&"run"));
    let last = &commands[commands.len() - 3..];
    assert_eq!(last, ["stop", "inspect", "rm"], "{}", run.describe());
    let code = fs::read_to_string(state.path().join("code")).unwrap();
    assert_eq!(code.trim(), "0", "the worker exits 0 on docker stop");
}

#[test]
fn smoke_script_fails_and_removes_the_container_when_a_task_answers_wrongly() {
    if which("curl").is_none() {
        panic!("needs curl");
    }
    let no_frameworks = tempfile::tempdir().unwrap();
    let (run, state) = run_smoke(no_frameworks.path(), which("jq").is_some());
    run.assert_failed_saying(&["FAIL: langgraph task", "Unsupported agent framework"]);
    assert_eq!(run.calls.last().map(|c| &c[..13]), Some("docker rm -f "));
    let pid = fs::read_to_string(state.path().join("pid")).unwrap();
    let gone = || !Path::new(&format!("/proc/{}", pid.trim())).exists();
    let started = Instant::now();
    while !gone() && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(gone(), "the trap removed the container");
}
