//! A task's answer when it is no longer in memory: read back from its folder.

use crate::artifacts;
use crate::events;
use crate::wire::{Artifact, ErrorCode, TaskResult};

/// The answer for a task id nobody knows.
pub fn unknown(id: &str) -> TaskResult {
    let shown = crate::wire::clip(id, 200);
    TaskResult::refusal(
        &shown,
        ErrorCode::UnknownTask,
        format!("Unknown taskId: {shown}"),
    )
}

/// A finished task's answer from its folder: `result.json`, `manifest.json`, `events.ndjson`.
pub fn read_from_disk(dir: &std::path::Path, after_seq: u64, cap: usize) -> Option<TaskResult> {
    let mut result: TaskResult = match std::fs::read(dir.join(artifacts::RESULT_FILE)) {
        Ok(text) => serde_json::from_slice(&text).ok()?,
        // Events but no result: the worker died while the task ran (SIGKILL, OOM, microVM
        // stop). Say so, and keep what it did.
        // (The worker's own log: a regular file, never a link a child planted.)
        Err(_)
            if std::fs::symlink_metadata(dir.join(artifacts::EVENTS_FILE))
                .is_ok_and(|m| m.file_type().is_file()) =>
        {
            let id = dir.file_name()?.to_string_lossy().into_owned();
            TaskResult::refusal(
                &id,
                ErrorCode::Interrupted,
                "The task was interrupted: the worker stopped while it ran. Its events are kept.",
            )
        }
        Err(_) => return None,
    };
    if let Ok(manifest) = std::fs::read(dir.join(artifacts::MANIFEST_FILE)) {
        #[derive(serde::Deserialize)]
        struct Manifest {
            artifacts: Vec<Artifact>,
        }
        if let Ok(m) = serde_json::from_slice::<Manifest>(&manifest) {
            result.artifacts = m.artifacts;
        }
    }
    let budget = result.events_budget(cap);
    let since = events::read_log(&dir.join(artifacts::EVENTS_FILE), after_seq, budget);
    result.events = since.events;
    result.events_truncated = since.truncated;
    result.fit_output(cap);
    Some(result)
}
