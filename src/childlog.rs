//! The agent's own account on the worker's log (SPEC §10, §12): each line a framework child
//! writes that is not a protocol line (a `print`, a `logging` record, a traceback) is also one
//! JSON log line of the worker, with the task's ids, because on AgentCore stdout is what
//! CloudWatch shows and the task's events are not.
//!
//! A child must not be able to drown the worker's log, nor slow the worker (the log is written
//! on the thread that reads the child's pipes): each line is clipped to [`MAX_LINE_BYTES`],
//! and two token buckets, one per task and one for the whole worker, let a burst through and
//! then a steady rate. Lines held back are counted and said in one line of that task later
//! (at most every [`REPORT_EVERY`], at a heartbeat, and at the task's end). Every line stays in
//! the task's events and `events.ndjson` either way.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::ConfigError;
use crate::task::Task;
use crate::wire::Stream;

/// Which lines reach the log.
pub const MODE_VAR: &str = "AGENTDISPATCH_CHILD_LOG";
/// One task's steady rate, in lines per second.
pub const RATE_VAR: &str = "AGENTDISPATCH_CHILD_LOG_LINES_PER_SECOND";

/// Longest line logged whole: a traceback's or a log record's line fits; a JSON dump is cut.
pub const MAX_LINE_BYTES: usize = 4096;
/// A task may log this many seconds of its rate at once (a traceback, a start-up banner).
const TASK_BURST_SECONDS: f64 = 5.0;
/// The whole worker logs at this many times one task's rate (several tasks log at once).
const OVERALL_FACTOR: f64 = 4.0;
/// Default of [`RATE_VAR`].
const DEFAULT_RATE: u32 = 100;
/// Shortest interval between two lines saying how many lines of one task were held back.
pub const REPORT_EVERY: Duration = Duration::from_secs(5);

/// `AGENTDISPATCH_CHILD_LOG`: which of a framework child's lines are logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// None.
    Off,
    /// Its stderr lines (where `print` and `logging` go under the Python helper).
    Stderr,
    /// Its stderr lines and the stdout lines that are not protocol lines.
    All,
}

/// The child-log settings.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Which lines.
    pub mode: Mode,
    /// One task's steady rate (lines per second).
    pub per_second: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            mode: Mode::All,
            per_second: DEFAULT_RATE,
        }
    }
}

impl Settings {
    /// From the two variables' values (trimmed, `None` when unset or empty).
    pub fn parse(mode: Option<&str>, rate: Option<&str>) -> Result<Self, ConfigError> {
        let bad = |var: &str, reason: String| ConfigError {
            var: var.to_string(),
            reason,
        };
        let mode = match mode.map(str::to_ascii_lowercase).as_deref() {
            None | Some("all" | "on") => Mode::All,
            Some("stderr") => Mode::Stderr,
            Some("off" | "none") => Mode::Off,
            Some(_) => {
                return Err(bad(
                    MODE_VAR,
                    format!(
                        "{:?} is none of \"all\", \"stderr\", \"off\"",
                        mode.unwrap_or("")
                    ),
                ))
            }
        };
        let per_second = match rate {
            None => DEFAULT_RATE,
            Some(v) => match v.parse::<u32>() {
                Ok(n) if (1..=1_000_000).contains(&n) => n,
                _ => {
                    return Err(bad(
                        RATE_VAR,
                        format!(
                            "{v:?} is not a whole number of lines per second from 1 to 1000000"
                        ),
                    ))
                }
            },
        };
        Ok(Settings { mode, per_second })
    }
}

/// A token bucket: `capacity` lines at once, then `per_second`.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    capacity: f64,
    per_second: f64,
    at: Instant,
}

impl Bucket {
    fn new(per_second: f64, capacity: f64) -> Self {
        Bucket {
            tokens: capacity,
            capacity,
            per_second,
            at: Instant::now(),
        }
    }

    /// Whether a line may pass now (refilled first; nothing taken).
    fn has(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.at = now;
        self.tokens >= 1.0
    }
}

/// The worker's share of child log lines, and the settings.
#[derive(Debug)]
pub struct Budget {
    settings: Settings,
    overall: Mutex<Bucket>,
}

impl Budget {
    /// A full budget for `settings`.
    pub fn new(settings: Settings) -> Self {
        let rate = f64::from(settings.per_second) * OVERALL_FACTOR;
        Budget {
            settings,
            overall: Mutex::new(Bucket::new(rate, rate * TASK_BURST_SECONDS)),
        }
    }

    /// Takes one line from the whole worker's share, if there is one.
    fn take(&self, now: Instant) -> bool {
        let mut b = self.overall.lock().unwrap_or_else(|p| p.into_inner());
        let ok = b.has(now);
        if ok {
            b.tokens -= 1.0;
        }
        ok
    }
}

/// Lines held to one bucket's rate, counting what it holds back: a task's (in [`TaskLog`]),
/// or a warm parent's own output.
#[derive(Debug)]
pub struct Limited {
    bucket: Bucket,
    /// Lines held back and not yet said.
    dropped: u64,
    /// Lines held back in all.
    dropped_total: u64,
    last_report: Instant,
}

impl Limited {
    /// A full bucket of `per_second` lines a second, after a burst of a few seconds' worth.
    pub fn new(per_second: u32) -> Self {
        let rate = f64::from(per_second);
        Limited {
            bucket: Bucket::new(rate, rate * TASK_BURST_SECONDS),
            dropped: 0,
            dropped_total: 0,
            last_report: Instant::now(),
        }
    }

    /// Whether a line passes now: this bucket first, then `also` (a line held back here takes
    /// nothing from a shared bucket).
    pub fn admit(&mut self, now: Instant, also: impl FnOnce() -> bool) -> bool {
        let passes = self.bucket.has(now) && also();
        if passes {
            self.bucket.tokens -= 1.0;
        } else {
            self.dropped += 1;
            self.dropped_total += 1;
        }
        passes
    }

    /// Whether it is time to say what was held back (not after each line that passes in a
    /// flood: one line every few seconds says it all).
    pub fn due(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_report) >= REPORT_EVERY
    }

    /// Whether lines were held back and not yet said.
    pub fn holding(&self) -> bool {
        self.dropped > 0
    }

    /// The lines held back since it last said (and in all), to say now; `None` when none were.
    pub fn take_dropped(&mut self) -> Option<(u64, u64)> {
        self.last_report = Instant::now();
        let n = std::mem::take(&mut self.dropped);
        (n > 0).then_some((n, self.dropped_total))
    }
}

/// `text` as logged: whole, or clipped to [`MAX_LINE_BYTES`] with a note saying how long it
/// was (`cut`: the pipe reader cut it already, at `text.len()`); whether it was clipped.
pub fn clip(text: &str, cut: bool) -> (std::borrow::Cow<'_, str>, bool) {
    if text.len() <= MAX_LINE_BYTES && !cut {
        return (text.into(), false);
    }
    let mut at = MAX_LINE_BYTES.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let whole = if cut {
        format!("over {}", text.len())
    } else {
        text.len().to_string()
    };
    (
        format!("{} … [line clipped: {whole} bytes in all]", &text[..at]).into(),
        true,
    )
}

/// One task's child log: its bucket, what it held back, and the worker's share.
pub struct TaskLog<'a> {
    budget: &'a Budget,
    limit: Limited,
}

/// One log line of `task`, with its ids (the `task_log!` fields) under the `child` target, so
/// that `RUST_LOG=child=off` silences them too.
macro_rules! child_log {
    ($level:ident, $task:expr, $($rest:tt)+) => {
        match $task.ids.session_id.as_deref() {
            Some(session) => tracing::$level!(
                target: "child",
                taskId = %$task.id,
                requestId = %$task.ids.request_id,
                sessionId = session,
                framework = %$task.label,
                $($rest)+
            ),
            None => tracing::$level!(
                target: "child",
                taskId = %$task.id,
                requestId = %$task.ids.request_id,
                framework = %$task.label,
                $($rest)+
            ),
        }
    };
}

impl<'a> TaskLog<'a> {
    /// A task's log, with a full bucket.
    pub fn new(budget: &'a Budget) -> Self {
        TaskLog {
            budget,
            limit: Limited::new(budget.settings.per_second),
        }
    }

    /// Whether lines of `stream` are logged at all.
    pub fn wants(&self, stream: Stream) -> bool {
        match self.budget.settings.mode {
            Mode::Off => false,
            Mode::Stderr => stream == Stream::Stderr,
            Mode::All => true,
        }
    }

    /// Logs one line of the child's `stream` (`cut`: the pipe reader cut it already), or
    /// counts it when the task or the worker is over its rate.
    pub fn line(&mut self, task: &Task, stream: Stream, text: &str, cut: bool) {
        if !self.wants(stream) {
            return;
        }
        let now = Instant::now();
        let passes = self.limit.admit(now, || self.budget.take(now));
        if self.limit.due(now) {
            self.report(task);
        }
        if !passes {
            return;
        }
        let stream = match stream {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        };
        match clip(text, cut) {
            (text, false) => child_log!(info, task, stream, "{text}"),
            (text, true) => child_log!(info, task, stream, clipped = true, "{text}"),
        }
    }

    /// Says how many lines were held back since it last said, if any (also at a heartbeat and
    /// at the task's end).
    pub fn report(&mut self, task: &Task) {
        if let Some((n, total)) = self.limit.take_dropped() {
            child_log!(
                warn,
                task,
                droppedLines = n,
                droppedTotal = total,
                "{n} lines of the agent's output were not logged here ({RATE_VAR}={} per task, {}× for the worker); the task's events keep every line",
                self.budget.settings.per_second,
                OVERALL_FACTOR
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_rates_parse_and_bad_ones_name_their_variable() {
        let s = Settings::parse(None, None).unwrap();
        assert_eq!((s.mode, s.per_second), (Mode::All, DEFAULT_RATE));
        assert_eq!(Settings::parse(Some("OFF"), None).unwrap().mode, Mode::Off);
        assert_eq!(
            Settings::parse(Some("stderr"), Some("7"))
                .unwrap()
                .per_second,
            7
        );
        let e = Settings::parse(Some("loud"), None).unwrap_err();
        assert_eq!(e.var, MODE_VAR);
        for bad in ["0", "-1", "fast", "2000000"] {
            assert_eq!(Settings::parse(None, Some(bad)).unwrap_err().var, RATE_VAR);
        }
    }

    #[test]
    fn a_bucket_passes_its_burst_then_its_rate() {
        let mut b = Bucket::new(10.0, 3.0);
        let t0 = b.at;
        let mut passed = 0;
        for _ in 0..10 {
            if b.has(t0) {
                b.tokens -= 1.0;
                passed += 1;
            }
        }
        assert_eq!(passed, 3);
        // A tenth of a second later: one more line at 10 per second.
        assert!(b.has(t0 + Duration::from_millis(100)));
        b.tokens -= 1.0;
        assert!(!b.has(t0 + Duration::from_millis(100)));
    }
}
