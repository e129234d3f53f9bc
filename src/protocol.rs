//! The NDJSON child protocol: what one line of a child's stdout means.

use serde_json::{Map, Value};

use crate::wire::{ErrorCode, EventDraft, EventPayload, EventType};

/// A child's final result, in either of the two accepted forms.
#[derive(Debug, Clone, Default)]
pub struct ChildResult {
    /// `output` text.
    pub output: Option<String>,
    /// `result` value.
    pub result: Option<Value>,
    /// `events` to add, in order.
    pub events: Vec<EventDraft>,
    /// `artifacts` the child declared.
    pub artifacts: Vec<Value>,
    /// `ok:false` declared by the child.
    pub failed: bool,
    /// `error` declared by the child.
    pub error: Option<String>,
    /// `errorCode` declared by the child, when it is one a child may declare
    /// ([`ErrorCode::from_child`]).
    pub error_code: Option<ErrorCode>,
    /// `traceback` of a failure: for the worker's log, never an event or the answer.
    pub traceback: Option<String>,
}

/// What a line of stdout is.
#[derive(Debug, Clone)]
pub enum ChildLine {
    /// An event the child emitted (`seq`, `ts`, `taskId` still to be set).
    Event(EventDraft),
    /// A piece of live text (§4.1), not an event of the record.
    Delta(Box<crate::live::Delta>),
    /// A `task.delta` line that cannot be used: what is wrong with it.
    BadDelta(String),
    /// A `task.interrupt` line's questions (SPEC §14), checked.
    Interrupt(Vec<Value>),
    /// A `task.interrupt` line that cannot be used: what is wrong with it.
    BadInterrupt(String),
    /// A final result (the last one wins).
    Result(Box<ChildResult>),
    /// A JSON object that is neither: shown as a log line.
    OtherJson,
    /// Plain text: a log line, and `output` when no result comes.
    Text,
}

/// Classifies one line (without its newline). Plain text is recognised without parsing.
pub fn classify(line: &str) -> ChildLine {
    let trimmed = line.trim_start();
    if !trimmed.starts_with('{') {
        return ChildLine::Text;
    }
    let Ok(Value::Object(mut obj)) = serde_json::from_str::<Value>(trimmed) else {
        return ChildLine::Text;
    };
    if obj.get("type").and_then(Value::as_str) == Some("task.delta") {
        return match crate::live::parse(obj.remove("payload")) {
            Ok(d) => ChildLine::Delta(Box::new(d)),
            Err(why) => ChildLine::BadDelta(why),
        };
    }
    match obj.get("type").and_then(Value::as_str) {
        Some("task.interrupt") => match crate::interrupts::parse(obj.remove("payload")) {
            Ok(questions) => ChildLine::Interrupt(questions),
            Err(why) => ChildLine::BadInterrupt(why),
        },
        Some("task.result") => ChildLine::Result(Box::new(result_from(obj, true))),
        Some(t) => match EventType::from_wire(t) {
            Some(kind) => ChildLine::Event(event_from(kind, obj)),
            None => ChildLine::OtherJson,
        },
        None if obj.get("type").is_none()
            && ["output", "result", "events", "artifacts"]
                .iter()
                .any(|k| obj.contains_key(*k)) =>
        {
            ChildLine::Result(Box::new(result_from(obj, false)))
        }
        None => ChildLine::OtherJson,
    }
}

fn event_from(kind: EventType, mut obj: Map<String, Value>) -> EventDraft {
    let message = match obj.remove("message") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    };
    let payload = obj
        .remove("payload")
        .filter(|p| !p.is_null())
        .map(EventPayload::Value);
    EventDraft {
        kind,
        message,
        payload,
    }
}

/// A result line; `event` for a `task.result` line, whose result object may be `result` or, as
/// in every other event, `payload` (`result` wins when both are given). The reference worker's
/// final form (no `type`) has only `result`.
fn result_from(mut obj: Map<String, Value>, event: bool) -> ChildResult {
    let payload = event
        .then(|| obj.remove("payload"))
        .flatten()
        .filter(|p| !p.is_null());
    let result = obj.remove("result").filter(|v| !v.is_null()).or(payload);
    let output = match obj.remove("output") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    };
    let events = match obj.remove("events") {
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::Object(o) => {
                    let kind = o
                        .get("type")
                        .and_then(Value::as_str)
                        .and_then(EventType::from_wire)
                        .filter(|k| *k != EventType::Result)
                        .unwrap_or(EventType::Log);
                    event_from(kind, o)
                }
                other => EventDraft {
                    kind: EventType::Log,
                    message: Some(match other {
                        Value::String(s) => s,
                        v => v.to_string(),
                    }),
                    payload: None,
                },
            })
            .collect(),
        _ => Vec::new(),
    };
    let artifacts = match obj.remove("artifacts") {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    ChildResult {
        output,
        result,
        events,
        artifacts,
        failed: obj.get("ok") == Some(&Value::Bool(false)),
        error_code: obj
            .get("errorCode")
            .and_then(Value::as_str)
            .and_then(ErrorCode::from_child),
        traceback: match obj.remove("traceback") {
            Some(Value::String(s)) => Some(s),
            _ => None,
        },
        error: obj.remove("error").and_then(|e| match e {
            Value::String(s) => Some(s),
            Value::Null => None,
            other => Some(other.to_string()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_and_broken_json_are_text() {
        assert!(matches!(classify("hello"), ChildLine::Text));
        assert!(matches!(classify("{not json"), ChildLine::Text));
        assert!(matches!(classify("[1,2]"), ChildLine::Text));
    }

    #[test]
    fn child_events_keep_message_and_payload() {
        let ChildLine::Event(e) =
            classify(r#"{"type":"task.progress","message":"step","payload":{"n":1},"seq":99}"#)
        else {
            panic!()
        };
        assert_eq!(e.kind, EventType::Progress);
        assert_eq!(e.message.as_deref(), Some("step"));
        assert!(matches!(e.payload, Some(EventPayload::Value(ref v)) if v["n"] == 1));
    }

    #[test]
    fn both_result_forms() {
        let ChildLine::Result(r) = classify(
            r#"{"type":"task.result","output":"done","result":{"x":1},"artifacts":[{"uri":"s3://b/k"}]}"#,
        ) else {
            panic!()
        };
        assert_eq!(r.output.as_deref(), Some("done"));
        assert_eq!(r.artifacts.len(), 1);
        let ChildLine::Result(r) =
            classify(r#"{"output":"ref","events":[{"type":"task.progress","message":"a"},"b"]}"#)
        else {
            panic!()
        };
        assert_eq!(r.output.as_deref(), Some("ref"));
        assert_eq!(r.events.len(), 2);
        assert_eq!(r.events[1].kind, EventType::Log);
        // The result given as `payload`, as every other event carries its detail: kept whole,
        // even when it has keys named like the answer's.
        let ChildLine::Result(r) = classify(
            r#"{"type":"task.result","output":"done","ok":false,"error":"bad","payload":{"answer":42,"output":"inner"}}"#,
        ) else {
            panic!()
        };
        assert_eq!(r.output.as_deref(), Some("done"));
        assert_eq!(
            r.result,
            Some(serde_json::json!({"answer": 42, "output": "inner"}))
        );
        assert!(r.failed);
        assert_eq!(r.error.as_deref(), Some("bad"));
        assert_eq!(r.error_code, None);
        let ChildLine::Result(r) =
            classify(r#"{"type":"task.result","result":{"a":1},"payload":{"b":2}}"#)
        else {
            panic!()
        };
        assert_eq!(r.result, Some(serde_json::json!({"a": 1})));
    }

    #[test]
    fn a_child_declares_only_agent_codes() {
        let code = |c: &str| {
            let line = format!(
                r#"{{"type":"task.result","ok":false,"error":"e","errorCode":"{c}","traceback":"T"}}"#
            );
            let ChildLine::Result(r) = classify(&line) else {
                panic!()
            };
            assert_eq!(r.traceback.as_deref(), Some("T"));
            r.error_code
        };
        assert_eq!(code("agent_failed"), Some(ErrorCode::AgentFailed));
        assert_eq!(
            code("invalid_entrypoint"),
            Some(ErrorCode::InvalidEntrypoint)
        );
        assert_eq!(
            code("agent_import_failed"),
            Some(ErrorCode::AgentImportFailed)
        );
        // The worker's own verdicts are not a child's to claim.
        assert_eq!(code("timed_out"), None);
        assert_eq!(code("no_such_code"), None);
    }

    #[test]
    fn delta_lines_are_deltas_or_named_refusals() {
        let ChildLine::Delta(d) =
            classify(r#"{"type":"task.delta","payload":{"messageId":"m-1","text":"Hel"}}"#)
        else {
            panic!()
        };
        assert_eq!((d.message_id.as_str(), d.text.as_str()), ("m-1", "Hel"));
        let ChildLine::BadDelta(why) = classify(r#"{"type":"task.delta","payload":{"text":"x"}}"#)
        else {
            panic!()
        };
        assert!(why.contains("messageId"), "{why}");
    }

    #[test]
    fn other_objects_are_logs() {
        assert!(matches!(
            classify(r#"{"type":"weird"}"#),
            ChildLine::OtherJson
        ));
        assert!(matches!(
            classify(r#"{"level":"info"}"#),
            ChildLine::OtherJson
        ));
    }
}
