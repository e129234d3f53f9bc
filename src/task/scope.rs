//! Sessions as a boundary between callers (SPEC: "Sessions"): a request that carries a session
//! (AgentCore's session header, or a payload's `sessionId`) sees and controls only the tasks
//! of that session; any other task answers exactly as an unknown one. A request with no
//! session sees every task (local use, one caller).

use std::io::{BufRead, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde_json::Value;

use crate::artifacts;
use crate::wire::TaskResult;

/// The session a request acts for; `None`: every task (a request with no session).
pub type Scope<'a> = Option<&'a str>;

/// Longest first line read back for a task's session (its `accepted` event: a clipped label,
/// two ids).
const MAX_FIRST_LINE: u64 = 256 * 1024;

/// Whether a request of `scope` may see a task of session `owner`.
pub fn visible(scope: Scope, owner: Option<&str>) -> bool {
    scope.is_none_or(|s| owner == Some(s))
}

/// Whether a request of `scope` may see the task whose folder is `dir`: its session is the
/// `sessionId` of its first event (`accepted`). A folder whose log cannot be read safely (not
/// a regular file, a link) belongs to no session.
pub fn visible_on_disk(scope: Scope, dir: &Path) -> bool {
    scope.is_none() || visible(scope, session_on_disk(dir).as_deref())
}

fn session_on_disk(dir: &Path) -> Option<String> {
    // Never follow a link a child planted, never block on a FIFO.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(dir.join(artifacts::EVENTS_FILE))
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut line = Vec::new();
    std::io::BufReader::new(file.take(MAX_FIRST_LINE))
        .read_until(b'\n', &mut line)
        .ok()?;
    let first: Value = serde_json::from_slice(&line).ok()?;
    first["payload"]["sessionId"].as_str().map(str::to_string)
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
