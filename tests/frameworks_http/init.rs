//! `agentdispatch-worker init <name> --framework <fw>` (issue 23 #2): the folder it writes runs
//! at once, cold and warm, through the real worker: the agent's own tool answers, not the
//! shipped example's. The new folder's venv is the shipped framework's, linked the way the
//! project's folders find theirs (`frameworks/<name>/.venv`, the manifest's `.venv/bin/python`).

use std::process::Command;

use super::*;

/// A frameworks directory holding `_shared` and the shipped `framework` (links to the
/// repository's), as the worker's own directory does.
fn frameworks_with(framework: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["_shared", framework] {
        std::os::unix::fs::symlink(frameworks_dir().join(name), dir.path().join(name)).unwrap();
    }
    dir
}

/// Runs `agentdispatch-worker init` with `args` in `dir`.
fn init(dir: &Path, args: &[&str]) -> std::process::Output {
    worker_command()
        .arg("init")
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap()
}

async fn own_agent_runs_at_once(framework: &str, kind: Kind) {
    require_venv(framework);
    let dir = frameworks_with(framework);
    let out = init(dir.path(), &["my-agent", "--framework", framework]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "init: {out:?}");
    assert!(
        said.contains("scripts/setup-frameworks.sh my-agent"),
        "{said}"
    );
    let folder = dir.path().join("my-agent");
    std::os::unix::fs::symlink(
        frameworks_dir().join(framework).join(".venv"),
        folder.join(".venv"),
    )
    .unwrap();
    if kind == Kind::Cold {
        // The folder's own test, with its venv, as its docstring says to run it.
        let t = Command::new(folder.join(".venv/bin/python"))
            .args(["-m", "unittest", "test_my_agent"])
            .current_dir(&folder)
            .output()
            .unwrap();
        assert!(t.status.success(), "test_my_agent: {t:?}");
    }
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_FRAMEWORKS_DIR", dir.path().to_str().unwrap())
        .env(
            "AGENTDISPATCH_WARM",
            if kind == Kind::Warm {
                "my-agent"
            } else {
                "none"
            },
        )
        .start()
        .await;
    if kind == Kind::Warm {
        w.warm_ready("my-agent", 1).await;
    }
    for turn in 0..2 {
        let r = w
            .run(json!({"framework": "my-agent", "input": {"instruction": "hello world"}}))
            .await;
        assert_eq!(r["ok"], true, "{framework} turn {turn}: {r:#}");
        // The agent's own tool (`reverse`), not the shipped example's `shout`.
        assert_eq!(r["output"], "Shouted: dlrow olleh", "{framework}: {r:#}");
        assert_eq!(
            forked_from(&r).is_some(),
            kind == Kind::Warm,
            "{framework}: {r:#}"
        );
        let steps = events_of(&r, "task.progress");
        let call = steps
            .iter()
            .find(|e| step_of(e) == Some("tool_call"))
            .unwrap_or_else(|| panic!("{framework}: no tool_call: {r:#}"));
        assert_eq!(call["payload"]["tool"], "reverse", "{framework}: {call}");
    }
    assert_still_serving(&w).await;
}

#[tokio::test]
async fn langgraph_cold_an_init_folder_runs_its_own_agent_at_once() {
    own_agent_runs_at_once("langgraph", Kind::Cold).await;
}

#[tokio::test]
async fn langgraph_warm_an_init_folder_runs_its_own_agent_at_once() {
    own_agent_runs_at_once("langgraph", Kind::Warm).await;
}

#[tokio::test]
async fn strands_cold_an_init_folder_runs_its_own_agent_at_once() {
    own_agent_runs_at_once("strands", Kind::Cold).await;
}

#[tokio::test]
async fn strands_warm_an_init_folder_runs_its_own_agent_at_once() {
    own_agent_runs_at_once("strands", Kind::Warm).await;
}

#[tokio::test]
async fn langchain_warm_an_init_folder_runs_its_own_agent_at_once() {
    own_agent_runs_at_once("langchain", Kind::Warm).await;
}

#[tokio::test]
async fn pydantic_ai_cold_an_init_folder_runs_its_own_agent_at_once() {
    own_agent_runs_at_once("pydantic-ai", Kind::Cold).await;
}

#[tokio::test]
async fn pydantic_ai_warm_an_init_folder_runs_its_own_agent_at_once() {
    own_agent_runs_at_once("pydantic-ai", Kind::Warm).await;
}

#[tokio::test]
async fn openai_agents_cold_an_init_folder_runs_its_own_agent_at_once() {
    own_agent_runs_at_once("openai-agents", Kind::Cold).await;
}

#[tokio::test]
async fn openai_agents_warm_an_init_folder_runs_its_own_agent_at_once() {
    own_agent_runs_at_once("openai-agents", Kind::Warm).await;
}

#[tokio::test]
async fn crewai_cold_an_init_folder_runs_its_own_agent_at_once() {
    own_agent_runs_at_once("crewai", Kind::Cold).await;
}

#[tokio::test]
async fn crewai_warm_an_init_folder_runs_its_own_agent_at_once() {
    own_agent_runs_at_once("crewai", Kind::Warm).await;
}

/// What `init` refuses, each with exit status 2 and one line naming what is wrong; nothing written.
#[test]
fn init_refuses_what_it_cannot_write_saying_why() {
    let dir = frameworks_with("strands");
    assert!(init(dir.path(), &["taken", "--framework", "strands"])
        .status
        .success());
    let empty = tempfile::tempdir().unwrap();
    let cases: [(&Path, &[&str], &str); 5] = [
        (
            dir.path(),
            &["taken", "--framework", "strands"],
            "exists already",
        ),
        (
            dir.path(),
            &["Bad Name", "--framework", "strands"],
            "cannot name a framework",
        ),
        (
            dir.path(),
            &["crewai", "--framework", "strands"],
            "is a shipped framework's",
        ),
        (
            dir.path(),
            &["mine", "--framework", "autogen"],
            "knows langchain, langgraph, strands, pydantic-ai, openai-agents, crewai",
        ),
        (
            empty.path(),
            &["mine", "--framework", "strands"],
            "is not a frameworks directory with the shipped strands runner",
        ),
    ];
    for (at, args, says) in cases {
        let out = init(at, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    }
    assert!(!dir.path().join("mine").exists() && !empty.path().join("mine").exists());
}
