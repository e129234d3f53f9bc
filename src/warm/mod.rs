//! Warm parents (SPEC §6.3): one long-lived process per framework whose manifest says
//! `"warm": true`, started from the framework's own command, that has imported the framework
//! and its entrypoint and forks one child per task on request. The child is the task: a fresh
//! process in its own session, re-parented to the worker and handed to the supervisor as a
//! [`Child`] it watches exactly like one it spawned.
//!
//! The control channel is a `SOCK_SEQPACKET` socket pair; the warm parent's end is its fd 3
//! (`AGENTDISPATCH_WARM_FD=3`). Messages, one JSON object each, typed in `messages.rs` (every
//! field: docs/warm-protocol.md):
//! - parent → worker, once: `{"type":"ready","pid",…}`;
//! - worker → parent: `{"op":"fork","taskId","env":{…},"unset","cwd","busy"}` with the task's
//!   stdin, stdout and stderr pipe ends attached (`SCM_RIGHTS`), and with task cgroups a fourth:
//!   the `cgroup.procs` of a cgroup for the parent's next spare, moved in ahead;
//! - parent → worker: `{"ok":true,"pid",…}` or `{"ok":false,"reason"}`.
//!
//! Whenever a warm child cannot be had (not started yet, starting, restarting, refused), the
//! caller gets the reason and starts the task cold. A warm parent that exits is restarted with
//! backoff; the worker's shutdown stops every one of them.

mod channel;
pub mod hook;
mod messages;
mod parent;

use std::collections::{BTreeMap, HashMap};
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use channel::{fork_on, Conn, ForkError};
use parent::keep_running;

use crate::cgroup::{Cgroup, TaskCgroups};
use crate::child::{Child, Spec};
use crate::config::{Config, WarmPolicy};
use crate::frameworks::{Launch, Registry};

/// Environment variable naming the warm parent's control socket descriptor.
pub const WARM_FD_VAR: &str = "AGENTDISPATCH_WARM_FD";
/// The control socket's descriptor number in the warm parent.
const WARM_FD: RawFd = 3;
/// The marker variable whose value a forked child overwrites in place (see the README).
const MARKER_VAR: &str = "AGENTDISPATCH_TASK_ID";
/// Longest task id: the placeholder is this long, so every id fits over it.
const MARKER_SLOT: usize = 128;
/// How long a warm parent may take to import and report ready.
const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// How long one fork request may take before the warm parent is deemed stuck.
const FORK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a task waits for a warm parent that is starting, at most.
const WAIT_FOR_READY: Duration = Duration::from_secs(60);
/// First and longest restart delay.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A parent that stayed up this long restarts with the shortest delay again.
const STABLE: Duration = Duration::from_secs(60);

/// When a framework's warm parent starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// With the worker.
    StartUp,
    /// After the framework's first task (which runs cold).
    FirstTask,
}

/// What a framework's warm parent is doing.
#[derive(Clone)]
enum Status {
    /// Not started (waits for the first task).
    Idle,
    /// Importing.
    Starting,
    /// Ready to fork.
    Ready(Arc<Ready>),
    /// Exited; restarting after a delay.
    Down(String),
    /// Stopped with the worker.
    Stopped,
}

struct Ready {
    pid: u32,
    conn: Conn,
    /// Serialises fork requests on the channel; holds the cgroup made for the parent's next
    /// spare (given with the last request), which the spare enters before it is handed a task.
    serial: tokio::sync::Mutex<Option<Cgroup>>,
    /// Cancelled when a request found this parent's channel broken: it is killed and restarted.
    /// One per parent process, so that a late failure never touches its successor.
    broken: CancellationToken,
}

/// One framework's warm parent.
pub struct Parent {
    name: String,
    argv: Vec<String>,
    cwd: Option<PathBuf>,
    env: BTreeMap<String, String>,
    /// The worker's variables it keeps (`AGENTDISPATCH_CHILD_ENV=minimal`), or all of them.
    base_env: Option<Vec<(String, String)>>,
    when: When,
    status: watch::Sender<Status>,
    /// It is the default framework's: an agent that cannot load is an ERROR, and /ping says it.
    default: bool,
    agents: Arc<crate::entrypoints::Loading>,
    /// Lines a second of its own output on the worker's log (`AGENTDISPATCH_CHILD_LOG_LINES_PER_SECOND`).
    log_rate: u32,
    /// How many times [`Pool::reload`] was asked (`serve --dev`): a parent started before the
    /// latest request is replaced at once (the one restarting after an exit too, with no
    /// backoff). A count rather than a wake-up, so that requests made while one is handled
    /// never replace the new parent a second time.
    generation: watch::Sender<u64>,
    /// The generation the latest parent started at.
    started: std::sync::atomic::AtomicU64,
}

/// Why a task is not forked warm.
#[derive(Debug)]
pub enum Fallback {
    /// The framework has no warm parent: start cold, and say nothing.
    NotWarm,
    /// It has one, but not now: start cold, and log why.
    Cold(String),
    /// The task cannot start at all (warm or cold): it fails, saying why.
    Fail(String),
}

/// What [`Pool::reload`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// The framework has no warm parent: its tasks start cold, from the files as they are.
    NoParent,
    /// Its warm parent has not started yet (or is stopped): nothing to replace.
    NotStarted,
    /// The parent (pid `old`, when it was ready) is being replaced.
    Replacing {
        /// The pid of the parent replaced, when one was ready.
        old: Option<u32>,
    },
}

/// Every warm parent of the worker.
pub struct Pool {
    parents: HashMap<String, Arc<Parent>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    /// Start-up warnings (unknown names in `AGENTDISPATCH_WARM`, …).
    pub warnings: Vec<String>,
    /// The frameworks whose agent cannot load (the parents report theirs when ready).
    pub agents: Arc<crate::entrypoints::Loading>,
}

/// When (if ever) `name`'s warm parent starts under `policy`; `None` for no warm parent.
pub fn when_for(policy: &WarmPolicy, default_framework: &str, name: &str) -> Option<When> {
    match policy {
        WarmPolicy::None => None,
        WarmPolicy::All => Some(When::StartUp),
        WarmPolicy::Auto if name == default_framework => Some(When::StartUp),
        WarmPolicy::Auto => Some(When::FirstTask),
        WarmPolicy::List(names) => names.iter().any(|n| n == name).then_some(When::StartUp),
    }
}

impl Pool {
    /// The warm parents `cfg` asks for, among the frameworks whose manifest says `"warm": true`.
    /// None runs until [`Pool::start`].
    pub fn new(cfg: &Config, reg: &Registry, shutdown: CancellationToken) -> Pool {
        let mut parents = HashMap::new();
        let mut warnings = Vec::new();
        let agents = Arc::new(crate::entrypoints::Loading::default());
        if let WarmPolicy::List(names) = &cfg.warm {
            for n in names {
                match reg.get(n) {
                    None => warnings.push(format!("AGENTDISPATCH_WARM names {n:?}, which is not a framework here")),
                    Some(fw) if !fw.warm => warnings.push(format!(
                        "AGENTDISPATCH_WARM names {n:?}, whose manifest does not say \"warm\": true; it runs cold"
                    )),
                    Some(_) => {}
                }
            }
        }
        for fw in reg.iter().filter(|f| f.warm) {
            let Launch::Command { argv, cwd, env } = &fw.launch else {
                continue;
            };
            let Some(when) = when_for(&cfg.warm, &cfg.default_framework, &fw.name) else {
                continue;
            };
            if !fw.program_found() {
                // Restarting it with backoff would only log the same failure forever. Said
                // only of a parent asked for at start-up: a framework warmed on its first task
                // may well be one this deployment never uses (its tasks say what is missing).
                if when != When::StartUp {
                    continue;
                }
                warnings.push(format!(
                    "framework {}: {} is not there, so it has no warm parent (its tasks fail until it is)",
                    fw.name, argv[0]
                ));
                continue;
            }
            parents.insert(
                fw.name.clone(),
                Arc::new(Parent {
                    name: fw.name.clone(),
                    argv: argv.clone(),
                    cwd: cwd.clone(),
                    env: env.clone(),
                    base_env: cfg.child_env.kept(),
                    when,
                    status: watch::channel(Status::Idle).0,
                    default: fw.name == cfg.default_framework,
                    agents: agents.clone(),
                    log_rate: cfg.child_log.per_second,
                    generation: watch::channel(0).0,
                    started: Default::default(),
                }),
            );
        }
        Pool {
            parents,
            shutdown,
            tracker: TaskTracker::new(),
            warnings,
            agents,
        }
    }

    /// A pool with no warm parent (the `run` subcommand).
    pub fn empty() -> Pool {
        Pool {
            parents: HashMap::new(),
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            warnings: Vec::new(),
            agents: Arc::default(),
        }
    }

    /// Starts the parents that start with the worker. Needs a tokio runtime.
    pub fn start(&self) {
        for p in self.parents.values().filter(|p| p.when == When::StartUp) {
            self.launch(p);
        }
    }

    fn launch(&self, p: &Arc<Parent>) {
        let mut launched = false;
        p.status.send_if_modified(|s| {
            if matches!(s, Status::Idle) {
                *s = Status::Starting;
                launched = true;
            }
            launched
        });
        if launched {
            self.tracker
                .spawn(keep_running(p.clone(), self.shutdown.clone()));
        }
    }

    /// Has `name`'s warm parent fork the child described by `spec`; otherwise says why not.
    /// With task `cgroups`, each request also hands the parent a new cgroup for its next spare,
    /// which the parent moves in while it waits; the child comes back with the cgroup made for
    /// its spare, if any, and the caller checks that it is in it. `busy` says that
    /// other tasks run beside this one (the parent's next spare then copies no pages ahead).
    pub async fn fork(
        &self,
        name: &str,
        spec: &Spec,
        cgroups: Option<&TaskCgroups>,
        busy: bool,
    ) -> Result<Child, Fallback> {
        let Some(p) = self.parents.get(name) else {
            return Err(Fallback::NotWarm);
        };
        if self.shutdown.is_cancelled() {
            return Err(Fallback::Cold("the worker is shutting down".into()));
        }
        let mut rx = p.status.subscribe();
        let waited = Instant::now();
        let ready = loop {
            let status = rx.borrow_and_update().clone();
            match status {
                Status::Ready(r) => break r,
                Status::Idle => {
                    self.launch(p);
                    return Err(Fallback::Cold(format!(
                        "the warm parent of {name} starts after this framework's first task; this one runs cold"
                    )));
                }
                Status::Down(why) => {
                    return Err(Fallback::Cold(format!(
                        "the warm parent of {name} is restarting ({why}); this task runs cold"
                    )))
                }
                Status::Stopped => {
                    return Err(Fallback::Cold(format!(
                        "the warm parent of {name} is stopped"
                    )))
                }
                // Importing already: a cold child would import from nothing, on the same
                // cores, so waiting is sooner.
                Status::Starting => {
                    let left = WAIT_FOR_READY.saturating_sub(waited.elapsed());
                    if left.is_zero()
                        || tokio::time::timeout(left, rx.changed())
                            .await
                            .map_or(true, |r| r.is_err())
                    {
                        return Err(Fallback::Cold(format!(
                            "the warm parent of {name} was not ready after {}ms; this task runs cold",
                            waited.elapsed().as_millis()
                        )));
                    }
                }
            }
        };
        match fork_on(&ready, spec, cgroups, busy).await {
            Ok(child) => Ok(child),
            Err(ForkError::Refused(reason)) => Err(Fallback::Cold(format!(
                "the warm parent of {name} did not fork: {reason}; this task runs cold"
            ))),
            Err(ForkError::TooLarge(n)) => Err(Fallback::Fail(format!(
                "its fork request for the warm parent of {name} is {n} bytes, more than {} (its environment is too large)",
                channel::MAX_FORK_REQUEST
            ))),
            Err(ForkError::Channel(e)) => {
                ready.broken.cancel();
                Err(Fallback::Cold(format!(
                    "the warm parent of {name} failed a fork request ({e}); it is restarted, this task runs cold"
                )))
            }
        }
    }

    /// Replaces `name`'s warm parent, so that its next tasks run the framework's code as it is
    /// on disk now; a task forked by the old parent is a process of its own and finishes on the
    /// old code. Returns at once; [`Pool::replaced`] waits for the new parent.
    pub fn reload(&self, name: &str) -> Reload {
        let Some(p) = self.parents.get(name) else {
            return Reload::NoParent;
        };
        let old = match &*p.status.borrow() {
            // Nothing imported yet: its first start reads the files as they are then.
            Status::Idle | Status::Stopped => return Reload::NotStarted,
            Status::Ready(r) => Some(r.pid),
            Status::Starting | Status::Down(_) => None,
        };
        p.generation.send_modify(|g| *g += 1);
        Reload::Replacing { old }
    }

    /// Waits until `name`'s parent is ready again after [`Pool::reload`] (a pid other than
    /// `old`): its pid, or why it is not (it exited, or the worker stops).
    pub async fn replaced(&self, name: &str, old: Option<u32>) -> Result<u32, String> {
        let Some(p) = self.parents.get(name) else {
            return Err(format!("{name} has no warm parent"));
        };
        let mut rx = p.status.subscribe();
        loop {
            let status = rx.borrow_and_update().clone();
            // Until the replacement starts, the status is still the old parent's.
            let settled =
                p.started.load(std::sync::atomic::Ordering::SeqCst) == *p.generation.borrow();
            match status {
                Status::Ready(r) if settled && Some(r.pid) != old => return Ok(r.pid),
                Status::Down(why) if settled => return Err(why),
                Status::Stopped => return Err("the worker is stopping".into()),
                _ => {}
            }
            if rx.changed().await.is_err() {
                return Err("the worker is stopping".into());
            }
        }
    }

    /// Stops every warm parent and waits (up to `grace`) until they are gone.
    pub async fn stop(&self, grace: Duration) {
        self.shutdown.cancel();
        self.tracker.close();
        let _ = tokio::time::timeout(grace, self.tracker.wait()).await;
    }
}

/// Whether `AGENTDISPATCH_WARM` would give `name` a warm parent, in words (`frameworks`).
pub fn describe(cfg: &Config, warm_manifest: bool, name: &str) -> &'static str {
    if !warm_manifest {
        return "cold (manifest has no \"warm\": true)";
    }
    match when_for(&cfg.warm, &cfg.default_framework, name) {
        Some(When::StartUp) => "warm (parent starts with the worker)",
        Some(When::FirstTask) => "warm (parent starts after its first task)",
        None => "cold (not in AGENTDISPATCH_WARM)",
    }
}
