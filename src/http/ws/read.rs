//! What a client's text message asks for. This is where another protocol on `/ws` is told
//! apart (AG-UI's `RunAgentInput` as a first message: a [`Incoming::Invoke`] with its own
//! framing), and where answers to a task's questions (SPEC §14) arrive.

use serde_json::Value;

use super::agui::AguiFraming;
use super::follow::{Framing, Plain};
use crate::wire::{clip, payload_from_value, ErrorCode, Payload, PayloadError};

/// A client message, read.
pub enum Incoming {
    /// An invocation payload, as `POST /invocations` takes, and how to frame its task.
    Invoke(Box<Payload>, Box<dyn Framing>),
    /// `{"type":"task.cancel"}`: cancel the task running on this socket.
    Cancel,
    /// `{"type":"task.resume","resume":…}`: answers to a task's questions (SPEC §14), the
    /// whole message (`resume.rs` reads it).
    Resume(Value),
    /// A payload the worker refuses without starting anything (200 on `/invocations`, e.g. an
    /// unknown `taskType`): the answer is sent and the socket stays open.
    Refused(ErrorCode, String),
    /// Not JSON, not an object, or not a valid payload: the socket is closed with 1003 after
    /// the error object (the same as the 400 answer of `POST /invocations`).
    Bad(String),
}

/// Reads one text message; `first` is whether it is the socket's first (a protocol chosen by
/// the first message keeps the socket).
pub fn read(text: &str, _first: bool) -> Incoming {
    if text.trim().is_empty() {
        return Incoming::Bad("The message is empty; expected a JSON object.".into());
    }
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return Incoming::Bad(format!("The message is not valid JSON: {e}")),
    };
    // A control message names its `type`; an invocation payload has none (or a `taskType`).
    if let Some(kind) = value.get("type") {
        return match kind.as_str() {
            Some("task.cancel") => Incoming::Cancel,
            Some("task.resume") => Incoming::Resume(value),
            _ => Incoming::Bad(format!(
                "Unknown message type {}: a message is an invocation payload (as POST /invocations) {{\"type\":\"task.cancel\"}} or {{\"type\":\"task.resume\",\"resume\":…}}.",
                clip(&kind.to_string(), 100)
            )),
        };
    }
    // AG-UI's `RunAgentInput` (told by its shape, as on `POST /invocations`): its task is framed
    // as AG-UI events.
    if crate::agui::looks_like(&value) {
        return match crate::agui::parse(&value) {
            Ok(run) => {
                let framing = Box::new(AguiFraming::new(&run));
                Incoming::Invoke(Box::new(run.payload), framing)
            }
            Err(details) => Incoming::Bad(format!("Invalid RunAgentInput: {details}")),
        };
    }
    match payload_from_value(value) {
        Ok(p) => Incoming::Invoke(Box::new(p), Box::new(Plain)),
        Err(PayloadError::Invalid(msg)) => Incoming::Bad(msg),
        Err(e @ PayloadError::UnsupportedTaskType(_)) => {
            Incoming::Refused(ErrorCode::UnsupportedTaskType, e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_told_apart_and_bad_ones_named() {
        assert!(matches!(
            read(r#"{"type":"task.cancel"}"#, false),
            Incoming::Cancel
        ));
        assert!(matches!(
            read(r#"{"type":"task.resume","resume":true}"#, false),
            Incoming::Resume(m) if m["resume"] == true
        ));
        assert!(matches!(
            read(r#"{"prompt":"hi"}"#, true),
            Incoming::Invoke(..)
        ));
        assert!(matches!(
            read(r#"{"taskType":"task.frobnicate"}"#, true),
            Incoming::Refused(ErrorCode::UnsupportedTaskType, _)
        ));
        let run = r#"{"threadId":"t","runId":"r","messages":[{"id":"1","role":"user","content":"hi"}],"tools":[],"context":[],"forwardedProps":{}}"#;
        assert!(matches!(read(run, true), Incoming::Invoke(..)));
        let bad = |t: &str| match read(t, true) {
            Incoming::Bad(m) => m,
            _ => panic!("{t} was not refused"),
        };
        assert!(bad("{nope").contains("not valid JSON"));
        assert!(bad("  ").contains("empty"));
        assert!(bad(r#"{"type":"dance"}"#).contains("\"dance\""));
        assert!(bad("[1]").contains("object"));
        let no_props = run.replace(r#","forwardedProps":{}"#, "");
        assert!(bad(&no_props).starts_with("Invalid RunAgentInput: forwardedProps is required"));
    }
}
