//! Live text (SPEC §4.1): the `task.delta` pieces a child writes as its model writes them.
//!
//! Deltas are a second kind of output of a task's [`EventSink`](crate::events::EventSink): they
//! are never numbered nor recorded, only fanned out to the live subscribers, each through its own
//! bounded queue in which waiting pieces of the same message are merged. A slow subscriber so
//! costs at most [`QUEUE_BYTES`] and never blocks the child or another subscriber.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use serde_json::{json, Map, Value};
use tokio::sync::Notify;

/// Text of the messages still being written that a task keeps for subscribers joining late; past
/// it, a late subscriber's first delta holds only the first this many bytes (the record's closing
/// step, and `result.json`, still hold the whole text).
pub const OPEN_BYTES: usize = 1 << 20;
/// Text one subscriber may have waiting; past it, pieces are left out of that subscriber's
/// stream (one that has not read 16 MB of text is not reading), never out of the others'.
pub const QUEUE_BYTES: usize = 16 << 20;
/// Separate waiting entries (different messages) one subscriber may have.
const QUEUE_ITEMS: usize = 256;

/// What a delta carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Answer text (the default).
    Text,
    /// The model's reasoning text.
    Reasoning,
    /// The arguments of a tool call being written (`text` holds `argsDelta`).
    ToolCall {
        /// The framework's id of the call.
        tool_call_id: String,
        /// The tool's name, when given.
        tool: Option<String>,
    },
}

/// One piece of live text.
#[derive(Debug, Clone)]
pub struct Delta {
    /// The model message (turn) it belongs to.
    pub message_id: String,
    /// Text, reasoning or tool-call arguments.
    pub kind: Kind,
    /// The piece (`argsDelta` for a tool call).
    pub text: String,
    /// The last event's `seq` before it (set by the sink).
    pub after_seq: u64,
    /// When it arrived (set by the sink).
    pub ts: String,
}

impl Delta {
    /// Whether `other` continues the same stream of text (so the two may be merged).
    fn same(&self, other: &Delta) -> bool {
        self.message_id == other.message_id && self.kind == other.kind
    }

    /// The wire form: `{"type":"task.delta","payload","ts","taskId","afterSeq"}`, no `seq`.
    pub fn to_json(&self, task_id: &str) -> String {
        let payload = match &self.kind {
            Kind::Text => json!({"messageId": self.message_id, "text": self.text}),
            Kind::Reasoning => {
                json!({"kind": "reasoning", "messageId": self.message_id, "text": self.text})
            }
            Kind::ToolCall { tool_call_id, tool } => json!({
                "kind": "tool_call",
                "messageId": self.message_id,
                "toolCallId": tool_call_id,
                "tool": tool,
                "argsDelta": self.text,
            }),
        };
        json!({
            "type": "task.delta",
            "payload": payload,
            "ts": self.ts,
            "taskId": task_id,
            "afterSeq": self.after_seq,
        })
        .to_string()
    }
}

/// A string field of a delta's payload: absent is `Ok(None)`, another type is an error.
fn string(p: &mut Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match p.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!(
            "\"{key}\" must be a string, not {}",
            crate::wire::kind_of(&other)
        )),
    }
}

/// Reads a child's delta line's `payload`; the error names what is wrong with it.
pub fn parse(payload: Option<Value>) -> Result<Delta, String> {
    let Some(Value::Object(mut p)) = payload else {
        return Err("it has no \"payload\" object".into());
    };
    let message_id = match string(&mut p, "messageId")? {
        Some(id) if !id.is_empty() => id,
        _ => return Err("its payload has no \"messageId\"".into()),
    };
    let kind = string(&mut p, "kind")?;
    let (kind, text) = match kind.as_deref() {
        None | Some("text") | Some("reasoning") => {
            let Some(text) = string(&mut p, "text")? else {
                return Err("its payload has no \"text\"".into());
            };
            let kind = if kind.as_deref() == Some("reasoning") {
                Kind::Reasoning
            } else {
                Kind::Text
            };
            (kind, text)
        }
        Some("tool_call") => {
            let Some(tool_call_id) = string(&mut p, "toolCallId")? else {
                return Err("its tool_call payload has no \"toolCallId\"".into());
            };
            let tool = string(&mut p, "tool")?;
            let args = string(&mut p, "argsDelta")?.unwrap_or_default();
            (Kind::ToolCall { tool_call_id, tool }, args)
        }
        Some(other) => {
            let mut shown: String = other.chars().take(40).collect();
            if shown.len() < other.len() {
                shown.push('…');
            }
            return Err(format!(
                "its \"kind\" {shown:?} is not one of \"text\", \"reasoning\", \"tool_call\""
            ));
        }
    };
    Ok(Delta {
        message_id,
        kind,
        text,
        after_seq: 0,
        ts: String::new(),
    })
}

#[derive(Default)]
struct Waiting {
    items: VecDeque<Delta>,
    bytes: usize,
}

/// One subscriber's queue.
#[derive(Default)]
struct Queue {
    waiting: Mutex<Waiting>,
    ready: Notify,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a piece, merged into the waiting piece of the same message when there is one.
    fn push(&self, d: &Delta) {
        let mut w = self.lock();
        if w.bytes + d.text.len() > QUEUE_BYTES {
            return;
        }
        w.bytes += d.text.len();
        // The newest piece of the same message, unless another message's piece came after it
        // (merging past it would reorder the text of different messages) or the queue is full.
        let full = w.items.len() >= QUEUE_ITEMS;
        let at = if full {
            w.items.iter().rposition(|q| q.same(d))
        } else {
            w.items
                .back()
                .filter(|q| q.same(d))
                .map(|_| w.items.len() - 1)
        };
        match at {
            Some(i) => {
                let q = &mut w.items[i];
                q.text.push_str(&d.text);
                q.after_seq = q.after_seq.max(d.after_seq);
            }
            None if full => w.bytes -= d.text.len(),
            None => w.items.push_back(d.clone()),
        }
        drop(w);
        self.ready.notify_one();
    }
}

/// A live subscriber's end: the deltas since it last took them.
pub struct Subscriber {
    queue: Arc<Queue>,
}

impl Subscriber {
    /// Everything waiting, oldest first.
    pub fn take(&self) -> Vec<Delta> {
        let mut w = self.queue.lock();
        w.bytes = 0;
        w.items.drain(..).collect()
    }

    /// Resolves when a delta may be waiting.
    pub async fn ready(&self) {
        self.queue.ready.notified().await
    }
}

#[derive(Default)]
struct State {
    subscribers: Vec<Weak<Queue>>,
    /// The text so far of each message still being written (one entry per message and kind).
    open: Vec<Delta>,
    open_bytes: usize,
}

/// A task's live subscribers and open messages.
#[derive(Default)]
pub struct Live {
    state: Mutex<State>,
    /// Whether any message is open, so that recording an event looks for a closing
    /// `messageId` only while one is.
    any_open: AtomicBool,
}

impl Live {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `d`'s text for late subscribers and hands it to every subscriber.
    pub fn push(&self, d: Delta) {
        let mut st = self.lock();
        let room = OPEN_BYTES.saturating_sub(st.open_bytes).min(d.text.len());
        let room = (0..=room)
            .rev()
            .find(|i| d.text.is_char_boundary(*i))
            .unwrap_or(0);
        st.open_bytes += room;
        match st.open.iter_mut().find(|o| o.same(&d)) {
            Some(o) => {
                o.text.push_str(&d.text[..room]);
                o.after_seq = d.after_seq;
            }
            None => {
                let mut o = d.clone();
                o.text.truncate(room);
                st.open.push(o);
                self.any_open.store(true, Ordering::Relaxed);
            }
        }
        st.subscribers.retain(|s| match s.upgrade() {
            Some(q) => {
                q.push(&d);
                true
            }
            None => false,
        });
    }

    /// A new subscriber, first given the text so far of each open message (as of `after_seq`).
    pub fn subscribe(&self, after_seq: u64) -> Subscriber {
        let queue = Arc::new(Queue::default());
        let mut st = self.lock();
        for o in &st.open {
            let mut d = o.clone();
            d.after_seq = d.after_seq.max(after_seq);
            queue.push(&d);
        }
        st.subscribers.push(Arc::downgrade(&queue));
        Subscriber { queue }
    }

    /// Whether a message is open (cheap: read on every recorded event).
    pub fn any_open(&self) -> bool {
        self.any_open.load(Ordering::Relaxed)
    }

    /// The step that completes message `id` was recorded: a late subscriber no longer needs it.
    pub fn close(&self, id: &str) {
        let mut st = self.lock();
        st.open.retain(|o| o.message_id != id);
        st.open_bytes = st.open.iter().map(|o| o.text.len()).sum();
        self.any_open.store(!st.open.is_empty(), Ordering::Relaxed);
    }

    /// The task ended: no message is open any more.
    pub fn end(&self) {
        let mut st = self.lock();
        st.open = Vec::new();
        st.open_bytes = 0;
        self.any_open.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(id: &str, text: &str, after: u64) -> Delta {
        Delta {
            message_id: id.into(),
            kind: Kind::Text,
            text: text.into(),
            after_seq: after,
            ts: String::new(),
        }
    }

    #[test]
    fn waiting_pieces_of_a_message_merge_and_a_late_subscriber_gets_the_text_so_far() {
        let live = Live::default();
        let early = live.subscribe(0);
        live.push(d("m1", "Hel", 2));
        live.push(d("m1", "lo", 3));
        live.push(d("m2", "x", 3));
        live.push(d("m2", "y", 3));
        let got = early.take();
        let texts: Vec<_> = got
            .iter()
            .map(|d| (d.message_id.as_str(), d.text.as_str()))
            .collect();
        assert_eq!(texts, vec![("m1", "Hello"), ("m2", "xy")]);
        assert_eq!(got[0].after_seq, 3);
        let late = live.subscribe(5);
        live.close("m1");
        live.push(d("m2", "z", 6));
        let got = late.take();
        let texts: Vec<_> = got
            .iter()
            .map(|d| (d.message_id.as_str(), d.text.as_str()))
            .collect();
        assert_eq!(texts, vec![("m1", "Hello"), ("m2", "xyz")]);
        assert_eq!(got[0].after_seq, 5);
        // Closed: a later subscriber hears only of m2.
        assert_eq!(live.subscribe(6).take().len(), 1);
        live.end();
        assert!(!live.any_open());
    }

    #[test]
    fn a_subscriber_that_does_not_read_holds_a_bounded_queue() {
        let live = Live::default();
        let idle = live.subscribe(0);
        let piece = "x".repeat(1000);
        for _ in 0..10_000 {
            live.push(d("m", &piece, 1));
        }
        let got = idle.take();
        assert_eq!(got.len(), 1);
        assert!(got[0].text.len() <= QUEUE_BYTES);
        // A dropped subscriber is forgotten at the next piece.
        drop(idle);
        live.push(d("m", "", 1));
        assert!(live.lock().subscribers.is_empty());
    }

    #[test]
    fn bad_payloads_are_named() {
        let p = |s: &str| parse(Some(serde_json::from_str(s).unwrap()));
        assert!(p(r#"{"messageId":"m","text":"a"}"#).is_ok());
        assert!(p(r#"{"messageId":"m"}"#).unwrap_err().contains("\"text\""));
        assert!(p(r#"{"messageId":"m","text":5}"#)
            .unwrap_err()
            .contains("must be a string, not a number"));
        assert!(p(r#"{"text":"a"}"#).unwrap_err().contains("messageId"));
        assert!(p(r#"{"messageId":"m","text":"a","kind":"poem"}"#)
            .unwrap_err()
            .contains("\"poem\""));
        let t = p(r#"{"kind":"tool_call","messageId":"m","toolCallId":"c","tool":"add","argsDelta":"{\"a\""}"#)
            .unwrap();
        assert_eq!(t.text, "{\"a\"");
        assert!(parse(None).unwrap_err().contains("payload"));
    }
}
