//! The fixture frameworks (`tests/fixtures/frameworks`, `pyfixture` and its variants), cold or
//! warm: the worker set up for them, their tasks, and what a task's events say of its start.
#![allow(dead_code)]

use std::future::Future;
use std::panic::Location;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::{events_of, eventually, Worker, WorkerBuilder};

/// How a framework task's process starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Spawned from the framework's command (`AGENTDISPATCH_WARM=none`).
    Cold,
    /// Forked by the framework's warm parent.
    Warm,
}

/// `tests/fixtures/frameworks`: `pyfixture` and its variants (see its runner.py).
#[track_caller]
pub fn fixture_frameworks() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/frameworks")
        .canonicalize()
        .expect("tests/fixtures/frameworks exists")
}

/// An `agent.run` payload for the `pyfixture` framework.
pub fn fixture(id: &str, instruction: &str) -> Value {
    serde_json::json!({"taskId": id, "framework": "pyfixture", "input": {"instruction": instruction}})
}

/// The warm parent pid a task was forked from, from its `task.log` events.
pub fn forked_from(result: &Value) -> Option<u64> {
    events_of(result, "task.log")
        .into_iter()
        .find(|e| e["payload"]["warm"] == true)
        .and_then(|e| e["payload"]["parentPid"].as_u64())
}

/// Why a warm framework's task started cold, from its `task.log` events.
pub fn cold_reason(result: &Value) -> Option<String> {
    events_of(result, "task.log")
        .into_iter()
        .find(|e| e["payload"]["warm"] == false)
        .and_then(|e| e["payload"]["reason"].as_str().map(str::to_string))
}

impl WorkerBuilder {
    /// The fixture frameworks, with `pyfixture` warm from start-up (`Kind::Warm`) or no warm
    /// parent at all (`Kind::Cold`).
    pub fn fixtures(self, kind: Kind) -> Self {
        let warm = match kind {
            Kind::Cold => "none",
            Kind::Warm => "pyfixture",
        };
        self.env(
            "AGENTDISPATCH_FRAMEWORKS_DIR",
            fixture_frameworks().to_str().unwrap(),
        )
        .env("AGENTDISPATCH_WARM", warm)
    }
}

impl Worker {
    /// Waits until the worker logged `framework`'s warm parent ready (`n`-th time); its pid.
    #[track_caller]
    pub fn warm_ready<'a>(
        &'a self,
        framework: &'a str,
        n: usize,
    ) -> impl Future<Output = u64> + 'a {
        let at = Location::caller();
        self.warm_ready_at(framework, n, at)
    }

    async fn warm_ready_at(
        &self,
        framework: &str,
        n: usize,
        at: &'static Location<'static>,
    ) -> u64 {
        let found = || {
            self.log_lines()
                .into_iter()
                .filter(|l| l["message"] == "warm parent ready" && l["framework"] == framework)
                .nth(n - 1)
                .and_then(|l| l["pid"].as_u64())
        };
        assert!(
            eventually(Duration::from_secs(120), || found().is_some()).await,
            "{framework}: warm parent not ready (#{n}, at {at}); log:\n{}",
            self.logs.lock().unwrap().join("\n")
        );
        found().unwrap()
    }

    /// Runs a `pyfixture` task and checks that it started as `kind` (forked warm, or not).
    #[track_caller]
    pub fn fixture_task<'a>(
        &'a self,
        kind: Kind,
        id: &'a str,
        instruction: &'a str,
    ) -> impl Future<Output = Value> + 'a {
        let at = Location::caller();
        async move {
            let r = self.run_at(fixture(id, instruction), at).await;
            match kind {
                Kind::Warm => assert!(
                    forked_from(&r).is_some(),
                    "not forked warm (at {at}): {r:#}"
                ),
                Kind::Cold => assert!(forked_from(&r).is_none(), "forked warm (at {at}): {r:#}"),
            }
            r
        }
    }
}

/// A worker on the fixture frameworks, ready for tasks of `kind`.
pub async fn fixture_worker(kind: Kind, builder: WorkerBuilder) -> Worker {
    let w = builder.fixtures(kind).start().await;
    if kind == Kind::Warm {
        w.warm_ready("pyfixture", 1).await;
    }
    w
}

/// A fixture worker whose session folders are under `root` (a test's temporary folder).
pub async fn session_worker(kind: Kind, root: &std::path::Path) -> Worker {
    let root = root.to_str().expect("a UTF-8 temporary folder");
    fixture_worker(
        kind,
        WorkerBuilder::new().env("AGENTDISPATCH_SESSION_DIR", root),
    )
    .await
}

/// The memory holder a warm task's fork event names (it shares the task's memory, so it shows
/// the task's marker until it exits, right after the task).
pub fn holder_of(r: &Value) -> Option<i32> {
    events_of(r, "task.log")
        .into_iter()
        .find(|e| e["payload"]["warm"] == true)
        .and_then(|e| e["payload"]["holderPid"].as_i64())
        .map(|p| p as i32)
}
