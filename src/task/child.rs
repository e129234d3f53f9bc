//! A task's supervised child: an [`Observer`] that turns its lines into events, output and a
//! result, and the reading of how it ended into an [`Ending`].

use std::collections::VecDeque;

use serde_json::json;

use super::finish::Ending;
use super::runner::cancel_message;
use super::{Task, Worker};
use crate::childlog::TaskLog;
use crate::protocol::{self, ChildLine, ChildResult};
use crate::supervisor::{self, Child, Heartbeat, Line, Observer, Outcome};
use crate::task_log;
use crate::wire::{ErrorCode, EventDraft, EventPayload, EventType, Stream, TaskStatus};

/// Stderr lines kept for the error of a failed framework.
const STDERR_TAIL_LINES: usize = 20;
/// Longest stderr line kept for that error.
const STDERR_TAIL_LINE_BYTES: usize = 2000;

/// Refused delta lines each named in a warning event; past them they are only counted (a
/// child writing 100,000 bad lines gets a few warnings and one count, not 100,000 events).
const BAD_DELTA_WARNINGS: u64 = 10;

/// Turns what the child does into events, output and a result.
struct ChildObserver<'a> {
    task: &'a Task,
    /// Read stdout as the child protocol (frameworks), or as plain output (commands).
    protocol: bool,
    output: Output,
    result: Option<ChildResult>,
    /// The questions of a `task.interrupt` line (the last one wins, as for results).
    interrupts: Option<Vec<serde_json::Value>>,
    stderr_tail: VecDeque<String>,
    /// `task.delta` lines refused so far.
    bad_deltas: u64,
    /// A framework child's own lines on the worker's log (`None` for commands: their output
    /// is the answer, not the agent's account).
    agent_log: Option<TaskLog<'a>>,
}

/// Output text up to a cap; the rest is counted, and stays in `events.ndjson`.
struct Output {
    text: String,
    cap: usize,
    dropped: u64,
}

impl Output {
    fn push(&mut self, line: &str, newline: bool) {
        let need = line.len() + usize::from(newline);
        if self.dropped > 0 || self.text.len() + need > self.cap {
            self.dropped += need as u64;
            return;
        }
        if self.text.capacity() < self.text.len() + need {
            // Grow by doubling, but never past the cap: a full buffer is cap bytes, not 2x.
            let want = (self.text.len() * 2)
                .max(self.text.len() + need)
                .clamp(4096, self.cap);
            self.text.reserve_exact(want - self.text.len());
        }
        self.text.push_str(line);
        if newline {
            self.text.push('\n');
        }
    }

    fn finish(mut self) -> String {
        if self.dropped > 0 {
            self.text.reserve_exact(64);
            self.text.push_str(&format!(
                "\n[output truncated: {} more bytes in events.ndjson]",
                self.dropped
            ));
        }
        self.text
    }
}

impl ChildObserver<'_> {
    /// A `task.delta` line refused: warned about, up to [`BAD_DELTA_WARNINGS`].
    fn bad_delta(&mut self, why: &str) {
        self.bad_deltas += 1;
        if self.bad_deltas > BAD_DELTA_WARNINGS {
            return;
        }
        let more = if self.bad_deltas == BAD_DELTA_WARNINGS {
            " (further refused delta lines are counted at the end, not each named)"
        } else {
            ""
        };
        self.task.events.emit(&EventDraft::new(
            EventType::Log,
            format!("A task.delta line was refused: {why}.{more}"),
            Some(json!({"stream": "stdout", "source": "worker", "level": "warning"})),
        ));
    }

    fn log(&mut self, stream: Stream, text: String, truncated: bool, invalid_utf8: bool) {
        if let Some(agent_log) = &mut self.agent_log {
            agent_log.line(self.task, stream, &text, truncated);
        }
        self.task.events.emit(&EventDraft {
            kind: EventType::Log,
            message: Some(text),
            payload: Some(EventPayload::Line {
                stream,
                truncated,
                invalid_utf8,
            }),
        });
    }
}

impl Observer for ChildObserver<'_> {
    fn started(&mut self, pid: u32) {
        task_log!(debug, self.task, pid, "child started");
    }

    fn line(&mut self, stream: Stream, line: Line) {
        let (truncated, newline) = (line.truncated, line.newline);
        let (text, invalid) = line.into_text();
        if stream == Stream::Stderr {
            if self.stderr_tail.len() == STDERR_TAIL_LINES {
                self.stderr_tail.pop_front();
            }
            let mut tail = text.clone();
            if tail.len() > STDERR_TAIL_LINE_BYTES {
                let mut cut = STDERR_TAIL_LINE_BYTES;
                while !tail.is_char_boundary(cut) {
                    cut -= 1;
                }
                tail.truncate(cut);
            }
            self.stderr_tail.push_back(tail);
            return self.log(stream, text, truncated, invalid);
        }
        if !self.protocol {
            self.output.push(&text, newline);
            return self.log(stream, text, truncated, invalid);
        }
        match protocol::classify(&text) {
            ChildLine::Event(draft) => {
                self.task.events.emit(&draft);
            }
            ChildLine::Result(r) => {
                for e in &r.events {
                    self.task.events.emit(e);
                }
                self.result = Some(*r);
            }
            ChildLine::Delta(d) => self.task.events.delta(*d),
            ChildLine::BadDelta(why) => self.bad_delta(&why),
            ChildLine::Interrupt(questions) => {
                self.task.events.emit(&EventDraft::new(
                    EventType::Progress,
                    "input_required",
                    Some(json!({"interrupts": questions})),
                ));
                self.interrupts = Some(questions);
            }
            ChildLine::BadInterrupt(why) => {
                self.task.events.emit(&EventDraft::new(
                    EventType::Log,
                    format!("A task.interrupt line was refused: {why}."),
                    Some(json!({"stream": "stdout", "source": "worker", "level": "warning"})),
                ));
            }
            ChildLine::OtherJson => self.log(stream, text, truncated, invalid),
            ChildLine::Text => {
                self.output.push(&text, newline);
                self.log(stream, text, truncated, invalid)
            }
        }
    }

    fn heartbeat(&mut self, hb: Heartbeat) {
        if let Some(agent_log) = &mut self.agent_log {
            agent_log.report(self.task);
        }
        self.task.events.emit(&EventDraft::new(
            EventType::Heartbeat,
            "running",
            Some(json!({
                "status": "running",
                "elapsedMs": hb.elapsed.as_millis() as u64,
                "pid": hb.pid,
                "lastOutputMs": hb.since_output.map(|d| d.as_millis() as u64),
            })),
        ));
    }

    fn flush(&mut self) {
        self.task.events.flush();
    }

    fn note(&mut self, message: String) {
        task_log!(warn, self.task, "{message}");
        self.task.events.emit_now(&EventDraft::new(
            EventType::Log,
            message,
            Some(json!({"source": "worker"})),
        ));
    }
}

/// Supervises the child to its end and turns what it did into an [`Ending`].
pub(super) async fn supervise(
    worker: &Worker,
    task: &Task,
    spec: supervisor::Spec,
    child: std::io::Result<Child>,
    protocol: bool,
) -> Ending {
    let deadline_ms = spec.deadline.as_millis();
    let program = spec.argv[0].clone();
    let mut obs = ChildObserver {
        task,
        protocol,
        output: Output {
            text: String::new(),
            cap: worker.cfg.max_output_bytes,
            dropped: 0,
        },
        result: None,
        interrupts: None,
        stderr_tail: VecDeque::new(),
        bad_deltas: 0,
        agent_log: protocol.then(|| TaskLog::new(&worker.child_log)),
    };
    let outcome = supervisor::run(spec, child, task.cancel.clone(), &mut obs).await;
    if let Some(agent_log) = &mut obs.agent_log {
        agent_log.report(task);
    }
    if obs.bad_deltas > BAD_DELTA_WARNINGS {
        task.events.emit(&EventDraft::new(
            EventType::Log,
            format!(
                "{} task.delta lines were refused in all (the first {BAD_DELTA_WARNINGS} are named above).",
                obs.bad_deltas
            ),
            Some(json!({"stream": "stdout", "source": "worker", "level": "warning"})),
        ));
    }
    task.events.flush();
    let ChildObserver {
        output,
        result: child_result,
        interrupts,
        stderr_tail,
        ..
    } = obs;
    let plain = output.finish();
    let (output, result, declared, child_failed, child_error, child_code) = match child_result {
        Some(r) => {
            if let (true, Some(tb)) = (r.failed, &r.traceback) {
                // The whole traceback for whoever reads the worker's log; the answer and the
                // events keep the one line that says what failed (and the task folder the file).
                task_log!(info, task, error = r.error.as_deref().unwrap_or(""), traceback = %tb, "agent failed");
            }
            (
                r.output.unwrap_or_default(),
                r.result,
                r.artifacts,
                r.failed,
                r.error,
                r.error_code,
            )
        }
        None => (plain, None, Vec::new(), false, None, None),
    };
    let who = if protocol {
        "Framework command"
    } else {
        "Command"
    };
    let mut ending = Ending {
        ok: false,
        status: TaskStatus::Failed,
        output,
        result,
        error: None,
        error_code: None,
        exit_code: None,
        declared,
        asked: Default::default(),
    };
    match outcome {
        Outcome::SpawnFailed(e) => {
            let words = e.to_string();
            let mut error = format!("Cannot start {program}: {words}");
            if program.contains("/.venv/") && e.kind() == std::io::ErrorKind::NotFound {
                error.push_str(" (create the framework's virtualenv: scripts/setup-frameworks.sh)");
            }
            ending.error = Some(error);
            ending.error_code = Some(ErrorCode::SpawnFailed);
        }
        Outcome::WaitFailed(e) => {
            ending.error = Some(format!(
                "Cannot tell how {program} ended: waiting for it failed: {e}"
            ));
            ending.error_code = Some(ErrorCode::WaitFailed);
        }
        Outcome::TimedOut => {
            ending.status = TaskStatus::TimedOut;
            ending.error = Some(format!("Command timed out after {deadline_ms}ms."));
            ending.error_code = Some(ErrorCode::TimedOut);
        }
        Outcome::Cancelled => {
            ending.status = TaskStatus::Cancelled;
            ending.error = Some(cancel_message(worker));
            ending.error_code = Some(ErrorCode::Cancelled);
        }
        Outcome::Exited(status) => {
            use std::os::unix::process::ExitStatusExt;
            ending.exit_code = status.code();
            let tail = || {
                let t: Vec<&str> = stderr_tail.iter().map(String::as_str).collect();
                (!t.is_empty()).then(|| t.join("\n"))
            };
            match (status.code(), status.signal()) {
                (Some(0), _) if child_failed => {
                    ending.error =
                        Some(child_error.unwrap_or_else(|| "Framework reported a failure.".into()));
                    ending.error_code = Some(child_code.unwrap_or(ErrorCode::TaskFailed));
                }
                // A child that said why it failed (its result line: one-line error, the
                // agent's code) is answered with that, the exit status beside it.
                (Some(code), _) if protocol && child_failed && child_error.is_some() => {
                    ending.error = child_error;
                    ending.error_code = Some(child_code.unwrap_or(ErrorCode::ExitNonzero));
                    task.events.emit(&EventDraft::new(
                        EventType::Log,
                        ending.error.clone().unwrap_or_default(),
                        Some(json!({"stream": "stderr", "exitCode": code})),
                    ));
                }
                (Some(0), _) if interrupts.is_some() => {
                    // A child that asked (SPEC §14): its questions, not a result, are the end.
                    ending.ok = true;
                    ending.status = TaskStatus::InputRequired;
                    ending.asked.interrupts = interrupts;
                }
                (Some(0), _) => {
                    ending.ok = true;
                    ending.status = TaskStatus::Succeeded;
                }
                (Some(code), _) => {
                    let exited = format!("{who} exited with code {code}.");
                    // The reference worker's failure event: the last stderr lines, or the
                    // error when the child printed nothing there.
                    task.events.emit(&EventDraft::new(
                        EventType::Log,
                        tail().unwrap_or_else(|| exited.clone()),
                        Some(json!({"stream": "stderr", "exitCode": code})),
                    ));
                    ending.error = Some(match (protocol, tail()) {
                        (true, Some(t)) => t,
                        _ => exited,
                    });
                    ending.error_code = Some(ErrorCode::ExitNonzero);
                }
                (None, sig) => {
                    let name = sig
                        .and_then(|s| nix::sys::signal::Signal::try_from(s).ok())
                        .map_or_else(|| format!("{sig:?}"), |s| s.as_str().to_string());
                    let mut msg = format!("{who} was killed by signal {name}.");
                    if let (true, Some(t)) = (protocol, tail()) {
                        msg = format!("{msg}\n{t}");
                    }
                    ending.error = Some(msg);
                    ending.error_code = Some(ErrorCode::Killed);
                }
            }
        }
    }
    if !protocol {
        ending.result = Some(json!({"exitCode": ending.exit_code}));
    } else if ending.ok && ending.result.is_none() {
        // A child that gave no result object: the reference worker's default, so that the
        // `task.result` payload names the framework. (The reference also copies the child's
        // whole reply or stdout in; here those are the answer's `output` and events already.)
        ending.result = Some(json!({
            "framework": task.label,
            "completedAt": crate::events::now_ts(),
        }));
    }
    ending
}
