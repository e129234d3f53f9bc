//! `AGENTDISPATCH_ARTIFACT_RETENTION_SECONDS`: finished task folders older than the retention
//! are deleted from the artifact directory, at start-up and then periodically. Never a running
//! task's folder, never anything reached through a link: an entry of the artifact directory
//! is deleted only when it is itself a directory (not a link to one) named like a task id,
//! and `remove_dir_all` unlinks the links inside without following them.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::task::Worker;

/// The longest pause between two sweeps.
const MAX_PERIOD: Duration = Duration::from_secs(600);

/// Sweeps `worker`'s artifact directory until the worker stops; returns at once without a
/// retention setting.
pub async fn run(worker: Arc<Worker>) {
    let Some(keep) = worker.cfg.artifact_retention else {
        return;
    };
    let period = (keep / 2).clamp(Duration::from_millis(500), MAX_PERIOD);
    loop {
        let w = worker.clone();
        // Directory walks and deletes: never on a thread that serves HTTP.
        let swept = tokio::task::spawn_blocking(move || {
            sweep(&w.cfg.artifact_dir, keep, |id| {
                w.get(id).is_some_and(|t| t.result().is_none())
            })
        })
        .await;
        match swept {
            Ok(Sweep { removed, failed }) => {
                if removed > 0 || failed.is_some() {
                    tracing::info!(
                        removed,
                        error = failed.as_deref(),
                        retentionSeconds = keep.as_secs_f64(),
                        "removed task folders past the artifact retention"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "the artifact retention sweep failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = worker.shutdown.cancelled() => return,
        }
    }
}

/// What one sweep did.
pub struct Sweep {
    /// Folders deleted.
    pub removed: usize,
    /// The first failure, in words.
    pub failed: Option<String>,
}

/// Deletes the task folders in `dir` last changed more than `keep` ago, except those for which
/// `running` holds.
pub fn sweep(dir: &Path, keep: Duration, running: impl Fn(&str) -> bool) -> Sweep {
    let mut out = Sweep {
        removed: 0,
        failed: None,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            out.failed = Some(format!("cannot read {}: {e}", dir.display()));
            return out;
        }
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(id) = name.to_str() else { continue };
        let path = entry.path();
        // The entry itself, not what a link names.
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.file_type().is_dir() || !crate::wire::valid_task_id(id) || running(id) {
            continue;
        }
        if last_change(&path, meta)
            .is_some_and(|t| now.duration_since(t).unwrap_or_default() > keep)
        {
            match std::fs::remove_dir_all(&path) {
                Ok(()) => out.removed += 1,
                Err(e) => {
                    out.failed
                        .get_or_insert_with(|| format!("cannot remove {}: {e}", path.display()));
                }
            }
        }
    }
    out
}

/// When the folder last changed: the newest of the folder and the files the worker writes in
/// it (a running task's log grows in place, which does not touch the folder's own time).
fn last_change(dir: &Path, meta: std::fs::Metadata) -> Option<SystemTime> {
    let files = [
        crate::task::folder::EVENTS_FILE,
        crate::task::folder::RESULT_FILE,
        crate::task::folder::MANIFEST_FILE,
    ];
    files
        .iter()
        .filter_map(|f| std::fs::symlink_metadata(dir.join(f)).ok()?.modified().ok())
        .chain(meta.modified().ok())
        .max()
}
