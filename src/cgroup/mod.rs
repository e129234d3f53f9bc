//! A cgroup v2 per task, where the hierarchy is writable: every process of a task stays in its
//! cgroup whatever it does with its session, process group, environment or descriptors, so the
//! whole task is killed at once (`cgroup.kill`) and "nothing is left" is the kernel's own
//! answer (`cgroup.events`: `populated 0`).
//!
//! Layout, under the worker's own cgroup `W` (the `0::` line of `/proc/self/cgroup`, found
//! through the cgroup2 mount in `/proc/self/mountinfo`):
//!
//! ```text
//! W/agentdispatch.<pid>.<nanos>/         one per worker process, no controllers enabled
//!     worker/                            the worker itself (and its warm parents)
//!     task.<n>.<taskId>/                 one per running task
//! ```
//!
//! The worker moves itself into `worker/` (a cgroup with children holds no processes itself,
//! so controllers could be enabled later without breaking the "no internal processes" rule),
//! and that leaf says whether the worker that made the tree is alive: at start-up, a sibling
//! tree whose `worker/` is empty belongs to a worker that was killed, and its task cgroups are
//! killed and removed.

mod dir;
mod mount;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;

use crate::procfs;
use dir::{kill_cgroup, populated, read_pids, remove_tree, signal_pids, subdirs, wait_empty};
use mount::own_cgroup_dir;

/// `AGENTDISPATCH_TASK_CGROUPS`: whether tasks get a cgroup of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Where cgroup v2 is writable.
    Auto,
    /// Never (the worker does not touch cgroups at all).
    Off,
}

/// Prefix of each worker's tree under its own cgroup.
const TREE_PREFIX: &str = "agentdispatch.";
/// The worker's own leaf in its tree.
const WORKER_LEAF: &str = "worker";
/// Prefix of a task's cgroup in the tree.
const TASK_PREFIX: &str = "task.";
/// How long removing a killed tree waits for its processes to exit.
const EMPTY_BOUND: Duration = Duration::from_secs(2);

/// This worker's tree of task cgroups.
#[derive(Debug)]
pub struct TaskCgroups {
    /// The worker's cgroup when it started (it moves back there when it releases the tree).
    home: PathBuf,
    /// `home/agentdispatch.<pid>.<nanos>`.
    tree: PathBuf,
    /// The tree as `/proc/<pid>/cgroup` names it.
    tree_path: String,
    /// Numbers the task cgroups, so that a reused task id never meets a leftover.
    next: AtomicU64,
}

/// What start-up found of earlier workers' trees.
#[derive(Debug, Default)]
pub struct Stale {
    /// Trees removed.
    pub trees: Vec<PathBuf>,
    /// Processes that were still running in them, killed.
    pub killed: usize,
    /// Trees that could not be removed, with why.
    pub left: Vec<String>,
}

/// One task's cgroup. Dropped without [`Cgroup::remove`], it is killed and removed at once.
#[derive(Debug)]
pub struct Cgroup {
    dir: PathBuf,
    /// The cgroup as `/proc/<pid>/cgroup` names it.
    path: String,
    /// `cgroup.procs`, open for writing: a spawned child writes `0` to it before it execs.
    procs: File,
    removed: bool,
}

impl TaskCgroups {
    /// Makes this worker's tree and moves the worker into it, after removing the trees of
    /// earlier workers that were killed; `Err` says why tasks get no cgroup.
    pub fn start(mode: Mode) -> Result<(TaskCgroups, Stale), String> {
        if mode == Mode::Off {
            return Err("AGENTDISPATCH_TASK_CGROUPS=off".into());
        }
        let (home, home_path) = own_cgroup_dir()?;
        let stale = remove_stale_trees(&home);
        let mut last = String::new();
        // Another worker starting beside this one may take a tree made a moment ago, before
        // its worker moved in, for a stale one: make another.
        for _ in 0..3 {
            match make_tree(&home) {
                Ok(tree) => {
                    let name = tree.file_name().unwrap_or_default().to_string_lossy();
                    let tree_path = format!("{}/{name}", home_path.trim_end_matches('/'));
                    return Ok((
                        TaskCgroups {
                            home,
                            tree,
                            tree_path,
                            next: AtomicU64::new(1),
                        },
                        stale,
                    ));
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// This worker's tree.
    pub fn tree(&self) -> &Path {
        &self.tree
    }

    /// A new, empty cgroup for the task `task_id`.
    pub fn create(&self, task_id: &str) -> io::Result<Cgroup> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        // Task ids are checked against the taskId pattern, a plain file name; anything else
        // (the `run` subcommand's own ids are uuids) is left out of the name.
        let safe = crate::wire::valid_task_id(task_id);
        let name = if safe {
            format!("{TASK_PREFIX}{n}.{task_id}")
        } else {
            format!("{TASK_PREFIX}{n}")
        };
        let dir = self.tree.join(&name);
        fs::create_dir(&dir)?;
        match OpenOptions::new()
            .write(true)
            .open(dir.join("cgroup.procs"))
        {
            Ok(procs) => Ok(Cgroup {
                dir,
                path: format!("{}/{name}", self.tree_path),
                procs,
                removed: false,
            }),
            Err(e) => {
                let _ = fs::remove_dir(&dir);
                Err(e)
            }
        }
    }

    /// Kills whatever is left in the tree (tasks that outlived the shutdown grace, idle warm
    /// processes), moves the worker back to its own cgroup and removes the tree. What cannot
    /// be removed now is removed by the next worker's start-up.
    pub fn release(&self) {
        let me = std::process::id().to_string();
        if let Err(e) = fs::write(self.home.join("cgroup.procs"), &me) {
            tracing::warn!(cgroup = %self.tree.display(), error = %e, "cannot leave the task cgroups' tree; the next start-up removes it");
            return;
        }
        match kill_tree(&self.tree) {
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(cgroup = %self.tree.display(), error = %e, "task cgroups left behind; the next start-up removes them")
            }
        }
    }
}

impl Cgroup {
    /// The cgroup's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cgroup's name in its tree (`task.<n>[.<taskId>]`).
    pub fn name(&self) -> String {
        self.dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    }

    /// The open `cgroup.procs`, for a forked child to write `0` to (itself) before it execs.
    pub fn procs_fd(&self) -> RawFd {
        self.procs.as_raw_fd()
    }

    /// Moves `pid` into the cgroup.
    pub fn add(&self, pid: u32) -> io::Result<()> {
        (&self.procs).write_all(pid.to_string().as_bytes())
    }

    /// Whether `pid` is in the cgroup (also once it exited and is not reaped yet).
    pub fn holds(&self, pid: u32) -> bool {
        procfs::cgroup_of(pid).is_some_and(|p| p == self.path)
    }

    /// The processes in the cgroup (and not in a cgroup below it).
    pub fn pids(&self) -> Vec<i32> {
        read_pids(&self.dir)
    }

    /// Whether any process is in the cgroup or below it (zombies do not count).
    pub fn populated(&self) -> bool {
        populated(&self.dir)
    }

    /// Sends `sig` to every process in the cgroup; how many were signalled.
    pub fn signal(&self, sig: Signal) -> usize {
        signal_pids(&self.dir, sig)
    }

    /// SIGKILL to every process in the cgroup and below it, at once: `cgroup.kill` (Linux
    /// 5.14), else the cgroup is frozen (so that nothing forks meanwhile) and each is signalled.
    pub fn kill(&self) {
        kill_cgroup(&self.dir);
    }

    /// Removes the cgroup once it is empty; an error when a process could not be killed.
    pub fn remove(&mut self) -> io::Result<()> {
        let r = remove_tree(&self.dir);
        if r.is_ok() {
            self.removed = true;
        }
        r
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if !self.removed {
            kill_cgroup(&self.dir);
            let _ = wait_empty(&self.dir, Duration::from_millis(200));
            let _ = remove_tree(&self.dir);
        }
    }
}

/// Creates `home/agentdispatch.<pid>.<nanos>/worker` and moves the worker into it.
fn make_tree(home: &Path) -> Result<PathBuf, String> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let tree = home.join(format!("{TREE_PREFIX}{}.{nanos}", std::process::id()));
    fs::create_dir(&tree).map_err(|e| format!("cannot create {}: {e}", tree.display()))?;
    let leaf = tree.join(WORKER_LEAF);
    let moved = fs::create_dir(&leaf)
        .map_err(|e| format!("cannot create {}: {e}", leaf.display()))
        .and_then(|()| {
            fs::write(leaf.join("cgroup.procs"), std::process::id().to_string())
                .map_err(|e| format!("cannot move the worker into {}: {e}", leaf.display()))
        });
    match moved {
        Ok(()) => Ok(tree),
        Err(e) => {
            let _ = fs::remove_dir(&leaf);
            let _ = fs::remove_dir(&tree);
            Err(e)
        }
    }
}

/// Kills and removes every tree under `home` whose worker is gone.
fn remove_stale_trees(home: &Path) -> Stale {
    let mut stale = Stale::default();
    let Ok(entries) = fs::read_dir(home) else {
        return stale;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(TREE_PREFIX) || !entry.path().is_dir() {
            continue;
        }
        let tree = entry.path();
        // Its worker is alive: in its leaf, or still making the tree (a worker starting beside
        // this one has made the tree but not moved in yet: killing the tree then killed it).
        if populated(&tree.join(WORKER_LEAF)) || owner_alive(name) {
            continue;
        }
        match kill_tree(&tree) {
            Ok(killed) => {
                stale.killed += killed;
                stale.trees.push(tree);
            }
            // Another worker starting now may be removing it too.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => stale.left.push(format!("{}: {e}", tree.display())),
        }
    }
    stale
}

/// Whether the worker whose pid a tree's name carries still runs (a reused pid keeps a dead
/// tree until that process ends: a tree left, never a live worker killed).
fn owner_alive(name: &str) -> bool {
    name.strip_prefix(TREE_PREFIX)
        .and_then(|rest| rest.split('.').next())
        .and_then(|pid| pid.parse::<u32>().ok())
        .is_some_and(|pid| pid != std::process::id() && procfs::exists(pid))
}

/// Kills every process in the tree (except the worker itself), waits for them to exit and
/// removes the tree; how many processes were killed.
fn kill_tree(tree: &Path) -> io::Result<usize> {
    let me = std::process::id() as i32;
    let mut killed = 0;
    for dir in subdirs(tree)? {
        killed += read_pids(&dir).iter().filter(|p| **p != me).count();
        if dir.file_name().is_some_and(|n| n == WORKER_LEAF) {
            // Warm parents and their spares (the worker itself left it first).
            signal_pids(&dir, Signal::SIGKILL);
        } else {
            kill_cgroup(&dir);
        }
    }
    wait_empty(tree, EMPTY_BOUND)?;
    remove_tree(tree)?;
    Ok(killed)
}
