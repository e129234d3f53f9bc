//! One cgroup directory's files: the processes it lists (`cgroup.procs`), whether anything
//! runs in it (`cgroup.events`), killing all of it (`cgroup.kill`, else `cgroup.freeze` and
//! signals), and removing it with the cgroups a task made below it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The cgroups directly under `dir`.
pub(super) fn subdirs(dir: &Path) -> io::Result<Vec<PathBuf>> {
    Ok(fs::read_dir(dir)?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect())
}

/// Removes `dir` and every cgroup below it, deepest first (a child may have made its own).
pub(super) fn remove_tree(dir: &Path) -> io::Result<()> {
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
pub(super) fn wait_empty(dir: &Path, bound: Duration) -> io::Result<()> {
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
pub(super) fn kill_cgroup(dir: &Path) {
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
pub(super) fn signal_pids(dir: &Path, sig: Signal) -> usize {
    let me = std::process::id() as i32;
    read_pids(dir)
        .into_iter()
        .filter(|&pid| pid > 1 && pid != me && kill(Pid::from_raw(pid), sig).is_ok())
        .count()
}

pub(super) fn read_pids(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| {
            t.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// `populated 1` in `dir/cgroup.events`; false when it cannot be read (the cgroup is gone).
pub(super) fn populated(dir: &Path) -> bool {
    fs::read_to_string(dir.join("cgroup.events"))
        .map(|t| t.lines().any(|l| l.trim() == "populated 1"))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cgroup beside this test process's own. Where none can be made the test fails saying
    /// why, unless `AGENTDISPATCH_TEST_WITHOUT_CGROUPS` is set (as for `tests/cgroups.rs`): then
    /// it prints that it checked nothing and `None` ends it.
    #[track_caller]
    fn scratch(name: &str) -> Option<PathBuf> {
        let made = super::super::mount::own_cgroup_dir().and_then(|(home, _)| {
            let dir = home.join(format!("agentdispatch-unit.{}.{name}", std::process::id()));
            fs::create_dir(&dir)
                .map(|()| dir.clone())
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))
        });
        match made {
            Ok(dir) => Some(dir),
            Err(why) if std::env::var_os("AGENTDISPATCH_TEST_WITHOUT_CGROUPS").is_some() => {
                eprintln!("SKIPPED: no writable cgroup v2 here ({why}); nothing was checked");
                None
            }
            Err(why) => panic!(
                "this test needs a writable cgroup v2 hierarchy and there is none here ({why}); \
                 set AGENTDISPATCH_TEST_WITHOUT_CGROUPS=1 to let it pass without checking anything"
            ),
        }
    }

    /// A `sleep` moved into `dir`, registered as someone's so that a supervisor test's orphan
    /// reaping (same process) does not take its exit status from `wait`.
    fn sleeper_in(dir: &Path) -> std::process::Child {
        let child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        crate::reaper::Owned::lock().insert(child.id() as i32);
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
