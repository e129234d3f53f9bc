//! What a bench samples from `/proc`: CPU time of a process and of its whole tree, the
//! machine's CPU ticks, a tree's PSS, and a thread that samples on a period.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::procfs;

/// CPU time (user + system) a process has used, in seconds (`/proc/<pid>/stat`).
pub fn cpu_seconds(pid: i32) -> f64 {
    let t = cpu_ticks(pid);
    (t[0] + t[1]) as f64 / 100.0
}

/// utime, stime, cutime and cstime of `pid` (the 14th to 17th fields of `/proc/<pid>/stat`), in
/// clock ticks (100 per second on Linux); zeros when it is gone.
fn cpu_ticks(pid: i32) -> [u64; 4] {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields resume after the command name's closing parenthesis.
    let rest = text.rfind(')').map_or("", |i| &text[i + 2..]);
    let f: Vec<&str> = rest.split(' ').collect();
    std::array::from_fn(|i| f.get(11 + i).and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// `pid` and every live process under it.
fn tree(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        out.push(p);
        todo.extend(procfs::children_with_state(p).into_iter().map(|(c, _)| c));
    }
    out
}

/// CPU time (user + system, in seconds) of `pid`, of the children it reaped, and of every live
/// process under it with the children each of those reaped: a served tree's whole CPU so far.
pub fn tree_cpu_seconds(pid: i32) -> f64 {
    let ticks: u64 = tree(pid)
        .into_iter()
        .map(|p| cpu_ticks(p).iter().sum::<u64>())
        .sum();
    ticks as f64 / 100.0
}

/// The machine's CPU time from `/proc/stat`'s `cpu` line, in clock ticks: (busy, idle, steal),
/// where busy is user + nice + system + irq + softirq and idle is idle + iowait.
pub fn machine_ticks() -> (u64, u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = text
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    (at(0) + at(1) + at(2) + at(5) + at(6), at(3) + at(4), at(7))
}

/// PSS of `pid` and all its descendants, in kB (`/proc/<pid>/smaps_rollup`).
pub fn tree_pss_kb(pid: i32) -> u64 {
    tree(pid)
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/smaps_rollup")).ok())
        .filter_map(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .sum()
}

/// A thread that takes a sample every `period` until [`Sampler::finish`].
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<u64>>,
}

impl Sampler {
    /// Calls `sample` now and then every `period`.
    pub fn every(period: Duration, mut sample: impl FnMut() -> u64 + Send + 'static) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                samples.push(sample());
                std::thread::sleep(period);
            }
            samples
        });
        Sampler { stop, thread }
    }

    /// Stops the thread; every sample, in order.
    pub fn finish(self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("sampler thread")
    }
}
