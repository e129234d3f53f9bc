//! AG-UI on `POST /invocations` (SPEC §13): a `RunAgentInput` runs as an `agent.run` task whose
//! stream is told in AG-UI events, each an SSE `data:` message as AG-UI's `EventEncoder` writes
//! it. A body AG-UI's models refuse is a 400 with a JSON error, as AWS's `AGUIApp` answers.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use serde_json::{json, Value};
use warp::http::StatusCode;
use warp::reply::Response;

use super::sse::{self, Framing};
use crate::agui::{Event, Run, Translator};
use crate::live::Delta;
use crate::task::{RequestIds, Start, Worker};
use crate::wire::{ErrorCode, EventJson, TaskResult};

/// A comment line after this long without a message: AG-UI has no heartbeat event, and a
/// proxy may drop a quiet stream (SSE clients skip comment lines).
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(10);

/// The 400 of a body that is not a run, in `AGUIApp`'s words (`error`, `details`) and the
/// worker's (`ok`, `errorCode`).
pub fn refusal(error: &str, details: &str) -> Response {
    super::json_response(
        StatusCode::BAD_REQUEST,
        &json!({"ok": false, "error": error, "details": details, "errorCode": ErrorCode::InvalidPayload}),
    )
}

/// Frames a task's stream as AG-UI events.
struct AguiFraming {
    t: Translator,
    out: Vec<Event>,
}

impl AguiFraming {
    fn flush(&mut self, out: &mut BytesMut) {
        for e in self.out.drain(..) {
            out.extend_from_slice(&sse::frame(None, &e.to_json()));
        }
    }
}

impl Framing for AguiFraming {
    fn event(&mut self, seq: u64, event: &EventJson, out: &mut BytesMut) {
        self.t.event(seq, event.get(), &mut self.out);
        self.flush(out);
    }

    fn delta(&mut self, delta: &Delta, _task_id: &str, out: &mut BytesMut) {
        self.t.delta(delta, &mut self.out);
        self.flush(out);
    }

    fn end(&mut self, _seq: u64, result: &TaskResult) -> Vec<Bytes> {
        self.t.end(result, &mut self.out);
        let mut b = BytesMut::new();
        self.flush(&mut b);
        vec![b.freeze()]
    }

    fn keep_alive(&self) -> Option<std::time::Duration> {
        Some(KEEP_ALIVE)
    }
}

/// Runs a `RunAgentInput` (already parsed as JSON) and answers its AG-UI event stream.
pub async fn run(worker: Arc<Worker>, ids: RequestIds, body: &Value) -> Response {
    let Run {
        payload,
        thread_id,
        run_id,
        parent_run_id,
    } = match crate::agui::parse(body) {
        Ok(run) => run,
        Err(details) => {
            tracing::info!(requestId = %ids.request_id, error = %details, "invalid RunAgentInput");
            return refusal("Invalid RunAgentInput", &details);
        }
    };
    let cap = worker.cfg.max_output_bytes;
    let translator =
        |task_id: &str| Translator::new(&thread_id, &run_id, parent_run_id.as_deref(), task_id);
    match worker.start(payload, ids).await {
        Start::New(task) | Start::Existing(task) => {
            let t = translator(&task.id);
            let first = vec![sse::frame(None, &t.start().to_json())];
            let framing = AguiFraming { t, out: Vec::new() };
            sse::framed_stream(task, 0, cap, first, framing)
        }
        // Refused (at capacity, an unknown framework, …): the run starts and errs at once.
        Start::OnDisk(r) | Start::Refused(r) => {
            let mut f = AguiFraming {
                t: translator(&r.task_id),
                out: Vec::new(),
            };
            let mut b = BytesMut::from(&sse::frame(None, &f.t.start().to_json())[..]);
            for m in f.end(0, &r) {
                b.extend_from_slice(&m);
            }
            sse::bytes_response(b.freeze())
        }
    }
}
