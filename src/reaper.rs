//! PID-1 duties. The worker is a child subreaper, so orphans of its tasks (and, as PID 1, of
//! the whole container) become its children; this module reaps them.
//!
//! tokio reaps only the children it spawned, and a `waitpid(-1)` loop would steal their exit
//! statuses. So every pid tokio owns is registered here, under the same lock that is held
//! while spawning, and the reaper waits only for zombie children that are not registered.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};

use crate::procfs::{children_of, read_stat};

static OWNED: Mutex<Option<HashSet<i32>>> = Mutex::new(None);
/// While above zero, no orphan is reaped: a warm parent is forking a child that is about to be
/// re-parented to the worker, and its pid is not registered yet.
static HOLDS: AtomicUsize = AtomicUsize::new(0);

/// Holds orphan reaping off until dropped.
pub struct Hold(());

/// Stops orphan reaping until the returned guard is dropped.
pub fn hold() -> Hold {
    HOLDS.fetch_add(1, Ordering::SeqCst);
    Hold(())
}

impl Drop for Hold {
    fn drop(&mut self) {
        HOLDS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The lock over the pids tokio owns; hold it across `spawn` and [`Owned::insert`].
pub struct Owned(MutexGuard<'static, Option<HashSet<i32>>>);

impl Owned {
    /// Takes the lock.
    pub fn lock() -> Self {
        Owned(OWNED.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Registers a pid that tokio will reap.
    pub fn insert(&mut self, pid: i32) {
        self.0.get_or_insert_with(HashSet::new).insert(pid);
    }

    fn contains(&self, pid: i32) -> bool {
        self.0.as_ref().is_some_and(|s| s.contains(&pid))
    }
}

/// Spawns `cmd` with its pid registered as tokio's before the reaper can see it exit, and with
/// the parent-death signal set (SIGKILL when the worker dies), after `cmd`'s own pre-exec steps.
/// Every child of the worker (task children, warm parents) is spawned here.
///
/// The fork happens on one thread that lives as long as the worker. A child's parent-death
/// signal fires when the *thread* that forked it exits, not the process (prctl(2)), and tokio
/// threads do exit: a runtime thread that ran `block_in_place` goes back to the blocking pool,
/// which ends idle threads after 10 s. Spawned from there, warm parents and long cold tasks were
/// SIGKILLed some seconds after a burst of tasks.
pub fn spawn_owned(mut cmd: tokio::process::Command) -> std::io::Result<tokio::process::Child> {
    // SAFETY: the closure only calls prctl, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(die_with_parent);
    }
    let runtime = tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?;
    let (reply, answer) = std::sync::mpsc::sync_channel(1);
    let job: SpawnJob = Box::new(move || {
        let _entered = runtime.enter();
        let mut cmd = cmd;
        let _ = reply.send(spawn_registered(&mut cmd));
    });
    spawner()
        .send(job)
        .map_err(|_| std::io::Error::other("the spawning thread is gone"))?;
    answer
        .recv()
        .map_err(|_| std::io::Error::other("the spawning thread is gone"))?
}

/// Sets the parent-death signal in a freshly forked child: it is killed when the worker dies.
fn die_with_parent() -> std::io::Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) only changes this process's own attribute.
    let r = unsafe {
        nix::libc::prctl(
            nix::libc::PR_SET_PDEATHSIG,
            nix::libc::SIGKILL as nix::libc::c_ulong,
        )
    };
    if r == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

type SpawnJob = Box<dyn FnOnce() + Send>;

/// The thread every child is forked from (see [`spawn_owned`]); it never exits.
fn spawner() -> &'static std::sync::mpsc::Sender<SpawnJob> {
    static SPAWNER: std::sync::OnceLock<std::sync::mpsc::Sender<SpawnJob>> =
        std::sync::OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("spawner".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            })
            .expect("cannot start the spawning thread");
        tx
    })
}

fn spawn_registered(cmd: &mut tokio::process::Command) -> std::io::Result<tokio::process::Child> {
    let mut owned = Owned::lock();
    let child = cmd.spawn()?;
    if let Some(pid) = child.id() {
        owned.insert(pid as i32);
    }
    Ok(child)
}

/// Forgets a pid after tokio reaped it.
pub fn release(pid: i32) {
    if let Some(set) = Owned::lock().0.as_mut() {
        set.remove(&pid);
    }
}

/// Makes this process a child subreaper (Linux), so orphaned descendants re-parent to it.
pub fn become_subreaper() -> std::io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(std::io::Error::from)
}

/// Reaps every zombie child that tokio does not own; returns how many.
pub fn reap_orphans() -> usize {
    let me = std::process::id() as i32;
    let owned = Owned::lock();
    if HOLDS.load(Ordering::SeqCst) > 0 {
        return 0;
    }
    let mut reaped = 0;
    for pid in children_of(me) {
        if owned.contains(pid) {
            continue;
        }
        if read_stat(pid).is_some_and(|s| s.state == 'Z')
            && waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)).is_ok()
        {
            reaped += 1;
        }
    }
    reaped
}

/// Reaps orphans on every SIGCHLD, and once a second in case a signal was coalesced.
pub async fn run() {
    let mut sigchld = match signal(SignalKind::child()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGCHLD; reaping once a second");
            None
        }
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        match sigchld.as_mut() {
            Some(s) => {
                tokio::select! {
                    _ = s.recv() => {}
                    _ = tick.tick() => {}
                }
            }
            None => {
                tick.tick().await;
            }
        }
        let n = reap_orphans();
        if n > 0 {
            tracing::debug!(reaped = n, "reaped orphaned processes");
        }
    }
}
