//! The invocation payload: parsed by hand over `serde_json::Value` so that every refusal names
//! the field at fault.

use std::time::Duration;

use serde_json::{Map, Value};

/// What a payload asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskType {
    /// Run an agent framework (also when `taskType` is absent).
    AgentRun,
    /// Run an allowlisted command.
    CommandRun,
    /// Report a task's state and events after a sequence number.
    Status,
    /// Stop a task.
    Cancel,
    /// List every known task.
    List,
}

impl TaskType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskType::AgentRun => "agent.run",
            TaskType::CommandRun => "command.run",
            TaskType::Status => "task.status",
            TaskType::Cancel => "task.cancel",
            TaskType::List => "task.list",
        }
    }
}

/// A validated `POST /invocations` body.
#[derive(Debug, Clone)]
pub struct Payload {
    /// What to do.
    pub task_type: TaskType,
    /// The caller's task id, already checked against the pattern.
    pub task_id: Option<String>,
    /// `input.framework`, else `framework`.
    pub framework: Option<String>,
    /// `input.instruction`, else `prompt`, else empty.
    pub instruction: String,
    /// `input` (empty when absent); passed on whole to framework children.
    pub input: Map<String, Value>,
    /// `input.context`, else `{}`.
    pub context: Value,
    /// `metadata`, else `{}`.
    pub metadata: Value,
    /// Answer at once and run in the background.
    pub is_async: bool,
    /// Answer as a server-sent event stream.
    pub stream: bool,
    /// `input.timeoutSeconds`, already checked positive (not yet capped).
    pub timeout: Option<Duration>,
    /// `afterSeq` of `task.status`.
    pub after_seq: u64,
    /// `sessionId` (ext, for local use: AgentCore sends the session header instead).
    pub session_id: Option<String>,
}

impl Payload {
    /// A payload for `agent.run` with everything else empty (CLI, A2A).
    pub fn agent_run(framework: Option<String>, instruction: String) -> Self {
        Payload {
            task_type: TaskType::AgentRun,
            task_id: None,
            framework,
            instruction,
            input: Map::new(),
            context: Value::Object(Map::new()),
            metadata: Value::Object(Map::new()),
            is_async: false,
            stream: false,
            timeout: None,
            after_seq: 0,
            session_id: None,
        }
    }

    /// `input.command` when it is a string.
    pub fn command(&self) -> Option<&str> {
        self.input.get("command").and_then(Value::as_str)
    }
}

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Not JSON, or JSON of the wrong shape: HTTP 400 `invalid_payload`.
    #[error("{0}")]
    Invalid(String),
    /// A `taskType` this worker does not know: HTTP 200, ok:false.
    #[error("Unsupported taskType: {0}")]
    UnsupportedTaskType(String),
}

/// `text` cut to at most `max` bytes (on a character boundary), marked with `…` when cut: for
/// echoing caller-controlled values in errors and logs.
pub fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… ({} bytes)", &text[..cut], text.len())
}

/// Longest session id accepted in a payload or header (and request id, in a header).
pub const MAX_SESSION_ID: usize = 1024;

/// What is wrong with an id a caller sends (`sessionId`, the AgentCore id headers, an A2A
/// `contextId`), if anything: longer than [`MAX_SESSION_ID`], or holding a control character.
/// Such ids go into a child's environment (where a NUL cannot be) and into every log line
/// and event of the task, so they are refused before anything uses them.
pub fn id_problem(id: &str) -> Option<String> {
    if id.len() > MAX_SESSION_ID {
        return Some(format!(
            "must be at most {MAX_SESSION_ID} bytes, got {}",
            id.len()
        ));
    }
    id.char_indices()
        .find(|(_, c)| c.is_control())
        .map(|(at, c)| {
            format!(
                "must not hold control characters (U+{:04X} at byte {at})",
                c as u32
            )
        })
}

/// Whether `id` matches the task id pattern `[A-Za-z0-9][A-Za-z0-9._-]{0,127}`.
pub fn valid_task_id(id: &str) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

fn invalid(msg: impl Into<String>) -> PayloadError {
    PayloadError::Invalid(msg.into())
}

fn opt_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    name: &str,
) -> Result<Option<&'a str>, PayloadError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(invalid(format!(
            "{name} must be a string, got {}",
            kind_of(other)
        ))),
    }
}

fn opt_bool(obj: &Map<String, Value>, key: &str) -> Result<bool, PayloadError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(invalid(format!(
            "{key} must be true or false, got {}",
            kind_of(other)
        ))),
    }
}

/// A word for a JSON value's kind, for error messages.
pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses and validates a request body.
pub fn parse_payload(body: &[u8]) -> Result<Payload, PayloadError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(invalid("Request body is empty; expected a JSON object."));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("Request body is not valid JSON: {e}")))?;
    payload_from_value(value)
}

/// Validates an already-parsed body (A2A builds payloads this way too).
pub fn payload_from_value(value: Value) -> Result<Payload, PayloadError> {
    let Value::Object(obj) = value else {
        return Err(invalid(format!(
            "Request body must be a JSON object, got {}",
            kind_of(&value)
        )));
    };
    let task_type = match opt_str(&obj, "taskType", "taskType")? {
        None | Some("agent.run") => TaskType::AgentRun,
        Some("command.run") => TaskType::CommandRun,
        Some("task.status") => TaskType::Status,
        Some("task.cancel") => TaskType::Cancel,
        Some("task.list") => TaskType::List,
        // Echoed in the answer and the log: clipped, as every caller value.
        Some(other) => return Err(PayloadError::UnsupportedTaskType(clip(other, 200))),
    };
    let task_id = match opt_str(&obj, "taskId", "taskId")? {
        None => None,
        Some(id) if valid_task_id(id) => Some(id.to_string()),
        Some(id) => {
            return Err(invalid(format!(
                "taskId {:?} must match [A-Za-z0-9][A-Za-z0-9._-]{{0,127}}",
                clip(id, 200)
            )))
        }
    };
    if matches!(task_type, TaskType::Status | TaskType::Cancel) && task_id.is_none() {
        return Err(invalid(format!("{} requires taskId", task_type.as_str())));
    }
    let input = match obj.get("input") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => {
            return Err(invalid(format!(
                "input must be a JSON object, got {}",
                kind_of(other)
            )))
        }
    };
    let framework = match opt_str(&input, "framework", "input.framework")? {
        Some(f) => Some(f.to_string()),
        None => opt_str(&obj, "framework", "framework")?.map(str::to_string),
    };
    let instruction = match opt_str(&input, "instruction", "input.instruction")? {
        Some(s) => s.to_string(),
        None => opt_str(&obj, "prompt", "prompt")?.unwrap_or("").to_string(),
    };
    let timeout = match input.get("timeoutSeconds") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_f64() {
            Some(s) if (0.001..1e9).contains(&s) => Some(Duration::from_secs_f64(s)),
            _ => {
                return Err(invalid(format!(
                    "input.timeoutSeconds must be a number of seconds of at least 0.001, got {v}"
                )))
            }
        },
    };
    let after_seq = match obj.get("afterSeq") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_u64()
            .ok_or_else(|| invalid(format!("afterSeq must be a whole number >= 0, got {v}")))?,
    };
    let session_id = match opt_str(&obj, "sessionId", "sessionId")? {
        None | Some("") => None,
        Some(s) => match id_problem(s) {
            None => Some(s.to_string()),
            Some(problem) => return Err(invalid(format!("sessionId {problem}"))),
        },
    };
    let context = input
        .get("context")
        .filter(|v| !v.is_null())
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    let metadata = obj
        .get("metadata")
        .filter(|v| !v.is_null())
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    Ok(Payload {
        task_type,
        task_id,
        framework,
        instruction,
        context,
        metadata,
        is_async: opt_bool(&obj, "async")?,
        stream: opt_bool(&obj, "stream")?,
        timeout,
        after_seq,
        session_id,
        input,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> String {
        match parse_payload(body.as_bytes()) {
            Err(PayloadError::Invalid(m)) => m,
            other => panic!("expected Invalid for {body}, got {other:?}"),
        }
    }

    #[test]
    fn numbers_a_caller_sends_reach_the_child_unchanged() {
        // Found by fuzzing: without serde_json's float_roundtrip, 118446744073709551616 was
        // read as 1.1844674407370955e20 and written back as ...957e20.
        let body = br#"{"input":{"n":118446744073709551616,"x":0.30000000000000004}}"#;
        let p = parse_payload(body).unwrap();
        let again =
            parse_payload(&serde_json::to_vec(&serde_json::json!({"input": p.input})).unwrap())
                .unwrap();
        assert_eq!(p.input, again.input);
        assert_eq!(p.input["x"].as_f64(), Some(0.30000000000000004));
    }

    #[test]
    fn reference_payload_and_aliases() {
        let p = parse_payload(br#"{"prompt":"hi","framework":"x","metadata":{"a":1}}"#).unwrap();
        assert_eq!(p.task_type, TaskType::AgentRun);
        assert_eq!(p.instruction, "hi");
        assert_eq!(p.framework.as_deref(), Some("x"));
        let p = parse_payload(
            br#"{"taskType":"agent.run","prompt":"no","framework":"x","input":{"instruction":"yes","framework":"y","timeoutSeconds":2.5}}"#,
        )
        .unwrap();
        assert_eq!(p.instruction, "yes");
        assert_eq!(p.framework.as_deref(), Some("y"));
        assert_eq!(p.timeout, Some(Duration::from_millis(2500)));
    }

    #[test]
    fn bad_bodies_name_what_is_wrong() {
        assert!(err("").contains("empty"));
        assert!(err("{nope").contains("not valid JSON"));
        assert!(err("[1]").contains("an array"));
        assert!(err(r#"{"input":"x"}"#).contains("input must be a JSON object"));
        assert!(err(r#"{"taskId":"-bad"}"#).contains("taskId"));
        assert!(err(r#"{"input":{"timeoutSeconds":-1}}"#).contains("input.timeoutSeconds"));
        assert!(err(r#"{"input":{"timeoutSeconds":"5"}}"#).contains("input.timeoutSeconds"));
        assert!(err(r#"{"input":{"timeoutSeconds":1e-10}}"#).contains("input.timeoutSeconds"));
        assert!(err(r#"{"taskType":5}"#).contains("taskType"));
        assert!(err(r#"{"taskType":"task.status"}"#).contains("requires taskId"));
        assert!(err(r#"{"async":"yes"}"#).contains("async"));
    }

    #[test]
    fn unknown_task_type_is_not_a_400() {
        assert_eq!(
            parse_payload(br#"{"taskType":"dance"}"#).unwrap_err(),
            PayloadError::UnsupportedTaskType("dance".into())
        );
    }

    #[test]
    fn task_id_pattern() {
        assert!(valid_task_id("a"));
        assert!(valid_task_id("A1._-z"));
        assert!(valid_task_id(&"a".repeat(128)));
        assert!(!valid_task_id(&"a".repeat(129)));
        assert!(!valid_task_id(".a"));
        assert!(!valid_task_id("a/b"));
        assert!(!valid_task_id(""));
    }
}
