//! The run of one task, as a straight line: accepted event → pick the runner (echo, framework
//! child, command) → supervise (`child`) → result and task folder (`finish`).

use std::time::Duration;

use serde_json::{json, Value};

use super::agent_entry::{entrypoint_allowed, note_agent_loading};
use super::child::supervise;
use super::finish::{finish, Ending};
use super::{Task, Worker};
use crate::cgroup::Cgroup;
use crate::command;
use crate::frameworks::Launch;
use crate::request_context::RequestContext;
use crate::sessions::Ticket;
use crate::supervisor::{self, Child};
use crate::task_log;
use crate::warm::Fallback;
use crate::wire::{ErrorCode, EventDraft, EventType, Payload, TaskResult, TaskStatus, TaskType};

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
        Some(e) => Ending::failed(ErrorCode::ArtifactWriteFailed, e),
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
    let is_agent = payload.task_type == TaskType::AgentRun;
    task.trace.end(crate::trace::TaskEnd {
        task_id: &task.id,
        task_type: payload.task_type.as_str(),
        framework: is_agent.then_some(task.label.as_str()),
        session_id: task.ids.session_id.as_deref(),
        request_id: &task.ids.request_id,
        started_at: task.started_at,
        status: result.status.as_str(),
        exit_code: result.exit_code,
        error_code: result.error_code.map(|c| c.as_str()),
        error: result.error.as_deref(),
    });
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
            let mut e = Ending::failed(ErrorCode::Cancelled, cancel_message(worker));
            e.status = TaskStatus::Cancelled;
            Err(e)
        }
    }
}

/// The error of a cancelled task, saying when the worker's shutdown is why.
pub(super) fn cancel_message(worker: &Worker) -> String {
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
            ErrorCode::UnknownFramework,
            format!("Unsupported agent framework: {name}"),
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
                asked: Default::default(),
            }
        }
        Launch::Command { argv, cwd, env } => {
            // Before anything starts: a payload's entrypoint is code the child would import.
            let chosen = match entrypoint_allowed(worker, task, name, payload) {
                Ok(chosen) => chosen,
                Err(refusal) => return Ending::failed(ErrorCode::EntrypointNotAllowed, refusal),
            };
            // File work (a session folder, its open questions): off the HTTP threads.
            let session =
                match tokio::task::block_in_place(|| super::ask::before(worker, task, payload)) {
                    Ok(session) => session,
                    Err(refused) => return *refused,
                };
            let session_dir = session.dir.clone();
            // The request's context (SPEC §12), secrets included, goes here and nowhere else:
            // the child's stdin (a warm child's too: the pipe is its own, not the parent's).
            let request = match task.take_request() {
                Some(ctx) => ctx.envelope(task.ids.session_id.as_deref(), &task.ids.request_id),
                None => RequestContext::default()
                    .envelope(task.ids.session_id.as_deref(), &task.ids.request_id),
            };
            let envelope = json!({
                "taskType": "agent.run",
                "framework": name,
                "instruction": payload.instruction,
                "context": payload.context,
                "input": payload.input,
                "metadata": payload.metadata,
                "taskId": task.id,
                "taskDir": task.folder.path(),
                "sessionId": task.ids.session_id,
                "sessionDir": session_dir,
                "requestId": task.ids.request_id,
                "request": request,
                "resume": session.resume,
                "askSession": session.spare.as_ref().map(|(id, dir)| json!({"sessionId": id, "sessionDir": dir})),
            });
            let mut stdin = serde_json::to_vec(&envelope).unwrap_or_default();
            stdin.push(b'\n');
            let timeout = payload.timeout.or(fw.timeout);
            let mut spec = spec_for(worker, task, argv.clone(), cwd.clone(), env, stdin, timeout);
            // Always set (empty when the payload chose none), so that no value inherited from
            // the worker's or a warm parent's environment can approve one.
            spec.env.push((
                crate::entrypoints::APPROVED_VAR.into(),
                chosen.unwrap_or_default().to_string(),
            ));
            if let Some(dir) = &session_dir {
                spec.unset.retain(|k| k != "AGENTDISPATCH_SESSION_DIR");
                spec.env.push((
                    "AGENTDISPATCH_SESSION_DIR".into(),
                    dir.to_string_lossy().into_owned(),
                ));
            }
            let child = start_child(worker, task, Some(name), &spec).await;
            let mut ending = supervise(worker, task, spec, child, true).await;
            tokio::task::block_in_place(|| super::ask::after(task, session, &mut ending));
            if chosen.is_none() {
                note_agent_loading(worker, task, name, &ending);
            }
            ending
        }
    }
}

async fn run_command(worker: &Worker, task: &Task, payload: &Payload) -> Ending {
    let Some(cmd) = payload.command() else {
        return Ending::failed(
            ErrorCode::InvalidCommand,
            "command.run requires input.command.",
        );
    };
    let argv = match command::split(cmd) {
        Ok(argv) => argv,
        Err(e) => return Ending::failed(ErrorCode::InvalidCommand, e.to_string()),
    };
    if !command::allowed(&worker.cfg.command_allowlist, &argv) {
        // The caller's text, in an event and a log line: clipped, as every caller value.
        let executable = crate::wire::clip(&argv[0], 200);
        task.events.emit_now(&EventDraft::new(
            EventType::Log,
            format!(
                "command refused: {executable} is not allowed by AGENTDISPATCH_COMMAND_ALLOWLIST"
            ),
            Some(json!({"executable": executable, "refused": true})),
        ));
        task_log!(warn, task, executable = %executable, "command refused by the allowlist");
        return Ending::failed(
            ErrorCode::CommandRejected,
            "Command rejected by AGENTDISPATCH_COMMAND_ALLOWLIST.",
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
    let child = start_child(worker, task, None, &spec).await;
    supervise(worker, task, spec, child, false).await
}

/// The task's child: forked by the warm parent of `warm` when it has one ready, else spawned
/// cold, with a `task.log` saying which and, for a cold start of a warm framework, why; in its
/// cgroup as [`in_its_cgroup`] decides.
async fn start_child(
    worker: &Worker,
    task: &Task,
    warm: Option<&str>,
    spec: &supervisor::Spec,
) -> std::io::Result<Child> {
    if let Some(framework) = warm {
        let asked = std::time::Instant::now();
        let busy = worker.running_tasks() > 1;
        match worker
            .warm
            .fork(framework, spec, worker.cgroups.as_ref(), busy)
            .await
        {
            Ok(mut child) => {
                task.trace.started(true);
                in_its_cgroup(worker, task, &mut child);
                let cgroup = child.cgroup.as_ref().map(Cgroup::name);
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
                        "holderPid": child.holder,
                        "cgroup": cgroup,
                        "pagesAhead": child.pages_ahead,
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
            Err(Fallback::Fail(reason)) => return Err(std::io::Error::other(reason)),
            Err(Fallback::NotWarm) => {}
        }
    }
    let mut child = Child::spawn(spec, worker.task_cgroup(task))?;
    task.trace.started(false);
    in_its_cgroup(worker, task, &mut child);
    Ok(child)
}

/// The one place that decides which cgroup a task's child runs in. A spawned child came with
/// the task's new cgroup, which it entered itself before it exec'd; a warm child came with the
/// cgroup its spare moved into ahead (or none, for a parent's first spare). A child that is
/// not in the cgroup it came with keeps none (the supervisor then finds its processes by
/// group, descendants and marker), except a warm child: it has run none of the task's code
/// (it waits for its envelope on stdin, which the supervisor writes later), so it is moved
/// into a new cgroup of the task's now.
fn in_its_cgroup(worker: &Worker, task: &Task, child: &mut Child) {
    let pid = child.pid();
    let forked = child.forked_from.is_some();
    if let Some(cg) = child.cgroup.take() {
        if cg.holds(pid) {
            child.cgroup = Some(cg);
            return;
        }
        if !forked {
            let message = format!(
                "the task's process {pid} is not in its cgroup {}; its processes are found by process group, descendants and AGENTDISPATCH_TASK_ID only",
                cg.dir().display()
            );
            task_log!(warn, task, "{message}");
            note(task, message);
        }
    }
    if !forked {
        return;
    }
    let Some(cgroup) = worker.task_cgroup(task) else {
        return;
    };
    let dir = cgroup.dir().to_path_buf();
    if let Err(e) = child.enter_cgroup(cgroup) {
        task_log!(warn, task, pid, error = %e, "cannot move the warm child into the task's cgroup; it runs without one");
        note(
            task,
            format!(
                "the task's process {pid} cannot enter its cgroup {}: {e}",
                dir.display()
            ),
        );
    }
}

/// A `log` event of the worker's own in the task's events.
fn note(task: &Task, message: String) {
    task.events.emit_now(&EventDraft::new(
        EventType::Log,
        message,
        Some(json!({"source": "worker"})),
    ));
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
        task.folder.path().to_string_lossy().into_owned(),
    ));
    env.push((
        "AGENTDISPATCH_REQUEST_ID".into(),
        task.ids.request_id.clone(),
    ));
    if let Some(s) = &task.ids.session_id {
        env.push(("AGENTDISPATCH_SESSION_ID".into(), s.clone()));
    }
    env.push(("PYTHONUNBUFFERED".into(), "1".into()));
    // OpenTelemetry's environment carrier, naming the task's span (set in a warm child after
    // its fork, as every variable here).
    env.extend(task.trace.child_env());
    // The worker's own session setting is the parent of every session folder, not the
    // child's; its own (or a warm parent's inherited) trace variables never name a task's
    // parent: those this task does not set are removed.
    let mut unset = vec!["AGENTDISPATCH_SESSION_DIR".to_string()];
    for name in crate::trace::context::CHILD_VARS {
        if !env.iter().any(|(k, _)| k == name) {
            unset.push(name.to_string());
        }
    }
    supervisor::Spec {
        argv,
        cwd,
        env,
        unset,
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
