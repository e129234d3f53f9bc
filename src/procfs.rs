//! The `/proc` readers the worker shares: a process's state, parent and group, its children,
//! an entry of its environment, its cgroup. The supervisor, the reaper, the warm channel and
//! the task cgroups all read processes through here, so none of them imports another for it.
//!
//! Every reader answers `None` (or empty, or false) when the process is gone: processes come
//! and go between two reads, and a vanished one is never an error.

use std::fs;
use std::path::Path;

/// The parts of `/proc/<pid>/stat` the worker uses.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    /// Single-letter state (`Z` for a zombie).
    pub state: char,
    /// Parent pid.
    pub ppid: i32,
    /// Process group.
    pub pgid: i32,
}

/// Reads `/proc/<pid>/stat`; `None` when the process is gone.
pub fn read_stat(pid: i32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; fields resume after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgid = fields.next()?.parse().ok()?;
    Some(Stat { state, ppid, pgid })
}

/// Direct children of `pid` (all its threads), from `/proc/<pid>/task/*/children`, or by
/// scanning `/proc` when the kernel lacks that file.
pub fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(threads) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for thread in threads.flatten() {
        match fs::read_to_string(thread.path().join("children")) {
            Ok(text) => out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return scan_children(pid),
            Err(_) => {}
        }
    }
    out
}

fn scan_children(parent: i32) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| read_stat(*pid).is_some_and(|s| s.ppid == parent))
        .collect()
}

/// Whether `/proc/<pid>/environ` holds the entry `entry` (`NAME=value`) exactly.
pub fn environ_has(pid: i32, entry: &[u8]) -> bool {
    fs::read(format!("/proc/{pid}/environ"))
        .map(|env| env.split(|b| *b == 0).any(|e| e == entry))
        .unwrap_or(false)
}

/// Whether a process `pid` exists (a zombie too).
pub fn exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The cgroup v2 path of `pid` as `/proc/<pid>/cgroup` names it (also once it exited and is
/// not reaped yet); `None` when it is gone or in no v2 hierarchy.
pub fn cgroup_of(pid: u32) -> Option<String> {
    unified_cgroup(&fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?)
}

/// The path of the `0::` line (cgroup v2) of a `/proc/<pid>/cgroup` text.
pub fn unified_cgroup(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_stat() {
        let me = std::process::id() as i32;
        let stat = read_stat(me).unwrap();
        assert_ne!(stat.state, 'Z');
        assert_eq!(stat.ppid, nix::unistd::getppid().as_raw());
        assert_eq!(stat.pgid, nix::unistd::getpgrp().as_raw());
    }

    #[test]
    fn finds_children_of_this_process() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        // Registered as someone's, so that a supervisor test's orphan reaping leaves it alone.
        crate::reaper::Owned::lock().insert(child.id() as i32);
        let kids = children_of(std::process::id() as i32);
        assert!(kids.contains(&(child.id() as i32)), "{kids:?}");
        child.kill().unwrap();
        child.wait().unwrap();
        crate::reaper::release(child.id() as i32);
    }

    #[test]
    fn finds_the_unified_line() {
        let text = "9:name=systemd:/\n4:memory:/x\n0::/user.slice/a b\n";
        assert_eq!(unified_cgroup(text).as_deref(), Some("/user.slice/a b"));
        assert_eq!(unified_cgroup("4:memory:/x\n"), None);
    }
}
