//! A `RunAgentInput` (AG-UI's request body) read into the worker's `agent.run` payload. It is
//! validated as AG-UI's own models validate it (AWS's `AGUIApp` answers 400 for a body they
//! refuse), with every refusal naming the field at fault.

use serde_json::{json, Map, Value};

use crate::wire::{clip, id_problem, kind_of, payload_from_value, Payload, PayloadError};

/// The roles an AG-UI message may have.
const ROLES: &[&str] = &[
    "developer",
    "system",
    "assistant",
    "user",
    "tool",
    "activity",
    "reasoning",
];

/// A validated run: the payload to start, and the ids every event of the run names.
#[derive(Debug, Clone)]
pub struct Run {
    /// The `agent.run` payload (session `threadId`, streamed).
    pub payload: Payload,
    /// `threadId`.
    pub thread_id: String,
    /// `runId`.
    pub run_id: String,
    /// `parentRunId`, when sent.
    pub parent_run_id: Option<String>,
}

/// Whether a body is a `RunAgentInput` by its shape (SPEC §13): an object with `threadId`,
/// `runId` and a `messages` array, and no `taskType`.
pub fn looks_like(body: &Value) -> bool {
    body.get("taskType").is_none()
        && body.get("threadId").is_some()
        && body.get("runId").is_some()
        && body.get("messages").is_some_and(Value::is_array)
}

fn string<'a>(obj: &'a Map<String, Value>, key: &str, at: &str) -> Result<&'a str, String> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s),
        None => Err(format!("{at}{key} is required (a string)")),
        Some(other) => Err(format!(
            "{at}{key} must be a string, got {}",
            kind_of(other)
        )),
    }
}

fn opt_string<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<Option<&'a str>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => string(obj, key, at).map(Some),
    }
}

fn array<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a Vec<Value>, String> {
    match obj.get(key) {
        Some(Value::Array(a)) => Ok(a),
        None => Err(format!("{key} is required (an array; [] for none)")),
        Some(other) => Err(format!("{key} must be an array, got {}", kind_of(other))),
    }
}

fn object<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("{at} must be an object, got {}", kind_of(v)))
}

/// The text of a user message's `content`: a string, or the text parts of a list of input
/// parts (images and other parts stay in `input.messages` for the runner).
fn user_text(content: &Value, at: &str) -> Result<String, String> {
    match content {
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut texts = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                let p = object(part, &format!("{at}.content[{j}]"))?;
                let here = format!("{at}.content[{j}].");
                match string(p, "type", &here)? {
                    "text" => texts.push(string(p, "text", &here)?),
                    "image" | "audio" | "video" | "document" | "binary" => {}
                    other => {
                        return Err(format!(
                        "{here}type {:?} is not one of text, image, audio, video, document, binary",
                        clip(other, 40)
                    ))
                    }
                }
            }
            Ok(texts.join("\n"))
        }
        other => Err(format!(
            "{at}.content must be a string or an array of input parts, got {}",
            kind_of(other)
        )),
    }
}

/// Checks one message as AG-UI's `Message` union does; a user message's text is returned.
fn message(v: &Value, i: usize) -> Result<Option<String>, String> {
    let at = format!("messages[{i}]");
    let m = object(v, &at)?;
    let here = format!("{at}.");
    string(m, "id", &here)?;
    let role = string(m, "role", &here)?;
    match role {
        "user" => match m.get("content") {
            Some(c) => return user_text(c, &at).map(Some),
            None => return Err(format!("{here}content is required")),
        },
        "developer" | "system" | "tool" | "reasoning" => {
            string(m, "content", &here)?;
            if role == "tool" {
                string(m, "toolCallId", &here)?;
            }
        }
        "assistant" => {
            opt_string(m, "content", &here)?;
            if let Some(calls) = m.get("toolCalls").filter(|c| !c.is_null()) {
                let calls = calls.as_array().ok_or_else(|| {
                    format!("{here}toolCalls must be an array, got {}", kind_of(calls))
                })?;
                for (j, call) in calls.iter().enumerate() {
                    let c = object(call, &format!("{here}toolCalls[{j}]"))?;
                    string(c, "id", &format!("{here}toolCalls[{j}]."))?;
                    let f = object(
                        c.get("function").unwrap_or(&Value::Null),
                        &format!("{here}toolCalls[{j}].function"),
                    )?;
                    let fat = format!("{here}toolCalls[{j}].function.");
                    string(f, "name", &fat)?;
                    string(f, "arguments", &fat)?;
                }
            }
        }
        "activity" => {
            string(m, "activityType", &here)?;
            object(
                m.get("content").unwrap_or(&Value::Null),
                &format!("{at}.content"),
            )?;
        }
        other => {
            return Err(format!(
                "{here}role {:?} is not one of {}",
                clip(other, 40),
                ROLES.join(", ")
            ))
        }
    }
    Ok(None)
}

/// AG-UI's `resume` (`[{interruptId, status: "resolved"|"cancelled", payload?}]`, the answers
/// to the interrupts a run ended with) as the worker's `input.resume`: answers by question id.
/// A resolved entry answers its `payload` (none: `true`, an approval given); a cancelled one
/// `{"approved": false}` (the question is declined, the run continues without it).
fn resume(obj: &Map<String, Value>) -> Result<Option<Value>, String> {
    let entries = match obj.get("resume") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) => return Ok(None),
        Some(other) => {
            return Err(format!(
                "resume must be an array of {{interruptId, status, payload?}}, got {}",
                kind_of(other)
            ))
        }
    };
    let mut answers = Map::new();
    for (i, e) in entries.iter().enumerate() {
        let at = format!("resume[{i}]");
        let e = object(e, &at)?;
        let id = string(e, "interruptId", &format!("{at}."))?;
        let answer = match string(e, "status", &format!("{at}."))? {
            "resolved" => match e.get("payload") {
                None | Some(Value::Null) => Value::Bool(true),
                Some(p) => p.clone(),
            },
            "cancelled" => json!({"approved": false}),
            other => {
                return Err(format!(
                    "{at}.status must be \"resolved\" or \"cancelled\", got {:?}",
                    crate::wire::clip(other, 100)
                ))
            }
        };
        if answers.insert(id.to_string(), answer).is_some() {
            return Err(format!("{at}.interruptId {id:?} is answered twice"));
        }
    }
    Ok(Some(Value::Object(answers)))
}

/// Reads a `RunAgentInput`; `Err` says what is wrong with it.
pub fn parse(body: &Value) -> Result<Run, String> {
    let obj = object(body, "RunAgentInput")?;
    let thread_id = string(obj, "threadId", "")?;
    if thread_id.is_empty() {
        return Err("threadId must not be empty (it names the session)".into());
    }
    if let Some(problem) = id_problem(thread_id) {
        return Err(format!("threadId {problem}"));
    }
    let run_id = string(obj, "runId", "")?;
    let parent_run_id = opt_string(obj, "parentRunId", "")?;
    let messages = array(obj, "messages")?;
    let mut instruction = None;
    for (i, m) in messages.iter().enumerate() {
        if let Some(text) = message(m, i)? {
            instruction = Some(text);
        }
    }
    let tools = array(obj, "tools")?;
    for (i, t) in tools.iter().enumerate() {
        let t = object(t, &format!("tools[{i}]"))?;
        string(t, "name", &format!("tools[{i}]."))?;
        string(t, "description", &format!("tools[{i}]."))?;
    }
    let context = array(obj, "context")?;
    for (i, c) in context.iter().enumerate() {
        let c = object(c, &format!("context[{i}]"))?;
        string(c, "description", &format!("context[{i}]."))?;
        string(c, "value", &format!("context[{i}]."))?;
    }
    let Some(forwarded) = obj.get("forwardedProps") else {
        return Err("forwardedProps is required (an object; {} for none)".into());
    };
    let framework = match forwarded.get("framework") {
        None | Some(Value::Null) => None,
        Some(Value::String(f)) => Some(f.clone()),
        Some(other) => {
            return Err(format!(
                "forwardedProps.framework must be a string, got {}",
                kind_of(other)
            ))
        }
    };
    let resume = resume(obj)?;
    // A resume continues the run that asked: its messages need no new user message.
    let instruction = match (instruction, &resume) {
        (Some(i), _) => i,
        (None, Some(_)) => String::new(),
        (None, None) => {
            return Err("messages holds no user message: there is nothing to run".into())
        }
    };
    let state = obj.get("state").filter(|s| !s.is_null());
    // What the runner sees (docs/agui.md): the instruction, every message (its history where
    // the framework takes one), the client's tools, and `state` and `context` as the run's
    // context.
    let mut ctx = Map::new();
    if let Some(s) = state {
        ctx.insert("state".into(), s.clone());
    }
    if !context.is_empty() {
        ctx.insert("agUiContext".into(), Value::Array(context.clone()));
    }
    let mut input = json!({
        "instruction": instruction,
        "messages": messages,
        "tools": tools,
        "context": ctx,
        "forwardedProps": forwarded,
        "agui": {"threadId": thread_id, "runId": run_id, "parentRunId": parent_run_id},
    });
    if let Some(f) = &framework {
        input["framework"] = json!(f);
    }
    if let Some(s) = state {
        input["state"] = s.clone();
    }
    if let Some(r) = resume {
        input["resume"] = r;
    }
    let payload = payload_from_value(json!({
        "taskType": "agent.run",
        "sessionId": thread_id,
        "stream": true,
        "input": input,
    }))
    .map_err(|e| match e {
        PayloadError::Invalid(m) | PayloadError::UnsupportedTaskType(m) => m,
    })?;
    Ok(Run {
        payload,
        thread_id: thread_id.to_string(),
        run_id: run_id.to_string(),
        parent_run_id: parent_run_id.map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> Value {
        json!({
            "threadId": "t-1", "runId": "r-1", "state": {"city": "Oslo"},
            "messages": [
                {"id": "1", "role": "user", "content": "first"},
                {"id": "2", "role": "assistant", "content": "ok",
                 "toolCalls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"id": "3", "role": "tool", "content": "x", "toolCallId": "c"},
                {"id": "4", "role": "user", "content": [{"type": "text", "text": "second"},
                    {"type": "image", "source": {"type": "url", "value": "http://x/y.png"}}]},
            ],
            "tools": [{"name": "shout", "description": "upper-cases", "parameters": {}}],
            "context": [{"description": "who", "value": "me"}],
            "forwardedProps": {"framework": "strands"},
        })
    }

    fn refusal(mutate: impl FnOnce(&mut Value)) -> String {
        let mut b = body();
        mutate(&mut b);
        parse(&b).expect_err("refused")
    }

    #[test]
    fn a_run_becomes_an_agent_run_of_the_last_user_message_in_the_thread() {
        let b = body();
        assert!(looks_like(&b));
        let run = parse(&b).unwrap();
        let p = run.payload;
        assert_eq!(p.instruction, "second");
        assert_eq!(p.framework.as_deref(), Some("strands"));
        assert_eq!(p.session_id.as_deref(), Some("t-1"));
        assert!(p.stream);
        assert_eq!(p.context["state"], json!({"city": "Oslo"}));
        assert_eq!(p.context["agUiContext"][0]["value"], "me");
        assert_eq!(p.input["messages"].as_array().unwrap().len(), 4);
        assert_eq!(p.input["tools"][0]["name"], "shout");
        assert_eq!((run.thread_id, run.run_id), ("t-1".into(), "r-1".into()));
    }

    #[test]
    fn without_forwarded_framework_the_default_runs() {
        let mut b = body();
        b["forwardedProps"] = json!({});
        assert_eq!(parse(&b).unwrap().payload.framework, None);
        b["forwardedProps"] = Value::Null;
        assert_eq!(parse(&b).unwrap().payload.framework, None);
    }

    #[test]
    fn a_control_request_is_not_a_run() {
        let mut b = body();
        b["taskType"] = json!("task.list");
        assert!(!looks_like(&b));
        assert!(!looks_like(&json!({"threadId": "t", "runId": "r"})));
    }

    #[test]
    fn resume_entries_become_answers_by_interrupt_id() {
        let mut b = body();
        // A resume needs no new user message: it continues the run that asked.
        b["messages"] = json!([]);
        b["resume"] = json!([
            {"interruptId": "refund-1", "status": "resolved", "payload": {"approved": true}},
            {"interruptId": "account", "status": "resolved", "payload": "savings"},
            {"interruptId": "other", "status": "cancelled"},
            {"interruptId": "bare", "status": "resolved"},
        ]);
        let p = parse(&b).unwrap().payload;
        assert_eq!(
            p.input["resume"],
            json!({"refund-1": {"approved": true}, "account": "savings",
                   "other": {"approved": false}, "bare": true})
        );
        assert!(refusal(|b| b["resume"] = json!({"refund-1": true}))
            .contains("resume must be an array"));
        assert!(refusal(|b| b["resume"] = json!([{"status": "resolved"}]))
            .contains("resume[0].interruptId is required"));
        assert!(
            refusal(|b| b["resume"] = json!([{"interruptId": "a", "status": "maybe"}]))
                .contains("resume[0].status must be")
        );
        assert!(refusal(|b| b["resume"] = json!([
            {"interruptId": "a", "status": "resolved"},
            {"interruptId": "a", "status": "cancelled"}
        ]))
        .contains("answered twice"));
    }

    #[test]
    fn each_refusal_names_the_field() {
        assert!(refusal(|b| b["threadId"] = json!(3)).contains("threadId must be a string"));
        assert!(refusal(|b| b["threadId"] = json!("")).contains("threadId must not be empty"));
        assert!(refusal(|b| {
            b.as_object_mut().unwrap().remove("runId");
        })
        .contains("runId is required"));
        assert!(refusal(|b| {
            b.as_object_mut().unwrap().remove("tools");
        })
        .contains("tools is required"));
        assert!(refusal(|b| {
            b.as_object_mut().unwrap().remove("forwardedProps");
        })
        .contains("forwardedProps is required"));
        assert!(refusal(|b| b["messages"][1]["role"] = json!("robot"))
            .contains("messages[1].role \"robot\" is not one of"));
        assert!(refusal(|b| {
            b["messages"][2]
                .as_object_mut()
                .unwrap()
                .remove("toolCallId");
        })
        .contains("messages[2].toolCallId is required"));
        assert!(
            refusal(|b| b["messages"][3]["content"][0]["text"] = json!(1))
                .contains("messages[3].content[0].text must be a string")
        );
        assert!(refusal(|b| b["context"][0] = json!("x")).contains("context[0] must be an object"));
        assert!(refusal(|b| b["forwardedProps"]["framework"] = json!(1))
            .contains("forwardedProps.framework must be a string"));
        assert!(
            refusal(|b| b["messages"] = json!([{"id": "1", "role": "system", "content": "s"}]))
                .contains("no user message")
        );
        assert!(refusal(|b| b["threadId"] = json!("a\nb")).contains("control characters"));
    }
}
