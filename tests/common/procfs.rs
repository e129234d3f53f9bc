//! Looking at processes through `/proc`, shared by the integration tests (via `common`) and
//! the benches (via `#[path]`). Standard library only.
#![allow(dead_code)]

/// Pids of every process listed in `/proc`.
fn all_pids() -> impl Iterator<Item = i32> {
    std::fs::read_dir("/proc")
        .expect("read /proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
}

/// Pids of live (non-zombie) processes whose environment has exactly the entry `marker`
/// (e.g. `b"AGENTDISPATCH_TASK_ID=t1"`).
pub fn marked_processes(marker: &[u8]) -> Vec<i32> {
    all_pids()
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|e| e == marker))
                && state(pid) != Some('Z')
        })
        .collect()
}

/// Pids of live (non-zombie) processes whose environment has `AGENTDISPATCH_TASK_ID=<id>`.
pub fn task_processes(task_id: &str) -> Vec<i32> {
    marked_processes(format!("AGENTDISPATCH_TASK_ID={task_id}").as_bytes())
}

/// A process's state letter (`R`, `S`, `Z`, ...), from `/proc/<pid>/stat`.
pub fn state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].chars().next()
}

/// Children of `pid` with their state letter, found by scanning `/proc/*/stat` (a thread's
/// `children` file lists only the children attached to that thread).
pub fn children_with_state(pid: i32) -> Vec<(i32, char)> {
    let mut out = Vec::new();
    for p in all_pids() {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let mut f = stat[close + 2..].split(' ');
        let st = f.next().and_then(|s| s.chars().next()).unwrap_or('?');
        if f.next().and_then(|s| s.parse::<i32>().ok()) == Some(pid) {
            out.push((p, st));
        }
    }
    out
}

/// Zombie children of `pid`.
pub fn zombie_children(pid: i32) -> Vec<i32> {
    children_with_state(pid)
        .into_iter()
        .filter(|(_, st)| *st == 'Z')
        .map(|(p, _)| p)
        .collect()
}

/// Open file descriptors of `pid` (0 if it cannot be read).
pub fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// The number after `<field>:` in `/proc/<pid>/status` (kB for `VmRSS`/`VmHWM`, a count for
/// `Threads`); `None` if the process or the field is missing.
pub fn status_kb(pid: i32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Every descendant of `pid` (children, their children, …).
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for (c, _) in children_with_state(p) {
            out.push(c);
            todo.push(c);
        }
    }
    out
}
