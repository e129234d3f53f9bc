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

/// An empty file left in a task folder whose `result.json` could not be written (a full disk
/// has room for an empty file, never for the result): after a restart the task is said to
/// have failed for that, not to have been interrupted.
const UNWRITTEN_MARK: &str = "result.unwritten";

/// Leaves [`UNWRITTEN_MARK`] in `dir`; best effort (a folder that cannot take even that reads
/// back as interrupted).
pub(super) fn mark_unwritten(dir: &std::path::Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(dir.join(UNWRITTEN_MARK));
}

/// A finished task's answer from its folder: `result.json`, `manifest.json`, `events.ndjson`.
pub fn read_from_disk(dir: &std::path::Path, after_seq: u64, cap: usize) -> Option<TaskResult> {
    let mut result: TaskResult = match std::fs::read(dir.join(artifacts::RESULT_FILE)) {
        Ok(text) => serde_json::from_slice(&text).ok()?,
        Err(_) => {
            // (Files the worker writes: regular files, never links a child planted.)
            let is_file = |name: &str| {
                std::fs::symlink_metadata(dir.join(name)).is_ok_and(|m| m.file_type().is_file())
            };
            let (why, code) = if is_file(UNWRITTEN_MARK) {
                ("The task ended but its result could not be written to its folder (the disk was full, or the folder not writable); what of its events was written is kept.", ErrorCode::ArtifactWriteFailed)
            } else if is_file(artifacts::EVENTS_FILE) {
                // Events but no result: the worker died while the task ran (SIGKILL, OOM,
                // microVM stop). Say so, and keep what it did.
                ("The task was interrupted: the worker stopped while it ran. Its events are kept.", ErrorCode::Interrupted)
            } else {
                return None;
            };
            let id = dir.file_name()?.to_string_lossy().into_owned();
            TaskResult::refusal(&id, code, why)
        }
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
