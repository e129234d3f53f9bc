//! Sessions as a boundary between callers (SPEC: "Sessions"): a request that carries a session
//! (AgentCore's session header, or a payload's `sessionId`) sees and controls only the tasks
//! of that session; any other task answers exactly as an unknown one. A request with no
//! session sees every task (local use, one caller). A task on disk belongs to the `sessionId`
//! of its first event (`TaskFolder::session`).

use crate::wire::TaskResult;

/// The session a request acts for; `None`: every task (a request with no session).
pub type Scope<'a> = Option<&'a str>;

/// Whether a request of `scope` may see a task of session `owner`.
pub fn visible(scope: Scope, owner: Option<&str>) -> bool {
    scope.is_none_or(|s| owner == Some(s))
}

/// The answer to a caller whose task id names another session's task: it cannot be run again
/// under that id, nor shown.
pub fn taken(id: &str) -> TaskResult {
    let shown = crate::wire::clip(id, 200);
    TaskResult::refusal(
        &shown,
        crate::wire::ErrorCode::TaskIdUnavailable,
        format!("taskId {shown} cannot be used: choose another."),
    )
}
