//! AG-UI (SPEC §13): a `RunAgentInput` read into an `agent.run` payload ([`input`]), and a
//! task's events, live text and answer told as AG-UI events ([`translate`], [`event`]). Nothing
//! here knows a transport: `POST /invocations` frames the events as SSE `data:` messages
//! (`http::agui`), `/ws` as text messages.

pub mod event;
pub mod input;
#[cfg(test)]
mod tests;
pub mod translate;

pub use event::Event;
pub use input::{looks_like, parse, Run};
pub use translate::Translator;
