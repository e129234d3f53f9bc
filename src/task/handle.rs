//! One task, running or finished: its ids, folder, events and stop token, its result once it
//! has one, and the views of it that `task.status` and `task.list` answer with.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::events::EventSink;
use crate::request_context::RequestContext;
use crate::wire::{TaskResult, TaskStatus, TaskType};

/// The ids AgentCore sends with an invocation.
#[derive(Debug, Clone, Default)]
pub struct RequestIds {
    /// `X-Amzn-Bedrock-AgentCore-Runtime-Request-Id`, or a fresh UUID.
    pub request_id: String,
    /// `X-Amzn-Bedrock-AgentCore-Runtime-Session-Id`, when sent.
    pub session_id: Option<String>,
    /// The request's trace context, that the task's span continues.
    pub trace: crate::trace::Parent,
    /// The request's context for the child's envelope (SPEC §12), when a door built one:
    /// `Worker::start` moves it into the task, which hands it to the child once.
    pub request: Option<Arc<RequestContext>>,
}

impl RequestIds {
    /// Ids from optional header values.
    pub fn new(request_id: Option<String>, session_id: Option<String>) -> Self {
        RequestIds {
            request_id: request_id
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            session_id: session_id.filter(|s| !s.is_empty()),
            trace: Default::default(),
            request: None,
        }
    }

    /// The same, continuing the request's trace context.
    pub fn traced(self, trace: crate::trace::Parent) -> Self {
        RequestIds { trace, ..self }
    }

    /// These ids with the request's context.
    pub fn with_request(mut self, request: RequestContext) -> Self {
        self.request = Some(Arc::new(request));
        self
    }
}

/// How many live event streams follow a task, at most `max`
/// (`AGENTDISPATCH_MAX_SUBSCRIBERS_PER_TASK`): each holds a connection and a producer for as
/// long as the task runs, so without a bound one task's subscribers take every connection.
#[derive(Debug)]
pub struct Subscribers {
    live: Arc<AtomicUsize>,
    max: usize,
}

/// One live stream of a task; its place is freed when dropped.
#[derive(Debug)]
pub struct Subscription(Arc<AtomicUsize>);

impl Drop for Subscription {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Subscribers {
    /// No subscriber yet; at most `max`.
    pub fn new(max: usize) -> Self {
        Subscribers {
            live: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// A place for one more stream, or `Err(max)` when all are taken.
    pub fn join(&self) -> Result<Subscription, usize> {
        self.live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .map(|_| Subscription(self.live.clone()))
            .map_err(|_| self.max)
    }
}

/// One task, running or finished.
pub struct Task {
    /// The task id.
    pub id: String,
    /// `agent.run` or `command.run`.
    pub task_type: TaskType,
    /// The framework name or the command string.
    pub label: String,
    /// Ids of the request that started it.
    pub ids: RequestIds,
    /// Wall-clock start (for `task.list`).
    pub started_at: SystemTime,
    /// Monotonic start (for durations).
    pub started: Instant,
    /// The task folder.
    pub folder: super::TaskFolder,
    /// Its events.
    pub events: EventSink,
    /// Stops it.
    pub cancel: CancellationToken,
    /// Its live event streams.
    pub subscribers: Subscribers,
    /// Its span, and the trace context its child gets.
    pub trace: crate::trace::TaskSpan,
    /// The request's context until the child's envelope takes it ([`Task::take_request`]):
    /// its secrets are not kept for as long as the task is.
    pub(super) request: std::sync::Mutex<Option<Arc<RequestContext>>>,
    /// Holds the result once the task finished; the registry sends it.
    pub(super) done: watch::Sender<Option<Arc<TaskResult>>>,
}

impl Task {
    /// The request's context, once: the envelope takes it (`None` for a task started without
    /// one, such as the command line's `run`, and for any later call).
    pub fn take_request(&self) -> Option<Arc<RequestContext>> {
        self.request
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// The result, once finished.
    pub fn result(&self) -> Option<Arc<TaskResult>> {
        self.done.borrow().clone()
    }

    /// Waits for the end and answers with the result and its events (up to `cap` bytes).
    pub async fn answer(&self, cap: usize) -> TaskResult {
        self.finished().await;
        self.view(0, cap)
    }

    /// Waits for the result (kept without its events; [`Task::view`] adds them).
    pub async fn finished(&self) -> Arc<TaskResult> {
        let mut rx = self.done.subscribe();
        loop {
            if let Some(r) = rx.borrow_and_update().clone() {
                return r;
            }
            if rx.changed().await.is_err() {
                // The sender lives in `self`; it cannot be dropped while we borrow it.
                std::future::pending::<()>().await;
            }
        }
    }

    /// The answer to `task.status`: the result when finished (or the running state), with the
    /// events after `after_seq` up to `cap` bytes.
    pub fn view(&self, after_seq: u64, cap: usize) -> TaskResult {
        let mut view = match self.result() {
            Some(r) => TaskResult::clone(&r),
            None => TaskResult {
                ok: true,
                task_id: self.id.clone(),
                status: TaskStatus::Running,
                output: Arc::from(""),
                result: None,
                events: Vec::new(),
                events_truncated: false,
                artifacts: Vec::new(),
                error: None,
                error_code: None,
                exit_code: None,
                duration_ms: self.started.elapsed().as_millis() as u64,
                asked: Default::default(),
            },
        };
        let since = self.events.since(after_seq, view.events_budget(cap));
        if let Some(e) = since.error {
            // Older events live only in the log, and the log is not readable any more.
            return super::folder::unreadable(&self.id, e);
        }
        view.events = since.events;
        view.events_truncated = since.truncated;
        view.fit_output(cap);
        view
    }
}

/// One line of `task.list`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSummary {
    /// Id.
    pub task_id: String,
    /// State.
    pub status: TaskStatus,
    /// `agent.run` or `command.run`.
    pub task_type: &'static str,
    /// Framework, for `agent.run`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub framework: Option<String>,
    /// Command, for `command.run`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// RFC 3339 start.
    pub started_at: String,
    /// Duration so far, or in all.
    pub duration_ms: u64,
}
