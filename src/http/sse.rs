//! Server-sent event streams of a task's events. A producer task copies events from the sink
//! into a bounded channel that backs the response body, so a slow client slows only its own
//! stream (the events wait in memory or on disk), and a client that leaves stops only the
//! producer, never the task.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use warp::http::{header, HeaderMap, HeaderValue};
use warp::reply::Response;

use crate::live::Delta;
use crate::task::{Task, Worker};
use crate::wire::{ErrorCode, EventJson, TaskResult};

/// Bytes of events read from the sink per step.
const STEP_BYTES: usize = 64 * 1024;
/// Steps a stream holds ready for a client that does not read: a slow subscriber costs at most
/// this many steps in memory (plus the final answer, bounded by the output cap); the rest waits
/// in the task's log (memory and `events.ndjson`) until it reads again.
const STEPS_BUFFERED: usize = 2;

/// One SSE message.
pub fn frame(id: Option<u64>, data: &str) -> Bytes {
    let mut s = String::with_capacity(data.len() + 24);
    if let Some(id) = id {
        s.push_str("id: ");
        s.push_str(&id.to_string());
        s.push('\n');
    }
    s.push_str("data: ");
    s.push_str(data);
    s.push_str("\n\n");
    Bytes::from(s)
}

pub fn sse_response(rx: mpsc::Receiver<Result<Bytes, Infallible>>) -> Response {
    let mut resp = warp::reply::Reply::into_response(warp::reply::stream(ReceiverStream::new(rx)));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

/// A stream holding one message: the result (a failure before any task started).
pub fn single(result: &TaskResult) -> Response {
    let data = serde_json::to_string(result).unwrap_or_default();
    bytes_response(frame(None, &data))
}

/// A stream of messages already framed, all known at once.
pub fn bytes_response(messages: Bytes) -> Response {
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.try_send(Ok(messages));
    sse_response(rx)
}

/// The `seq` and `type` of a serialized event.
#[derive(serde::Deserialize)]
pub struct Head {
    /// Sequence number.
    pub seq: u64,
    /// Event type.
    #[serde(rename = "type")]
    pub kind: String,
}

/// How a stream frames what it carries.
pub trait Framing: Send + 'static {
    /// Appends the messages for event `seq` (not the final one) to `out`.
    fn event(&mut self, seq: u64, event: &EventJson, out: &mut BytesMut);
    /// Messages for the end, given the `task.result` event's seq (also when a stream resumed
    /// at or past it) and the whole result.
    fn end(&mut self, seq: u64, result: &TaskResult) -> Vec<Bytes>;
    /// Appends the message for a piece of live text (no `id:`: it is not in the record).
    fn delta(&mut self, delta: &Delta, task_id: &str, out: &mut BytesMut) {
        out.extend_from_slice(&frame(None, &delta.to_json(task_id)));
    }
    /// After this long without a message, a comment line (`: keep-alive`), for clients that
    /// give up on a quiet stream sooner than the heartbeat interval; none by default.
    fn keep_alive(&self) -> Option<std::time::Duration> {
        None
    }
}

/// Resolves after `every`, or never.
async fn quiet_for(every: Option<std::time::Duration>) {
    match every {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// The worker's own framing: each event as it is, then the whole result object.
struct Plain;

/// The last message of a task's stream: the whole result (with its events, as the JSON
/// answer) under the id of the task's last event, `task.result` — also for a stream resumed at
/// or past it, so that a client that reconnects sends that id again (a client library may
/// forget its last id on a message without one) and is answered the same way again.
fn last_message(seq: Option<u64>, result: &TaskResult) -> Bytes {
    frame(seq, &serde_json::to_string(result).unwrap_or_default())
}

impl Framing for Plain {
    fn event(&mut self, seq: u64, event: &EventJson, out: &mut BytesMut) {
        out.extend_from_slice(&frame(Some(seq), event.get()));
    }

    fn end(&mut self, seq: u64, result: &TaskResult) -> Vec<Bytes> {
        vec![last_message((seq > 0).then_some(seq), result)]
    }
}

/// Streams a task's events after `after`, ending with the whole result object.
pub fn task_stream(task: Arc<Task>, after: u64, cap: usize) -> Response {
    framed_stream(task, after, cap, Vec::new(), Plain)
}

/// Streams a task through `framing`, after sending `first`.
pub fn framed_stream(
    task: Arc<Task>,
    after: u64,
    cap: usize,
    first: Vec<Bytes>,
    framing: impl Framing,
) -> Response {
    let place = match task.subscribers.join() {
        Ok(place) => place,
        Err(max) => return too_many_subscribers(&task.id, max),
    };
    let (tx, rx) = mpsc::channel(STEPS_BUFFERED);
    tokio::spawn(async move {
        // The place is held while the stream is: until the end, or the client leaves.
        let _place = place;
        for m in first {
            if tx.send(Ok(m)).await.is_err() {
                return;
            }
        }
        let mut changes = task.events.subscribe();
        // Joined before the first read of the record, so no delta falls between the two.
        let live = task.events.live();
        let mut s = Pump {
            task,
            sent: after,
            cap,
            framing,
            tx,
            batch: BytesMut::new(),
        };
        loop {
            changes.borrow_and_update();
            // Each delta after the events recorded before it (they are in the record by now).
            for d in live.take() {
                while s.sent < d.after_seq {
                    match s.events(d.after_seq).await {
                        Pumped::Ended | Pumped::Gone => return,
                        Pumped::Some => {}
                        Pumped::None => break,
                    }
                    if s.batch.len() >= STEP_BYTES && !s.send().await {
                        return;
                    }
                }
                s.framing.delta(&d, &s.task.id, &mut s.batch);
            }
            let got_any = match s.events(u64::MAX).await {
                Pumped::Ended | Pumped::Gone => return,
                Pumped::Some => true,
                Pumped::None => false,
            };
            if !s.send().await {
                return;
            }
            if got_any {
                continue;
            }
            // Nothing after `sent` and finished: the `task.result` event lies at or before the
            // id the stream resumed from (the result is set only after that event, the last
            // one). End now, as from the folder.
            if s.task.result().is_some() {
                let result = s.task.answer(s.cap).await;
                for m in s.framing.end(s.task.events.last_seq(), &result) {
                    s.batch.extend_from_slice(&m);
                }
                s.send().await;
                return;
            }
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                _ = live.ready() => {}
                // A stream resumed past the last id hears of no new event: the end wakes it.
                _ = s.task.finished() => {}
                _ = s.tx.closed() => return,
                _ = quiet_for(s.framing.keep_alive()) => {
                    if s.tx.send(Ok(Bytes::from_static(b": keep-alive\n\n"))).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    sse_response(rx)
}

/// What one read of the record gave.
enum Pumped {
    /// Events, framed into the batch.
    Some,
    /// Nothing new.
    None,
    /// The end was framed and sent.
    Ended,
    /// The client left.
    Gone,
}

/// One stream's producer: where it is in the record, and the bytes not sent yet.
struct Pump<F> {
    task: Arc<Task>,
    sent: u64,
    cap: usize,
    framing: F,
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
    batch: BytesMut,
}

impl<F: Framing> Pump<F> {
    /// Sends the batch, if any; false when the client left.
    async fn send(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        self.tx.send(Ok(self.batch.split().freeze())).await.is_ok()
    }

    /// Frames one step of the events after `sent`, up to `upto`; at `task.result`, the end.
    async fn events(&mut self, upto: u64) -> Pumped {
        let read = read_step(&self.task, &mut self.sent, upto, |seq, e| {
            self.framing.event(seq, e, &mut self.batch)
        });
        match read {
            Read::Nothing => Pumped::None,
            Read::Events { .. } => Pumped::Some,
            Read::Result(seq) => {
                let result = self.task.answer(self.cap).await;
                for m in self.framing.end(seq, &result) {
                    self.batch.extend_from_slice(&m);
                }
                if self.send().await {
                    Pumped::Ended
                } else {
                    Pumped::Gone
                }
            }
        }
    }
}

/// What one step of reading a task's record gave ([`read_step`]).
pub(crate) enum Read {
    /// Nothing after the events read so far.
    Nothing,
    /// Events, each handed on; `framed` is false when `upto` was reached before any.
    Events { framed: bool },
    /// The `task.result` event, at this seq: the stream's end is framed next.
    Result(u64),
}

/// One step (at most [`STEP_BYTES`]) of `task`'s record after `sent`, up to `upto`: each
/// event to `each` with its seq, `sent` moved past it; it stops at `task.result`. Every live
/// stream of a task (SSE, `/ws`) reads the record through this.
pub(crate) fn read_step(
    task: &Task,
    sent: &mut u64,
    upto: u64,
    mut each: impl FnMut(u64, &EventJson),
) -> Read {
    let since = task.events.since(*sent, STEP_BYTES);
    if since.events.is_empty() {
        return Read::Nothing;
    }
    let mut framed = false;
    // Seq numbers are contiguous, and the serializer always writes "type" first.
    for e in since.events {
        if *sent >= upto {
            break;
        }
        *sent += 1;
        if crate::wire::event::is_result(&e) {
            return Read::Result(*sent);
        }
        each(*sent, &e);
        framed = true;
    }
    Read::Events { framed }
}

/// The 429 for a stream past a task's subscriber limit.
fn too_many_subscribers(id: &str, max: usize) -> Response {
    super::error_response(
        warp::http::StatusCode::TOO_MANY_REQUESTS,
        &format!(
            "Task {id} already has {max} live event streams (AGENTDISPATCH_MAX_SUBSCRIBERS_PER_TASK); retry when one ends, or ask with task.status and afterSeq."
        ),
        Some(ErrorCode::TooManySubscribers),
    )
}

/// `GET /tasks/{id}/events`: live, resumable with `Last-Event-ID`.
pub async fn follow(worker: &Arc<Worker>, id: &str, headers: &HeaderMap) -> Response {
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let cap = worker.cfg.max_output_bytes;
    let scope = super::session_of(headers);
    if let Some(task) = worker.get_in(id, scope.as_deref()) {
        return task_stream(task, after, cap);
    }
    // Not in memory: replay from the folder, or say it is unknown (404, as /tasks/{id}).
    // The last message is the answer from the folder with every event (up to the cap), the
    // same as from memory. Every read is the task folder's, off the HTTP threads and bounded.
    let result = worker.status(id, 0, scope.as_deref()).await;
    match result.error_code {
        Some(ErrorCode::UnknownTask) => {
            return super::json_response(warp::http::StatusCode::NOT_FOUND, &result)
        }
        // The folder cannot be read back (a FIFO, a link): that answer is the stream.
        Some(ErrorCode::ArtifactReadFailed) => return single(&result),
        _ => {}
    }
    let (tx, rx) = mpsc::channel(STEPS_BUFFERED);
    let (worker, id) = (worker.clone(), id.to_string());
    tokio::spawn(async move {
        // Every line is read (the last one's seq is the final message's id); those after the
        // client's id are sent.
        let mut offset = 0;
        let mut last_seq = None;
        loop {
            let Ok((since, next)) = worker.events_page(&id, offset, STEP_BYTES).await else {
                break;
            };
            if since.events.is_empty() {
                break;
            }
            offset = next;
            let mut batch = BytesMut::new();
            for e in &since.events {
                let Ok(head) = serde_json::from_str::<Head>(e.get()) else {
                    continue;
                };
                last_seq = Some(head.seq);
                if head.seq > after && head.kind != "task.result" {
                    batch.extend_from_slice(&frame(Some(head.seq), e.get()));
                }
            }
            if !batch.is_empty() && tx.send(Ok(batch.freeze())).await.is_err() {
                return;
            }
            if !since.truncated {
                break;
            }
        }
        let _ = tx.send(Ok(last_message(last_seq, &result))).await;
    });
    sse_response(rx)
}
