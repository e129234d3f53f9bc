//! The answer to a task: its status, its artifacts, and the record written to `result.json`.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::{ErrorCode, EventJson};

/// A task's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Still running.
    Running,
    /// Finished with ok:true.
    Succeeded,
    /// Finished with ok:false.
    Failed,
    /// Stopped at its deadline.
    TimedOut,
    /// Stopped by `task.cancel` or worker shutdown.
    Cancelled,
    /// Ended with ok:true to ask a person (SPEC §14): its `interrupts` wait for `input.resume`.
    InputRequired,
}

impl TaskStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Running => "running",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Failed => "failed",
            TaskStatus::TimedOut => "timed_out",
            TaskStatus::Cancelled => "cancelled",
            TaskStatus::InputRequired => "input_required",
        }
    }
}

/// One file or URI a task produced.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// Local path or remote URI.
    pub uri: String,
    /// `json`, `text` or `file` (or what the child declared).
    pub kind: String,
    /// MIME type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Size on disk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// Hex SHA-256 of the content (ext).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Why something is missing, e.g. no `sha256` for a file too big to hash (ext).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The answer to a task: the reference shape plus additions.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskResult {
    /// Whether the task succeeded.
    pub ok: bool,
    /// The task's id.
    #[serde(skip_serializing_if = "String::is_empty")]
    #[serde(default)]
    pub task_id: String,
    /// Lifecycle state.
    pub status: TaskStatus,
    /// Human-readable output (shared: answers and views of a finished task do not copy it).
    #[serde(default)]
    pub output: Arc<str>,
    /// Structured result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Events (the most recent ones when `events_truncated`).
    #[serde(default)]
    pub events: Vec<EventJson>,
    /// Whether older events were left out of `events` (they stay in `events.ndjson`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[serde(default)]
    pub events_truncated: bool,
    /// Files and URIs the task produced.
    #[serde(default)]
    pub artifacts: Vec<Artifact>,
    /// What went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Machine-readable cause of `error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<ErrorCode>,
    /// The child's exit code, when one ran and exited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Wall time from acceptance to result.
    #[serde(default)]
    pub duration_ms: u64,
    /// The questions of an `input_required` task, its session, or the question it answered.
    #[serde(flatten, default)]
    pub asked: Asked,
}

/// What a task that asks (SPEC §14) adds to its answer; all absent for any other task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Asked {
    /// The open questions of an `input_required` task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupts: Option<Vec<Value>>,
    /// The session to answer in (`input.resume`): named because the caller may not have sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The task whose questions this run answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumes: Option<String>,
}

impl TaskResult {
    /// A failure answered before any task ran: no task id, no events.
    pub fn fail(code: ErrorCode, error: impl Into<String>) -> Self {
        TaskResult {
            ok: false,
            task_id: String::new(),
            status: TaskStatus::Failed,
            output: Arc::from(""),
            result: None,
            events: Vec::new(),
            events_truncated: false,
            artifacts: Vec::new(),
            error: Some(error.into()),
            error_code: Some(code),
            exit_code: None,
            duration_ms: 0,
            asked: Asked::default(),
        }
    }

    /// A failure for `task_id` with no result of its own: refused, unknown, or interrupted.
    pub fn refusal(task_id: &str, code: ErrorCode, error: impl Into<String>) -> Self {
        TaskResult {
            task_id: task_id.to_string(),
            ..TaskResult::fail(code, error)
        }
    }
}

/// A result as written to `result.json`: borrowed, without `events` (they are in
/// `events.ndjson`); `artifacts` only when given.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultRecord<'a> {
    ok: bool,
    task_id: &'a str,
    status: TaskStatus,
    output: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifacts: Option<&'a [Artifact]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<ErrorCode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<i32>,
    duration_ms: u64,
    #[serde(flatten)]
    asked: &'a Asked,
}

impl TaskResult {
    /// The record of this result, with or without its artifacts.
    pub fn record(&self, with_artifacts: bool) -> ResultRecord<'_> {
        ResultRecord {
            ok: self.ok,
            task_id: &self.task_id,
            status: self.status,
            output: &self.output[..],
            result: self.result.as_ref(),
            artifacts: with_artifacts.then_some(self.artifacts.as_slice()),
            error: self.error.as_deref(),
            error_code: self.error_code,
            exit_code: self.exit_code,
            duration_ms: self.duration_ms,
            asked: &self.asked,
        }
    }

    /// Bytes an answer gives its events under one cap for output, result and events together
    /// (SPEC §8): what the output and the result leave, but at least half the cap, so that
    /// paging with `afterSeq` always moves on.
    pub fn events_budget(&self, cap: usize) -> usize {
        cap.saturating_sub(self.output.len() + self.result_len())
            .max(cap / 2)
    }

    /// With the events in: when output, result and events would pass `cap`, the output gives
    /// way (cut, saying its whole size); `result.json` keeps it whole.
    pub fn fit_output(&mut self, cap: usize) {
        let events: usize = self.events.iter().map(|e| e.get().len()).sum();
        let room = cap.saturating_sub(events + self.result_len());
        if self.output.len() > room {
            let mut cut = room;
            while !self.output.is_char_boundary(cut) {
                cut -= 1;
            }
            self.output = Arc::from(format!(
                "{}\n[output truncated in this answer: {} bytes in result.json]",
                &self.output[..cut],
                self.output.len()
            ));
        }
    }

    fn result_len(&self) -> usize {
        self.result
            .as_ref()
            .and_then(|r| serde_json::to_vec(r).ok())
            .map_or(0, |v| v.len())
    }

    /// About how many bytes its JSON takes (to size a buffer once).
    pub fn json_len_hint(&self) -> usize {
        let events: usize = self.events.iter().map(|e| e.get().len() + 1).sum();
        // Text may grow when escaped; a little slack saves a doubling of a large buffer.
        self.output.len() + self.output.len() / 16 + events + 4096
    }
}
