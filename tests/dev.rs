//! The dev loop (`serve --dev`) through the real binary: an edited agent answers with the new
//! code on its next task, warm, while a task already running finishes on the old code; files
//! that are not code change nothing; the playground page is there in dev mode only, and works
//! in a real headless Chromium (tests/dev/playground.rs).

mod common;

#[path = "dev/browser.rs"]
mod browser;
#[path = "dev/playground.rs"]
mod playground;
#[path = "dev/reload.rs"]
mod reload;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// The repository's `frameworks/` directory.
fn frameworks_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("frameworks")
        .canonicalize()
        .expect("frameworks/ exists")
}

/// A frameworks directory of its own holding a copy of the shipped `langgraph` folder (its
/// files copied, so the test may edit them; its `.venv` and the shared helper linked, as they
/// are not edited), with `edit` applied to its example agent.
fn langgraph_copy(edit: impl Fn(&str) -> String) -> tempfile::TempDir {
    let src = frameworks_dir().join("langgraph");
    let python = src.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-frameworks.sh langgraph",
        python.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("langgraph");
    std::fs::create_dir(&dst).unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), dst.join(entry.file_name())).unwrap();
        }
    }
    std::os::unix::fs::symlink(src.join(".venv").canonicalize().unwrap(), dst.join(".venv"))
        .unwrap();
    std::os::unix::fs::symlink(frameworks_dir().join("_shared"), dir.path().join("_shared"))
        .unwrap();
    let agent = dst.join("example_agent.py");
    let text = std::fs::read_to_string(&agent).unwrap();
    std::fs::write(&agent, edit(&text)).unwrap();
    dir
}

/// A worker in dev mode on `frameworks`, langgraph warm and the default.
async fn dev_worker(frameworks: &Path, builder: WorkerBuilder) -> Worker {
    let w = builder
        .args(&["serve", "--dev"])
        .env("AGENTDISPATCH_FRAMEWORKS_DIR", frameworks.to_str().unwrap())
        .env("AGENTDISPATCH_AGENT_FRAMEWORK", "langgraph")
        .env("AGENTDISPATCH_WARM", "langgraph")
        .start()
        .await;
    w.warm_ready("langgraph", 1).await;
    w
}
