//! `protocol::classify` on arbitrary child stdout lines (decoded lossily, as the worker does).
//!
//! Checks: no panic; a line that does not start with `{` (after leading whitespace) is Text; a
//! Text line starting with `{` is not a JSON object, OtherJson is one; an Event is never of type
//! task.result and no event inside a Result is either; every event payload serialises; a
//! delta (good or refused) comes from a JSON object, a good one has a message id and its wire
//! form is a JSON object of type task.delta; a task.interrupt (good or refused) comes from a JSON
//! object, a good one holds at least one question with an id and a kind, a refused one says why; classifying
//! is deterministic.
#![no_main]

use agentdispatch_worker::protocol::{classify, ChildLine};
use agentdispatch_worker::wire::{EventDraft, EventType};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn check_event(e: &EventDraft) {
    assert_ne!(
        e.kind,
        EventType::Result,
        "event of type task.result: {e:?}"
    );
    if let Some(p) = &e.payload {
        serde_json::to_string(p).expect("event payload serialises");
    }
}

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    let class = classify(&line);
    let trimmed = line.trim_start();
    let is_object = || matches!(serde_json::from_str::<Value>(trimmed), Ok(Value::Object(_)));
    match &class {
        ChildLine::Text => {
            if trimmed.starts_with('{') {
                assert!(!is_object(), "a JSON object classified as text");
            }
        }
        ChildLine::OtherJson => assert!(is_object()),
        ChildLine::Event(e) => {
            assert!(is_object());
            check_event(e);
        }
        ChildLine::Delta(d) => {
            assert!(is_object());
            assert!(
                !d.message_id.is_empty(),
                "a delta without a messageId: {d:?}"
            );
            let wire: Value = serde_json::from_str(&d.to_json("t")).expect("a delta's wire form");
            assert_eq!(wire["type"], "task.delta");
            assert!(wire.get("seq").is_none(), "a delta with a seq: {wire}");
        }
        ChildLine::BadDelta(why) => {
            assert!(is_object());
            assert!(!why.is_empty(), "a refused delta without a reason");
        }
        ChildLine::Interrupt(questions) => {
            assert!(is_object());
            assert!(
                !questions.is_empty(),
                "an interrupt line without a question"
            );
            for q in questions {
                assert!(q["id"].as_str().is_some_and(|id| !id.is_empty()), "{q}");
                assert!(
                    matches!(q["kind"].as_str(), Some("approval" | "input")),
                    "{q}"
                );
            }
        }
        ChildLine::BadInterrupt(why) => {
            assert!(is_object());
            assert!(!why.is_empty(), "a refused interrupt without a reason");
        }
        ChildLine::Result(r) => {
            assert!(is_object());
            r.events.iter().for_each(check_event);
            if let Some(v) = &r.result {
                assert!(!v.is_null());
            }
        }
    }
    if !trimmed.starts_with('{') {
        assert!(matches!(class, ChildLine::Text));
    }
    assert_eq!(format!("{class:?}"), format!("{:?}", classify(&line)));
});
