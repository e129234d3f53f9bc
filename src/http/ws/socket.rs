//! One open socket: read a client message, answer or start a task, follow it to its result,
//! and keep a quiet socket alive with pings. One task at a time; the socket stays open between
//! them. A client that goes away stops only the following, never the task (SPEC §4).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::follow::{Follow, Step};
use super::read::{read, Incoming};
use super::resume::{self, Asking};
use crate::task::{RequestIds, Start, Worker};
use crate::wire::{ErrorCode, Payload, TaskType};

type Ws = WebSocketStream<TokioIo<Upgraded>>;

/// Largest payload of one frame sent. AgentCore's WebSocket frame quota is 32 KB (fixed); a
/// longer message goes out as a text frame and continuation frames, each with at most this
/// many bytes (the frame header, at most 14 bytes, fits under 32,000 with them).
pub const MAX_FRAME_PAYLOAD: usize = 31 * 1024;

/// After closing, how long the client has to answer the close before the socket is dropped.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Longest close reason (RFC 6455: the close frame's payload is at most 125 bytes, 2 of them
/// the code).
const MAX_REASON: usize = 123;

/// How the socket ends.
enum End {
    /// The client closed it (it gets its close echoed, 1000 when it sent none) or vanished.
    Client,
    /// The worker closes it with this code and reason.
    Close(CloseCode, String),
}

/// An error object in the shape of the HTTP answers.
fn error_message(code: ErrorCode, error: &str) -> String {
    json!({"ok": false, "error": error, "errorCode": code}).to_string()
}

/// `text` cut to at most `max` bytes on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut at = text.len().min(max);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    &text[..at]
}

/// Sends `messages` (emptying it), each as frames within [`MAX_FRAME_PAYLOAD`]; false when the
/// client is gone.
async fn send_all(ws: &mut Ws, messages: &mut Vec<String>) -> bool {
    if messages.is_empty() {
        return true;
    }
    for m in messages.drain(..) {
        let fed = if m.len() <= MAX_FRAME_PAYLOAD {
            ws.feed(Message::text(m)).await
        } else {
            feed_fragments(ws, &m).await
        };
        if fed.is_err() {
            return false;
        }
    }
    ws.flush().await.is_ok()
}

/// `text` in pieces of at most `max` bytes, cut on character boundaries (each fragment is
/// valid UTF-8 on its own, for clients that check early).
fn fragments(text: &str, max: usize) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut piece = cut(rest, max);
        if piece.is_empty() {
            // A character longer than `max` (never, with max ≥ 4): sent whole.
            piece = &rest[..rest.chars().next().map_or(rest.len(), char::len_utf8)];
        }
        rest = &rest[piece.len()..];
        Some(piece)
    })
}

/// One long text message as a text frame and continuation frames.
async fn feed_fragments(ws: &mut Ws, text: &str) -> Result<(), WsError> {
    let mut pieces = fragments(text, MAX_FRAME_PAYLOAD).peekable();
    let mut opcode = Data::Text;
    while let Some(piece) = pieces.next() {
        let last = pieces.peek().is_none();
        let frame = Frame::message(piece.as_bytes().to_vec(), OpCode::Data(opcode), last);
        ws.feed(Message::Frame(frame)).await?;
        opcode = Data::Continue;
    }
    Ok(())
}

/// Resolves when the followed task may have something new; never without one.
async fn changed(running: &mut Option<Follow>) {
    match running {
        Some(f) => f.changed().await,
        None => std::future::pending().await,
    }
}

/// Serves one socket to its end.
pub async fn run(worker: Arc<Worker>, mut ws: Ws, ids: RequestIds) {
    let log_id = ids.request_id.clone();
    let log_session = ids.session_id.clone().unwrap_or_default();
    tracing::info!(requestId = %log_id, sessionId = %log_session, "WebSocket opened");
    let every = worker.cfg.ws_ping;
    let mut s = Socket {
        worker,
        ids,
        running: None,
        asking: None,
        out: Vec::new(),
        first: true,
    };
    let mut last_sent = Instant::now();
    // A ping is unanswered when nothing was heard since it went out.
    let mut awaiting_pong = false;
    let end = loop {
        // More of the task to send at once: the wait below only looks at the client (a
        // cancel is read between steps also while the task floods the socket).
        let mut more = false;
        if let Some(f) = s.running.as_mut() {
            let step = f.step(&mut s.out).await;
            if !s.out.is_empty() {
                if !send_all(&mut ws, &mut s.out).await {
                    break End::Client;
                }
                last_sent = Instant::now();
            }
            match step {
                Step::More => more = true,
                Step::Idle => {}
                Step::Ended => {
                    // A task that asked leaves its session for a `task.resume` on this socket.
                    if let Some(a) = s.running.take().and_then(|f| Asking::of(&f.task)) {
                        s.asking = Some(a);
                    }
                    if s.worker.shutdown.is_cancelled() {
                        break End::Close(CloseCode::Away, "The worker is shutting down.".into());
                    }
                }
            }
        }
        tokio::select! {
            biased;
            msg = ws.next() => {
                awaiting_pong = false;
                match msg {
                    None => break End::Client,
                    Some(Ok(Message::Text(text))) => {
                        let end = s.message(text.as_str()).await;
                        if !send_all(&mut ws, &mut s.out).await {
                            break End::Client;
                        }
                        last_sent = Instant::now();
                        if let Some(end) = end {
                            break end;
                        }
                    }
                    Some(Ok(Message::Binary(_))) => break End::Close(
                        CloseCode::Unsupported,
                        "Binary messages are not read: send JSON as text.".into(),
                    ),
                    // Answered by tungstenite (a ping's pong, a close's echo).
                    Some(Ok(Message::Close(_))) => break End::Client,
                    Some(Ok(_)) => {}
                    Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size }))) => {
                        break End::Close(
                            CloseCode::Size,
                            format!("A message of {size} bytes is over AGENTDISPATCH_MAX_PAYLOAD_BYTES ({max_size})."),
                        )
                    }
                    Some(Err(WsError::Protocol(e))) => {
                        break End::Close(CloseCode::Protocol, e.to_string())
                    }
                    Some(Err(WsError::Utf8(_))) => break End::Close(
                        CloseCode::Invalid,
                        "A text message is not valid UTF-8.".into(),
                    ),
                    Some(Err(_)) => break End::Client,
                }
            }
            _ = changed(&mut s.running) => {}
            _ = tokio::time::sleep_until(last_sent + every) => {
                if awaiting_pong {
                    // Nothing heard for a whole interval after a ping: the peer is gone.
                    break End::Client;
                }
                if ws.send(Message::Ping(Default::default())).await.is_err() {
                    break End::Client;
                }
                awaiting_pong = true;
                last_sent = Instant::now();
            }
            _ = s.worker.shutdown.cancelled(), if s.running.is_none() => {
                break End::Close(CloseCode::Away, "The worker is shutting down.".into());
            }
            _ = std::future::ready(()), if more => {}
        }
    };
    let (code, reason) = match &end {
        End::Client => (None, String::new()),
        End::Close(code, reason) => (Some(u16::from(*code)), reason.clone()),
    };
    if let End::Close(code, reason) = end {
        let frame = CloseFrame {
            code,
            reason: cut(&reason, MAX_REASON).to_string().into(),
        };
        let _ = ws.send(Message::Close(Some(frame))).await;
    }
    // Reads until the client's close (or echoes its own), within a bound.
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
    tracing::info!(requestId = %log_id, sessionId = %log_session, closeCode = code, reason = %reason, "WebSocket closed");
}

/// A socket's state between messages.
struct Socket {
    worker: Arc<Worker>,
    /// The upgrade request's ids and context, which every task started here carries.
    ids: RequestIds,
    running: Option<Follow>,
    /// The last task here that ended asking: what a `task.resume` answers.
    asking: Option<Asking>,
    /// Messages to send next.
    out: Vec<String>,
    first: bool,
}

impl Socket {
    /// Handles one text message; `Some` ends the socket.
    async fn message(&mut self, text: &str) -> Option<End> {
        let first = std::mem::replace(&mut self.first, false);
        match read(text, first) {
            Incoming::Bad(why) => {
                // The whole error first (a close reason holds 123 bytes), then the close.
                self.out
                    .push(error_message(ErrorCode::InvalidPayload, &why));
                return Some(End::Close(CloseCode::Unsupported, why));
            }
            Incoming::Refused(code, why) => self.out.push(error_message(code, &why)),
            Incoming::Cancel => self.cancel(),
            Incoming::Resume(msg) => match resume::payload(&msg, self.asking.as_ref()) {
                Err((code, why)) => self.out.push(error_message(code, &why)),
                Ok(payload) => self.start(payload, Box::new(super::follow::Plain)).await,
            },
            Incoming::Invoke(payload, framing) => self.start(*payload, framing).await,
        }
        None
    }

    /// An invocation, unless a task runs here already.
    async fn start(&mut self, payload: Payload, framing: Box<dyn super::Framing>) {
        if let Some(f) = &self.running {
            let busy = format!(
                "Task {} is running on this socket: send {{\"type\":\"task.cancel\"}} or wait for its result, or open another socket.",
                f.task.id
            );
            self.out.push(error_message(ErrorCode::SocketBusy, &busy));
        } else {
            self.invoke(payload, framing).await;
        }
    }

    /// `{"type":"task.cancel"}`: the running task is cancelled; its result ends its messages.
    fn cancel(&mut self) {
        let Some(f) = &self.running else {
            self.out.push(error_message(
                ErrorCode::UnknownTask,
                "No task is running on this socket to cancel.",
            ));
            return;
        };
        let (worker, id) = (self.worker.clone(), f.task.id.clone());
        let scope = f.task.ids.session_id.clone();
        // Off the loop: cancelling waits for the task's end, which the loop streams meanwhile.
        tokio::spawn(async move {
            worker.cancel(&id, scope.as_deref()).await;
        });
    }

    /// An invocation payload, as `POST /invocations` takes it.
    async fn invoke(&mut self, payload: Payload, framing: Box<dyn super::Framing>) {
        let w = self.worker.clone();
        let cap = w.cfg.max_output_bytes;
        let scope = self
            .ids
            .session_id
            .clone()
            .or_else(|| payload.session_id.clone());
        let scope = scope.as_deref();
        let answer = |r: &crate::wire::TaskResult| serde_json::to_string(r).unwrap_or_default();
        match payload.task_type {
            TaskType::Status => {
                let id = payload.task_id.as_deref().unwrap_or_default();
                let r = w.status(id, payload.after_seq, scope).await;
                self.out.push(answer(&r));
            }
            TaskType::Cancel => {
                let id = payload.task_id.as_deref().unwrap_or_default();
                let r = w.cancel(id, scope).await;
                self.out.push(answer(&r));
            }
            TaskType::List => self
                .out
                .push(json!({"ok": true, "tasks": w.list(scope)}).to_string()),
            TaskType::AgentRun | TaskType::CommandRun => {
                match w.start(payload, self.ids.clone()).await {
                    Start::New(task) | Start::Existing(task) => {
                        let id = task.id.clone();
                        match Follow::new(task, cap, framing, &mut self.out) {
                            Ok(f) => self.running = Some(f),
                            Err(max) => self.out.push(error_message(
                                ErrorCode::TooManySubscribers,
                                &format!("Task {id} already has {max} live event streams (AGENTDISPATCH_MAX_SUBSCRIBERS_PER_TASK); ask with task.status and afterSeq."),
                            )),
                        }
                    }
                    // Refused (at capacity, an unknown framework, …): the run's whole answer,
                    // framed (AG-UI: RUN_STARTED then RUN_ERROR).
                    Start::OnDisk(r) | Start::Refused(r) => {
                        let mut framing = framing;
                        framing.start(&r.task_id, &mut self.out);
                        framing.end(0, &r, &mut self.out);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_on_character_boundaries_within_the_bound() {
        let text = "aé€😀".repeat(1000);
        for max in [4, 5, 7, 1000] {
            let parts: Vec<&str> = fragments(&text, max).collect();
            assert!(
                parts.iter().all(|p| !p.is_empty() && p.len() <= max),
                "{max}"
            );
            assert_eq!(parts.concat(), text);
        }
        assert_eq!(fragments("", 10).count(), 0);
        assert_eq!(cut("😀", 3), "");
    }
}
