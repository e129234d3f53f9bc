//! The tools: one `run_<framework>` per framework defined, `command_run` when the allowlist
//! allows anything, `task_status` and `task_cancel`; and a call's arguments as the
//! `/invocations` payload it stands for, so that every check (ids, sizes, timeouts) is the
//! payload's own.

use serde_json::{json, Map, Value};

use crate::task::Worker;
use crate::wire::{payload_from_value, Payload};

/// Prefix of a framework's tool.
pub const RUN_PREFIX: &str = "run_";

/// What a tool call asks for.
pub enum Call {
    /// Start a task (`run_<name>` or `command_run`) from this payload.
    Start(Box<Payload>),
    /// `task_status`: a task's state and its events after `after_seq`.
    Status { task_id: String, after_seq: u64 },
    /// `task_cancel`.
    Cancel { task_id: String },
}

/// Why a call's arguments were refused: a tool result with `isError`, so that a model can
/// correct itself (as MCP asks of input errors), naming the argument at fault.
pub struct BadArguments(pub String);

/// Whether `name` is a valid MCP tool name (letters, digits, `_`, `-`, `.`; 1–128).
fn tool_name_ok(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn session_property() -> Value {
    json!({
        "type": "string",
        "description": "Session to run in (AgentCore's session header wins when sent): a later call with the same id continues the conversation.",
    })
}

/// `tools/list`'s tools, in a stable order (frameworks by name, then the others).
pub fn list(worker: &Worker) -> Vec<Value> {
    let mut tools = Vec::new();
    for fw in worker.frameworks.iter() {
        let name = format!("{RUN_PREFIX}{}", fw.name);
        if !tool_name_ok(&name) {
            continue;
        }
        let description = fw.description.clone().unwrap_or_else(|| {
            format!(
                "Runs the {} agent on an instruction and answers with its output.",
                fw.name
            )
        });
        tools.push(json!({
            "name": name,
            "title": format!("Run {}", fw.name),
            "description": description,
            "inputSchema": {
                "type": "object",
                "properties": {
                    "instruction": {"type": "string", "description": "What the agent is asked to do."},
                    "sessionId": session_property(),
                    "input": {
                        "type": "object",
                        "description": "More of the task's input, passed to the framework whole: context, timeoutSeconds, resume, or any key the framework reads.",
                        "additionalProperties": true,
                    },
                },
                "required": ["instruction"],
                "additionalProperties": false,
            },
        }));
    }
    if !worker.cfg.command_allowlist.is_empty() {
        tools.push(json!({
            "name": "command_run",
            "title": "Run a command",
            "description": "Runs one command allowed by the worker's AGENTDISPATCH_COMMAND_ALLOWLIST (split like a shell would, never given to one) and answers with its standard output.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "command": {"type": "string", "description": "The command line, e.g. \"git status\"."},
                    "sessionId": session_property(),
                    "timeoutSeconds": {"type": "number", "exclusiveMinimum": 0},
                },
                "required": ["command"],
                "additionalProperties": false,
            },
        }));
    }
    let task_id = json!({"type": "string", "description": "The task's id (a run's result names it in structuredContent.taskId)."});
    tools.push(json!({
        "name": "task_status",
        "title": "Task status",
        "description": "A task's status, output and events after afterSeq.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "taskId": task_id,
                "afterSeq": {"type": "integer", "minimum": 0, "description": "Only events after this sequence number."},
            },
            "required": ["taskId"],
            "additionalProperties": false,
        },
        "annotations": {"readOnlyHint": true},
    }));
    tools.push(json!({
        "name": "task_cancel",
        "title": "Cancel a task",
        "description": "Stops a running task (its process group gets SIGTERM, then SIGKILL).",
        "inputSchema": {
            "type": "object",
            "properties": {"taskId": task_id},
            "required": ["taskId"],
            "additionalProperties": false,
        },
        "annotations": {"destructiveHint": true, "idempotentHint": true},
    }));
    tools
}

/// The arguments object, refusing keys the tool does not take.
fn arguments<'a>(
    args: &'a Map<String, Value>,
    known: &[&str],
    tool: &str,
) -> Result<&'a Map<String, Value>, BadArguments> {
    if let Some(k) = args.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(BadArguments(format!(
            "Tool {tool} has no argument {:?}; it takes {}.",
            crate::wire::clip(k, 100),
            known.join(", ")
        )));
    }
    Ok(args)
}

fn string_arg(
    args: &Map<String, Value>,
    key: &str,
    tool: &str,
) -> Result<Option<String>, BadArguments> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(BadArguments(format!(
            "Tool {tool}: argument {key} must be a string, not {}.",
            crate::wire::kind_of(other)
        ))),
    }
}

fn required(v: Option<String>, key: &str, tool: &str) -> Result<String, BadArguments> {
    v.ok_or_else(|| BadArguments(format!("Tool {tool} needs the argument {key} (a string).")))
}

/// What a call of tool `name` with `args` asks for; `Ok(None)` when no such tool is served.
pub fn call(
    worker: &Worker,
    name: &str,
    args: &Map<String, Value>,
) -> Result<Option<Call>, BadArguments> {
    let payload = |body: Value| {
        payload_from_value(body)
            .map(|p| Call::Start(Box::new(p)))
            .map_err(|e| BadArguments(format!("Tool {name}: {e}")))
    };
    if let Some(framework) = name.strip_prefix(RUN_PREFIX) {
        if worker.frameworks.get(framework).is_none() {
            return Ok(None);
        }
        let args = arguments(args, &["instruction", "sessionId", "input"], name)?;
        let instruction = required(string_arg(args, "instruction", name)?, "instruction", name)?;
        let mut input = match args.get("input") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(other) => {
                return Err(BadArguments(format!(
                    "Tool {name}: argument input must be an object, not {}.",
                    crate::wire::kind_of(other)
                )))
            }
        };
        input.insert("instruction".into(), json!(instruction));
        input.insert("framework".into(), json!(framework));
        let mut body = json!({"taskType": "agent.run", "input": input});
        if let Some(s) = string_arg(args, "sessionId", name)? {
            body["sessionId"] = json!(s);
        }
        return payload(body).map(Some);
    }
    match name {
        "command_run" if !worker.cfg.command_allowlist.is_empty() => {
            let args = arguments(args, &["command", "sessionId", "timeoutSeconds"], name)?;
            let command = required(string_arg(args, "command", name)?, "command", name)?;
            let mut input = json!({"command": command});
            if let Some(t) = args.get("timeoutSeconds") {
                input["timeoutSeconds"] = t.clone();
            }
            let mut body = json!({"taskType": "command.run", "input": input});
            if let Some(s) = string_arg(args, "sessionId", name)? {
                body["sessionId"] = json!(s);
            }
            payload(body).map(Some)
        }
        "task_status" => {
            let args = arguments(args, &["taskId", "afterSeq"], name)?;
            let task_id = required(string_arg(args, "taskId", name)?, "taskId", name)?;
            let after_seq = match args.get("afterSeq") {
                None | Some(Value::Null) => 0,
                Some(v) => v.as_u64().ok_or_else(|| {
                    BadArguments(format!(
                        "Tool {name}: argument afterSeq must be a whole number of at least 0."
                    ))
                })?,
            };
            Ok(Some(Call::Status { task_id, after_seq }))
        }
        "task_cancel" => {
            let args = arguments(args, &["taskId"], name)?;
            let task_id = required(string_arg(args, "taskId", name)?, "taskId", name)?;
            Ok(Some(Call::Cancel { task_id }))
        }
        _ => Ok(None),
    }
}
