//! The AG-UI events this worker sends, serialized as AG-UI's own encoders write them: `type` in
//! SCREAMING_SNAKE_CASE, every field camelCase, optional fields without a value left out (the
//! Python SDK's `ConfiguredBaseModel` omits them; the TypeScript schemas treat an absent key and
//! a missing value alike).

use serde::Serialize;
use serde_json::Value;

/// One AG-UI event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Event {
    /// The run began.
    #[serde(rename_all = "camelCase")]
    RunStarted {
        /// The client's `threadId`.
        thread_id: String,
        /// The client's `runId`.
        run_id: String,
        /// The client's `parentRunId`, when it sent one.
        #[serde(skip_serializing_if = "Option::is_none")]
        parent_run_id: Option<String>,
    },
    /// An assistant message begins.
    #[serde(rename_all = "camelCase")]
    TextMessageStart {
        /// The model message (the child's `messageId`).
        message_id: String,
        /// Always `assistant`: only the model's text is streamed.
        role: &'static str,
    },
    /// A piece of an assistant message (never empty: AG-UI's schemas refuse an empty delta).
    #[serde(rename_all = "camelCase")]
    TextMessageContent {
        /// The message it belongs to.
        message_id: String,
        /// The piece.
        delta: String,
    },
    /// An assistant message is complete.
    #[serde(rename_all = "camelCase")]
    TextMessageEnd {
        /// The message.
        message_id: String,
    },
    /// A reasoning phase begins (the model's thinking, when its framework streams it).
    #[serde(rename_all = "camelCase")]
    ReasoningStart {
        /// The reasoning message.
        message_id: String,
    },
    /// A reasoning message begins.
    #[serde(rename_all = "camelCase")]
    ReasoningMessageStart {
        /// The reasoning message.
        message_id: String,
        /// Always `reasoning`.
        role: &'static str,
    },
    /// A piece of reasoning text.
    #[serde(rename_all = "camelCase")]
    ReasoningMessageContent {
        /// The reasoning message.
        message_id: String,
        /// The piece.
        delta: String,
    },
    /// A reasoning message is complete.
    #[serde(rename_all = "camelCase")]
    ReasoningMessageEnd {
        /// The reasoning message.
        message_id: String,
    },
    /// A reasoning phase is over.
    #[serde(rename_all = "camelCase")]
    ReasoningEnd {
        /// The reasoning message.
        message_id: String,
    },
    /// The model calls a tool.
    #[serde(rename_all = "camelCase")]
    ToolCallStart {
        /// The framework's id of the call.
        tool_call_id: String,
        /// The tool.
        tool_call_name: String,
        /// The model message that made the call, when known.
        #[serde(skip_serializing_if = "Option::is_none")]
        parent_message_id: Option<String>,
    },
    /// A piece of the call's JSON arguments.
    #[serde(rename_all = "camelCase")]
    ToolCallArgs {
        /// The call.
        tool_call_id: String,
        /// The piece.
        delta: String,
    },
    /// The call's arguments are complete.
    #[serde(rename_all = "camelCase")]
    ToolCallEnd {
        /// The call.
        tool_call_id: String,
    },
    /// What the tool answered.
    #[serde(rename_all = "camelCase")]
    ToolCallResult {
        /// An id of the tool message holding the result.
        message_id: String,
        /// The call.
        tool_call_id: String,
        /// The result as text.
        content: String,
        /// Always `tool`.
        role: &'static str,
    },
    /// The run ended without error.
    #[serde(rename_all = "camelCase")]
    RunFinished {
        /// The client's `threadId`.
        thread_id: String,
        /// The client's `runId`.
        run_id: String,
        /// `{taskId, status, output, result}` of the task that ran.
        #[serde(skip_serializing_if = "Option::is_none")]
        result: Option<Value>,
        /// Why the run ended, when not plain success: `{"type":"interrupt","interrupts":[…]}`
        /// for a task that asks (SPEC §14; AG-UI's interrupt-aware run lifecycle).
        #[serde(skip_serializing_if = "Option::is_none")]
        outcome: Option<Value>,
    },
    /// The run failed.
    #[serde(rename_all = "camelCase")]
    RunError {
        /// What went wrong.
        message: String,
        /// The worker's error code (docs/errors.md).
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<String>,
    },
}

impl Event {
    /// The event's JSON text (the `data:` of an SSE message, a `/ws` text message).
    pub fn to_json(&self) -> String {
        // Only strings, `&'static str` and JSON values: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_camel_case_and_absent_options_are_left_out() {
        let e = Event::ToolCallStart {
            tool_call_id: "c1".into(),
            tool_call_name: "shout".into(),
            parent_message_id: None,
        };
        assert_eq!(
            e.to_json(),
            r#"{"type":"TOOL_CALL_START","toolCallId":"c1","toolCallName":"shout"}"#
        );
        let e = Event::RunStarted {
            thread_id: "t".into(),
            run_id: "r".into(),
            parent_run_id: Some("p".into()),
        };
        assert_eq!(
            e.to_json(),
            r#"{"type":"RUN_STARTED","threadId":"t","runId":"r","parentRunId":"p"}"#
        );
        let e = Event::TextMessageContent {
            message_id: "m".into(),
            delta: "Hi".into(),
        };
        assert_eq!(
            e.to_json(),
            r#"{"type":"TEXT_MESSAGE_CONTENT","messageId":"m","delta":"Hi"}"#
        );
    }
}
