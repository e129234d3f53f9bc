//! [`ErrorCode`]: every `errorCode` the worker answers with, one enum serialised as its wire
//! string.
//!
//! A new code is one line in the list below (its variant, its wire name, what it means) and one
//! row in the "Error codes" table of docs/errors.md (`tests/readme.rs` checks the two lists are
//! the same).

use serde::{Deserialize, Serialize};

/// Declares the enum, its wire names and the list of all codes from one line per code, so that
/// the variant, its string and `ALL` cannot drift apart.
macro_rules! error_codes {
    ($($variant:ident = $wire:literal : $doc:literal,)*) => {
        /// A machine-readable cause of a failure (`errorCode` on the wire).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum ErrorCode {
            $(
                #[doc = $doc]
                #[serde(rename = $wire)]
                $variant,
            )*
        }

        impl ErrorCode {
            /// Every code, in the order declared.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The wire name, e.g. `spawn_failed`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $wire,)*
                }
            }
        }
    };
}

error_codes! {
    InvalidPayload = "invalid_payload": "The request body is not a valid invocation (HTTP 400).",
    UnsupportedTaskType = "unsupported_task_type": "`taskType` names no task type the worker runs.",
    UnknownFramework = "unknown_framework": "`framework` names no framework the worker knows.",
    InvalidCommand = "invalid_command": "`command.run` with a missing or unparsable command.",
    CommandRejected = "command_rejected": "`AGENTDISPATCH_COMMAND_ALLOWLIST` does not allow it.",
    EntrypointNotAllowed = "entrypoint_not_allowed": "`input.entrypoint` is not allowed by `AGENTDISPATCH_ENTRYPOINT_ALLOWLIST`.",
    SpawnFailed = "spawn_failed": "The child could not be started.",
    WaitFailed = "wait_failed": "Waiting for the child failed, so how it ended is not known.",
    ExitNonzero = "exit_nonzero": "The child exited with a non-zero code.",
    Killed = "killed": "The child was killed by a signal.",
    TimedOut = "timed_out": "The task was stopped at its deadline.",
    Cancelled = "cancelled": "The task was cancelled (`task.cancel` or the worker's shutdown).",
    TaskFailed = "task_failed": "The child exited 0 but reported `ok:false`.",
    AgentImportFailed = "agent_import_failed": "The agent's module cannot be imported: not found, or its code failed as it loaded.",
    InvalidEntrypoint = "invalid_entrypoint": "The entrypoint is malformed, names nothing, or is not the framework's agent (nor a builder or factory of one).",
    AgentFailed = "agent_failed": "The agent (or its factory) raised while it ran.",
    ArtifactWriteFailed = "artifact_write_failed": "The task folder could not be written.",
    ArtifactReadFailed = "artifact_read_failed": "A task folder's file could not be read back (a link, a FIFO, too large).",
    SessionUnavailable = "session_unavailable": "The session's folder could not be prepared.",
    AtCapacity = "at_capacity": "As many tasks as allowed are running; nothing was started.",
    ShuttingDown = "shutting_down": "The worker is shutting down; nothing was started.",
    UnknownTask = "unknown_task": "No task has this id, in memory or on disk.",
    TaskIdUnavailable = "task_id_unavailable": "The `taskId` belongs to another session's task.",
    InvalidHeader = "invalid_header": "An id header is too long or holds control characters (HTTP 400).",
    ForbiddenHost = "forbidden_host": "A loopback worker got a non-loopback `Host` (HTTP 403).",
    ForbiddenOrigin = "forbidden_origin": "A loopback worker got a non-loopback `Origin` (HTTP 403).",
    TooManyConnections = "too_many_connections": "Past the connection limit; only `/ping` is answered (HTTP 503).",
    TooManySubscribers = "too_many_subscribers": "The task has as many live event streams as allowed (HTTP 429).",
    SocketBusy = "socket_busy": "A task is running on this `/ws` socket; one runs at a time per socket.",
    Interrupted = "interrupted": "The worker stopped while the task ran; its events are kept.",
    InterruptNotOpen = "interrupt_not_open": "`input.resume` answers no open question (none asked, answered already, or the session is gone).",
    InvalidResume = "invalid_resume": "`input.resume` has the wrong shape for the open questions.",
    ResumeStateInvalid = "resume_state_invalid": "What the asking task saved cannot be used (missing, corrupted, or another version of the framework); nothing ran, the question stays open.",
    WarmNotReady = "warm_not_ready": "The warm-up hook's warm parents were not ready within its bound (HTTP 503).",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ErrorCode {
    /// The code a child may declare for its own failure (`errorCode` in its result line):
    /// what went wrong in the agent, never the worker's own verdicts (a deadline, a signal).
    pub fn from_child(s: &str) -> Option<ErrorCode> {
        Self::from_wire(s).filter(|c| {
            matches!(
                c,
                ErrorCode::AgentImportFailed
                    | ErrorCode::InvalidEntrypoint
                    | ErrorCode::AgentFailed
                    | ErrorCode::SessionUnavailable
                    | ErrorCode::ResumeStateInvalid
            )
        })
    }

    /// The code with this wire name (e.g. one a child declares), if there is one.
    pub fn from_wire(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_code_serialises_as_its_wire_name_and_back() {
        for &code in ErrorCode::ALL {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, serde_json::Value::from(code.as_str()));
            assert_eq!(serde_json::from_value::<ErrorCode>(json).unwrap(), code);
            assert_eq!(ErrorCode::from_wire(code.as_str()), Some(code));
            assert_eq!(code.to_string(), code.as_str());
        }
        assert_eq!(ErrorCode::from_wire("no_such_code"), None);
    }

    #[test]
    fn wire_names_are_distinct_snake_case() {
        let mut names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        for n in &names {
            assert!(
                !n.is_empty() && n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{n:?} is not snake_case"
            );
        }
        names.sort_unstable();
        let count = names.len();
        names.dedup();
        assert_eq!(names.len(), count, "a wire name is used twice");
    }
}
