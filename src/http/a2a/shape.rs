//! The objects A2A answers are made of — tasks, messages, parts, status and artifact updates —
//! in either protocol version: 1.0 (ProtoJSON: enum strings, parts without `kind`, stream
//! results wrapped as `{"task"|"statusUpdate"|"artifactUpdate": …}`) or 0.3 (`kind`
//! discriminators, lower-case states, `final` on status updates).

use serde_json::{json, Value};

use crate::events::now_ts;
use crate::wire::{TaskResult, TaskStatus};

/// The A2A version a request was made in (its method name says which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// A2A 1.0: `SendMessage`, `GetTask`, …
    V1,
    /// A2A 0.3: `message/send`, `tasks/get`, …
    V03,
}

/// The A2A state of a task status.
pub fn state(status: TaskStatus, v: Version) -> &'static str {
    match (v, status) {
        (Version::V03, TaskStatus::Running) => "working",
        (Version::V03, TaskStatus::Succeeded) => "completed",
        (Version::V03, TaskStatus::Failed | TaskStatus::TimedOut) => "failed",
        (Version::V03, TaskStatus::Cancelled) => "canceled",
        (Version::V03, TaskStatus::InputRequired) => "input-required",
        (Version::V1, TaskStatus::Running) => "TASK_STATE_WORKING",
        (Version::V1, TaskStatus::Succeeded) => "TASK_STATE_COMPLETED",
        (Version::V1, TaskStatus::Failed | TaskStatus::TimedOut) => "TASK_STATE_FAILED",
        (Version::V1, TaskStatus::Cancelled) => "TASK_STATE_CANCELED",
        (Version::V1, TaskStatus::InputRequired) => "TASK_STATE_INPUT_REQUIRED",
    }
}

/// A text part.
pub fn text_part(text: &str, v: Version) -> Value {
    match v {
        Version::V1 => json!({"text": text, "mediaType": "text/plain"}),
        Version::V03 => json!({"kind": "text", "text": text}),
    }
}

/// An agent message holding one text part.
pub fn agent_message(
    v: Version,
    message_id: &str,
    text: &str,
    task_id: &str,
    context_id: &str,
) -> Value {
    let mut m = json!({
        "messageId": message_id,
        "role": if v == Version::V1 { "ROLE_AGENT" } else { "agent" },
        "parts": [text_part(text, v)],
        "taskId": task_id,
        "contextId": context_id,
    });
    if v == Version::V03 {
        m["kind"] = json!("message");
    }
    m
}

/// What a finished task says: its output, or the error when it failed (never an empty
/// success for a failed run).
pub fn answer_text(r: &TaskResult) -> &str {
    match (&r.error, r.ok) {
        (Some(e), false) => e,
        _ => &r.output,
    }
}

/// The `ts` of the last event of `r`, when it carries events (the moment a finished task
/// ended); else now.
fn status_ts(r: &TaskResult) -> String {
    if r.status != TaskStatus::Running {
        if let Some(ts) = r
            .events
            .last()
            .and_then(|e| serde_json::from_str::<Value>(e.get()).ok())
            .and_then(|e| e["ts"].as_str().map(str::to_string))
        {
            return ts;
        }
    }
    now_ts()
}

/// A task status for a result: its state, and once finished the answer as a message.
pub fn status(v: Version, r: &TaskResult, context_id: &str) -> Value {
    let mut s = json!({"state": state(r.status, v), "timestamp": status_ts(r)});
    if r.status == TaskStatus::InputRequired {
        s["message"] = questions_message(v, r, context_id);
    } else if r.status != TaskStatus::Running {
        s["message"] = agent_message(
            v,
            &format!("{}-status", r.task_id),
            answer_text(r),
            &r.task_id,
            context_id,
        );
    }
    s
}

/// The status message of a task waiting for input (SPEC §14): a sentence naming the questions,
/// and a data part `{"interrupts": [...]}` with them whole. A follow-up message with the same
/// `taskId` and `contextId` answers them (text, or a data part `{"resume": …}`).
fn questions_message(v: Version, r: &TaskResult, context_id: &str) -> Value {
    let questions = r.asked.interrupts.clone().unwrap_or_default();
    let named: Vec<String> = questions
        .iter()
        .map(|q| {
            let what = q.get("tool").or_else(|| q.get("value"));
            let kind = q.get("kind").and_then(Value::as_str).unwrap_or("input");
            match what {
                Some(Value::String(s)) => format!("{kind} {s}"),
                Some(other) => format!("{kind} {other}"),
                None => kind.to_string(),
            }
        })
        .collect();
    let text = format!("Input required: {}.", named.join("; "));
    let mut m = agent_message(
        v,
        &format!("{}-status", r.task_id),
        &text,
        &r.task_id,
        context_id,
    );
    let data = json!({ "interrupts": questions });
    let part = match v {
        Version::V1 => json!({"data": data, "mediaType": "application/json"}),
        Version::V03 => json!({"kind": "data", "data": data}),
    };
    if let Some(parts) = m["parts"].as_array_mut() {
        parts.push(part);
    }
    m
}

/// The output artifact of a finished task: its text, with the task folder's artifacts and the
/// structured result in the metadata.
pub fn output_artifact(v: Version, r: &TaskResult) -> Value {
    json!({
        "artifactId": format!("{}-output", r.task_id),
        "name": "output",
        "parts": [text_part(&r.output, v)],
        "metadata": {"artifacts": r.artifacts, "result": r.result},
    })
}

/// The progress messages of a task's events, as agent messages (its history), then the final
/// status message; the last `limit` of them when a limit is given.
fn history(v: Version, r: &TaskResult, context_id: &str, limit: Option<usize>) -> Vec<Value> {
    let mut out: Vec<Value> = r
        .events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e.get()).ok())
        .filter(|e| e["type"] == "task.progress" && e["message"] != "accepted")
        .filter_map(|e| {
            let text = e["message"].as_str()?;
            let id = format!("{}-{}", r.task_id, e["seq"]);
            Some(agent_message(v, &id, text, &r.task_id, context_id))
        })
        .collect();
    if r.status != TaskStatus::Running {
        out.push(status(v, r, context_id)["message"].take());
    }
    if let Some(n) = limit {
        let skip = out.len().saturating_sub(n);
        out.drain(..skip);
    }
    out
}

/// How much of a task to show.
#[derive(Debug, Clone, Copy)]
pub struct Detail {
    /// `historyLength`: none = all, 0 = no `history` field.
    pub history: Option<usize>,
    /// Whether `artifacts` is present (ListTasks leaves it out unless asked).
    pub artifacts: bool,
}

impl Default for Detail {
    fn default() -> Self {
        Detail {
            history: None,
            artifacts: true,
        }
    }
}

/// An A2A Task for a result (running or finished). Its metadata carries what the reference
/// worker's `message/send` answer carries (`ok`, `events`, `artifacts`, `error`), for the
/// AgentDispatch adapter.
pub fn task(v: Version, r: &TaskResult, context_id: &str, detail: Detail) -> Value {
    let mut t = json!({
        "id": r.task_id,
        "contextId": context_id,
        "status": status(v, r, context_id),
        "metadata": {
            "ok": r.ok, "status": r.status, "events": r.events, "artifacts": r.artifacts,
            "error": r.error, "errorCode": r.error_code,
        },
    });
    if v == Version::V03 {
        t["kind"] = json!("task");
    }
    if detail.artifacts {
        let artifacts: Vec<Value> = if r.status == TaskStatus::Running {
            Vec::new()
        } else {
            vec![output_artifact(v, r)]
        };
        t["artifacts"] = json!(artifacts);
    }
    if detail.history != Some(0) {
        let h = history(v, r, context_id, detail.history);
        if !h.is_empty() {
            t["history"] = json!(h);
        }
    }
    t
}

/// A stream or send result holding a task: `{"task": …}` in 1.0, the task itself in 0.3.
pub fn task_result(v: Version, task: Value) -> Value {
    match v {
        Version::V1 => json!({ "task": task }),
        Version::V03 => task,
    }
}

/// A status update (`final` only in 0.3, where it marks the last one).
pub fn status_update(
    v: Version,
    task_id: &str,
    context_id: &str,
    status: Value,
    last: bool,
    metadata: Value,
) -> Value {
    let mut u = json!({
        "taskId": task_id,
        "contextId": context_id,
        "status": status,
        "metadata": metadata,
    });
    match v {
        Version::V1 => json!({ "statusUpdate": u }),
        Version::V03 => {
            u["kind"] = json!("status-update");
            u["final"] = json!(last);
            u
        }
    }
}

/// The output artifact as an artifact update.
pub fn artifact_update(v: Version, r: &TaskResult, context_id: &str) -> Value {
    let mut u = json!({
        "taskId": r.task_id,
        "contextId": context_id,
        "artifact": output_artifact(v, r),
        "lastChunk": true,
    });
    match v {
        Version::V1 => json!({ "artifactUpdate": u }),
        Version::V03 => {
            u["kind"] = json!("artifact-update");
            u
        }
    }
}

/// An update adding `artifact`'s parts to the artifact of the same id (`append`), or creating
/// it: a piece of live text, never the last chunk.
pub fn appended_artifact(
    v: Version,
    task_id: &str,
    context_id: &str,
    artifact: Value,
    append: bool,
) -> Value {
    let mut u = json!({
        "taskId": task_id,
        "contextId": context_id,
        "artifact": artifact,
        "append": append,
        "lastChunk": false,
    });
    match v {
        Version::V1 => json!({ "artifactUpdate": u }),
        Version::V03 => {
            u["kind"] = json!("artifact-update");
            u
        }
    }
}

/// The reference worker's `message/send` answer (0.3, blocking): a message whose text is the
/// output, or the error of a failed run, with `metadata.ok/events/artifacts/error`.
pub fn reference_answer(r: &TaskResult, context_id: &str) -> Value {
    let mut m = agent_message(
        Version::V03,
        &uuid::Uuid::new_v4().to_string(),
        answer_text(r),
        &r.task_id,
        context_id,
    );
    m["metadata"] = json!({
        "ok": r.ok,
        "events": r.events,
        "artifacts": r.artifacts,
        "error": r.error,
        "taskId": r.task_id,
        "status": r.status,
        "errorCode": r.error_code,
        "state": state(r.status, Version::V03),
    });
    m
}
