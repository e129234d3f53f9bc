//! Tasks: the registry (busy state for `/ping`, capacity, idempotent task ids, retention,
//! `task.status` / `task.cancel` / `task.list`) and, in [`runner`], the run of one task from
//! payload to result.
//!
//! - `handle`: one [`Task`], running or finished, and the views of it that answers show.
//! - [`runner`]: the run's straight line: accepted event, pick the runner, spawn or fork.
//! - `ask`: a task that asks (SPEC §14): the answers of `input.resume` before the child, its
//!   questions kept in the session folder after it.
//! - `child`: the supervised child's lines turned into events, its outcome into an ending.
//! - `finish`: the ending written to the task folder, the `task.result` event, the answer.
//! - `read`: `task.status`, `task.cancel` and event pages, read off the HTTP threads.
//! - [`folder`]: the task folder, the one owner of its paths and files (made, written, read
//!   back for a task that left memory, its events paged).

mod agent_entry;
mod ask;
mod child;
mod finish;
pub mod folder;
mod handle;
mod read;
pub mod runner;
mod scope;

pub use folder::{unknown, unreadable, EventsLog, TaskFolder, EVENTS_FILE};
pub use handle::{RequestIds, Subscription, Task, TaskSummary};
pub use scope::Scope;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cgroup;
use crate::config::Config;
use crate::events::EventSink;
use crate::frameworks;
use crate::warm;
use crate::wire::{ErrorCode, Payload, TaskResult, TaskStatus, TaskType};

/// Logs with the task's ids as top-level fields (`sessionId` only when one was sent).
#[macro_export]
macro_rules! task_log {
    ($level:ident, $task:expr, $($rest:tt)+) => {
        match $task.ids.session_id.as_deref() {
            Some(session) => tracing::$level!(
                taskId = %$task.id,
                requestId = %$task.ids.request_id,
                sessionId = session,
                $($rest)+
            ),
            None => tracing::$level!(
                taskId = %$task.id,
                requestId = %$task.ids.request_id,
                $($rest)+
            ),
        }
    };
}

/// Longest task label (framework name or command string) kept; longer ones are clipped.
const MAX_LABEL_BYTES: usize = 1024;

/// What [`Worker::start`] did.
pub enum Start {
    /// A new run began.
    New(Arc<Task>),
    /// The task id is known: no second run.
    Existing(Arc<Task>),
    /// The task id is on disk from an earlier run.
    OnDisk(Box<TaskResult>),
    /// Nothing started (at capacity, shutting down).
    Refused(Box<TaskResult>),
}

struct Busy {
    running: usize,
    since: u64,
}

/// The worker's shared state: configuration, frameworks, tasks.
pub struct Worker {
    /// Configuration.
    pub cfg: Arc<Config>,
    /// Frameworks.
    pub frameworks: Arc<frameworks::Registry>,
    tasks: Mutex<HashMap<String, Arc<Task>>>,
    busy: Mutex<Busy>,
    /// Cancelled when the worker shuts down; every task's token is a child of it.
    pub shutdown: CancellationToken,
    tracker: TaskTracker,
    /// Warm parents (none until [`warm::Pool::start`]).
    pub warm: warm::Pool,
    /// One turn at a time per session.
    pub sessions: Arc<crate::sessions::Sessions>,
    /// Finished tasks in memory, oldest first, with what each holds (bytes, roughly).
    retained: Mutex<Retained>,
    /// This worker's tree of task cgroups, where cgroup v2 is writable.
    pub cgroups: Option<cgroup::TaskCgroups>,
    /// Hands the memory of tasks that left memory back to the system.
    trimmer: crate::memory::Trimmer,
    /// Reads of task folders at once (see `Worker::off_thread`).
    readers: Arc<tokio::sync::Semaphore>,
    /// The whole worker's share of child lines on its log.
    pub child_log: crate::childlog::Budget,
}

#[derive(Default)]
struct Retained {
    order: std::collections::VecDeque<(String, usize)>,
    bytes: usize,
}

/// Memory that finished tasks may hold together; past it the oldest leave memory first (their
/// folders stay, and answer for them).
const MAX_RETAINED_BYTES: usize = 256 * 1024 * 1024;

/// Sets up the task cgroups and says, once, whether tasks get one and why not.
fn start_cgroups(mode: cgroup::Mode) -> Option<cgroup::TaskCgroups> {
    match cgroup::TaskCgroups::start(mode) {
        Ok((cgroups, stale)) => {
            if !stale.trees.is_empty() {
                tracing::info!(
                    trees = stale.trees.len(),
                    killed = stale.killed,
                    "removed the task cgroups of earlier workers that were killed"
                );
            }
            for left in &stale.left {
                tracing::warn!("cannot remove the task cgroups of an earlier worker: {left}");
            }
            tracing::info!(
                taskCgroups = true,
                cgroup = %cgroups.tree().display(),
                "each task runs in a cgroup of its own"
            );
            Some(cgroups)
        }
        Err(reason) => {
            tracing::info!(
                taskCgroups = false,
                reason = %reason,
                "tasks run without a cgroup of their own: {reason}"
            );
            None
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Worker {
    /// A worker with no tasks. Makes its tree of task cgroups (where it can; it says so in
    /// the log either way) before any child, a warm parent included, is started.
    pub fn new(cfg: Config, frameworks: frameworks::Registry) -> Arc<Self> {
        let shutdown = CancellationToken::new();
        let cgroups = start_cgroups(cfg.task_cgroups);
        let warm = warm::Pool::new(&cfg, &frameworks, shutdown.child_token());
        let child_log = crate::childlog::Budget::new(cfg.child_log);
        Arc::new_cyclic(|me: &std::sync::Weak<Worker>| {
            let me = me.clone();
            let trimmer = crate::memory::Trimmer::start(move || me.upgrade().map(|w| w.ping()));
            Worker {
                cfg: Arc::new(cfg),
                frameworks: Arc::new(frameworks),
                tasks: Mutex::new(HashMap::new()),
                busy: Mutex::new(Busy {
                    running: 0,
                    since: unix_now(),
                }),
                shutdown,
                tracker: TaskTracker::new(),
                warm,
                sessions: Arc::default(),
                retained: Mutex::default(),
                cgroups,
                trimmer,
                readers: Arc::new(tokio::sync::Semaphore::new(read::READS_AT_ONCE)),
                child_log,
            }
        })
    }

    /// A new cgroup for `task`'s processes; `None` without task cgroups, or (said in the
    /// task's log) when this one cannot be made.
    pub fn task_cgroup(&self, task: &Task) -> Option<cgroup::Cgroup> {
        let cgroups = self.cgroups.as_ref()?;
        match cgroups.create(&task.id) {
            Ok(cg) => Some(cg),
            Err(e) => {
                task_log!(warn, task, error = %e, "cannot create the task's cgroup; it runs without one");
                None
            }
        }
    }

    /// Removes this worker's tree of task cgroups (at exit, after the tasks ended).
    pub fn release_cgroups(&self) {
        if let Some(c) = &self.cgroups {
            c.release();
        }
    }

    /// How many tasks run now (this one included, for a task that is starting).
    pub fn running_tasks(&self) -> usize {
        lock(&self.busy).running
    }

    /// `/ping`: whether any task runs, and the unix second the answer last changed.
    pub fn ping(&self) -> (bool, u64) {
        let b = lock(&self.busy);
        (b.running > 0, b.since)
    }

    /// Why the default framework's agent cannot load, when it cannot (`/ping` says it).
    pub fn agent_problem(&self) -> Option<String> {
        self.warm.agents.problem(&self.cfg.default_framework)
    }

    /// Starts an `agent.run` or `command.run` payload, or finds the task it names.
    pub async fn start(self: &Arc<Self>, payload: Payload, mut ids: RequestIds) -> Start {
        // The AgentCore header wins; a payload's `sessionId` is for local use.
        if ids.session_id.is_none() {
            ids.session_id = payload.session_id.clone();
        }
        let id = payload
            .task_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        // A caller's id may name an earlier run's folder: read it without holding the registry
        // (no disk I/O under its lock: /ping and every request take it), then look again.
        // Another session's task is neither shown nor run again under its id.
        let scope = ids.session_id.clone();
        let scope = scope.as_deref();
        if payload.task_id.is_some() {
            if let Some(t) = self.get(&id) {
                return self.existing(t, scope);
            }
            match self.read_back(&id, 0, scope).await {
                Ok(read::OnDisk::Found(r)) => return Start::OnDisk(r),
                Ok(read::OnDisk::Hidden) => return Start::Refused(Box::new(scope::taken(&id))),
                Ok(read::OnDisk::None) => {}
                Err(e) => return Start::Refused(Box::new(unreadable(&id, e))),
            }
        }
        let label = match payload.task_type {
            TaskType::CommandRun => payload.command().unwrap_or(""),
            _ => payload
                .framework
                .as_deref()
                .unwrap_or(&self.cfg.default_framework),
        };
        // A caller's value, kept for an hour and listed by task.list: bounded.
        let label = crate::wire::clip(label, MAX_LABEL_BYTES);
        let trace = crate::trace::TaskSpan::new(&ids.trace);
        let request = ids.request.take();
        let task = Arc::new(Task {
            request: Mutex::new(request),
            events: EventSink::new(&id, self.cfg.max_output_bytes),
            id: id.clone(),
            task_type: payload.task_type,
            label,
            ids,
            started_at: SystemTime::now(),
            started: Instant::now(),
            folder: TaskFolder::at(&self.cfg.artifact_dir, &id),
            cancel: self.shutdown.child_token(),
            subscribers: handle::Subscribers::new(self.cfg.max_subscribers_per_task),
            trace,
            done: watch::channel(None).0,
        });
        let ticket;
        {
            let mut tasks = lock(&self.tasks);
            if let Some(t) = tasks.get(&id) {
                return self.existing(t.clone(), scope);
            }
            if self.shutdown.is_cancelled() {
                return Start::Refused(Box::new(TaskResult::refusal(
                    &id,
                    ErrorCode::ShuttingDown,
                    "The worker is shutting down; no new task is started.",
                )));
            }
            let mut busy = lock(&self.busy);
            if busy.running >= self.cfg.max_concurrent_tasks {
                return Start::Refused(Box::new(TaskResult::refusal(
                    &id,
                    ErrorCode::AtCapacity,
                    format!(
                        "The worker is at capacity: {} tasks are running (AGENTDISPATCH_MAX_CONCURRENT_TASKS).",
                        busy.running
                    ),
                )));
            }
            busy.running += 1;
            if busy.running == 1 {
                busy.since = unix_now();
            }
            drop(busy);
            // The id is taken now, so a second request with it finds this task, not the
            // folder being made; the place in the session's queue too, in arrival order.
            tasks.insert(id.clone(), task.clone());
            ticket = match (payload.task_type, &task.ids.session_id) {
                (TaskType::AgentRun, Some(s)) => Some(self.sessions.ticket(s)),
                _ => None,
            };
        }
        // The folder is made outside the registry's lock and off the HTTP threads, in the
        // task's own future: the task is registered (and counted busy) now, so it must reach
        // its end even when this request is dropped meanwhile.
        let (accepted, is_accepted) = tokio::sync::oneshot::channel();
        let worker = self.clone();
        let t = task.clone();
        self.tracker.spawn(async move {
            let folder = t.clone();
            let made = tokio::task::spawn_blocking(move || folder.folder.create())
                .await
                .unwrap_or_else(|e| Err(format!("Cannot create task folder: {e}")));
            let dir_error = match made {
                Ok((log, reader)) => {
                    t.events.attach(log, reader);
                    None
                }
                Err(e) => Some(e),
            };
            runner::accept(&t, &payload);
            let _ = accepted.send(());
            let result = runner::execute(&worker, &t, payload, dir_error, ticket).await;
            worker.finish(&t, result);
        });
        // An answer (async, a stream) holds the `accepted` event.
        let _ = is_accepted.await;
        Start::New(task)
    }

    /// A known task id given again: the task, when the request may see it.
    fn existing(&self, t: Arc<Task>, scope: Scope) -> Start {
        if scope::visible(scope, t.ids.session_id.as_deref()) {
            Start::Existing(t)
        } else {
            Start::Refused(Box::new(scope::taken(&t.id)))
        }
    }

    fn finish(self: &Arc<Self>, task: &Arc<Task>, mut result: TaskResult) {
        // Events live in the sink (and on disk); the stored result does not repeat them.
        result.events = Vec::new();
        result.events_truncated = false;
        // What it keeps: its output and result, the recent events of its sink, its label.
        let held = result.output.len()
            + result.result.as_ref().map_or(0, |r| r.to_string().len())
            + crate::events::RETAINED_BYTES
            + task.label.len();
        // Not busy any more before anyone is answered: a client that pings right after its
        // answer sees the worker idle.
        {
            let mut busy = lock(&self.busy);
            busy.running -= 1;
            if busy.running == 0 {
                busy.since = unix_now();
            }
        }
        // Older tasks leave memory before this one's answer goes out.
        self.retain(&task.id, held);
        task.done.send_replace(Some(Arc::new(result)));
        // Finished tasks leave memory after the retention period; their folder stays.
        let worker = Arc::downgrade(self);
        let id = task.id.clone();
        let keep = self.cfg.task_retention;
        tokio::spawn(async move {
            tokio::time::sleep(keep).await;
            if let Some(w) = worker.upgrade() {
                {
                    let mut tasks = lock(&w.tasks);
                    if tasks.get(&id).is_some_and(|t| t.result().is_some()) {
                        tasks.remove(&id);
                    }
                }
                let mut r = lock(&w.retained);
                if let Some(i) = r.order.iter().position(|(t, _)| *t == id) {
                    if let Some((_, size)) = r.order.remove(i) {
                        r.bytes -= size;
                    }
                }
                drop(r);
                w.trimmer.freed();
            }
        });
    }

    /// Counts a finished task against the retention bounds; evicts the oldest past them.
    fn retain(&self, id: &str, held: usize) {
        let mut evicted = Vec::new();
        {
            let mut r = lock(&self.retained);
            r.order.push_back((id.to_string(), held));
            r.bytes += held;
            while r.order.len() > self.cfg.max_retained_tasks || r.bytes > MAX_RETAINED_BYTES {
                let Some((old, size)) = r.order.pop_front() else {
                    break;
                };
                r.bytes -= size;
                evicted.push(old);
            }
        }
        if !evicted.is_empty() {
            let mut tasks = lock(&self.tasks);
            for old in evicted {
                if tasks.get(&old).is_some_and(|t| t.result().is_some()) {
                    tasks.remove(&old);
                }
            }
            drop(tasks);
            self.trimmer.freed();
        }
    }

    /// The task called `id`, while it is in memory.
    pub fn get(&self, id: &str) -> Option<Arc<Task>> {
        lock(&self.tasks).get(id).cloned()
    }

    /// The task called `id`, while it is in memory and `scope` may see it.
    pub fn get_in(&self, id: &str, scope: Scope) -> Option<Arc<Task>> {
        self.get(id)
            .filter(|t| scope::visible(scope, t.ids.session_id.as_deref()))
    }

    /// `task.list`: every task in memory that `scope` may see, newest first.
    pub fn list(&self, scope: Scope) -> Vec<TaskSummary> {
        let mut tasks: Vec<Arc<Task>> = lock(&self.tasks)
            .values()
            .filter(|t| scope::visible(scope, t.ids.session_id.as_deref()))
            .cloned()
            .collect();
        tasks.sort_by_key(|t| std::cmp::Reverse(t.started_at));
        tasks
            .iter()
            .map(|t| {
                let result = t.result();
                let is_command = t.task_type == TaskType::CommandRun;
                TaskSummary {
                    task_id: t.id.clone(),
                    status: result.as_ref().map_or(TaskStatus::Running, |r| r.status),
                    task_type: t.task_type.as_str(),
                    framework: (!is_command).then(|| t.label.clone()),
                    command: is_command.then(|| t.label.clone()),
                    started_at: chrono::DateTime::<chrono::Utc>::from(t.started_at)
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    duration_ms: result
                        .map_or(t.started.elapsed().as_millis() as u64, |r| r.duration_ms),
                }
            })
            .collect()
    }

    /// Cancels every running task and waits (up to `grace`) for their results to be written.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.shutdown.cancel();
        self.tracker.close();
        let (tasks, ()) = tokio::join!(
            tokio::time::timeout(grace, self.tracker.wait()),
            self.warm.stop(grace)
        );
        tasks.is_ok()
    }
}
