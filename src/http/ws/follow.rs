//! Following one task on a socket: its events of the record, its live deltas and its result, in
//! order, each turned into text messages by a [`Framing`].
//!
//! The order is the SSE stream's (`http/sse.rs`): each delta after the events recorded before
//! it (`afterSeq`), the result last. Reading is driven by the socket loop, one step at a time,
//! so that a client that does not read holds at most one step in memory (the rest waits in the
//! task's record) and the loop stays free to read the client's own messages between steps.

use std::sync::Arc;

use tokio::sync::watch;

use crate::http::sse::{read_step, Read};
use crate::live::{Delta, Subscriber};
use crate::task::{Subscription, Task};
use crate::wire::{EventJson, TaskResult};

/// How a socket turns what a task says into text messages. The worker's own framing sends each
/// as it is ([`Plain`]); another protocol on the same socket (AG-UI's events, when the socket
/// began with a `RunAgentInput`) maps them into its own shapes.
pub trait Framing: Send + 'static {
    /// Messages before the task's first event.
    fn start(&mut self, _task_id: &str, _out: &mut Vec<String>) {}
    /// Messages for event `seq` of the record (not the final `task.result`).
    fn event(&mut self, seq: u64, event: &EventJson, out: &mut Vec<String>);
    /// Messages for a piece of live text.
    fn delta(&mut self, delta: &Delta, task_id: &str, out: &mut Vec<String>);
    /// The last messages, given the `task.result` event's seq and the whole result.
    fn end(&mut self, seq: u64, result: &TaskResult, out: &mut Vec<String>);
}

/// The worker's own messages: each event and delta as on SSE's `data:` lines, then the whole
/// result object (with its events, as the JSON answer of `POST /invocations`).
pub struct Plain;

impl Framing for Plain {
    fn event(&mut self, _seq: u64, event: &EventJson, out: &mut Vec<String>) {
        out.push(event.get().to_string());
    }

    fn delta(&mut self, delta: &Delta, task_id: &str, out: &mut Vec<String>) {
        out.push(delta.to_json(task_id));
    }

    fn end(&mut self, _seq: u64, result: &TaskResult, out: &mut Vec<String>) {
        out.push(serde_json::to_string(result).unwrap_or_default());
    }
}

/// What one step gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Messages, and maybe more to read at once.
    More,
    /// Nothing new: wait for [`Follow::changed`].
    Idle,
    /// The result was framed: the task is over.
    Ended,
}

/// One socket's view of its running task.
pub struct Follow {
    /// The task followed.
    pub task: Arc<Task>,
    sent: u64,
    cap: usize,
    framing: Box<dyn Framing>,
    changes: watch::Receiver<u64>,
    live: Subscriber,
    /// A place among the task's live streams (`AGENTDISPATCH_MAX_SUBSCRIBERS_PER_TASK`).
    _place: Subscription,
}

impl Follow {
    /// Follows `task` from its first event; `Err` is the subscriber limit.
    pub fn new(
        task: Arc<Task>,
        cap: usize,
        mut framing: Box<dyn Framing>,
        out: &mut Vec<String>,
    ) -> Result<Self, usize> {
        let place = task.subscribers.join()?;
        let changes = task.events.subscribe();
        // Joined before the first read of the record, so no delta falls between the two.
        let live = task.events.live();
        framing.start(&task.id, out);
        Ok(Follow {
            task,
            sent: 0,
            cap,
            framing,
            changes,
            live,
            _place: place,
        })
    }

    /// Frames what is there now into `out`: the waiting deltas (each after the events before
    /// it), then one step of events.
    pub async fn step(&mut self, out: &mut Vec<String>) -> Step {
        self.changes.borrow_and_update();
        for d in self.live.take() {
            while self.sent < d.after_seq {
                match self.events(d.after_seq, out).await {
                    Step::Ended => return Step::Ended,
                    Step::More => {}
                    Step::Idle => break,
                }
            }
            self.framing.delta(&d, &self.task.id, out);
        }
        match self.events(u64::MAX, out).await {
            Step::Idle if self.task.result().is_some() => {
                // Finished with nothing after `sent`: the result event was framed already or
                // lies at `sent` (the result is set only after that event, the last one).
                let result = self.task.answer(self.cap).await;
                self.framing.end(self.task.events.last_seq(), &result, out);
                Step::Ended
            }
            Step::Idle if !out.is_empty() => Step::More,
            other => other,
        }
    }

    /// Resolves when the task may have something new.
    pub async fn changed(&mut self) {
        tokio::select! {
            changed = self.changes.changed() => {
                if changed.is_err() {
                    // The sink is gone; the end wakes the loop through `finished`.
                    self.task.finished().await;
                }
            }
            _ = self.live.ready() => {}
            _ = self.task.finished() => {}
        }
    }

    /// Frames one step of the events after `sent`, up to `upto`; at `task.result`, the end.
    async fn events(&mut self, upto: u64, out: &mut Vec<String>) -> Step {
        let read = read_step(&self.task, &mut self.sent, upto, |seq, e| {
            self.framing.event(seq, e, out)
        });
        match read {
            Read::Nothing | Read::Events { framed: false } => Step::Idle,
            Read::Events { framed: true } => Step::More,
            Read::Result(seq) => {
                let result = self.task.answer(self.cap).await;
                self.framing.end(seq, &result, out);
                Step::Ended
            }
        }
    }
}
