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

use crate::task::{Task, Worker};
use crate::wire::{EventJson, TaskResult};

/// Bytes of events read from the sink per step.
const STEP_BYTES: usize = 256 * 1024;

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
    let (tx, rx) = mpsc::channel(1);
    let data = serde_json::to_string(result).unwrap_or_default();
    let _ = tx.try_send(Ok(frame(None, &data)));
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
    /// Messages for the end, given the `task.result` event's seq and the whole result.
    fn end(&mut self, seq: u64, result: &TaskResult) -> Vec<Bytes>;
}

/// The worker's own framing: each event as it is, then the whole result object.
struct Plain;

impl Framing for Plain {
    fn event(&mut self, seq: u64, event: &EventJson, out: &mut BytesMut) {
        out.extend_from_slice(&frame(Some(seq), event.get()));
    }

    fn end(&mut self, seq: u64, result: &TaskResult) -> Vec<Bytes> {
        vec![frame(
            Some(seq),
            &serde_json::to_string(result).unwrap_or_default(),
        )]
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
    mut framing: impl Framing,
) -> Response {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        for m in first {
            if tx.send(Ok(m)).await.is_err() {
                return;
            }
        }
        let mut changes = task.events.subscribe();
        let mut sent = after;
        loop {
            changes.borrow_and_update();
            let since = task.events.since(sent, STEP_BYTES);
            let got_any = !since.events.is_empty();
            // One chunk per step, not per event; seq numbers are contiguous, and the
            // serializer always writes "type" first.
            let mut batch = BytesMut::new();
            for e in since.events {
                sent += 1;
                if e.get().starts_with(r#"{"type":"task.result""#) {
                    let result = task.answer(cap).await;
                    for m in framing.end(sent, &result) {
                        batch.extend_from_slice(&m);
                    }
                    let _ = tx.send(Ok(batch.freeze())).await;
                    return;
                }
                framing.event(sent, &e, &mut batch);
            }
            if !batch.is_empty() && tx.send(Ok(batch.freeze())).await.is_err() {
                return;
            }
            if got_any {
                continue;
            }
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                _ = tx.closed() => return,
            }
        }
    });
    sse_response(rx)
}

/// `GET /tasks/{id}/events`: live, resumable with `Last-Event-ID`.
pub fn follow(worker: &Worker, id: &str, headers: &HeaderMap) -> Response {
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    match worker.get(id) {
        Some(task) => task_stream(task, after, worker.cfg.max_output_bytes),
        None => {
            // Not in memory: replay from the folder, or say it is unknown (404, as /tasks/{id}).
            let result = worker.status(id, after);
            if result.error_code.as_deref() == Some("unknown_task") {
                return super::json_response(warp::http::StatusCode::NOT_FOUND, &result);
            }
            let (tx, rx) = mpsc::channel(64);
            tokio::spawn(async move {
                let mut last = after;
                for e in &result.events {
                    if let Ok(head) = serde_json::from_str::<Head>(e.get()) {
                        last = head.seq;
                        if head.kind == "task.result" {
                            break;
                        }
                        if tx.send(Ok(frame(Some(head.seq), e.get()))).await.is_err() {
                            return;
                        }
                    }
                }
                let mut whole = result;
                whole.events.clear();
                let data = serde_json::to_string(&whole).unwrap_or_default();
                let id = (last > after).then_some(last);
                let _ = tx.send(Ok(frame(id, &data))).await;
            });
            sse_response(rx)
        }
    }
}
