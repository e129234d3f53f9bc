//! AG-UI on `/ws` (SPEC §13): a socket message that is a `RunAgentInput` runs as on
//! `POST /invocations`, its stream told as AG-UI events, one event per text message (the JSON
//! AG-UI's encoder writes, without SSE's `data:`).

use super::follow::Framing;
use crate::agui::{Event, Run, Translator};
use crate::live::Delta;
use crate::wire::{EventJson, TaskResult};

/// Frames one run's task as AG-UI events; the translator is made when the task's id is known.
pub struct AguiFraming {
    thread_id: String,
    run_id: String,
    parent_run_id: Option<String>,
    t: Option<Translator>,
    events: Vec<Event>,
}

impl AguiFraming {
    /// The framing of `run`'s task.
    pub fn new(run: &Run) -> Self {
        AguiFraming {
            thread_id: run.thread_id.clone(),
            run_id: run.run_id.clone(),
            parent_run_id: run.parent_run_id.clone(),
            t: None,
            events: Vec::new(),
        }
    }

    fn translator(&mut self, task_id: &str) -> &mut Translator {
        let (thread, run, parent) = (&self.thread_id, &self.run_id, &self.parent_run_id);
        self.t
            .get_or_insert_with(|| Translator::new(thread, run, parent.as_deref(), task_id))
    }

    fn flush(&mut self, out: &mut Vec<String>) {
        out.extend(self.events.drain(..).map(|e| e.to_json()));
    }
}

impl Framing for AguiFraming {
    fn start(&mut self, task_id: &str, out: &mut Vec<String>) {
        let started = self.translator(task_id).start();
        out.push(started.to_json());
    }

    fn event(&mut self, seq: u64, event: &EventJson, out: &mut Vec<String>) {
        if let Some(t) = self.t.as_mut() {
            t.event(seq, event.get(), &mut self.events);
        }
        self.flush(out);
    }

    fn delta(&mut self, delta: &Delta, task_id: &str, out: &mut Vec<String>) {
        let mut events = std::mem::take(&mut self.events);
        self.translator(task_id).delta(delta, &mut events);
        self.events = events;
        self.flush(out);
    }

    fn end(&mut self, _seq: u64, result: &TaskResult, out: &mut Vec<String>) {
        let mut events = std::mem::take(&mut self.events);
        self.translator(&result.task_id).end(result, &mut events);
        self.events = events;
        self.flush(out);
    }
}
