//! Task events: the four types, their payloads, and the serialized form the sink shares.

use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

/// A serialized event, shared between the response buffer, SSE subscribers and the log.
pub type EventJson = Arc<RawValue>;

/// Whether a recorded event is the task's `task.result` (the serializer always writes `type`
/// first, so the prefix says it without parsing).
pub fn is_result(e: &RawValue) -> bool {
    e.get().starts_with(r#"{"type":"task.result""#)
}

/// The four event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EventType {
    /// Progress of the task.
    #[serde(rename = "task.progress")]
    Progress,
    /// A line of output or a worker note.
    #[serde(rename = "task.log")]
    Log,
    /// The child is alive.
    #[serde(rename = "task.heartbeat")]
    Heartbeat,
    /// The last event (payload: the task's `result` value; message: the status).
    #[serde(rename = "task.result")]
    Result,
}

impl EventType {
    /// Parses a child's `type` field.
    pub fn from_wire(s: &str) -> Option<Self> {
        match s {
            "task.progress" => Some(EventType::Progress),
            "task.log" => Some(EventType::Log),
            "task.heartbeat" => Some(EventType::Heartbeat),
            "task.result" => Some(EventType::Result),
            _ => None,
        }
    }
}

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// The child's stdout.
    Stdout,
    /// The child's stderr.
    Stderr,
}

/// An event's payload before serialization.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum EventPayload {
    /// Any JSON value.
    Value(Value),
    /// JSON already serialized (a result record).
    Raw(EventJson),
    /// A line of child output (the hot path: no `Value` built).
    Line {
        /// Pipe.
        stream: Stream,
        /// Set when the line was cut at the line limit.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        truncated: bool,
        /// Set when invalid UTF-8 was replaced.
        #[serde(rename = "invalidUtf8", skip_serializing_if = "std::ops::Not::not")]
        invalid_utf8: bool,
    },
}

/// An event before the sink gives it `seq`, `ts` and `taskId`.
#[derive(Debug, Clone)]
pub struct EventDraft {
    /// Type.
    pub kind: EventType,
    /// Short text.
    pub message: Option<String>,
    /// Structured detail.
    pub payload: Option<EventPayload>,
}

impl EventDraft {
    /// An event with a message and an optional JSON payload.
    pub fn new(kind: EventType, message: impl Into<String>, payload: Option<Value>) -> Self {
        EventDraft {
            kind,
            message: Some(message.into()),
            payload: payload.map(EventPayload::Value),
        }
    }
}

/// The serialized form of an event.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRef<'a> {
    /// Type.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Short text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'a str>,
    /// Structured detail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<&'a EventPayload>,
    /// Per-task sequence number from 1.
    pub seq: u64,
    /// RFC 3339 UTC with milliseconds.
    pub ts: &'a str,
    /// The task.
    pub task_id: &'a str,
}

/// Wraps any serializable value as an [`EventJson`].
pub fn to_raw<T: Serialize + ?Sized>(v: &T) -> EventJson {
    // to_raw_value does not parse its own output again (RawValue::from_string would).
    let raw: Box<RawValue> = serde_json::value::to_raw_value(v)
        .expect("serializing plain data with string keys cannot fail");
    Arc::from(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_events_serialize_in_wire_order() {
        let payload = EventPayload::Line {
            stream: Stream::Stderr,
            truncated: true,
            invalid_utf8: false,
        };
        let e = EventRef {
            kind: EventType::Log,
            message: Some("x"),
            payload: Some(&payload),
            seq: 3,
            ts: "t",
            task_id: "id",
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"type":"task.log","message":"x","payload":{"stream":"stderr","truncated":true},"seq":3,"ts":"t","taskId":"id"}"#
        );
    }
}
