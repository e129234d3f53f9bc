//! Finding and signalling every process of a task: its process group, its descendants,
//! orphans re-parented to the worker (a child subreaper) that carry the task's marker in their
//! environment — which catches a grandchild that called `setsid` and left the group — and,
//! where the task has one, every process in its cgroup, which catches the rest (a grandchild
//! that also dropped the marker).

use std::collections::HashSet;

use nix::errno::Errno;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

use crate::cgroup::Cgroup;
use crate::procfs::{children_of, environ_has, read_stat};

/// The processes of one task.
#[derive(Debug)]
pub struct TaskProcesses {
    /// The leader's pid, which is also the process group id (> 1, checked at spawn).
    pub pgid: i32,
    /// `NAME=value` in every process's environment.
    pub marker: Vec<u8>,
    /// Set once the group answered ESRCH: never signal it again (the id may be reused).
    group_gone: bool,
    /// A warm child's memory holder: it shares the task's memory (so its environment shows
    /// the marker) but runs nothing of the task's, and ends on its own when the task does.
    exempt: Option<i32>,
    /// The task's cgroup, when the leader is in one.
    cgroup: Option<Cgroup>,
}

/// What one [`TaskProcesses::signal_all`] reached outside the process group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stragglers {
    /// Processes signalled outside the group.
    pub total: usize,
    /// Of those, the ones only the cgroup knew of (no marker, not a descendant).
    pub by_cgroup: usize,
}

impl TaskProcesses {
    /// Tracks the group led by `pgid`; `None` when the id is not safe to signal.
    pub fn new(pgid: i32, marker: Vec<u8>, cgroup: Option<Cgroup>) -> Option<Self> {
        (pgid > 1).then_some(TaskProcesses {
            pgid,
            marker,
            group_gone: false,
            exempt: None,
            cgroup,
        })
    }

    /// Leaves `pid` (a warm child's memory holder) out of the task's processes.
    pub fn exempt(&mut self, pid: i32) {
        self.exempt = Some(pid);
    }

    /// The task's cgroup, if it has one.
    pub fn cgroup(&self) -> Option<&Cgroup> {
        self.cgroup.as_ref()
    }

    /// Sends `sig` to the group and to every other process of the task (SIGKILL: the whole
    /// cgroup at once too); says how many processes outside the group were signalled.
    pub fn signal_all(&mut self, sig: Signal, leader_alive: bool) -> Stragglers {
        if !self.group_gone {
            match killpg(Pid::from_raw(self.pgid), sig) {
                Err(Errno::ESRCH) => self.group_gone = true,
                Err(e) => tracing::warn!(pgid = self.pgid, error = %e, "killpg failed"),
                Ok(()) => {}
            }
        }
        let mut out = Stragglers::default();
        let mut outside = self.outside_group(leader_alive);
        let known = outside.len();
        if let Some(cg) = &self.cgroup {
            for pid in cg.pids() {
                let in_group = read_stat(pid).is_some_and(|s| s.pgid == self.pgid);
                if !in_group && !outside.contains(&pid) {
                    outside.push(pid);
                }
            }
        }
        for (i, pid) in outside.into_iter().enumerate() {
            if kill(Pid::from_raw(pid), sig).is_ok() {
                out.total += 1;
                if i >= known {
                    out.by_cgroup += 1;
                }
            }
        }
        if sig == Signal::SIGKILL {
            // Also whatever forked since the list was read.
            if let Some(cg) = &self.cgroup {
                cg.kill();
            }
        }
        out
    }

    /// Whether any process of the task is left.
    pub fn any_left(&mut self, leader_alive: bool) -> bool {
        if !self.group_gone {
            match killpg(Pid::from_raw(self.pgid), None) {
                Err(Errno::ESRCH) => self.group_gone = true,
                _ => return true,
            }
        }
        self.cgroup.as_ref().is_some_and(Cgroup::populated)
            || !self.outside_group(leader_alive).is_empty()
    }

    /// Removes the task's cgroup (once nothing is left in it); the error says why not.
    pub fn remove_cgroup(&mut self) -> std::io::Result<()> {
        match self.cgroup.as_mut() {
            Some(cg) => cg.remove(),
            None => Ok(()),
        }
    }

    /// Live descendants of the leader and marked orphans of the worker (with their
    /// descendants) that are not in the group. Zombies are left to the reaper.
    fn outside_group(&self, leader_alive: bool) -> Vec<i32> {
        let me = std::process::id() as i32;
        let mut roots: Vec<i32> = Vec::new();
        if leader_alive {
            roots.push(self.pgid);
        }
        for pid in children_of(me) {
            if pid != self.pgid && environ_has(pid, &self.marker) {
                roots.push(pid);
            }
        }
        let mut seen: HashSet<i32> = HashSet::new();
        let mut found = Vec::new();
        while let Some(pid) = roots.pop() {
            if !seen.insert(pid) || self.exempt == Some(pid) {
                continue;
            }
            if let Some(stat) = read_stat(pid) {
                if stat.state != 'Z' && stat.pgid != self.pgid {
                    found.push(pid);
                }
            }
            roots.extend(children_of(pid));
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_unsafe_group_ids() {
        assert!(TaskProcesses::new(0, vec![], None).is_none());
        assert!(TaskProcesses::new(1, vec![], None).is_none());
        assert!(TaskProcesses::new(2, vec![], None).is_some());
    }
}
