//! `{"type":"task.resume","resume":…}`: an answer to the questions of a task that asked on
//! this socket (SPEC §14), made into the session's next `agent.run` with `input.resume`, as
//! `POST /invocations` takes it. `sessionId` (and `framework`) in the message answer a
//! question asked elsewhere: another socket, before a reconnect.

use serde_json::{json, Value};

use crate::task::Task;
use crate::wire::{payload_from_value, ErrorCode, Payload, TaskResult, TaskStatus, TaskType};

/// The session and framework of the last task on this socket that ended asking.
#[derive(Clone)]
pub struct Asking {
    session: String,
    framework: String,
}

impl Asking {
    /// What `task` left open, when it ended `input_required`.
    pub fn of(task: &Task) -> Option<Asking> {
        let r: std::sync::Arc<TaskResult> = task.result()?;
        if r.status != TaskStatus::InputRequired || task.task_type != TaskType::AgentRun {
            return None;
        }
        Some(Asking {
            session: r.asked.session_id.clone()?,
            framework: task.label.clone(),
        })
    }
}

/// The resuming payload, or the error code and words for an answer that cannot be sent.
pub fn payload(msg: &Value, asking: Option<&Asking>) -> Result<Payload, (ErrorCode, String)> {
    let Some(resume) = msg.get("resume") else {
        return Err((
            ErrorCode::InvalidResume,
            "task.resume needs `resume`: {\"<interrupt id>\": answer, …}, or a bare answer when one question is open.".into(),
        ));
    };
    let text = |k: &str| msg.get(k).and_then(Value::as_str).map(str::to_string);
    let session = text("sessionId").or_else(|| asking.map(|a| a.session.clone()));
    let Some(session) = session else {
        return Err((
            ErrorCode::InterruptNotOpen,
            "No task on this socket is waiting for an answer: name its session with sessionId (and framework).".into(),
        ));
    };
    let mut body = json!({"taskType": "agent.run", "sessionId": session,
                          "input": {"resume": resume}});
    if let Some(fw) = text("framework").or_else(|| asking.map(|a| a.framework.clone())) {
        body["framework"] = json!(fw);
    }
    if let Some(id) = text("taskId") {
        body["taskId"] = json!(id);
    }
    payload_from_value(body).map_err(|e| (ErrorCode::InvalidPayload, e.to_string()))
}
