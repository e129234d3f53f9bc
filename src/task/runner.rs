//! The run of one task, as a straight line: accepted event → pick the runner (echo, framework
//! child, command) → supervise → result → task folder → `task.result` event.

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::{json, Value};

use super::{Task, Worker};
use crate::artifacts;
use crate::command;
use crate::frameworks::Launch;
use crate::protocol::{self, ChildLine, ChildResult};
use crate::sessions::{self, Ticket};
use crate::supervisor::{self, Child, Heartbeat, Line, Observer, Outcome};
use crate::task_log;
use crate::warm::Fallback;
use crate::wire::{
    Artifact, EventDraft, EventPayload, EventType, Payload, Stream, TaskResult, TaskStatus,
    TaskType,
};

/// Stderr lines kept for the error of a failed framework.
const STDERR_TAIL_LINES: usize = 20;
/// Longest stderr line kept for that error.
const STDERR_TAIL_LINE_BYTES: usize = 2000;

/// How the task turned out, before the folder is written.
struct Ending {
    ok: bool,
    status: TaskStatus,
    output: String,
    result: Option<Value>,
    error: Option<String>,
    error_code: Option<&'static str>,
    exit_code: Option<i32>,
    declared: Vec<Value>,
}

impl Ending {
    fn failed(error: impl Into<String>, code: &'static str) -> Self {
        Ending {
            ok: false,
            status: TaskStatus::Failed,
            output: String::new(),
            result: None,
            error: Some(error.into()),
            error_code: Some(code),
            exit_code: None,
            declared: Vec::new(),
        }
    }
}

/// Emits the first event, `accepted`, before the task is spawned, so that an async answer
/// always holds it.
pub fn accept(task: &Task, payload: &Payload) {
    let mut accepted = serde_json::Map::new();
    let what = if payload.task_type == TaskType::CommandRun {
        "command"
    } else {
        "framework"
    };
    accepted.insert(what.into(), Value::String(task.label.clone()));
    if let Some(s) = &task.ids.session_id {
        accepted.insert("sessionId".into(), Value::String(s.clone()));
    }
    accepted.insert(
        "requestId".into(),
        Value::String(task.ids.request_id.clone()),
    );
    task.events.emit_now(&EventDraft::new(
        EventType::Progress,
        "accepted",
        Some(Value::Object(accepted)),
    ));
}

/// Runs the task to its end and writes its folder; never panics on input.
pub async fn execute(
    worker: &Worker,
    task: &Task,
    payload: Payload,
    dir_error: Option<String>,
    ticket: Option<Ticket>,
) -> TaskResult {
    task_log!(info, task, taskType = payload.task_type.as_str(), label = %task.label, "task started");

    let ending = match dir_error {
        Some(e) => Ending::failed(e, "artifact_write_failed"),
        None => match payload.task_type {
            TaskType::CommandRun => run_command(worker, task, &payload).await,
            _ => match take_turn(worker, task, ticket).await {
                Ok(_turn) => run_agent(worker, task, &payload).await,
                Err(cancelled) => cancelled,
            },
        },
    };
    // Listing, hashing and writing the folder are file work: never on a thread that serves
    // HTTP (a child's FIFO or a huge file would stall it).
    let result = tokio::task::block_in_place(|| finish(task, ending));
    task_log!(
        info,
        task,
        status = result.status.as_str(),
        exitCode = result.exit_code,
        durationMs = result.duration_ms,
        error = result.error.as_deref(),
        "task finished"
    );
    result
}

/// An `agent.run` of a session waits for the session's earlier turns (saying so in an event);
/// a cancel or shutdown while it waits ends it.
async fn take_turn(
    worker: &Worker,
    task: &Task,
    ticket: Option<Ticket>,
) -> Result<Option<Ticket>, Ending> {
    let (Some(session), Some(ticket)) = (task.ids.session_id.as_deref(), ticket) else {
        return Ok(None);
    };
    let waiting = || {
        task_log!(info, task, "waiting for the session's previous turn");
        task.events.emit_now(&EventDraft::new(
            EventType::Progress,
            "waiting for the session's previous turn",
            Some(json!({"sessionId": session, "waiting": true})),
        ));
    };
    tokio::select! {
        _ = ticket.wait(waiting) => Ok(Some(ticket)),
        _ = task.cancel.cancelled() => {
            let mut e = Ending::failed(cancel_message(worker), "cancelled");
            e.status = TaskStatus::Cancelled;
            Err(e)
        }
    }
}

fn cancel_message(worker: &Worker) -> String {
    if worker.shutdown.is_cancelled() {
        "Task cancelled: the worker is shutting down.".into()
    } else {
        "Task cancelled.".into()
    }
}

async fn run_agent(worker: &Worker, task: &Task, payload: &Payload) -> Ending {
    let name = task.label.as_str();
    let Some(fw) = worker.frameworks.get(name) else {
        // The error is the reference worker's own words; the names a caller can use go in a
        // log event beside it (shown by `run`, kept in the answer's events).
        let known: Vec<&str> = worker.frameworks.iter().map(|f| f.name.as_str()).collect();
        task.events.emit_now(&EventDraft::new(
            EventType::Log,
            format!("known frameworks: {}", known.join(", ")),
            Some(json!({"source": "worker", "framework": name, "known": known})),
        ));
        return Ending::failed(
            format!("Unsupported agent framework: {name}"),
            "unknown_framework",
        );
    };
    match &fw.launch {
        Launch::Echo => {
            // One heartbeat between accepted and the result, as the reference worker's echo
            // (a child gets one when it starts, then one per interval).
            task.events.emit(&EventDraft::new(
                EventType::Heartbeat,
                "running",
                Some(json!({
                    "status": "running",
                    "elapsedMs": task.started.elapsed().as_millis() as u64,
                })),
            ));
            // The answer repeats the caller's values three times (output, result, the
            // task.result event's payload): each is capped at a quarter of one answer's bound.
            let cap = worker.cfg.max_output_bytes / 4;
            let instruction = crate::wire::clip(&payload.instruction, cap);
            let context_len = serde_json::to_vec(&payload.context).map_or(0, |v| v.len());
            let context = if context_len > cap {
                json!({"truncated": true, "bytes": context_len})
            } else {
                payload.context.clone()
            };
            Ending {
                ok: true,
                status: TaskStatus::Succeeded,
                output: format!("Accepted instruction: {instruction}"),
                result: Some(json!({
                    "framework": "echo",
                    "instruction": instruction,
                    "context": context,
                    "completedAt": crate::events::now_ts(),
                })),
                error: None,
                error_code: None,
                exit_code: None,
                declared: Vec::new(),
            }
        }
        Launch::Command { argv, cwd, env } => {
            let session_dir = match &task.ids.session_id {
                None => None,
                Some(id) => match sessions::prepare(&worker.cfg.session_dir, id) {
                    Ok(dir) => Some(dir),
                    Err(e) => return Ending::failed(e, "session_unavailable"),
                },
            };
            let envelope = json!({
                "taskType": "agent.run",
                "framework": name,
                "instruction": payload.instruction,
                "context": payload.context,
                "input": payload.input,
                "metadata": payload.metadata,
                "taskId": task.id,
                "taskDir": task.dir,
                "sessionId": task.ids.session_id,
                "sessionDir": session_dir,
                "requestId": task.ids.request_id,
            });
            let mut stdin = serde_json::to_vec(&envelope).unwrap_or_default();
            stdin.push(b'\n');
            let timeout = payload.timeout.or(fw.timeout);
            let mut spec = spec_for(worker, task, argv.clone(), cwd.clone(), env, stdin, timeout);
            if let Some(dir) = &session_dir {
                spec.unset.clear();
                spec.env.push((
                    "AGENTDISPATCH_SESSION_DIR".into(),
                    dir.to_string_lossy().into_owned(),
                ));
            }
            let child = start_child(worker, task, name, &spec).await;
            supervise(worker, task, spec, child, true).await
        }
    }
}

async fn run_command(worker: &Worker, task: &Task, payload: &Payload) -> Ending {
    let Some(cmd) = payload.command() else {
        return Ending::failed("command.run requires input.command.", "invalid_command");
    };
    let argv = match command::split(cmd) {
        Ok(argv) => argv,
        Err(e) => return Ending::failed(e.to_string(), "invalid_command"),
    };
    if !command::allowed(&worker.cfg.command_allowlist, &argv) {
        task.events.emit_now(&EventDraft::new(
            EventType::Log,
            format!(
                "command refused: {} is not allowed by AGENTDISPATCH_COMMAND_ALLOWLIST",
                argv[0]
            ),
            Some(json!({"executable": argv[0], "refused": true})),
        ));
        task_log!(warn, task, executable = %argv[0], "command refused by the allowlist");
        return Ending::failed(
            "Command rejected by AGENTDISPATCH_COMMAND_ALLOWLIST.",
            "command_rejected",
        );
    }
    let spec = spec_for(
        worker,
        task,
        argv,
        None,
        &Default::default(),
        Vec::new(),
        payload.timeout,
    );
    let child = Child::spawn(&spec);
    supervise(worker, task, spec, child, false).await
}

/// A framework's child: forked by its warm parent when it has one ready, else spawned cold,
/// with a `task.log` saying which and, for a cold start of a warm framework, why.
async fn start_child(
    worker: &Worker,
    task: &Task,
    framework: &str,
    spec: &supervisor::Spec,
) -> std::io::Result<Child> {
    let asked = std::time::Instant::now();
    match worker.warm.fork(framework, spec).await {
        Ok(child) => {
            let fork_ms = asked.elapsed().as_secs_f64() * 1000.0;
            task.events.emit_now(&EventDraft::new(
                EventType::Log,
                format!(
                    "forked from the warm parent {} of {framework}",
                    child.forked_from.unwrap_or(0)
                ),
                Some(json!({
                    "source": "worker",
                    "warm": true,
                    "parentPid": child.forked_from,
                    "pid": child.pid(),
                    "forkMs": (fork_ms * 10.0).round() / 10.0,
                })),
            ));
            return Ok(child);
        }
        Err(Fallback::Cold(reason)) => {
            task_log!(info, task, reason = %reason, "starting cold");
            task.events.emit_now(&EventDraft::new(
                EventType::Log,
                format!("starting cold: {reason}"),
                Some(json!({"source": "worker", "warm": false, "reason": reason})),
            ));
        }
        Err(Fallback::NotWarm) => {}
    }
    Child::spawn(spec)
}

fn spec_for(
    worker: &Worker,
    task: &Task,
    argv: Vec<String>,
    cwd: Option<std::path::PathBuf>,
    fw_env: &std::collections::BTreeMap<String, String>,
    stdin: Vec<u8>,
    timeout: Option<Duration>,
) -> supervisor::Spec {
    let cfg = &worker.cfg;
    let mut env: Vec<(String, String)> =
        fw_env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    env.push((
        "AGENTDISPATCH_TASK_DIR".into(),
        task.dir.to_string_lossy().into_owned(),
    ));
    env.push((
        "AGENTDISPATCH_REQUEST_ID".into(),
        task.ids.request_id.clone(),
    ));
    if let Some(s) = &task.ids.session_id {
        env.push(("AGENTDISPATCH_SESSION_ID".into(), s.clone()));
    }
    env.push(("PYTHONUNBUFFERED".into(), "1".into()));
    supervisor::Spec {
        argv,
        cwd,
        env,
        // The worker's own setting is the parent of every session folder, not the child's.
        unset: vec!["AGENTDISPATCH_SESSION_DIR".into()],
        base_env: cfg.child_env.kept(),
        marker: ("AGENTDISPATCH_TASK_ID".into(), task.id.clone()),
        stdin,
        deadline: timeout.unwrap_or(cfg.default_timeout).min(cfg.max_timeout),
        heartbeat: cfg.heartbeat,
        // Capped so that a worker shutdown always ends its tasks within the shutdown grace.
        kill_grace: cfg.kill_grace.min(cfg.shutdown_grace / 2),
        max_line: cfg.max_line_bytes,
    }
}

/// Turns what the child does into events, output and a result.
struct ChildObserver<'a> {
    task: &'a Task,
    /// Read stdout as the child protocol (frameworks), or as plain output (commands).
    protocol: bool,
    output: Output,
    result: Option<ChildResult>,
    stderr_tail: VecDeque<String>,
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
    fn log(&self, stream: Stream, text: String, truncated: bool, invalid_utf8: bool) {
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
            ChildLine::OtherJson => self.log(stream, text, truncated, invalid),
            ChildLine::Text => {
                self.output.push(&text, newline);
                self.log(stream, text, truncated, invalid)
            }
        }
    }

    fn heartbeat(&mut self, hb: Heartbeat) {
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

async fn supervise(
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
        stderr_tail: VecDeque::new(),
    };
    let outcome = supervisor::run(spec, child, task.cancel.clone(), &mut obs).await;
    task.events.flush();
    let ChildObserver {
        output,
        result: child_result,
        stderr_tail,
        ..
    } = obs;
    let plain = output.finish();
    let (output, result, declared, child_failed, child_error) = match child_result {
        Some(r) => (
            r.output.unwrap_or_default(),
            r.result,
            r.artifacts,
            r.failed,
            r.error,
        ),
        None => (plain, None, Vec::new(), false, None),
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
    };
    match outcome {
        Outcome::SpawnFailed(e) => {
            let words = e.to_string();
            let mut error = format!("Cannot start {program}: {words}");
            if program.contains("/.venv/") && e.kind() == std::io::ErrorKind::NotFound {
                error.push_str(" (create the framework's virtualenv: scripts/setup-frameworks.sh)");
            }
            ending.error = Some(error);
            ending.error_code = Some("spawn_failed");
        }
        Outcome::WaitFailed(e) => {
            ending.error = Some(format!(
                "Cannot tell how {program} ended: waiting for it failed: {e}"
            ));
            ending.error_code = Some("wait_failed");
        }
        Outcome::TimedOut => {
            ending.status = TaskStatus::TimedOut;
            ending.error = Some(format!("Command timed out after {deadline_ms}ms."));
            ending.error_code = Some("timed_out");
        }
        Outcome::Cancelled => {
            ending.status = TaskStatus::Cancelled;
            ending.error = Some(cancel_message(worker));
            ending.error_code = Some("cancelled");
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
                    ending.error_code = Some("task_failed");
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
                    ending.error_code = Some("exit_nonzero");
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
                    ending.error_code = Some("killed");
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

/// Writes the folder (`result.json`, `manifest.json`), emits `task.result`, builds the answer.
fn finish(task: &Task, mut ending: Ending) -> TaskResult {
    let mut warnings = Vec::new();
    let mut artifacts: Vec<Artifact> = Vec::new();
    let written = artifacts::written_files(&task.dir, &mut |w| warnings.push(w));
    let declared = artifacts::declared(&task.dir, &ending.declared, &mut |w| warnings.push(w));
    for w in warnings {
        task.events.emit(&EventDraft::new(
            EventType::Log,
            w,
            Some(json!({"source": "worker", "level": "warning"})),
        ));
    }
    for path in written {
        match artifacts::describe(&path) {
            Ok(a) => artifacts.push(a),
            Err(e) => {
                task.events.emit(&EventDraft::new(
                    EventType::Log,
                    format!("{} is not listed: {e}", path.display()),
                    Some(json!({"source": "worker", "level": "warning"})),
                ));
            }
        }
    }
    artifacts::merge_unique(&mut artifacts, declared);
    if let Some(e) = task.events.log_error() {
        ending.ok = false;
        ending.status = TaskStatus::Failed;
        ending.error = Some(format!("Task folder could not be written: {e}"));
        ending.error_code = Some("artifact_write_failed");
    }
    let mut result = TaskResult {
        ok: ending.ok,
        task_id: task.id.clone(),
        status: ending.status,
        output: ending.output.into(),
        result: ending.result,
        events: Vec::new(),
        events_truncated: false,
        artifacts: Vec::new(),
        error: ending.error,
        error_code: ending.error_code.map(str::to_string),
        exit_code: ending.exit_code,
        duration_ms: task.started.elapsed().as_millis() as u64,
    };
    if !task.dir.is_dir() {
        let err = std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            "the task folder is gone or is no longer a directory",
        );
        fail_write(&mut result, &task.dir.join(artifacts::RESULT_FILE), err);
    } else {
        let result_path = task.dir.join(artifacts::RESULT_FILE);
        let written = artifacts::write_atomic_with(&result_path, |w| {
            serde_json::to_writer_pretty(w, &result.record(false)).map_err(std::io::Error::other)
        })
        .and_then(|_| artifacts::describe(&result_path));
        match written {
            Ok(a) => artifacts.insert(0, a),
            Err(e) => fail_write(&mut result, &result_path, e),
        }
        let manifest_path = task.dir.join(artifacts::MANIFEST_FILE);
        let manifest = serde_json::to_vec_pretty(&json!({ "artifacts": artifacts }))
            .map_err(std::io::Error::other)
            .and_then(|bytes| artifacts::write_atomic(&manifest_path, &bytes));
        if let Err(e) = manifest {
            fail_write(&mut result, &manifest_path, e);
        }
    }
    result.artifacts = artifacts;
    // The last event: its payload is the task's `result` value (as the reference worker's),
    // its message the status; the whole answer is the response and `result.json`.
    task.events.emit(&EventDraft {
        kind: EventType::Result,
        message: Some(result.status.as_str().to_string()),
        payload: result
            .result
            .as_ref()
            .map(|r| EventPayload::Raw(crate::wire::to_raw(r))),
    });
    if let Some(e) = task.events.close() {
        if result.ok {
            result.ok = false;
            result.status = TaskStatus::Failed;
            result.error = Some(format!("Task folder could not be written: {e}"));
            result.error_code = Some("artifact_write_failed".into());
        }
    }
    // The events are added to an answer by Task::view, from the sink.
    result
}

fn fail_write(result: &mut TaskResult, path: &std::path::Path, e: std::io::Error) {
    if result.error_code.as_deref() == Some("artifact_write_failed") {
        return; // the first failure is the cause; later ones follow from it
    }
    result.ok = false;
    result.status = TaskStatus::Failed;
    result.error = Some(format!("Cannot write {}: {e}", path.display()));
    result.error_code = Some("artifact_write_failed".into());
}
