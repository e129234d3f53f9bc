//! One supervised child (spawned or forked by a warm parent, see [`crate::child`]) in its own
//! process group: both pipes read concurrently line by line, a heartbeat timer, a deadline,
//! cancellation, and the stop sequence (SIGTERM to the group, the grace period, SIGKILL),
//! after which no process of the child is left and every one is reaped.
//!
//! The supervisor knows nothing of payloads or events: it reports to an [`Observer`].

pub mod kill;
pub mod lines;

use std::pin::Pin;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use futures_util::future::ready;
use futures_util::stream;
use futures_util::{FutureExt, StreamExt};
use nix::sys::signal::Signal;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::time::{sleep_until, Instant as TokioInstant};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

pub use crate::child::{Child, Pipes, Spec};
use crate::reaper;
use crate::wire::Stream;
use kill::TaskProcesses;
pub use lines::Line;

/// A heartbeat's facts.
#[derive(Debug, Clone, Copy)]
pub struct Heartbeat {
    /// Since spawn.
    pub elapsed: Duration,
    /// The child's pid.
    pub pid: u32,
    /// Since the last output line, if any came.
    pub since_output: Option<Duration>,
}

/// Receives what the child does.
pub trait Observer: Send {
    /// The child is running with this pid.
    fn started(&mut self, pid: u32);
    /// One line of output.
    fn line(&mut self, stream: Stream, line: Line);
    /// The heartbeat timer fired (also once at start).
    fn heartbeat(&mut self, hb: Heartbeat);
    /// A batch of lines ended: a good moment to flush.
    fn flush(&mut self);
    /// Something the supervisor did (a kill), worth a log line and an event.
    fn note(&mut self, message: String);
}

/// Why the supervision ended.
#[derive(Debug)]
pub enum Outcome {
    /// The child exited by itself.
    Exited(ExitStatus),
    /// The deadline passed; the child was stopped.
    TimedOut,
    /// Cancelled; the child was stopped.
    Cancelled,
    /// The program could not be started.
    SpawnFailed(std::io::Error),
    /// Its exit status could not be had (the process is gone; how it ended is not known).
    WaitFailed(std::io::Error),
}

/// Lines handled before the observer is told to flush.
const BATCH: usize = 512;
/// How long to wait for pipes to close once every process of the task is gone or killed, and
/// for the last processes to be gone after that.
const DRAIN_BOUND: Duration = Duration::from_secs(2);
/// Batches read at most, at the drain bound, from pipes whose writers are all gone.
const DRAIN_BATCHES: usize = 4096;
/// How often the settling phase looks again for processes of the task.
const SETTLE_POLL: Duration = Duration::from_millis(5);

/// Where one supervision is. Each phase has at most one instant it waits for, and the loop in
/// [`run`] has one timer arm for it.
#[derive(Debug)]
enum Phase {
    /// The child runs; cancel and the deadline stop it.
    Running,
    /// SIGTERM went to the task for `why`; SIGKILL follows at `kill_at` (`None` once sent).
    Stopping {
        why: Stop,
        kill_at: Option<TokioInstant>,
    },
    /// The leader is gone and `status` is how the run ends; its pipes are read until they
    /// close, or until `drain_until` at the latest.
    Exited {
        status: Outcome,
        drain_until: TokioInstant,
    },
    /// The pipes are done with; what is left of the task is killed and reaped until nothing
    /// is, or `until`.
    Settling {
        status: Outcome,
        until: TokioInstant,
    },
}

/// Why a running child is stopped.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Cancelled,
    Deadline(Duration),
}

impl Phase {
    /// The instant this phase waits for; `None` waits for something else.
    fn wakes_at(&self, deadline: TokioInstant) -> Option<TokioInstant> {
        match self {
            Phase::Running => Some(deadline),
            Phase::Stopping { kill_at, .. } => *kill_at,
            Phase::Exited { drain_until, .. } => Some(*drain_until),
            Phase::Settling { .. } => Some(TokioInstant::now() + SETTLE_POLL),
        }
    }

    /// Exited with both pipes done: on to settling, for at most `bound`.
    fn settling(self, bound: Duration) -> Phase {
        match self {
            Phase::Exited { status, .. } => Phase::Settling {
                status,
                until: TokioInstant::now() + bound,
            },
            other => other,
        }
    }

    /// Whether the leader is still to be waited for.
    fn leader_alive(&self) -> bool {
        matches!(self, Phase::Running | Phase::Stopping { .. })
    }
}

/// Time bounds that are not the task's own (tests shorten them).
#[derive(Debug, Clone, Copy)]
struct Bounds {
    drain: Duration,
}

/// Runs the child to its end. Returns only when no process of the task is left (or the drain
/// bound passed with pipes still open from a process that could not be killed).
pub async fn run(
    spec: Spec,
    child: std::io::Result<Child>,
    cancel: CancellationToken,
    obs: &mut dyn Observer,
) -> Outcome {
    let bounds = Bounds { drain: DRAIN_BOUND };
    supervise(spec, child, cancel, obs, bounds).await
}

async fn supervise(
    spec: Spec,
    child: std::io::Result<Child>,
    cancel: CancellationToken,
    obs: &mut dyn Observer,
    bounds: Bounds,
) -> Outcome {
    let started = Instant::now();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => return Outcome::SpawnFailed(e),
    };
    let pid = child.pid();
    let Some(pipes) = child.pipes.take() else {
        return Outcome::SpawnFailed(std::io::Error::other("the child's pipes were taken"));
    };
    let marker = format!("{}={}", spec.marker.0, spec.marker.1).into_bytes();
    let Some(mut procs) = TaskProcesses::new(pid as i32, marker, child.cgroup.take()) else {
        // Cannot happen for a fresh child; refuse to signal an unsafe group.
        child.start_kill();
        let status = child.wait().await;
        reaper::release(pid as i32);
        child.kill_holder();
        return match status {
            Ok(s) => Outcome::Exited(s),
            Err(e) => Outcome::SpawnFailed(e),
        };
    };
    if let Some(holder) = child.holder {
        procs.exempt(holder as i32);
    }
    let Pipes {
        stdin: mut stdin_pipe,
        stdout,
        stderr,
    } = pipes;
    let input = spec.stdin;
    let sent = child.stdin_sent.min(input.len());
    tokio::spawn(async move {
        // A child that exits without reading its stdin is not an error.
        let _ = stdin_pipe.write_all(&input[sent..]).await;
    });
    let mut lines = Some(merged_lines(stdout, stderr, spec.max_line));

    obs.started(pid);
    let mut last_output: Option<Instant> = None;
    let heartbeat = |last: Option<Instant>| Heartbeat {
        elapsed: started.elapsed(),
        pid,
        since_output: last.map(|t| t.elapsed()),
    };
    obs.heartbeat(heartbeat(last_output));
    obs.flush();
    let mut ticker = tokio::time::interval_at(TokioInstant::now() + spec.heartbeat, spec.heartbeat);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let deadline = TokioInstant::now() + spec.deadline;
    let mut phase = Phase::Running;
    // What a stop signals, for the notes.
    let whom = match procs.cgroup() {
        Some(cg) => format!("process group {pid} and cgroup {}", cg.name()),
        None => format!("process group {pid}"),
    };
    // SIGTERM to the whole task, and SIGKILL after the grace: the same for cancel and deadline.
    let begin_stop = |why: Stop, procs: &mut TaskProcesses, obs: &mut dyn Observer| {
        obs.note(match why {
            Stop::Cancelled => format!("cancelled: SIGTERM to {whom}"),
            Stop::Deadline(d) => {
                format!("deadline of {}ms passed: SIGTERM to {whom}", d.as_millis())
            }
        });
        procs.signal_all(Signal::SIGTERM, true);
        Phase::Stopping {
            why,
            kill_at: Some(TokioInstant::now() + spec.kill_grace),
        }
    };

    let status = loop {
        if lines.is_none() {
            phase = phase.settling(bounds.drain);
        }
        // Settling: each turn reaps, looks and kills again, until nothing of the task is left.
        // Group members killed are our children (as a subreaper) and signals land
        // asynchronously, so the result is only answered once no process of the task exists.
        phase = match phase {
            Phase::Settling { status, until } => {
                reaper::reap_orphans();
                if !procs.any_left(false) || TokioInstant::now() >= until {
                    break status;
                }
                procs.signal_all(Signal::SIGKILL, false);
                Phase::Settling { status, until }
            }
            other => other,
        };
        let wakes_at = phase.wakes_at(deadline);
        tokio::select! {
            biased;
            // First: a flood on the pipes never delays a heartbeat.
            _ = ticker.tick(), if phase.leader_alive() => {
                obs.heartbeat(heartbeat(last_output));
                obs.flush();
            }
            _ = cancel.cancelled(), if matches!(phase, Phase::Running) => {
                phase = begin_stop(Stop::Cancelled, &mut procs, obs);
            }
            status = child.wait(), if phase.leader_alive() => {
                reaper::release(pid as i32);
                child.kill_holder();
                if let Err(e) = &status {
                    tracing::warn!(pid, error = %e, "waiting for the child failed");
                }
                let status = match (&phase, status) {
                    (Phase::Stopping { why: Stop::Cancelled, .. }, _) => Outcome::Cancelled,
                    (Phase::Stopping { why: Stop::Deadline(_), .. }, _) => Outcome::TimedOut,
                    (_, Ok(s)) => Outcome::Exited(s),
                    (_, Err(e)) => Outcome::WaitFailed(e),
                };
                // The leader is gone: whatever it left behind is killed now.
                let left = procs.signal_all(Signal::SIGKILL, false);
                if left.total > 0 {
                    let mut note = format!("killed {} process(es) left behind outside process group {pid}", left.total);
                    if left.by_cgroup > 0 {
                        note.push_str(&format!(
                            " ({} found only through the task's cgroup: no AGENTDISPATCH_TASK_ID, not a descendant)",
                            left.by_cgroup
                        ));
                    }
                    obs.note(note);
                }
                phase = Phase::Exited { status, drain_until: TokioInstant::now() + bounds.drain };
            }
            _ = sleep_until_some(wakes_at) => {
                phase = match phase {
                    Phase::Running => begin_stop(Stop::Deadline(spec.deadline), &mut procs, obs),
                    Phase::Stopping { why, .. } => {
                        obs.note(format!("grace of {}ms passed: SIGKILL to {whom}", spec.kill_grace.as_millis()));
                        procs.signal_all(Signal::SIGKILL, true);
                        Phase::Stopping { why, kill_at: None }
                    }
                    Phase::Exited { status, .. } if procs.any_left(false) => {
                        procs.signal_all(Signal::SIGKILL, false);
                        Phase::Exited { status, drain_until: TokioInstant::now() + bounds.drain }
                    }
                    Phase::Exited { status, drain_until } => {
                        // Every process is gone: what the pipes still buffer is the task's output
                        // (this timer can fire before the pipes were read, on a loaded machine).
                        for _ in 0..DRAIN_BATCHES {
                            if drain_ready(&mut lines, obs) == 0 {
                                break;
                            }
                        }
                        obs.flush();
                        if lines.take().is_some() {
                            obs.note("output pipes still open after every process ended; stopped reading".into());
                        }
                        Phase::Exited { status, drain_until }
                    }
                    // Its turn is at the top of the loop.
                    settling @ Phase::Settling { .. } => settling,
                };
            }
            line = next_line(&mut lines) => {
                if let Some((stream, line)) = line {
                    last_output = Some(Instant::now());
                    take_batch(stream, line, &mut lines, obs).await;
                }
            }
        }
    };
    if let Err(e) = procs.remove_cgroup() {
        obs.note(format!("the task's cgroup cannot be removed: {e}"));
    }
    status
}

/// Both pipes as one stream of lines, each with the pipe it came from. It ends when both have
/// ended; a read error ends its pipe (the decoder itself never fails).
type Lines = Pin<Box<dyn futures_util::Stream<Item = (Stream, Line)> + Send>>;

fn merged_lines(stdout: pipe::Receiver, stderr: pipe::Receiver, max_line: usize) -> Lines {
    let read = |pipe, stream| {
        FramedRead::new(pipe, lines::LineDecoder::new(max_line))
            .take_while(|line| ready(line.is_ok()))
            .filter_map(move |line| ready(line.ok().map(|line| (stream, line))))
    };
    Box::pin(stream::select(
        read(stdout, Stream::Stdout),
        read(stderr, Stream::Stderr),
    ))
}

/// A line, then the lines ready behind it, then the thread handed back: tokio's budget counts
/// pipe reads, not lines, so /ping and other tasks never wait behind a flood.
async fn take_batch(
    stream: Stream,
    first: Line,
    lines: &mut Option<Lines>,
    obs: &mut dyn Observer,
) {
    obs.line(stream, first);
    drain_ready(lines, obs);
    obs.flush();
    tokio::task::yield_now().await;
}

/// The next line of either pipe; sets `lines` to `None` once both ended.
async fn next_line(lines: &mut Option<Lines>) -> Option<(Stream, Line)> {
    let Some(stream) = lines.as_mut() else {
        return std::future::pending().await;
    };
    let line = stream.next().await;
    if line.is_none() {
        *lines = None;
    }
    line
}

/// Hands over lines that are already buffered, up to a batch, without waiting; how many.
fn drain_ready(lines: &mut Option<Lines>, obs: &mut dyn Observer) -> usize {
    let mut n = 0;
    for _ in 0..BATCH {
        match next_line(lines).now_or_never() {
            Some(Some((stream, line))) => {
                obs.line(stream, line);
                n += 1;
            }
            _ => break,
        }
    }
    n
}

/// Sleeps until `at`; forever when there is no such instant.
async fn sleep_until_some(at: Option<TokioInstant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
