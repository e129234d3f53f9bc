//! Answers read back from tasks — `task.status`, `task.cancel`, pages of a folder's events —
//! always on the blocking pool, a few at a time and within a time bound, never on a thread that
//! serves HTTP: a task folder is the child's, and what it holds must never hold a request.

use std::time::Duration;

use super::folder::{unknown, unreadable, TaskFolder};
use super::scope::{self, Scope};
use super::Worker;
use crate::task_log;
use crate::wire::TaskResult;

/// How long a read of a task folder may take, waiting for its turn included, before the
/// request is answered with an error: the folder is the child's, and a read must never hold a
/// request (or a thread that serves HTTP) for good.
const READ_BOUND: Duration = Duration::from_secs(10);
/// Reads of task folders on the blocking pool at once; more wait for a turn (within
/// [`READ_BOUND`]), so a flood of read-backs holds a few threads, not one per request.
pub(super) const READS_AT_ONCE: usize = 4;

/// What a task folder holds for a request.
pub(super) enum OnDisk {
    /// No task.
    None,
    /// Another session's task.
    Hidden,
    /// The task's answer.
    Found(Box<TaskResult>),
}

impl Worker {
    /// Runs `read` (file work on a task folder) on the blocking pool, at most
    /// [`READS_AT_ONCE`] at a time and within [`READ_BOUND`]; past it the caller gets an
    /// error naming task `id` (the read may go on, on its blocking thread; nobody waits).
    pub async fn off_thread<T: Send + 'static>(
        &self,
        id: &str,
        read: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        let deadline = tokio::time::Instant::now() + READ_BOUND;
        let late = || {
            format!(
                "reading the folder of task {} took longer than {} s",
                crate::wire::clip(id, 200),
                READ_BOUND.as_secs()
            )
        };
        let permit = tokio::time::timeout_at(deadline, self.readers.clone().acquire_owned())
            .await
            .map_err(|_| late())?
            .map_err(|_| "the worker is stopping".to_string())?;
        let job = tokio::task::spawn_blocking(move || {
            let _turn = permit;
            read()
        });
        match tokio::time::timeout_at(deadline, job).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(format!("reading the task folder failed: {e}")),
            Err(_) => Err(late()),
        }
    }

    /// Task `id`'s answer from its folder, as request `scope` may see it, off the HTTP threads.
    pub(super) async fn read_back(
        &self,
        id: &str,
        after_seq: u64,
        scope: Scope<'_>,
    ) -> Result<OnDisk, String> {
        let folder = TaskFolder::at(&self.cfg.artifact_dir, id);
        let cap = self.cfg.max_output_bytes;
        let scope = scope.map(str::to_string);
        self.off_thread(id, move || {
            let visible =
                scope.is_none() || scope::visible(scope.as_deref(), folder.session().as_deref());
            match folder.read_back(after_seq, cap) {
                Ok(None) => Ok(OnDisk::None),
                // Not even why it cannot be read: another session's folder says nothing.
                _ if !visible => Ok(OnDisk::Hidden),
                Ok(Some(r)) => Ok(OnDisk::Found(Box::new(r))),
                Err(e) => Err(e),
            }
        })
        .await?
    }

    /// A page of events of task `id` (a valid task id) from its `events.ndjson` (see
    /// [`EventsLog::page`]), off the HTTP threads.
    pub async fn events_page(
        &self,
        id: &str,
        offset: u64,
        max: usize,
    ) -> Result<(crate::events::Since, u64), String> {
        let log = TaskFolder::at(&self.cfg.artifact_dir, id).events_log();
        self.off_thread(id, move || log.page(offset, 0, max))
            .await?
    }

    /// `task.status`: from memory, else from the task folder; off the HTTP threads (a view
    /// may read older events back from the folder too). A task `scope` may not see is unknown.
    pub async fn status(&self, id: &str, after_seq: u64, scope: Scope<'_>) -> TaskResult {
        let cap = self.cfg.max_output_bytes;
        if let Some(t) = self.get(id) {
            if !scope::visible(scope, t.ids.session_id.as_deref()) {
                return unknown(id);
            }
            return self
                .off_thread(id, move || t.view(after_seq, cap))
                .await
                .unwrap_or_else(|e| unreadable(id, e));
        }
        // Every path built from a task id goes through here (task.status, task.cancel,
        // /tasks/…, A2A get/cancel): an id that is not a task id never names a folder.
        if !crate::wire::valid_task_id(id) {
            return unknown(id);
        }
        match self.read_back(id, after_seq, scope).await {
            Ok(OnDisk::Found(r)) => *r,
            Ok(OnDisk::None | OnDisk::Hidden) => unknown(id),
            Err(e) => unreadable(id, e),
        }
    }

    /// `task.cancel`: stops the task and answers with its final state.
    pub async fn cancel(&self, id: &str, scope: Scope<'_>) -> TaskResult {
        let Some(t) = self.get_in(id, scope) else {
            return self.status(id, 0, scope).await;
        };
        if t.result().is_none() {
            task_log!(info, t, "cancel requested");
            t.cancel.cancel();
            let bound = self.cfg.kill_grace + Duration::from_secs(5);
            let _ = tokio::time::timeout(bound, t.finished()).await;
        }
        let cap = self.cfg.max_output_bytes;
        self.off_thread(id, move || t.view(0, cap))
            .await
            .unwrap_or_else(|e| unreadable(id, e))
    }
}
