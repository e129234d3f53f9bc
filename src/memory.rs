//! Handing freed memory back to the system once the worker is idle.
//!
//! A burst of tasks leaves the allocator's high water behind: glibc keeps the pages of freed
//! chunks mapped (in every thread's arena), so RSS after a burst stays near its peak although
//! its tasks are gone (`bench/README.md`, "Soak"). `malloc_trim(0)` returns every free page of
//! every arena. It runs only while no task runs:
//! - when the worker has been idle for [`GATHER_SECS`] after a busy spell, or after finished
//!   tasks left memory (at most once per [`MIN_INTERVAL`]);
//! - once more when it has been idle for [`QUIET_SECS`]: by then tokio has ended the blocking
//!   threads that served the spell (10 s after their last work), and what they held is free.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often the trimmer looks.
const TICK: Duration = Duration::from_secs(1);
/// Idle this long (whole seconds of the busy clock) before a trim.
const GATHER_SECS: u64 = 2;
/// Idle this long before the last trim of an idle spell.
const QUIET_SECS: u64 = 12;
/// At most one trim per this long, but for the last one.
const MIN_INTERVAL: Duration = Duration::from_secs(5);

/// Asks for trims; one background task does them.
#[derive(Clone, Default)]
pub struct Trimmer {
    freed: Arc<AtomicBool>,
}

impl Trimmer {
    /// A trimmer and its background task on the current tokio runtime (none outside one).
    /// `busy` is the worker's `/ping` state: whether a task runs, and the unix second that
    /// last changed; `None` once the worker is gone (the task ends).
    pub fn start(busy: impl Fn() -> Option<(bool, u64)> + Send + 'static) -> Trimmer {
        let t = Trimmer::default();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(run(t.freed.clone(), busy));
        }
        t
    }

    /// Memory was freed in bulk (finished tasks left memory): trim once idle.
    pub fn freed(&self) {
        self.freed.store(true, Ordering::Relaxed);
    }
}

async fn run(freed: Arc<AtomicBool>, busy: impl Fn() -> Option<(bool, u64)>) {
    // Not at once: the worker that `busy` looks at may still be under construction.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // The idle spell (the second it began) already trimmed for, early and late.
    let mut trimmed_early: Option<u64> = None;
    let mut trimmed_late: Option<u64> = None;
    let mut last_trim: Option<Instant> = None;
    loop {
        tick.tick().await;
        let Some((running, since)) = busy() else {
            return;
        };
        if running {
            continue;
        }
        let idle = unix_now().saturating_sub(since);
        if idle >= QUIET_SECS && trimmed_late != Some(since) {
            trimmed_late = Some(since);
            trimmed_early = Some(since);
            freed.store(false, Ordering::Relaxed);
            trim_idle();
            last_trim = Some(Instant::now());
            continue;
        }
        let due = trimmed_early != Some(since) || freed.load(Ordering::Relaxed);
        let spaced = last_trim.is_none_or(|t| t.elapsed() >= MIN_INTERVAL);
        if idle >= GATHER_SECS && due && spaced {
            trimmed_early = Some(since);
            freed.store(false, Ordering::Relaxed);
            trim_idle();
            last_trim = Some(Instant::now());
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// [`trim`], with what it did in the log. On the runtime's thread: it takes a few
/// milliseconds, and only while no task runs (a blocking thread would itself be one more thread
/// to end and free).
fn trim_idle() {
    let before = resident_kb();
    let began = Instant::now();
    trim();
    tracing::debug!(
        durationUs = began.elapsed().as_micros() as u64,
        rssBeforeKb = before,
        rssAfterKb = resident_kb(),
        "returned freed memory to the system"
    );
}

/// This process's resident memory in kB (0 when `/proc` cannot tell).
fn resident_kb() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|t| t.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| {
            // SAFETY: sysconf only reads a system value.
            let page = unsafe { nix::libc::sysconf(nix::libc::_SC_PAGESIZE) };
            pages * u64::try_from(page).unwrap_or(4096) / 1024
        })
}

/// `malloc_trim(0)` where the allocator is glibc's; nothing elsewhere.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator's own arenas.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}
