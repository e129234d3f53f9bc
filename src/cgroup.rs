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

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

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
        fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .ok()
            .and_then(|t| unified_path(&t))
            .is_some_and(|p| p == self.path)
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

/// The worker's own cgroup v2 directory and its path as `/proc/self/cgroup` names it; `Err`
/// says why it cannot be had or written.
fn own_cgroup_dir() -> Result<(PathBuf, String), String> {
    let cgroup = fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    let Some(own) = unified_path(&cgroup) else {
        return Err(
            "the worker is in no cgroup v2 hierarchy (no 0:: line in /proc/self/cgroup)".into(),
        );
    };
    if own.ends_with(" (deleted)") {
        return Err(format!("the worker's cgroup {own} was removed"));
    }
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    let mounts = cgroup2_mounts(&mountinfo);
    if mounts.is_empty() {
        return Err("no cgroup2 file system is mounted".into());
    }
    let mut seen = Vec::new();
    for m in &mounts {
        let Some(dir) = m.dir_of(&own) else {
            seen.push(format!("{} (shows {})", m.point.display(), m.root));
            continue;
        };
        if m.read_only {
            return Err(format!(
                "the cgroup2 mount {} is read-only",
                m.point.display()
            ));
        }
        return Ok((dir, own));
    }
    Err(format!(
        "the worker's cgroup {own} is not under any cgroup2 mount: {}",
        seen.join(", ")
    ))
}

/// The path of the `0::` line (cgroup v2) of a `/proc/<pid>/cgroup` text.
fn unified_path(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string)
}

/// A cgroup2 mount from `/proc/self/mountinfo`.
#[derive(Debug, PartialEq, Eq)]
struct Mount {
    /// The hierarchy's directory shown at the mount point (`/` unless a subtree is mounted).
    root: String,
    /// Where it is mounted.
    point: PathBuf,
    read_only: bool,
}

impl Mount {
    /// The directory of the cgroup `path` (as `/proc/self/cgroup` names it) under this mount.
    fn dir_of(&self, path: &str) -> Option<PathBuf> {
        let root = self.root.trim_end_matches('/');
        let rest = path.strip_prefix(root)?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        let rest = rest.trim_start_matches('/');
        Some(if rest.is_empty() {
            self.point.clone()
        } else {
            self.point.join(rest)
        })
    }
}

/// Every cgroup2 mount of a mountinfo text, in order.
fn cgroup2_mounts(mountinfo: &str) -> Vec<Mount> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        // id parent major:minor root point options [optional…] - fstype source super-options
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        if right.split(' ').next() != Some("cgroup2") {
            continue;
        }
        let f: Vec<&str> = left.split(' ').collect();
        if f.len() < 6 {
            continue;
        }
        out.push(Mount {
            root: unescape(f[3]),
            point: PathBuf::from(unescape(f[4])),
            read_only: f[5].split(',').any(|o| o == "ro"),
        });
    }
    out
}

/// Mountinfo's octal escapes (`\040` for a space) undone.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        if let (b'\\', Some(d)) = (b[i], oct) {
            out.push((d[0] - b'0') << 6 | (d[1] - b'0') << 3 | (d[2] - b'0'));
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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
        .is_some_and(|pid| pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists())
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

/// The cgroups directly under `dir`.
fn subdirs(dir: &Path) -> io::Result<Vec<PathBuf>> {
    Ok(fs::read_dir(dir)?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect())
}

/// Removes `dir` and every cgroup below it, deepest first (a child may have made its own).
fn remove_tree(dir: &Path) -> io::Result<()> {
    if let Ok(children) = subdirs(dir) {
        for child in children {
            remove_tree(&child)?;
        }
    }
    match fs::remove_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// Waits until nothing runs in `dir` or below, up to `bound`.
fn wait_empty(dir: &Path, bound: Duration) -> io::Result<()> {
    let until = Instant::now() + bound;
    while populated(dir) {
        if Instant::now() >= until {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!(
                    "processes still run in {} after {}ms",
                    dir.display(),
                    bound.as_millis()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// `cgroup.kill`, else freeze, SIGKILL every process, thaw (frozen processes still die).
fn kill_cgroup(dir: &Path) {
    match fs::write(dir.join("cgroup.kill"), "1") {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound && dir.exists() => {
            let _ = fs::write(dir.join("cgroup.freeze"), "1");
            for _ in 0..100 {
                if signal_pids(dir, Signal::SIGKILL) == 0 {
                    break;
                }
            }
            for sub in subdirs(dir).unwrap_or_default() {
                kill_cgroup(&sub);
            }
            let _ = fs::write(dir.join("cgroup.freeze"), "0");
        }
        Err(_) => {}
    }
}

/// Sends `sig` to every process listed in `dir/cgroup.procs` (never the worker itself); how
/// many were signalled.
fn signal_pids(dir: &Path, sig: Signal) -> usize {
    let me = std::process::id() as i32;
    read_pids(dir)
        .into_iter()
        .filter(|&pid| pid > 1 && pid != me && kill(Pid::from_raw(pid), sig).is_ok())
        .count()
}

fn read_pids(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| {
            t.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// `populated 1` in `dir/cgroup.events`; false when it cannot be read (the cgroup is gone).
fn populated(dir: &Path) -> bool {
    fs::read_to_string(dir.join("cgroup.events"))
        .map(|t| t.lines().any(|l| l.trim() == "populated 1"))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_unified_line() {
        let text = "9:name=systemd:/\n4:memory:/x\n0::/user.slice/a b\n";
        assert_eq!(unified_path(text).as_deref(), Some("/user.slice/a b"));
        assert_eq!(unified_path("4:memory:/x\n"), None);
    }

    #[test]
    fn reads_cgroup2_mounts_and_maps_the_worker_s_cgroup_under_them() {
        let info = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 22 0:40 /docker/abc /sys/fs/cgroup\\040x ro,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate
";
        let m = cgroup2_mounts(info);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].point, PathBuf::from("/sys/fs/cgroup/unified"));
        assert!(!m[0].read_only);
        assert_eq!(m[1].root, "/docker/abc");
        assert_eq!(m[1].point, PathBuf::from("/sys/fs/cgroup x"));
        assert!(m[1].read_only);
        for (mount, path, dir) in [
            (0, "/", Some("/sys/fs/cgroup/unified")),
            (0, "/a/b", Some("/sys/fs/cgroup/unified/a/b")),
            (1, "/docker/abc", Some("/sys/fs/cgroup x")),
            (1, "/docker/abc/t", Some("/sys/fs/cgroup x/t")),
            (1, "/docker/abcd", None),
            (1, "/other", None),
        ] {
            assert_eq!(m[mount].dir_of(path), dir.map(PathBuf::from), "{path}");
        }
    }

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape("a\\040b"), "a b");
        assert_eq!(unescape("tab\\011"), "tab\t");
        assert_eq!(unescape("plain"), "plain");
        assert_eq!(unescape("end\\"), "end\\");
    }

    /// A cgroup beside this test process's own, or `None` (printed) where none can be made.
    fn scratch(name: &str) -> Option<PathBuf> {
        let home = match own_cgroup_dir() {
            Ok((h, _)) => h,
            Err(e) => {
                eprintln!("no writable cgroup v2 here ({e}); the cgroup unit tests check nothing");
                return None;
            }
        };
        let dir = home.join(format!("agentdispatch-unit.{}.{name}", std::process::id()));
        match fs::create_dir(&dir) {
            Ok(()) => Some(dir),
            Err(e) => {
                eprintln!(
                    "cannot create {} ({e}); the cgroup unit tests check nothing",
                    dir.display()
                );
                None
            }
        }
    }

    fn sleeper_in(dir: &Path) -> std::process::Child {
        let child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        fs::write(dir.join("cgroup.procs"), child.id().to_string()).unwrap();
        child
    }

    #[test]
    fn kill_cgroup_empties_it_with_cgroup_kill_and_by_signals() {
        let Some(dir) = scratch("kill") else { return };
        let mut a = sleeper_in(&dir);
        assert!(populated(&dir));
        kill_cgroup(&dir);
        a.wait().unwrap();
        wait_empty(&dir, Duration::from_secs(2)).unwrap();
        // The fallback for kernels before 5.14: freeze, signal each, thaw.
        let mut b = sleeper_in(&dir);
        let _ = fs::write(dir.join("cgroup.freeze"), "1");
        assert_eq!(signal_pids(&dir, Signal::SIGKILL), 1);
        let _ = fs::write(dir.join("cgroup.freeze"), "0");
        b.wait().unwrap();
        wait_empty(&dir, Duration::from_secs(2)).unwrap();
        remove_tree(&dir).unwrap();
        assert!(!dir.exists());
    }

    #[test]
    fn remove_tree_takes_cgroups_a_child_made_below() {
        let Some(dir) = scratch("tree") else { return };
        fs::create_dir_all(dir.join("a/b")).unwrap();
        remove_tree(&dir).unwrap();
        assert!(!dir.exists());
    }
}
