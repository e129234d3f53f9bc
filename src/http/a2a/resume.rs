//! A follow-up message to a task waiting for input (SPEC §14): the message's `taskId` names an
//! `input-required` task, and its answer (a data part `{"resume": …}`, else its text) becomes
//! the `input.resume` of a new run in the task's context, on the task's framework.

use serde_json::Value;

use super::request::MessageRequest;
use super::RpcError;
use crate::task::{Scope, Worker};
use crate::wire::TaskStatus;

/// When the message answers a waiting task: `request` turned into the run that answers it, and
/// the waiting task's id (the answer is shown under it). `None` for any other message.
pub(super) async fn follow_up(
    worker: &Worker,
    request: &mut MessageRequest,
    params: &Value,
    scope: Scope<'_>,
) -> Result<Option<String>, RpcError> {
    let Some(asked) = request.payload.task_id.clone() else {
        return Ok(None);
    };
    let r = worker.status(&asked, 0, scope).await;
    if r.status != TaskStatus::InputRequired {
        return Ok(None);
    }
    let Some(session) = r.asked.session_id.clone() else {
        return Ok(None);
    };
    let message = params.get("message");
    let given_context = message
        .and_then(|m| m.get("contextId"))
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty());
    if given_context.is_some_and(|c| c != session) {
        return Err(RpcError::invalid(format!(
            "Task {asked} waits for input in context {session}: answer it with that contextId."
        )));
    }
    let questions = r.asked.interrupts.clone().unwrap_or_default();
    let answer = data_resume(message).unwrap_or_else(|| {
        let text = request
            .payload
            .input
            .get("instruction")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
            .to_string();
        text_answer(&questions, text)
    });
    let framework = worker.get(&asked).map(|t| t.label.clone()).or(worker
        .open_questions(&session)
        .await["framework"]
        .as_str()
        .map(str::to_string));
    request.context_id = session;
    request.payload.task_id = None;
    request.payload.framework = framework.or(request.payload.framework.take());
    request.payload.input.insert("resume".into(), answer);
    Ok(Some(asked))
}

/// The `resume` of the message's first data part that has one.
fn data_resume(message: Option<&Value>) -> Option<Value> {
    message?
        .get("parts")?
        .as_array()?
        .iter()
        .filter_map(|p| p.get("data"))
        .find_map(|d| d.get("resume").cloned())
}

/// A text answer: for one open approval, yes/no words as true/false (what a person types);
/// otherwise the text itself.
fn text_answer(questions: &[Value], text: String) -> Value {
    let one_approval = questions.len() == 1 && questions[0]["kind"] == "approval";
    if one_approval {
        match text.to_lowercase().trim_end_matches(['.', '!']) {
            "yes" | "y" | "true" | "approve" | "approved" | "ok" => return Value::Bool(true),
            "no" | "n" | "false" | "reject" | "rejected" | "deny" => return Value::Bool(false),
            _ => {}
        }
    }
    Value::String(text)
}
