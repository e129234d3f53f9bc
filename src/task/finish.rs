//! How a task turned out ([`Ending`]), and its end: the task folder (`result.json`,
//! `manifest.json`), the `task.result` event and the answer.

use std::io::Write;

use serde_json::{json, Value};

use super::folder::{MANIFEST_FILE, OWN_FILES, RESULT_FILE};
use super::Task;
use crate::artifacts;
use crate::wire::{
    Artifact, ErrorCode, EventDraft, EventPayload, EventType, TaskResult, TaskStatus,
};

/// How the task turned out, before the folder is written.
pub(super) struct Ending {
    pub(super) ok: bool,
    pub(super) status: TaskStatus,
    pub(super) output: String,
    pub(super) result: Option<Value>,
    pub(super) error: Option<String>,
    pub(super) error_code: Option<ErrorCode>,
    pub(super) exit_code: Option<i32>,
    pub(super) declared: Vec<Value>,
    /// Questions asked, the session to answer them in, the questions this run answered.
    pub(super) asked: crate::wire::Asked,
}

impl Ending {
    pub(super) fn failed(code: ErrorCode, error: impl Into<String>) -> Self {
        Ending {
            ok: false,
            status: TaskStatus::Failed,
            output: String::new(),
            result: None,
            error: Some(error.into()),
            error_code: Some(code),
            exit_code: None,
            declared: Vec::new(),
            asked: Default::default(),
        }
    }
}

/// Writes the folder (`result.json`, `manifest.json`), emits `task.result`, builds the answer.
pub(super) fn finish(task: &Task, mut ending: Ending) -> TaskResult {
    let mut warnings = Vec::new();
    let mut artifacts: Vec<Artifact> = Vec::new();
    // A folder this run did not make (the task failed for it) is never listed or written;
    // one a child swapped for a link is refused by `intact` below.
    let folder = &task.folder;
    // Checked once: every process of the task has been reaped, so nothing swaps it after this.
    let intact = folder.made().then(|| folder.intact());
    let listed = matches!(intact, Some(Ok(())));
    let (written, declared) = if listed {
        let dir = folder.path();
        (
            artifacts::written_files(dir, &OWN_FILES, &mut |w| warnings.push(w)),
            artifacts::declared(dir, &ending.declared, &mut |w| warnings.push(w)),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    for w in warnings {
        task.events.emit(&EventDraft::new(
            EventType::Log,
            w,
            Some(json!({"source": "worker", "level": "warning"})),
        ));
    }
    for path in written {
        match artifacts::describe(&path) {
            Ok(a) => artifacts.push(a),
            Err(e) => {
                task.events.emit(&EventDraft::new(
                    EventType::Log,
                    format!("{} is not listed: {e}", path.display()),
                    Some(json!({"source": "worker", "level": "warning"})),
                ));
            }
        }
    }
    artifacts::merge_unique(&mut artifacts, declared);
    if let Some(e) = task.events.log_error() {
        ending.ok = false;
        ending.status = TaskStatus::Failed;
        ending.error = Some(format!("Task folder could not be written: {e}"));
        ending.error_code = Some(ErrorCode::ArtifactWriteFailed);
    }
    let mut result = TaskResult {
        ok: ending.ok,
        task_id: task.id.clone(),
        status: ending.status,
        output: ending.output.into(),
        result: ending.result,
        events: Vec::new(),
        events_truncated: false,
        artifacts: Vec::new(),
        error: ending.error,
        error_code: ending.error_code,
        exit_code: ending.exit_code,
        duration_ms: task.started.elapsed().as_millis() as u64,
        asked: ending.asked,
    };
    if let Some(intact) = intact {
        if let Err(err) = intact {
            fail_write(&mut result, &folder.file(RESULT_FILE), err);
        } else {
            let written = folder
                .write_atomic(RESULT_FILE, |w| {
                    serde_json::to_writer_pretty(w, &result.record(false))
                        .map_err(std::io::Error::other)
                })
                .and_then(|path| artifacts::describe(&path));
            match written {
                Ok(a) => artifacts.insert(0, a),
                Err(e) => {
                    fail_write(&mut result, &folder.file(RESULT_FILE), e);
                    folder.mark_unwritten();
                }
            }
            let manifest = serde_json::to_vec_pretty(&json!({ "artifacts": artifacts }))
                .map_err(std::io::Error::other)
                .and_then(|bytes| folder.write_atomic(MANIFEST_FILE, |w| w.write_all(&bytes)));
            if let Err(e) = manifest {
                fail_write(&mut result, &folder.file(MANIFEST_FILE), e);
            }
        }
    }
    result.artifacts = artifacts;
    // The last event: its payload is the task's `result` value (as the reference worker's),
    // its message the status; the whole answer is the response and `result.json`.
    task.events.emit(&EventDraft {
        kind: EventType::Result,
        message: Some(result.status.as_str().to_string()),
        payload: result
            .result
            .as_ref()
            .map(|r| EventPayload::Raw(crate::wire::to_raw(r))),
    });
    if let Some(e) = task.events.close() {
        if result.ok {
            result.ok = false;
            result.status = TaskStatus::Failed;
            result.error = Some(format!("Task folder could not be written: {e}"));
            result.error_code = Some(ErrorCode::ArtifactWriteFailed);
        }
    }
    // The events are added to an answer by Task::view, from the sink.
    result
}

fn fail_write(result: &mut TaskResult, path: &std::path::Path, e: std::io::Error) {
    if result.error_code == Some(ErrorCode::ArtifactWriteFailed) {
        return; // the first failure is the cause; later ones follow from it
    }
    result.ok = false;
    result.status = TaskStatus::Failed;
    result.error = Some(format!("Cannot write {}: {e}", path.display()));
    result.error_code = Some(ErrorCode::ArtifactWriteFailed);
}
