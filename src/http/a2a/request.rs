//! A send's `params`: the message's text as an `agent.run` payload, and its context.

use serde_json::{json, Map, Value};

use super::RpcError;
use crate::task::RequestIds;
use crate::wire::payload_from_value;

/// Longest `contextId` accepted.
const MAX_CONTEXT_ID_BYTES: usize = 1024;

/// An `agent.run` payload and its context, from a message.
pub(super) struct MessageRequest {
    /// The task's payload.
    pub payload: crate::wire::Payload,
    /// The message's context, or the session header's id, or a new one.
    pub context_id: String,
}

/// Builds an `agent.run` payload from `params.message` (its text parts, joined by newlines, are
/// the instruction) and `params.metadata` (`framework`, `context`, `input`).
pub(super) fn message_payload(
    params: &Value,
    ids: &RequestIds,
) -> Result<MessageRequest, RpcError> {
    let message = params
        .get("message")
        .and_then(Value::as_object)
        .ok_or_else(|| RpcError::invalid("params.message must be an object."))?;
    let parts = message
        .get("parts")
        .and_then(Value::as_array)
        .ok_or_else(|| RpcError::invalid("params.message.parts must be an array."))?;
    // 0.3 parts say `kind: "text"`; 1.0 parts are text parts when they hold `text`.
    let texts: Vec<&str> = parts
        .iter()
        .filter(|p| {
            p.get("kind")
                .or_else(|| p.get("type"))
                .and_then(Value::as_str)
                .is_none_or(|k| k == "text")
        })
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect();
    let meta = params
        .get("metadata")
        .and_then(Value::as_object)
        .or_else(|| message.get("metadata").and_then(Value::as_object));
    let mut input = match meta.and_then(|m| m.get("input")) {
        Some(Value::Object(i)) => i.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(_) => {
            return Err(RpcError::invalid(
                "params.metadata.input must be an object.",
            ))
        }
    };
    input.insert("instruction".into(), Value::String(texts.join("\n")));
    if let Some(ctx) = meta.and_then(|m| m.get("context")) {
        input.insert("context".into(), ctx.clone());
    }
    if let Some(fw) = meta.and_then(|m| m.get("framework")) {
        input.insert("framework".into(), fw.clone());
    }
    let mut body = json!({"taskType": "agent.run", "input": input});
    if let Some(task_id) = message
        .get("taskId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        body["taskId"] = json!(task_id);
    }
    let payload = payload_from_value(body).map_err(|e| RpcError::invalid(e.to_string()))?;
    let context_id = message
        .get("contextId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .or_else(|| ids.session_id.clone())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    // Kept with the task for an hour and named in its events: bounded, as every caller value.
    if context_id.len() > MAX_CONTEXT_ID_BYTES {
        return Err(RpcError::invalid(format!(
            "params.message.contextId is longer than {MAX_CONTEXT_ID_BYTES} bytes."
        )));
    }
    // It becomes the task's session id, in its child's environment.
    if let Some(problem) = crate::wire::id_problem(&context_id) {
        return Err(RpcError::invalid(format!(
            "params.message.contextId {problem}."
        )));
    }
    Ok(MessageRequest {
        payload,
        context_id,
    })
}
