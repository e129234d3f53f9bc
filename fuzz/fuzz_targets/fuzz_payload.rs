//! `wire::parse_payload` on arbitrary HTTP bodies.
//!
//! Checks: no panic; an accepted body is a JSON object; a taskId, if any, matches the pattern;
//! task.status / task.cancel always carry one; a timeout is below the 1e9 s bound; the answer
//! agrees with `payload_from_value` on the same JSON; and the accepted payload, written back as a
//! canonical body, parses to the same payload (parsing is idempotent).
#![no_main]

use agentdispatch_worker::wire::{
    parse_payload, payload_from_value, valid_task_id, Payload, PayloadError, TaskType,
};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

/// The fields that must survive a round trip (Payload has no PartialEq).
fn key(p: &Payload) -> String {
    format!(
        "{:?}",
        (
            p.task_type,
            &p.task_id,
            &p.framework,
            &p.instruction,
            &p.input,
            &p.context,
            &p.metadata,
            p.is_async,
            p.stream,
            p.timeout,
            p.after_seq,
        )
    )
}

fuzz_target!(|data: &[u8]| {
    let parsed = parse_payload(data);
    let json: Option<Value> = serde_json::from_slice(data).ok();

    match &parsed {
        Ok(p) => {
            assert!(
                matches!(json, Some(Value::Object(_))),
                "accepted a body that is not a JSON object"
            );
            if let Some(id) = &p.task_id {
                assert!(valid_task_id(id), "accepted taskId {id:?}");
            }
            if matches!(p.task_type, TaskType::Status | TaskType::Cancel) {
                assert!(p.task_id.is_some(), "{:?} without taskId", p.task_type);
            }
            if let Some(t) = p.timeout {
                assert!(t.as_secs_f64() < 1e9, "timeout {t:?}");
            }
            assert_eq!(p.command(), p.input.get("command").and_then(Value::as_str));

            // Write the payload back as a canonical body and parse it again.
            let body = json!({
                "taskType": p.task_type.as_str(),
                "taskId": p.task_id,
                "framework": p.framework,
                "prompt": p.instruction,
                "input": p.input,
                "metadata": p.metadata,
                "async": p.is_async,
                "stream": p.stream,
                "afterSeq": p.after_seq,
            });
            let bytes = serde_json::to_vec(&body).unwrap();
            let again = parse_payload(&bytes).expect("canonical body of an accepted payload");
            assert_eq!(key(p), key(&again));
        }
        Err(PayloadError::Invalid(msg)) => assert!(!msg.is_empty()),
        Err(PayloadError::UnsupportedTaskType(t)) => assert!(
            ![
                "agent.run",
                "command.run",
                "task.status",
                "task.cancel",
                "task.list"
            ]
            .contains(&t.as_str()),
            "refused a known taskType {t:?}"
        ),
    }

    // parse_payload = serde_json + payload_from_value.
    if let Some(v) = json {
        match (&parsed, payload_from_value(v)) {
            (Ok(a), Ok(b)) => assert_eq!(key(a), key(&b)),
            (Err(a), Err(b)) => assert_eq!(a, &b),
            (a, b) => panic!("parse_payload {a:?} but payload_from_value {b:?}"),
        }
    }
});
