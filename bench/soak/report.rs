//! The report: per kind of task, then the worker's resources against the baseline, the task
//! folders, the shutdown and the wrong answers.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::common::mb;
use crate::load::{Shared, KINDS};
use crate::measure::Sample;
use crate::{FD_SLACK, RSS_SLACK, THREAD_SLACK};

/// What a soak run measured, beside the shared counters.
pub struct Run {
    pub tasks: usize,
    pub baseline_at: usize,
    /// Time spent running tasks (both phases), the second phase alone, and the wall time.
    pub run_time: Duration,
    pub second_phase: Duration,
    pub wall: Duration,
    /// The worker's resources at the baseline, right after the last task, and settled at the end.
    pub base: Sample,
    pub mid: Sample,
    pub end: Sample,
    pub folders: Result<usize, String>,
    pub shutdown: Result<(), String>,
}

/// Prints the report; whether the run passed.
pub fn print(sh: &Shared, run: &Run) -> bool {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{:<26} {:>6} {:>6} {:>10} {:>10}",
        "kind", "tasks", "wrong", "mean ms", "max ms"
    );
    let stats = *sh.stats.lock().unwrap();
    for k in KINDS {
        let s = stats[k.index()];
        let mean = if s.count > 0 {
            s.total_ms / s.count as f64
        } else {
            0.0
        };
        let _ = writeln!(
            out,
            "{:<26} {:>6} {:>6} {:>10.1} {:>10.1}",
            k.name(),
            s.count,
            s.failed,
            mean,
            s.max_ms
        );
    }
    let total: u64 = stats.iter().map(|s| s.count).sum();
    let _ = writeln!(
        out,
        "{:<26} {:>6} {:>6}   in {:.1?} of tasks ({:.1}/s; {:.1}/s after the baseline), {:.1?} wall",
        "all",
        total,
        stats.iter().map(|s| s.failed).sum::<u64>(),
        run.run_time,
        total as f64 / run.run_time.as_secs_f64(),
        (run.tasks - run.baseline_at) as f64 / run.second_phase.as_secs_f64(),
        run.wall
    );

    let rss_ratio = run.end.rss_kb as f64 / run.base.rss_kb.max(1) as f64;
    let checks = [
        (
            "RSS",
            format!("{} kB ({})", run.base.rss_kb, mb(run.base.rss_kb)),
            format!(
                "{} kB ({}), {:+.1}%",
                run.end.rss_kb,
                mb(run.end.rss_kb),
                (rss_ratio - 1.0) * 100.0
            ),
            format!("<= +{:.0}%", RSS_SLACK * 100.0),
            rss_ratio <= 1.0 + RSS_SLACK,
        ),
        (
            "open fds",
            run.base.fds.to_string(),
            run.end.fds.to_string(),
            format!("<= baseline + {FD_SLACK}"),
            run.end.fds <= run.base.fds + FD_SLACK,
        ),
        (
            "threads",
            run.base.threads.to_string(),
            run.end.threads.to_string(),
            format!("<= baseline + {THREAD_SLACK}"),
            run.end.threads <= run.base.threads + THREAD_SLACK,
        ),
        (
            "zombie children",
            format!("{:?}", run.base.zombies),
            format!("{:?}", run.end.zombies),
            "none".into(),
            run.base.zombies.is_empty() && run.end.zombies.is_empty(),
        ),
        (
            "live children",
            run.base.children.to_string(),
            run.end.children.to_string(),
            "0".into(),
            run.end.children == 0,
        ),
        (
            "warm parents",
            run.base.warm.to_string(),
            run.end.warm.to_string(),
            "(parents, spares)".into(),
            true,
        ),
    ];
    let _ = writeln!(
        out,
        "\n{:<16} {:>22} {:>30} {:>20}  verdict",
        "resource", "baseline", "end", "limit"
    );
    let mut pass = true;
    for (name, b, e, limit, ok) in &checks {
        pass &= ok;
        let _ = writeln!(
            out,
            "{name:<16} {b:>22} {e:>30} {limit:>20}  {}",
            if *ok { "ok" } else { "FAIL" }
        );
    }
    let _ = writeln!(
        out,
        "(peak RSS {}; right after the last task: RSS {} kB, fds {}, threads {})",
        mb(run.end.hwm_kb),
        run.mid.rss_kb,
        run.mid.fds,
        run.mid.threads
    );
    match &run.folders {
        Ok(n) => {
            let _ = writeln!(out, "task folders complete: {n}/{}", run.tasks);
        }
        Err(e) => sh.fail(format!("task folders: {e}")),
    }
    let _ = writeln!(
        out,
        "task.status answered from disk for {} dropped tasks",
        sh.disk_checks.load(Ordering::Relaxed)
    );
    match &run.shutdown {
        Ok(()) => {
            let _ = writeln!(out, "SIGTERM: exit status 0");
        }
        Err(e) => sh.fail(e.clone()),
    }
    let failures = sh.failures.lock().unwrap().clone();
    let _ = writeln!(out, "wrong answers: {}", failures.len());
    for f in failures.iter().take(20) {
        let _ = writeln!(out, "  {f}");
    }
    pass &= failures.is_empty() && total == run.tasks as u64;
    print!("{out}");
    pass
}
