//! `AGENTDISPATCH_ARTIFACT_RETENTION_SECONDS`: finished task folders older than the retention
//! are deleted from the artifact directory, at start-up and then periodically. Never a running
//! task's folder, never anything reached through a link: an entry of the artifact directory
//! is deleted only when it is itself a directory (not a link to one) named like a task id,
//! and `remove_dir_all` unlinks the links inside without following them.
//!
//! `AGENTDISPATCH_SESSION_RETENTION_SECONDS` does the same for the session directory: a session
//! folder (its conversation, a framework's saved run, its open questions) unchanged for longer
//! than the retention is deleted, never one with a turn running or waiting. A question asked
//! there then expires with it: answering it is `interrupt_not_open` (SPEC §14).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::task::Worker;

/// The longest pause between two sweeps.
const MAX_PERIOD: Duration = Duration::from_secs(600);

/// Sweeps `worker`'s artifact and session directories, each with its retention, until the
/// worker stops; returns at once when neither is set.
pub async fn run(worker: Arc<Worker>) {
    let (artifacts, sessions) = (worker.cfg.artifact_retention, worker.cfg.session_retention);
    let Some(shortest) = artifacts.into_iter().chain(sessions).min() else {
        return;
    };
    let period = (shortest / 2).clamp(Duration::from_millis(500), MAX_PERIOD);
    loop {
        if let Some(keep) = artifacts {
            let w = worker.clone();
            let swept = tokio::task::spawn_blocking(move || {
                sweep(&w.cfg.artifact_dir, keep, Folder::Task, |id| {
                    w.get(id).is_some_and(|t| t.result().is_none())
                })
            })
            .await;
            said(
                swept,
                keep,
                "removed task folders past the artifact retention",
            );
        }
        if let Some(keep) = sessions {
            let w = worker.clone();
            let swept = tokio::task::spawn_blocking(move || {
                sweep(&w.cfg.session_dir, keep, Folder::Session, |name| {
                    // Asked at each folder, just before it would go: a turn may have begun.
                    w.sessions.in_use(name)
                })
            })
            .await;
            said(
                swept,
                keep,
                "removed session folders past the session retention",
            );
        }
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = worker.shutdown.cancelled() => return,
        }
    }
}

/// One sweep's log line (none when it did nothing). Directory walks and deletes run on a
/// blocking thread, never one that serves HTTP: `swept` is that thread's end.
fn said(swept: Result<Sweep, tokio::task::JoinError>, keep: Duration, what: &str) {
    match swept {
        Ok(Sweep { removed, failed }) => {
            if removed > 0 || failed.is_some() {
                tracing::info!(
                    removed,
                    error = failed.as_deref(),
                    retentionSeconds = keep.as_secs_f64(),
                    "{what}"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "{what}: the sweep failed"),
    }
}

/// What kind of folder a sweep removes: which of its files tell when it last changed.
#[derive(Clone, Copy)]
pub enum Folder {
    /// A task folder: the files the worker writes there.
    Task,
    /// A session folder: every file in it (a framework's database changes in place).
    Session,
}

/// What one sweep did.
pub struct Sweep {
    /// Folders deleted.
    pub removed: usize,
    /// The first failure, in words.
    pub failed: Option<String>,
}

/// Deletes the folders in `dir` last changed more than `keep` ago, except those for which
/// `running` holds.
pub fn sweep(dir: &Path, keep: Duration, kind: Folder, running: impl Fn(&str) -> bool) -> Sweep {
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
        if last_change(&path, meta, kind)
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

/// When the folder last changed: the newest of the folder and the files in it that change in
/// place (a running task's log grows, a session's database is written), which does not touch
/// the folder's own time.
fn last_change(dir: &Path, meta: std::fs::Metadata, kind: Folder) -> Option<SystemTime> {
    let changed = |p: &Path| std::fs::symlink_metadata(p).ok()?.modified().ok();
    let files: Vec<std::path::PathBuf> = match kind {
        Folder::Task => [
            crate::task::folder::EVENTS_FILE,
            crate::task::folder::RESULT_FILE,
            crate::task::folder::MANIFEST_FILE,
        ]
        .iter()
        .map(|f| dir.join(f))
        .collect(),
        // Its own entries only (a framework keeps its files at the top); a folder that
        // cannot be listed counts as changed now, so that it is not removed on a guess.
        Folder::Session => match std::fs::read_dir(dir) {
            Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
            Err(_) => return Some(SystemTime::now()),
        },
    };
    files
        .iter()
        .filter_map(|f| changed(f))
        .chain(meta.modified().ok())
        .max()
}
