//! A task that asks (SPEC §14) over MCP. At 2026-07-28, for a client that declared
//! `elicitation`, its questions are an `InputRequiredResult` (multi round-trip requests): one
//! form elicitation per question, the session and the questions' kinds in `requestState`; the
//! retried `tools/call` carries `inputResponses` and that state and becomes the session's
//! `agent.run` with `input.resume`. Otherwise the questions are a plain tool result naming
//! them and the session, answered by calling the tool again with `sessionId` and
//! `input.resume` (docs/mcp.md says why).

use serde_json::{json, Map, Value};

use super::rpc::RpcError;
use crate::wire::{TaskResult, TaskStatus};

/// Where a 2026-07-28 request declares what its client can do.
const META_CAPS: &str = "io.modelcontextprotocol/clientCapabilities";

/// Whether the call's client declared elicitation (a server must not send it otherwise).
pub fn elicits(params: &Map<String, Value>) -> bool {
    params
        .get("_meta")
        .and_then(|m| m.get(META_CAPS))
        .and_then(|c| c.get("elicitation"))
        .is_some_and(|e| !e.is_null())
}

/// The form a question's answer takes: an approval a boolean (and an optional message), an
/// input a string (elicitation forms hold primitive fields only).
fn schema(kind: &str) -> Value {
    if kind == "approval" {
        json!({"type": "object",
               "properties": {"approved": {"type": "boolean", "title": "Approve"},
                              "message": {"type": "string", "title": "Message"}},
               "required": ["approved"]})
    } else {
        json!({"type": "object",
               "properties": {"answer": {"type": "string", "title": "Answer"}},
               "required": ["answer"]})
    }
}

/// The words shown for a question: its value when it is text, else what it is about.
fn message(q: &Value) -> String {
    if let Some(v) = q["value"].as_str() {
        return v.to_string();
    }
    let tool = q["tool"].as_str().unwrap_or("");
    match (q["kind"].as_str(), tool) {
        (Some("approval"), "") => "Approve the agent's next step?".to_string(),
        (Some("approval"), t) => format!("Approve the call of {t} with {}?", q["args"]),
        _ => format!("The agent asks: {}", q["value"]),
    }
}

/// An `input_required` task's questions as an `InputRequiredResult`, or `None` when the
/// task did not ask.
pub fn input_required(r: &TaskResult) -> Option<Value> {
    if r.status != TaskStatus::InputRequired {
        return None;
    }
    let (qs, session) = (r.asked.interrupts.as_ref()?, r.asked.session_id.as_ref()?);
    let mut requests = Map::new();
    let mut kinds = Map::new();
    for q in qs {
        let (Some(id), Some(kind)) = (q["id"].as_str(), q["kind"].as_str()) else {
            continue;
        };
        kinds.insert(id.to_string(), json!(kind));
        requests.insert(
            id.to_string(),
            json!({"method": "elicitation/create",
                   "params": {"mode": "form", "message": message(q), "requestedSchema": schema(kind)}}),
        );
    }
    // Not integrity-protected: it names a session the caller may name anyway (`sessionId`),
    // and the worker checks every answer against the questions kept in that session's folder.
    let state = json!({"sessionId": session, "taskId": r.task_id, "kinds": kinds});
    Some(json!({
        "resultType": "input_required",
        "inputRequests": requests,
        "requestState": state.to_string(),
    }))
}

/// The retried call's arguments: `sessionId` and `input.resume` made from its `requestState`
/// and `inputResponses`; `None` for a call that retries nothing.
pub fn resumed(
    params: &Map<String, Value>,
    args: &Map<String, Value>,
) -> Result<Option<Map<String, Value>>, RpcError> {
    let (state, responses) = (params.get("requestState"), params.get("inputResponses"));
    if state.is_none() && responses.is_none() {
        return Ok(None);
    }
    let bad = |why: &str| RpcError::invalid_params(format!("Invalid params: {why}"));
    let state: Value = state
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str(s).ok())
        .ok_or_else(|| bad("requestState must be the string an input_required result gave."))?;
    let (Some(session), Some(kinds)) = (state["sessionId"].as_str(), state["kinds"].as_object())
    else {
        return Err(bad("requestState is not one this worker gave."));
    };
    let responses = responses
        .and_then(Value::as_object)
        .ok_or_else(|| bad("inputResponses must be an object keyed by the inputRequests' keys."))?;
    let mut resume = Map::new();
    for (id, kind) in kinds {
        let Some(r) = responses.get(id) else {
            return Err(bad(&format!("inputResponses has no answer to {id}.")));
        };
        let action = r["action"].as_str().unwrap_or("");
        let answer = match (kind.as_str(), action) {
            (Some("approval"), "accept") => json!({
                "approved": r["content"]["approved"].as_bool().unwrap_or(false),
                "message": r["content"]["message"],
            }),
            // Declining an approval is the answer no; dismissing it answers nothing.
            (Some("approval"), "decline") => json!({"approved": false}),
            (_, "accept") => r["content"]["answer"].clone(),
            _ => {
                return Err(bad(&format!(
                    "{id} was not answered (action {action:?}): nothing resumed; the question stays open."
                )))
            }
        };
        let answer = match answer {
            Value::Object(mut m) => {
                m.retain(|_, v| !v.is_null());
                Value::Object(m)
            }
            other => other,
        };
        resume.insert(id.clone(), answer);
    }
    let mut args = args.clone();
    args.insert("sessionId".into(), json!(session));
    let input = args.entry("input").or_insert_with(|| json!({}));
    if let Some(m) = input.as_object_mut() {
        m.insert("resume".into(), Value::Object(resume));
    }
    Ok(Some(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn state() -> String {
        json!({"sessionId": "s1", "taskId": "t1", "kinds": {"a": "approval", "q": "input"}})
            .to_string()
    }

    fn error(p: Value) -> String {
        match resumed(&params(p), &Map::new()) {
            Err(e) => e.message,
            Ok(a) => panic!("accepted: {a:?}"),
        }
    }

    #[test]
    fn answers_become_the_sessions_resume_and_bad_ones_are_named() {
        let ok = params(json!({"requestState": state(), "inputResponses": {
            "a": {"action": "accept", "content": {"approved": true}},
            "q": {"action": "accept", "content": {"answer": "blue"}}}}));
        let args = resumed(&ok, &params(json!({"instruction": "x"})))
            .unwrap()
            .unwrap();
        assert_eq!(args["sessionId"], "s1");
        assert_eq!(
            args["input"]["resume"],
            json!({"a": {"approved": true}, "q": "blue"})
        );
        assert_eq!(args["instruction"], "x");
        let declined = params(json!({"requestState": state(), "inputResponses": {
            "a": {"action": "decline"}, "q": {"action": "accept", "content": {"answer": "b"}}}}));
        let args = resumed(&declined, &Map::new()).unwrap().unwrap();
        assert_eq!(args["input"]["resume"]["a"], json!({"approved": false}));
        assert!(resumed(&Map::new(), &Map::new()).unwrap().is_none());
        assert!(error(json!({"inputResponses": {}})).contains("requestState"));
        assert!(error(json!({"requestState": "{}", "inputResponses": {}})).contains("not one"));
        assert!(error(json!({"requestState": state()})).contains("inputResponses must"));
        assert!(error(json!({"requestState": state(), "inputResponses": {
            "a": {"action": "accept", "content": {"approved": true}}}}))
        .contains("no answer to q"));
        assert!(error(json!({"requestState": state(), "inputResponses": {
            "a": {"action": "cancel"}, "q": {"action": "accept", "content": {"answer": "b"}}}}))
        .contains("a was not answered"));
    }
}
