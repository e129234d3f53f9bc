//! The wire types: the invocation payload, the task result, events and artifacts.
//!
//! The field names and shapes are the TypeScript reference worker's (`ok`, `output`, `events`,
//! `artifacts`, `error`), plus this worker's additions.
//!
//! - [`payload`]: what a caller sends, parsed with refusals that name the field.
//! - [`result`]: the answer to a task and its `result.json` record.
//! - [`event`]: the events a task emits and their serialized form.
//! - [`error_code`]: every `errorCode`, one enum.

pub mod error_code;
pub mod event;
pub mod payload;
pub mod result;

pub use error_code::ErrorCode;
pub use event::{to_raw, EventDraft, EventJson, EventPayload, EventRef, EventType, Stream};
pub use payload::{
    clip, id_problem, kind_of, parse_payload, payload_from_value, valid_task_id, Payload,
    PayloadError, TaskType, MAX_SESSION_ID,
};
pub use result::{Artifact, Asked, ResultRecord, TaskResult, TaskStatus};
