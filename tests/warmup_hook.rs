//! AgentCore's warm-up hook (SPEC §12, `AGENTDISPATCH_WARMUP_HOOK_PATH`) through the real
//! binary: held until the warm parent is ready (a `pyfixture` warm parent kept importing by a
//! FIFO the test opens), 503 past its bound, 2xx at once without warm parents, its own path,
//! and a bad path refused at start-up.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// `POST <path>` on the worker: status and JSON answer.
async fn post(w: &Worker, path: &str) -> (u16, Value) {
    let resp = w
        .client()
        .post(format!("{}{path}", w.url))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

/// A worker whose `pyfixture` warm parent imports until the test writes the FIFO it returns
/// (`FIXTURE_WARMUP_GATE`); `builder` adds settings.
async fn gated_worker(dir: &Path, builder: WorkerBuilder) -> (Worker, PathBuf) {
    let gate = dir.join("gate");
    nix::unistd::mkfifo(&gate, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let w = builder
        .fixtures(Kind::Warm)
        .env("FIXTURE_WARMUP_GATE", gate.to_str().unwrap())
        .start()
        .await;
    (w, gate)
}

/// Whether the worker logged a line with this message.
fn logged(w: &Worker, message: &str) -> bool {
    w.log_lines().iter().any(|l| l["message"] == message)
}

#[tokio::test]
async fn the_hook_answers_once_the_warm_parent_is_ready_and_blocks_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let (w, gate) = gated_worker(tmp.path(), WorkerBuilder::new()).await;
    let hook = {
        let (url, client) = (w.url.clone(), w.client().clone());
        tokio::spawn(async move {
            let resp = client.post(format!("{url}/warmup")).send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        })
    };
    let waiting = || logged(&w, "warm-up hook: waiting for the warm parents");
    assert!(eventually(Duration::from_secs(20), waiting).await);
    // Held: other requests are answered meanwhile, a task included.
    assert_eq!(w.ping().await["status"], "Healthy");
    let r = w.run(cmd("echo beside the hook")).await;
    assert_eq!(r["ok"], true, "{r:#}");
    assert!(
        !hook.is_finished(),
        "answered before the warm parent was ready"
    );
    assert!(!logged(&w, "warm parent ready"));

    let opened = tokio::task::spawn_blocking(move || std::fs::write(gate, b"go"));
    let (status, body) = hook.await.unwrap();
    opened.await.unwrap().unwrap();
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["ok"], true, "{body:#}");
    assert_eq!(body["ready"], json!(["pyfixture"]), "{body:#}");
    assert!(w.logged(|l| l["message"] == "warm parent ready").await);
    // Ready now: a second call answers at once, and the next task is forked warm.
    assert_eq!(post(&w, "/warmup").await.0, 200);
    w.fixture_task(Kind::Warm, "after-hook", "state").await;
}

#[tokio::test]
async fn the_hook_answers_503_when_the_warm_parent_is_not_ready_within_its_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let builder = WorkerBuilder::new().env("AGENTDISPATCH_WARMUP_HOOK_TIMEOUT_SECONDS", "0.3");
    let (w, gate) = gated_worker(tmp.path(), builder).await;
    let (status, body) = post(&w, "/warmup").await;
    assert_eq!(status, 503, "{body:#}");
    assert_eq!(body["ok"], false);
    assert_eq!(body["errorCode"], "warm_not_ready");
    assert_eq!(body["notReady"][0]["framework"], "pyfixture", "{body:#}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("pyfixture") && error.contains("AGENTDISPATCH_WARMUP_HOOK_TIMEOUT_SECONDS"),
        "{error}"
    );
    // The warm parent still comes up once its import ends.
    let opened = tokio::task::spawn_blocking(move || std::fs::write(gate, b"go"));
    w.warm_ready("pyfixture", 1).await;
    opened.await.unwrap().unwrap();
    assert_eq!(post(&w, "/warmup").await.0, 200);
}

#[tokio::test]
async fn without_warm_parents_the_hook_answers_at_once_on_its_configured_path() {
    let w = WorkerBuilder::new()
        .fixtures(Kind::Cold)
        .env("AGENTDISPATCH_WARMUP_HOOK_PATH", "/hooks/warm")
        .start()
        .await;
    let (status, body) = post(&w, "/hooks/warm").await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["ready"], json!([]));
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("nothing to wait for"),
        "{body:#}"
    );
    assert_eq!(
        post(&w, "/warmup").await.0,
        404,
        "the default path is not served"
    );
    assert_eq!(w.get("/hooks/warm").await.0, 405);
}

#[test]
fn a_bad_hook_path_stops_start_up_naming_the_variable() {
    for (path, says) in [
        ("warmup", "start with /"),
        ("/a-warm-up-path-over-32-characters", "32"),
        ("/invocations", "serves already"),
    ] {
        let out = worker_command()
            .env("AGENTDISPATCH_WARMUP_HOOK_PATH", path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{path}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            err.contains("AGENTDISPATCH_WARMUP_HOOK_PATH") && err.contains(says),
            "{path}: {err}"
        );
    }
}
