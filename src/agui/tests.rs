//! The translation's order rules, on hand-made records (the whole path, with real frameworks and
//! AG-UI's own clients, is tests/agui.rs).

use std::sync::Arc;

use serde_json::{json, Value};

use super::{Event, Translator};
use crate::live::{Delta, Kind};
use crate::wire::{ErrorCode, TaskResult, TaskStatus};

fn delta(message_id: &str, kind: Kind, text: &str) -> Delta {
    Delta {
        message_id: message_id.into(),
        kind,
        text: text.into(),
        after_seq: 0,
        ts: String::new(),
    }
}

/// A step as the worker writes it: "type" first (the translator reads no other event).
fn step(payload: Value) -> String {
    format!(
        r#"{{"type":"task.progress","message":"x","payload":{payload},"seq":1,"ts":"","taskId":"t"}}"#
    )
}

fn ok(output: &str) -> TaskResult {
    TaskResult {
        ok: true,
        status: TaskStatus::Succeeded,
        output: Arc::from(output),
        task_id: "t".into(),
        ..TaskResult::fail(ErrorCode::InvalidPayload, "")
    }
}

fn types(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            serde_json::to_value(e).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn streamed_text_is_one_message_ended_by_its_step() {
    let mut t = Translator::new("th", "r", None, "t");
    let mut out = vec![t.start()];
    t.delta(&delta("m1", Kind::Text, "Hel"), &mut out);
    t.delta(&delta("m1", Kind::Text, ""), &mut out);
    t.delta(&delta("m1", Kind::Text, "lo"), &mut out);
    t.event(
        3,
        &step(json!({"step": "model_turn", "text": "Hello", "messageId": "m1"})),
        &mut out,
    );
    t.event(
        4,
        &step(json!({"step": "final_answer", "text": "Hello", "messageId": "m1"})),
        &mut out,
    );
    t.end(&ok("Hello"), &mut out);
    assert_eq!(
        types(&out),
        [
            "RUN_STARTED",
            "TEXT_MESSAGE_START",
            "TEXT_MESSAGE_CONTENT",
            "TEXT_MESSAGE_CONTENT",
            "TEXT_MESSAGE_END",
            "RUN_FINISHED"
        ]
    );
    let finished = serde_json::to_value(out.last().unwrap()).unwrap();
    assert_eq!(finished["result"]["output"], "Hello");
    assert_eq!(finished["threadId"], "th");
}

#[test]
fn a_tool_call_streams_its_arguments_then_ends_at_its_step_and_gets_its_result() {
    let mut t = Translator::new("th", "r", None, "t");
    let mut out = Vec::new();
    let call = |name: Option<&str>| Kind::ToolCall {
        tool_call_id: "c1".into(),
        tool: name.map(str::to_string),
    };
    // The name comes with the second piece: the first waits for it.
    t.delta(&delta("m1", call(None), "{\"te"), &mut out);
    assert!(out.is_empty());
    t.delta(&delta("m1", call(Some("shout")), "xt\":"), &mut out);
    t.delta(&delta("m1", call(None), "\"hi\"}"), &mut out);
    t.event(
        5,
        &step(json!({"step": "model_turn", "text": "", "messageId": "m1"})),
        &mut out,
    );
    t.event(6, &step(json!({"step": "tool_call", "tool": "shout", "args": {"text": "hi"}, "toolCallId": "c1"})), &mut out);
    t.event(
        7,
        &step(json!({"step": "tool_result", "tool": "shout", "result": "HI", "toolCallId": "c1"})),
        &mut out,
    );
    t.end(&ok("HI"), &mut out);
    assert_eq!(
        types(&out),
        [
            "TOOL_CALL_START",
            "TOOL_CALL_ARGS",
            "TOOL_CALL_ARGS",
            "TOOL_CALL_END",
            "TOOL_CALL_RESULT",
            // No text was streamed: the output is the answer.
            "TEXT_MESSAGE_START",
            "TEXT_MESSAGE_CONTENT",
            "TEXT_MESSAGE_END",
            "RUN_FINISHED"
        ]
    );
    let args: String = out
        .iter()
        .filter_map(|e| match e {
            Event::ToolCallArgs { delta, .. } => Some(delta.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(args, r#"{"text":"hi"}"#);
    let start = serde_json::to_value(&out[0]).unwrap();
    assert_eq!(start["toolCallName"], "shout");
    assert_eq!(start["parentMessageId"], "m1");
}

#[test]
fn steps_alone_tell_whole_messages_and_calls_without_ids_pair_by_tool() {
    let mut t = Translator::new("th", "r", None, "t");
    let mut out = Vec::new();
    t.event(
        2,
        &step(json!({"step": "model_turn", "text": "let me"})),
        &mut out,
    );
    t.event(
        3,
        &step(json!({"step": "tool_call", "tool": "shout", "args": {"text": "a"}})),
        &mut out,
    );
    t.event(
        4,
        &step(json!({"step": "tool_result", "tool": "shout", "result": "A"})),
        &mut out,
    );
    t.event(
        5,
        &step(json!({"step": "final_answer", "text": "A"})),
        &mut out,
    );
    t.end(&ok("A"), &mut out);
    assert_eq!(
        types(&out),
        [
            "TEXT_MESSAGE_START",
            "TEXT_MESSAGE_CONTENT",
            "TEXT_MESSAGE_END",
            "TOOL_CALL_START",
            "TOOL_CALL_ARGS",
            "TOOL_CALL_END",
            "TOOL_CALL_RESULT",
            "RUN_FINISHED"
        ]
    );
    let result = serde_json::to_value(&out[6]).unwrap();
    assert_eq!(result["toolCallId"], "t-call-3");
    assert_eq!(result["content"], "A");
    assert_eq!(result["role"], "tool");
}

#[test]
fn a_failure_ends_what_is_open_then_errs_with_the_code() {
    let mut t = Translator::new("th", "r", None, "t");
    let mut out = Vec::new();
    t.delta(&delta("m1", Kind::Reasoning, "hmm"), &mut out);
    t.delta(&delta("m1", Kind::Text, "Hal"), &mut out);
    t.delta(&delta("m2", Kind::Text, "x"), &mut out);
    let mut r = TaskResult::refusal("t", ErrorCode::TimedOut, "Command timed out after 5ms.");
    r.status = TaskStatus::TimedOut;
    t.end(&r, &mut out);
    assert_eq!(
        types(&out),
        [
            "REASONING_START",
            "REASONING_MESSAGE_START",
            "REASONING_MESSAGE_CONTENT",
            "REASONING_MESSAGE_END",
            "REASONING_END",
            "TEXT_MESSAGE_START",
            "TEXT_MESSAGE_CONTENT",
            "TEXT_MESSAGE_START",
            "TEXT_MESSAGE_CONTENT",
            "TEXT_MESSAGE_END",
            "TEXT_MESSAGE_END",
            "RUN_ERROR"
        ]
    );
    let err = serde_json::to_value(out.last().unwrap()).unwrap();
    assert_eq!(err["code"], "timed_out");
    assert_eq!(err["message"], "Command timed out after 5ms.");
}

#[test]
fn a_task_that_asks_finishes_with_the_interrupt_outcome() {
    let mut t = Translator::new("th", "r", None, "t");
    let mut r = ok("");
    r.status = TaskStatus::InputRequired;
    r.asked.session_id = Some("th".into());
    r.asked.interrupts = Some(vec![
        json!({"id": "refund-1", "kind": "approval", "tool": "refund", "args": {"n": 5}}),
        json!({"id": "account", "kind": "input", "value": "which account?"}),
    ]);
    let mut out = Vec::new();
    t.end(&r, &mut out);
    let finished = serde_json::to_value(&out[0]).unwrap();
    assert_eq!(finished["result"]["status"], "input_required");
    assert_eq!(finished["result"]["sessionId"], "th");
    let qs = &finished["outcome"]["interrupts"];
    assert_eq!(finished["outcome"]["type"], "interrupt");
    assert_eq!(qs[0]["id"], "refund-1");
    assert_eq!(qs[0]["reason"], "approval");
    assert_eq!(qs[0]["message"], "Approve the call of refund?");
    assert_eq!(qs[0]["responseSchema"]["required"], json!(["approved"]));
    assert_eq!(qs[0]["metadata"]["question"]["args"]["n"], 5);
    assert_eq!(qs[1]["message"], "which account?");
    assert!(qs[1].get("responseSchema").is_none());
    // Any other end has no outcome (absent means success in AG-UI).
    let mut out = Vec::new();
    Translator::new("th", "r", None, "t").end(&ok("done"), &mut out);
    let last = serde_json::to_value(out.last().unwrap()).unwrap();
    assert!(last.get("outcome").is_none(), "{last}");
}
