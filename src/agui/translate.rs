//! A task's record, live text and answer as one AG-UI run (SPEC §13): what the child writes,
//! told in AG-UI's events, in an order AG-UI's clients accept (`@ag-ui/client`'s verifier: a
//! message or tool call is started before its content and ended before the run finishes; nothing
//! follows `RUN_FINISHED` / `RUN_ERROR`).
//!
//! Deltas drive the `*_START` / `*_CONTENT` / `*_ARGS` events as the model writes; the steps of
//! the record that close a message or a call (`model_turn`, `tool_call`) end them, and say the
//! whole of what no delta streamed (a framework or model that does not stream). The transport
//! (SSE on `/invocations`, `/ws`) only frames the events this returns.

use std::collections::{HashMap, HashSet, VecDeque};

use serde_json::{json, Value};

use super::event::Event;
use crate::live::{Delta, Kind};
use crate::wire::{TaskResult, TaskStatus};

/// Where a tool call is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    /// Its arguments are being written, and its name is not known yet: the pieces wait.
    Unnamed(String),
    /// Started, arguments streaming.
    Open,
    /// Ended.
    Ended,
}

/// One run's translation state.
pub struct Translator {
    thread_id: String,
    run_id: String,
    parent_run_id: Option<String>,
    task_id: String,
    /// Text messages started and not ended, in order.
    open_text: Vec<String>,
    /// Reasoning messages started and not ended.
    open_reasoning: Vec<String>,
    /// Messages already told whole (started and ended), so a closing step adds nothing.
    done: HashSet<String>,
    calls: HashMap<String, Call>,
    /// Calls made without an id (tool name, synthesized id), for the results that follow them.
    unmatched: VecDeque<(String, String)>,
    /// The last model message, the parent of the calls that follow it.
    last_message: Option<String>,
    /// Whether any assistant text was sent: if none, the task's output is (echo, a framework
    /// that writes no steps).
    said_text: bool,
}

impl Translator {
    /// A run of task `task_id` for the client's ids.
    pub fn new(thread_id: &str, run_id: &str, parent_run_id: Option<&str>, task_id: &str) -> Self {
        Translator {
            thread_id: thread_id.to_string(),
            run_id: run_id.to_string(),
            parent_run_id: parent_run_id.map(str::to_string),
            task_id: task_id.to_string(),
            open_text: Vec::new(),
            open_reasoning: Vec::new(),
            done: HashSet::new(),
            calls: HashMap::new(),
            unmatched: VecDeque::new(),
            last_message: None,
            said_text: false,
        }
    }

    /// The first event.
    pub fn start(&self) -> Event {
        Event::RunStarted {
            thread_id: self.thread_id.clone(),
            run_id: self.run_id.clone(),
            parent_run_id: self.parent_run_id.clone(),
        }
    }

    /// The events for a piece of live text.
    pub fn delta(&mut self, d: &Delta, out: &mut Vec<Event>) {
        match &d.kind {
            Kind::Text => {
                if d.text.is_empty() || self.done.contains(&d.message_id) {
                    return;
                }
                self.end_reasoning(&d.message_id, out);
                self.open(&d.message_id, out);
                out.push(Event::TextMessageContent {
                    message_id: d.message_id.clone(),
                    delta: d.text.clone(),
                });
            }
            Kind::Reasoning => {
                let id = reasoning_id(&d.message_id);
                if d.text.is_empty() || self.done.contains(&id) {
                    return;
                }
                if !self.open_reasoning.contains(&id) {
                    self.open_reasoning.push(id.clone());
                    out.push(Event::ReasoningStart {
                        message_id: id.clone(),
                    });
                    out.push(Event::ReasoningMessageStart {
                        message_id: id.clone(),
                        role: "reasoning",
                    });
                }
                out.push(Event::ReasoningMessageContent {
                    message_id: id,
                    delta: d.text.clone(),
                });
            }
            Kind::ToolCall { tool_call_id, tool } => {
                let id = tool_call_id;
                let waiting = match self.calls.get(id) {
                    Some(Call::Ended) => return,
                    Some(Call::Open) => return args(id, &d.text, out),
                    Some(Call::Unnamed(w)) => format!("{w}{}", d.text),
                    None => d.text.clone(),
                };
                match tool {
                    Some(name) => self.start_call(id, name, Some(&d.message_id), &waiting, out),
                    // The pieces wait for the name (AG-UI's TOOL_CALL_START needs one).
                    None => {
                        self.calls.insert(id.clone(), Call::Unnamed(waiting));
                    }
                }
            }
        }
    }

    /// The events for one event of the record (its JSON text); only the steps of
    /// `task.progress` events say anything in AG-UI.
    pub fn event(&mut self, seq: u64, event: &str, out: &mut Vec<Event>) {
        // The serializer writes "type" first: the many heartbeats and logs are not parsed.
        if !event.starts_with(r#"{"type":"task.progress""#) {
            return;
        }
        let Ok(ev) = serde_json::from_str::<Value>(event) else {
            return;
        };
        let p = &ev["payload"];
        let text = p["text"].as_str().unwrap_or_default();
        let message_id = p["messageId"].as_str().filter(|s| !s.is_empty());
        match p["step"].as_str() {
            Some("model_turn") => {
                let id = message_id
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{}-{seq}", self.task_id));
                self.close_message(&id, text, out);
                self.last_message = Some(id);
            }
            Some("final_answer") => match message_id {
                Some(id) => self.close_message(id, text, out),
                None if !self.said_text && !text.is_empty() => {
                    self.close_message(&format!("{}-{seq}", self.task_id), text, out)
                }
                None => {}
            },
            Some("tool_call") => {
                let tool = p["tool"].as_str().unwrap_or("tool");
                let id = match p["toolCallId"].as_str().filter(|s| !s.is_empty()) {
                    Some(id) => id.to_string(),
                    None => {
                        let id = format!("{}-call-{seq}", self.task_id);
                        self.unmatched.push_back((tool.to_string(), id.clone()));
                        id
                    }
                };
                let whole = match &p["args"] {
                    Value::Null => String::new(),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                self.finish_call(&id, tool, &whole, out);
            }
            Some("tool_result") => {
                let tool = p["tool"].as_str().unwrap_or("tool");
                let id = match p["toolCallId"].as_str().filter(|s| !s.is_empty()) {
                    Some(id) => id.to_string(),
                    None => self.matching_call(tool, seq),
                };
                self.finish_call(&id, tool, "", out);
                let content = match &p["result"] {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                out.push(Event::ToolCallResult {
                    message_id: format!("{id}-result"),
                    tool_call_id: id,
                    content,
                    role: "tool",
                });
            }
            _ => {}
        }
    }

    /// The last events: whatever is still open ends, then `RUN_FINISHED` or `RUN_ERROR`.
    pub fn end(&mut self, r: &TaskResult, out: &mut Vec<Event>) {
        for id in std::mem::take(&mut self.open_reasoning) {
            end_reasoning_events(id, out);
        }
        for id in std::mem::take(&mut self.open_text) {
            out.push(Event::TextMessageEnd { message_id: id });
        }
        let mut open: Vec<_> = self
            .calls
            .iter()
            .filter(|(_, c)| **c == Call::Open)
            .map(|(id, _)| id.clone())
            .collect();
        open.sort();
        for id in open {
            out.push(Event::ToolCallEnd { tool_call_id: id });
        }
        if r.ok {
            if !self.said_text && !r.output.is_empty() {
                let id = format!("{}-output", self.task_id_of(r));
                self.close_message(&id, &r.output, out);
            }
            let mut result = json!({
                "taskId": r.task_id,
                "status": r.status,
                "output": r.output,
                "result": r.result,
            });
            // A task that asks: AG-UI's interrupt outcome, its answer a run with `resume`.
            let outcome = match &r.asked.interrupts {
                Some(qs) if r.status == TaskStatus::InputRequired && !qs.is_empty() => {
                    result["sessionId"] = json!(r.asked.session_id);
                    Some(json!({
                        "type": "interrupt",
                        "interrupts": qs.iter().map(interrupt).collect::<Vec<_>>(),
                    }))
                }
                _ => None,
            };
            out.push(Event::RunFinished {
                thread_id: self.thread_id.clone(),
                run_id: self.run_id.clone(),
                result: Some(result),
                outcome,
            });
        } else {
            let code = r
                .error_code
                .and_then(|c| serde_json::to_value(c).ok())
                .and_then(|v| v.as_str().map(str::to_string));
            out.push(Event::RunError {
                message: r
                    .error
                    .clone()
                    .unwrap_or_else(|| format!("The task ended {}.", r.status.as_str())),
                code,
            });
        }
    }

    fn task_id_of<'a>(&'a self, r: &'a TaskResult) -> &'a str {
        if r.task_id.is_empty() {
            &self.task_id
        } else {
            &r.task_id
        }
    }

    fn open(&mut self, id: &str, out: &mut Vec<Event>) {
        if !self.open_text.iter().any(|m| m == id) {
            self.open_text.push(id.to_string());
            self.said_text = true;
            out.push(Event::TextMessageStart {
                message_id: id.to_string(),
                role: "assistant",
            });
        }
    }

    /// A step closes message `id` whose whole text is `text`: ended when it streamed, told
    /// whole when it did not (and has text).
    fn close_message(&mut self, id: &str, text: &str, out: &mut Vec<Event>) {
        self.end_reasoning(id, out);
        if let Some(at) = self.open_text.iter().position(|m| m == id) {
            self.open_text.remove(at);
            out.push(Event::TextMessageEnd {
                message_id: id.to_string(),
            });
        } else if !self.done.contains(id) && !text.is_empty() {
            self.open(id, out);
            self.open_text.retain(|m| m != id);
            out.push(Event::TextMessageContent {
                message_id: id.to_string(),
                delta: text.to_string(),
            });
            out.push(Event::TextMessageEnd {
                message_id: id.to_string(),
            });
        }
        self.done.insert(id.to_string());
    }

    fn end_reasoning(&mut self, message_id: &str, out: &mut Vec<Event>) {
        let id = reasoning_id(message_id);
        if let Some(at) = self.open_reasoning.iter().position(|m| *m == id) {
            self.open_reasoning.remove(at);
            self.done.insert(id.clone());
            end_reasoning_events(id, out);
        }
    }

    fn start_call(
        &mut self,
        id: &str,
        name: &str,
        parent: Option<&str>,
        args_so_far: &str,
        out: &mut Vec<Event>,
    ) {
        self.calls.insert(id.to_string(), Call::Open);
        out.push(Event::ToolCallStart {
            tool_call_id: id.to_string(),
            tool_call_name: name.to_string(),
            parent_message_id: parent.map(str::to_string),
        });
        args(id, args_so_far, out);
    }

    /// A step says call `id` is made (`whole`: its arguments, sent when none streamed): it is
    /// started if no delta started it, and ended.
    fn finish_call(&mut self, id: &str, tool: &str, whole: &str, out: &mut Vec<Event>) {
        match self.calls.get(id).cloned() {
            Some(Call::Ended) => return,
            Some(Call::Open) => {}
            Some(Call::Unnamed(waiting)) => {
                let parent = self.last_message.clone();
                self.start_call(id, tool, parent.as_deref(), &waiting, out);
            }
            None => {
                let parent = self.last_message.clone();
                self.start_call(id, tool, parent.as_deref(), whole, out);
            }
        }
        self.calls.insert(id.to_string(), Call::Ended);
        out.push(Event::ToolCallEnd {
            tool_call_id: id.to_string(),
        });
    }

    /// The call a result without an id answers: the oldest one of that tool made without an
    /// id, else a new id.
    fn matching_call(&mut self, tool: &str, seq: u64) -> String {
        match self.unmatched.iter().position(|(t, _)| t == tool) {
            Some(at) => self
                .unmatched
                .remove(at)
                .map(|(_, id)| id)
                .unwrap_or_default(),
            None => format!("{}-call-{seq}", self.task_id),
        }
    }
}

/// One of the worker's questions (`{id, kind, value?, tool?, args?}`, SPEC §14) as an AG-UI
/// `Interrupt`: `reason` is its kind, `message` its text when it has one (else a sentence
/// naming the tool), an approval's `responseSchema` the answer it takes, and the question
/// itself in `metadata` (its tool and arguments, for a client that shows them).
fn interrupt(q: &Value) -> Value {
    let kind = q["kind"].as_str().unwrap_or("input");
    let message = match (&q["value"], q["tool"].as_str()) {
        (Value::String(s), _) => Some(s.clone()),
        (_, Some(tool)) if kind == "approval" => Some(format!("Approve the call of {tool}?")),
        _ => None,
    };
    let mut i = json!({
        "id": q["id"],
        "reason": kind,
        "metadata": {"question": q},
    });
    if let Some(m) = message {
        i["message"] = json!(m);
    }
    if let Some(call) = q["toolCallId"].as_str() {
        i["toolCallId"] = json!(call);
    }
    if kind == "approval" {
        i["responseSchema"] = json!({
            "type": "object",
            "properties": {"approved": {"type": "boolean"}, "message": {"type": "string"}},
            "required": ["approved"],
        });
    }
    i
}

fn reasoning_id(message_id: &str) -> String {
    format!("{message_id}-reasoning")
}

fn end_reasoning_events(id: String, out: &mut Vec<Event>) {
    out.push(Event::ReasoningMessageEnd {
        message_id: id.clone(),
    });
    out.push(Event::ReasoningEnd { message_id: id });
}

fn args(id: &str, piece: &str, out: &mut Vec<Event>) {
    if !piece.is_empty() {
        out.push(Event::ToolCallArgs {
            tool_call_id: id.to_string(),
            delta: piece.to_string(),
        });
    }
}
