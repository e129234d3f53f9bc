//! Live text (SPEC §4.1) from each framework through the real worker, cold and warm: run by each
//! framework's end-to-end test (end_to_end.rs) as its hello-world run, on its worker.
//!
//! The example models hold each piece of their answer but the first until they read a line from
//! the gate (`AGENTDISPATCH_EXAMPLE_PIECE_GATE`), and this test writes that line only once the
//! previous piece's delta has reached it over SSE: a runner or a worker that held text back
//! until the turn's end would stall the run, never pass it.

use super::*;
use crate::common::gate::Gate;

fn is_delta(m: &SseMessage) -> bool {
    m.data["type"] == "task.delta"
}

/// A delta of the model's text (not its reasoning or a tool call being written).
fn is_text_delta(m: &SseMessage) -> bool {
    is_delta(m) && m.data["payload"].get("kind").is_none_or(|k| k == "text")
}

fn dump(msgs: &[SseMessage]) -> String {
    msgs.iter()
        .map(|m| format!("{:?} {:.300}", m.id, m.data.to_string()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One SSE stream of the task, every message kept as it arrives.
struct Follow<'a> {
    name: &'a str,
    what: &'static str,
    sse: SseReader,
    got: Vec<SseMessage>,
}

impl<'a> Follow<'a> {
    fn new(name: &'a str, what: &'static str, sse: SseReader) -> Self {
        Follow {
            name,
            what,
            sse,
            got: Vec::new(),
        }
    }

    /// Reads up to the next message for which `until` holds, within `within` (heartbeats alone
    /// do not keep it waiting); None at the end of the stream.
    async fn until(
        &mut self,
        within: Duration,
        until: fn(&SseMessage) -> bool,
    ) -> Option<SseMessage> {
        let (sse, got) = (&mut self.sse, &mut self.got);
        let wait = async {
            while let Some(m) = sse.next_message().await {
                got.push(m.clone());
                if until(&m) {
                    return Some(m);
                }
            }
            None
        };
        match tokio::time::timeout(within, wait).await {
            Ok(m) => m,
            Err(_) => panic!(
                "{} {}: nothing awaited within {within:?} (the model writes each next piece only \
                 once the last one reached the first stream); messages so far:\n{}",
                self.name,
                self.what,
                dump(&self.got)
            ),
        }
    }

    /// Reads to the end of the stream.
    async fn read_to_end(&mut self) {
        while self
            .until(Duration::from_secs(60), |_| false)
            .await
            .is_some()
        {}
    }
}

/// The text deltas of `message_id` in `msgs`, joined.
fn text_of(msgs: &[SseMessage], message_id: &Value) -> String {
    msgs.iter()
        .filter(|m| is_text_delta(m) && m.data["payload"]["messageId"] == *message_id)
        .map(|m| m.data["payload"]["text"].as_str().unwrap_or_default())
        .collect()
}

/// A stream's deltas carry no id and no seq, each after the last event before it; its events
/// have ids rising by one from `first_id`; the result ends it.
fn check_stream_shape(name: &str, what: &str, id: &str, msgs: &[SseMessage], first_id: u64) {
    let (last, before) = msgs.split_last().expect("a message");
    assert!(
        last.data.get("ok").is_some(),
        "{name} {what}: no result last:\n{}",
        dump(msgs)
    );
    let mut next_id = first_id;
    for m in before {
        if is_delta(m) {
            assert!(
                m.id.is_none() && m.data.get("seq").is_none(),
                "{name} {what}: a delta with an id or a seq: {}",
                m.data
            );
            assert_eq!(m.data["afterSeq"], next_id - 1, "{name} {what}: {}", m.data);
            assert_eq!(m.data["taskId"], id, "{name} {what}: {}", m.data);
        } else {
            assert_eq!(m.id, Some(next_id), "{name} {what}: ids\n{}", dump(msgs));
            next_id += 1;
        }
    }
}

/// Each model message streamed before the step that closes it (same messageId), its text deltas
/// adding up to that step's text; the answer's message is the last one and came in pieces.
fn check_messages(name: &str, msgs: &[SseMessage]) {
    let closing = |m: &SseMessage| matches!(step_of(&m.data), Some("model_turn" | "final_answer"));
    let turns: Vec<(usize, &Value)> = msgs
        .iter()
        .enumerate()
        .filter(|(_, m)| step_of(&m.data) == Some("model_turn"))
        .map(|(i, m)| (i, &m.data["payload"]))
        .collect();
    assert!(!turns.is_empty(), "{name}: no model_turn:\n{}", dump(msgs));
    for (i, turn) in &turns {
        let mid = &turn["messageId"];
        assert!(
            mid.is_string(),
            "{name}: a model_turn with no messageId: {turn}"
        );
        let text = turn["text"].as_str().unwrap_or_default();
        assert_eq!(text_of(&msgs[..*i], mid), text, "{name}: {mid}'s deltas");
        assert_eq!(
            text_of(&msgs[*i..], mid),
            "",
            "{name}: {mid} delta after its step"
        );
    }
    for d in msgs.iter().filter(|m| is_delta(m)) {
        let mid = &d.data["payload"]["messageId"];
        assert!(
            msgs.iter()
                .any(|m| closing(m) && m.data["payload"]["messageId"] == *mid),
            "{name}: no step closes {mid}:\n{}",
            dump(msgs)
        );
    }
    let answer = msgs
        .iter()
        .rev()
        .find(|m| step_of(&m.data) == Some("final_answer"))
        .map(|m| &m.data["payload"])
        .unwrap_or_else(|| panic!("{name}: no final_answer:\n{}", dump(msgs)));
    let last_turn = turns.last().unwrap().1;
    assert_eq!(answer["messageId"], last_turn["messageId"], "{name}");
    assert_eq!(answer["text"], ANSWER, "{name}");
    assert_eq!(text_of(msgs, &answer["messageId"]), ANSWER, "{name}");
    let pieces = msgs
        .iter()
        .filter(|m| is_text_delta(m) && m.data["payload"]["messageId"] == answer["messageId"])
        .count();
    assert!(pieces > 1, "{name}: the answer in {pieces} delta(s)");
}

/// The hello-world run over SSE with the gate shut: each piece of the answer reaches the client
/// before the model writes the next; a subscriber joining mid-answer (the model waiting on the
/// gate) first gets the text so far as one delta; no delta in the record, the answer's events,
/// `task.status`, or a stream resumed with `Last-Event-ID`. Returns the first stream's messages.
pub(crate) async fn hello_world_live(
    w: &Worker,
    name: &str,
    gate: &mut Gate,
    id: &str,
) -> Vec<SseMessage> {
    gate.shut();
    let main = SseReader::open(
        w,
        &json!({"taskId":id,"framework":name,"input":{"instruction":"hello world"}}),
    )
    .await;
    let mut main = Follow::new(name, "stream", main);
    // The first piece: a cold start imports the framework first.
    if main
        .until(Duration::from_secs(180), is_text_delta)
        .await
        .is_none()
    {
        panic!("{name}: ended before a text delta:\n{}", dump(&main.got));
    }
    gate.release();
    let Some(second) = main.until(Duration::from_secs(60), is_text_delta).await else {
        panic!("{name}: ended after one text delta:\n{}", dump(&main.got));
    };
    // The model now waits on the gate in the middle of its answer: a subscriber joins.
    let mid = second.data["payload"]["messageId"].clone();
    let so_far = text_of(&main.got, &mid);
    let late = SseReader::subscribe(w, id, None).await;
    let mut late = Follow::new(name, "late stream", late);
    let Some(first) = late.until(Duration::from_secs(60), is_delta).await else {
        panic!("{name}: the late stream ended with no delta");
    };
    assert_eq!(
        (
            &first.data["payload"]["messageId"],
            first.data["payload"]["text"].as_str()
        ),
        (&mid, Some(so_far.as_str())),
        "{name}: a late subscriber's first delta is not the text so far:\n{}",
        dump(&late.got)
    );
    // The rest of the answer, a piece at a time, to the end of the first stream.
    gate.release();
    while main
        .until(Duration::from_secs(60), is_text_delta)
        .await
        .is_some()
    {
        gate.release();
    }
    late.read_to_end().await;
    gate.open();
    let (got, late_got) = (main.got, late.got);

    check_stream_shape(name, "stream", id, &got, 1);
    check_messages(name, &got);
    check_stream_shape(name, "late stream", id, &late_got, 1);
    assert_eq!(text_of(&late_got, &mid), ANSWER, "{name}: late stream");
    let result = &got.last().unwrap().data;
    assert_eq!(late_got.last().unwrap().data["output"], result["output"]);

    // The record: no delta in events.ndjson, the answer's events, or task.status.
    let record = w.folder_events(id);
    let status = w.run(json!({"taskType":"task.status","taskId":id})).await;
    for (what, events) in [
        ("events.ndjson", &record),
        ("the answer's events", result["events"].as_array().unwrap()),
        ("task.status", status["events"].as_array().unwrap()),
    ] {
        assert!(
            events.iter().all(|e| e["type"] != "task.delta"),
            "{name}: a delta in {what}"
        );
        assert_eq!(events.len(), record.len(), "{name}: {what}");
    }
    // A stream resumed from the event before the first delta: the events after it, then the
    // result; no delta (the message is closed and in the record).
    let after = got.iter().find(|m| is_delta(m)).unwrap().data["afterSeq"]
        .as_u64()
        .unwrap();
    let resumed = SseReader::subscribe(w, id, Some(after)).await;
    let mut resumed = Follow::new(name, "resumed stream", resumed);
    resumed.read_to_end().await;
    let again = resumed.got;
    assert!(
        !again.iter().any(is_delta),
        "{name}: deltas replayed:\n{}",
        dump(&again)
    );
    check_stream_shape(name, "resumed stream", id, &again, after + 1);
    let last_seq = record.last().unwrap()["seq"].as_u64().unwrap();
    let ids: Vec<u64> = again.iter().filter_map(|m| m.id).collect();
    assert_eq!(ids.last(), Some(&last_seq), "{name}: resumed {ids:?}");
    assert_eq!(again.last().unwrap().data["output"], result["output"]);
    got
}
