//! Warm parents (SPEC §6.3): one long-lived process per framework whose manifest says
//! `"warm": true`, started from the framework's own command, that has imported the framework
//! and its entrypoint and forks one child per task on request. The child is the task: a fresh
//! process in its own session, re-parented to the worker and handed to the supervisor as a
//! [`Child`] it watches exactly like one it spawned.
//!
//! The control channel is a `SOCK_SEQPACKET` socket pair; the warm parent's end is its fd 3
//! (`AGENTDISPATCH_WARM_FD=3`). Messages, one JSON object each:
//! - parent → worker, once: `{"type":"ready","pid","entrypoint","threads","importMs"}`;
//! - worker → parent: `{"op":"fork","taskId","env":{…},"cwd"}` with the task's stdin, stdout
//!   and stderr pipe ends attached (`SCM_RIGHTS`);
//! - parent → worker: `{"ok":true,"pid"}` or `{"ok":false,"reason"}`.
//!
//! Whenever a warm child cannot be had (not started yet, starting, restarting, refused), the
//! caller gets the reason and starts the task cold. A warm parent that exits is restarted with
//! backoff; the worker's shutdown stops every one of them.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::libc;
use nix::sys::socket::{self, ControlMessage, MsgFlags};
use serde_json::{json, Value};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncBufReadExt, Interest};
use tokio::process::Command;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, WarmPolicy};
use crate::frameworks::{Launch, Registry};
use crate::reaper;
use crate::supervisor::{self, Child};

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
    /// Serialises fork requests on the channel.
    serial: tokio::sync::Mutex<()>,
    /// Cancelled when a request found this parent's channel broken: it is killed and restarted.
    /// One per parent process, so that a late failure never touches its successor.
    broken: CancellationToken,
}

/// The worker's end of a control channel.
struct Conn(AsyncFd<OwnedFd>);

impl Conn {
    fn new(fd: OwnedFd) -> io::Result<Conn> {
        let flags = OFlag::from_bits_truncate(fcntl(&fd, FcntlArg::F_GETFL)?);
        fcntl(&fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        // SAFETY: an OwnedFd keeps its descriptor open and unchanged while the AsyncFd owns it.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)?;
        Ok(Conn(fd))
    }

    async fn send(&self, data: &[u8], fds: &[RawFd]) -> io::Result<()> {
        self.0
            .async_io(Interest::WRITABLE, |fd| {
                let iov = [IoSlice::new(data)];
                let cmsg = [ControlMessage::ScmRights(fds)];
                let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
                socket::sendmsg::<()>(fd.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None)
                    .map_err(io::Error::from)
            })
            .await
            .map(|_| ())
    }

    /// The next message as JSON; an error at the end of the channel.
    async fn recv(&self) -> io::Result<Value> {
        let mut buf = vec![0u8; 64 * 1024];
        let n = self
            .0
            .async_io(Interest::READABLE, |fd| {
                socket::recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(io::Error::from)
            })
            .await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the warm parent closed its control channel",
            ));
        }
        serde_json::from_slice(&buf[..n]).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not a JSON message: {e}"),
            )
        })
    }
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
}

/// Why a task is not forked warm.
#[derive(Debug)]
pub enum Fallback {
    /// The framework has no warm parent: start cold, and say nothing.
    NotWarm,
    /// It has one, but not now: start cold, and log why.
    Cold(String),
}

/// Every warm parent of the worker.
pub struct Pool {
    parents: HashMap<String, Arc<Parent>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    /// Start-up warnings (unknown names in `AGENTDISPATCH_WARM`, …).
    pub warnings: Vec<String>,
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
                // Restarting it with backoff would only log the same failure forever.
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
                }),
            );
        }
        Pool {
            parents,
            shutdown,
            tracker: TaskTracker::new(),
            warnings,
        }
    }

    /// A pool with no warm parent (the `run` subcommand).
    pub fn empty() -> Pool {
        Pool {
            parents: HashMap::new(),
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            warnings: Vec::new(),
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
    pub async fn fork(&self, name: &str, spec: &supervisor::Spec) -> Result<Child, Fallback> {
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
        match fork_on(&ready, spec).await {
            Ok(child) => Ok(child),
            Err(ForkError::Refused(reason)) => Err(Fallback::Cold(format!(
                "the warm parent of {name} did not fork: {reason}; this task runs cold"
            ))),
            Err(ForkError::Channel(e)) => {
                ready.broken.cancel();
                Err(Fallback::Cold(format!(
                    "the warm parent of {name} failed a fork request ({e}); it is restarted, this task runs cold"
                )))
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

enum ForkError {
    /// The parent answered no (e.g. it is not single-threaded).
    Refused(String),
    /// The channel failed: the parent is stuck or gone.
    Channel(io::Error),
}

async fn fork_on(ready: &Ready, spec: &supervisor::Spec) -> Result<Child, ForkError> {
    let (ends, pipes) = supervisor::child::pipes().map_err(ForkError::Channel)?;
    let mut env: serde_json::Map<String, Value> = spec
        .env
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    env.insert(spec.marker.0.clone(), Value::String(spec.marker.1.clone()));
    let request = json!({
        "op": "fork",
        "taskId": spec.marker.1,
        "env": env,
        "unset": spec.unset,
        "cwd": spec.cwd,
    });
    let bytes =
        serde_json::to_vec(&request).map_err(|e| ForkError::Channel(io::Error::other(e)))?;
    let _serial = ready.serial.lock().await;
    // Until the new pid is registered, no orphan is reaped: it could be this child.
    let hold = reaper::hold();
    let fds = [
        ends.stdin.as_raw_fd(),
        ends.stdout.as_raw_fd(),
        ends.stderr.as_raw_fd(),
    ];
    ready
        .conn
        .send(&bytes, &fds)
        .await
        .map_err(ForkError::Channel)?;
    drop(ends);
    let reply = match tokio::time::timeout(FORK_TIMEOUT, ready.conn.recv()).await {
        Ok(r) => r.map_err(ForkError::Channel)?,
        Err(_) => {
            return Err(ForkError::Channel(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {}s", FORK_TIMEOUT.as_secs()),
            )))
        }
    };
    if reply["ok"] != true {
        let reason = reply["reason"].as_str().unwrap_or("no reason given");
        return Err(ForkError::Refused(reason.to_string()));
    }
    let Some(pid) = reply["pid"].as_u64().and_then(|p| i32::try_from(p).ok()) else {
        return Err(ForkError::Channel(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a fork answer without a pid: {reply}"),
        )));
    };
    let me = std::process::id() as i32;
    let parent = supervisor::kill::read_stat(pid).map(|s| s.ppid);
    if parent != Some(me) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        return Err(ForkError::Refused(format!(
            "its child {pid} has parent {parent:?}, not the worker (is the worker a child subreaper?)"
        )));
    }
    reaper::Owned::lock().insert(pid);
    drop(hold);
    Ok(Child::adopt(pid as u32, pipes, ready.pid))
}

/// Runs `p`'s warm parent until the worker stops, restarting it with backoff.
async fn keep_running(p: Arc<Parent>, shutdown: CancellationToken) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let began = Instant::now();
        p.status.send_replace(Status::Starting);
        let why = run_once(&p, &shutdown).await;
        if shutdown.is_cancelled() {
            p.status.send_replace(Status::Stopped);
            tracing::info!(framework = %p.name, "warm parent stopped");
            return;
        }
        if began.elapsed() >= STABLE {
            backoff = BACKOFF_MIN;
        }
        tracing::warn!(
            framework = %p.name,
            reason = %why,
            restartInMs = backoff.as_millis() as u64,
            "warm parent exited; restarting"
        );
        p.status.send_replace(Status::Down(why));
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.cancelled() => {
                p.status.send_replace(Status::Stopped);
                return;
            }
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Starts the warm parent once and returns why it ended.
async fn run_once(p: &Parent, shutdown: &CancellationToken) -> String {
    let (ours, theirs) = match socket::socketpair(
        socket::AddressFamily::Unix,
        socket::SockType::SeqPacket,
        None,
        socket::SockFlag::SOCK_CLOEXEC,
    ) {
        Ok(pair) => pair,
        Err(e) => return format!("cannot create its control channel: {e}"),
    };
    let conn = match Conn::new(ours) {
        Ok(c) => c,
        Err(e) => return format!("cannot create its control channel: {e}"),
    };
    let mut cmd = Command::new(&p.argv[0]);
    // The warm parent's environment is what its forks inherit: minimal when children's are.
    if let Some(base) = &p.base_env {
        cmd.env_clear().envs(base.iter().map(|(k, v)| (k, v)));
    }
    cmd.args(&p.argv[1..])
        .envs(&p.env)
        .env(MARKER_VAR, "_".repeat(MARKER_SLOT))
        .env(WARM_FD_VAR, WARM_FD.to_string())
        .env("PYTHONUNBUFFERED", "1")
        .env_remove("AGENTDISPATCH_SESSION_DIR")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(cwd) = &p.cwd {
        cmd.current_dir(cwd);
    }
    let theirs_raw = theirs.as_fd().as_raw_fd();
    // SAFETY: only dup2 and prctl run between fork and exec; both are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(theirs_raw, WARM_FD) == -1 {
                return Err(io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let began = Instant::now();
    let mut child = match reaper::spawn_owned(&mut cmd) {
        Ok(c) => c,
        Err(e) => return format!("cannot start {}: {e}", p.argv[0]),
    };
    drop(theirs);
    let pid = child.id().unwrap_or(0);
    forward_output(&p.name, pid, child.stdout.take(), "stdout");
    forward_output(&p.name, pid, child.stderr.take(), "stderr");
    tracing::info!(framework = %p.name, pid, "warm parent starting");

    let ended = |status: io::Result<std::process::ExitStatus>| {
        reaper::release(pid as i32);
        match status {
            Ok(s) => format!("it exited with {s}"),
            Err(e) => format!("waiting for it failed: {e}"),
        }
    };
    let ready = tokio::select! {
        msg = conn.recv() => msg,
        status = child.wait() => return ended(status),
        _ = shutdown.cancelled() => return stop(&mut child, pid).await,
        _ = tokio::time::sleep(READY_TIMEOUT) => {
            let _ = child.start_kill();
            return ended(child.wait().await).replace("it exited", &format!("not ready within {}s;", READY_TIMEOUT.as_secs()));
        }
    };
    let ready = match ready {
        Ok(m) if m["type"] == "ready" => m,
        Ok(m) => {
            let _ = child.start_kill();
            let _ = ended(child.wait().await);
            return format!("its first message was not \"ready\": {m}");
        }
        Err(e) => {
            let _ = child.start_kill();
            let _ = ended(child.wait().await);
            return format!("no ready message: {e}");
        }
    };
    let threads = ready["threads"].as_u64().unwrap_or(0);
    tracing::info!(
        framework = %p.name,
        pid,
        readyMs = began.elapsed().as_millis() as u64,
        importMs = ready["importMs"].as_f64(),
        entrypoint = ready["entrypoint"].as_str().unwrap_or(""),
        threads,
        "warm parent ready"
    );
    if threads > 1 {
        tracing::warn!(framework = %p.name, pid, threads, "warm parent is not single-threaded; its tasks run cold until it is");
    }
    let broken = CancellationToken::new();
    p.status.send_replace(Status::Ready(Arc::new(Ready {
        pid,
        conn,
        serial: tokio::sync::Mutex::new(()),
        broken: broken.clone(),
    })));
    tokio::select! {
        status = child.wait() => ended(status),
        _ = shutdown.cancelled() => stop(&mut child, pid).await,
        _ = broken.cancelled() => {
            let _ = child.start_kill();
            let _ = ended(child.wait().await);
            "it was killed after a failed fork request".into()
        }
    }
}

/// SIGTERM, a short wait, then SIGKILL.
async fn stop(child: &mut tokio::process::Child, pid: u32) -> String {
    if pid > 1 {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if tokio::time::timeout(Duration::from_millis(500), child.wait())
        .await
        .is_err()
    {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
    reaper::release(pid as i32);
    "stopped with the worker".into()
}

/// Copies a warm parent's own output into the worker's log.
fn forward_output<R>(framework: &str, pid: u32, pipe: Option<R>, stream: &'static str)
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    let Some(pipe) = pipe else { return };
    let framework = framework.to_string();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::info!(framework = %framework, pid, stream, source = "warm parent", "{line}");
        }
    });
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
