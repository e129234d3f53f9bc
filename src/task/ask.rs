//! A task that asks (SPEC §14), around its child: before it, the session folder and the answers
//! of an `input.resume` (checked, and marked used before any child starts); after it, the
//! questions of an `input_required` ending kept in the session folder.

use std::path::PathBuf;

use serde_json::{json, Value};

use super::finish::Ending;
use super::{Task, Worker};
use crate::interrupts::{self, Open, Refusal};
use crate::sessions;
use crate::task_log;
use crate::wire::{ErrorCode, Payload, TaskStatus};

/// What the child is given, and what the ending needs, of the task's session.
pub(super) struct Session {
    /// The session's folder (prepared), when the task has a session.
    pub(super) dir: Option<PathBuf>,
    /// For a task without a session: the one it gets if it asks (id, folder not yet made).
    /// The child makes the folder only when it asks; an unused one is removed at the end.
    pub(super) spare: Option<(String, PathBuf)>,
    /// The envelope's `resume`: the asking task, its questions and their answers.
    pub(super) resume: Option<Value>,
    /// The task whose questions this run answers.
    pub(super) resumes: Option<String>,
}

/// A refusal before any child starts (boxed: an ending is large, and rare here).
fn refuse(code: ErrorCode, error: impl Into<String>) -> Box<Ending> {
    Box::new(Ending::failed(code, error))
}

/// The session of an `agent.run` about to start its child, or the ending that stops it first.
pub(super) fn before(
    worker: &Worker,
    task: &Task,
    payload: &Payload,
) -> Result<Session, Box<Ending>> {
    let root = &worker.cfg.session_dir;
    let resume = payload.input.get("resume");
    let Some(session) = task.ids.session_id.as_deref() else {
        if resume.is_some() {
            return Err(refuse(
                ErrorCode::InterruptNotOpen,
                "input.resume answers a question asked in a session, and this request names none: send the sessionId that the input_required answer named.",
            ));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let dir = root.join(sessions::folder_name(&id));
        return Ok(Session {
            dir: None,
            spare: Some((id, dir)),
            resume: None,
            resumes: None,
        });
    };
    let mut out = Session {
        dir: None,
        spare: None,
        resume: None,
        resumes: None,
    };
    if let Some(resume) = resume {
        let dir = root.join(sessions::folder_name(session));
        let shown = crate::wire::clip(session, 200);
        // Never made here: a folder that is gone took its questions (and the framework's
        // saved state) with it, and a fresh one would start the run over.
        if !dir.is_dir() {
            return Err(refuse(
                ErrorCode::InterruptNotOpen,
                format!("Session {shown} has no folder (it expired or was deleted): no question is open there. Start a new run without input.resume."),
            ));
        }
        let mut open = match interrupts::load(&dir) {
            Ok(Some(open)) => open,
            Ok(None) => {
                return Err(refuse(
                    ErrorCode::InterruptNotOpen,
                    format!("No question was asked in session {shown}: input.resume has nothing to answer."),
                ))
            }
            Err(e) => {
                return Err(refuse(
                    ErrorCode::SessionUnavailable,
                    format!("The open questions of session {shown} cannot be read: {e}. Start a new run without input.resume."),
                ))
            }
        };
        if let Some(by) = &open.given_up_by {
            return Err(refuse(
                ErrorCode::InterruptNotOpen,
                format!(
                    "The questions of task {} were given up: task {by} began a new turn in session {shown} instead of answering them. Start a new run without input.resume.",
                    open.task_id
                ),
            ));
        }
        if let Some(by) = &open.answered_by {
            return Err(refuse(
                ErrorCode::InterruptNotOpen,
                format!(
                    "The questions of task {} were answered already, by task {by}: none is open in session {shown}.",
                    open.task_id
                ),
            ));
        }
        if let Some(fw) = open.framework.as_deref().filter(|fw| *fw != task.label) {
            return Err(refuse(
                ErrorCode::InvalidResume,
                format!("The question of task {} was asked by framework {fw}: answer it with framework {fw}, not {}.", open.task_id, crate::wire::clip(&task.label, 200)),
            ));
        }
        let answers = interrupts::answers(&open, resume).map_err(|r| match r {
            Refusal::NotOpen(m) => refuse(ErrorCode::InterruptNotOpen, m),
            Refusal::Invalid(m) => refuse(ErrorCode::InvalidResume, m),
        })?;
        // Used before the child starts: a second answer finds it answered, so the run that
        // answers (and its tool call) happens once.
        open.answered_by = Some(task.id.clone());
        if let Err(e) = interrupts::save(&dir, &open) {
            return Err(refuse(
                ErrorCode::SessionUnavailable,
                format!("Cannot mark the questions of session {shown} answered: {e}"),
            ));
        }
        task_log!(info, task, asked = %open.task_id, "resuming the task that asked");
        out.resume = Some(json!({
            "taskId": open.task_id,
            "interrupts": open.interrupts,
            "answers": answers,
        }));
        out.resumes = Some(open.task_id);
    }
    match sessions::prepare(root, session) {
        Ok(dir) => out.dir = Some(dir),
        Err(e) => return Err(refuse(ErrorCode::SessionUnavailable, e)),
    }
    if out.resume.is_none() {
        if let Some(dir) = &out.dir {
            give_up_open_questions(task, dir);
        }
    }
    Ok(out)
}

/// A new turn in a session whose questions wait for an answer: they are given up, before its
/// child starts (the conversation goes on without them, and an answer after this turn would
/// resume a run from before it). Said in the log; a folder that cannot be read or written is
/// left as it is (the turn runs; an answer later finds what the folder says).
fn give_up_open_questions(task: &Task, dir: &std::path::Path) {
    let Ok(Some(mut open)) = interrupts::load(dir) else {
        return;
    };
    if !open.is_open() {
        return;
    }
    open.given_up_by = Some(task.id.clone());
    match interrupts::save(dir, &open) {
        Ok(()) => {
            task_log!(info, task, asked = %open.task_id, "a new turn gives up the questions that waited in this session")
        }
        Err(e) => {
            task_log!(warn, task, asked = %open.task_id, error = %e, "cannot mark the waiting questions given up")
        }
    }
}

/// The ending's questions kept in the session folder (so that they outlive this worker), the
/// session named in the answer; an unused spare session folder removed.
pub(super) fn after(task: &Task, session: Session, ending: &mut Ending) {
    if ending.error_code == Some(ErrorCode::ResumeStateInvalid) {
        if let (Some(dir), Some(asked)) = (&session.dir, &session.resumes) {
            reopen(task, dir, asked, ending);
        }
    }
    ending.asked.resumes = session.resumes;
    if ending.status != TaskStatus::InputRequired {
        if let Some((_, dir)) = session.spare {
            if dir.exists() {
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    task_log!(warn, task, error = %e, "cannot remove the unused session folder of a task that did not ask");
                }
            }
        }
        return;
    }
    let (id, dir) = match (&task.ids.session_id, session.dir, session.spare) {
        (Some(id), Some(dir), _) => (id.clone(), dir),
        (_, _, Some(spare)) => spare,
        _ => return,
    };
    let open = Open {
        task_id: task.id.clone(),
        interrupts: ending.asked.interrupts.clone().unwrap_or_default(),
        asked_at: crate::events::now_ts(),
        framework: Some(task.label.clone()),
        answered_by: None,
        given_up_by: None,
    };
    let kept = std::fs::create_dir_all(&dir).and_then(|()| interrupts::save(&dir, &open));
    if let Err(e) = kept {
        *ending = Ending::failed(
            ErrorCode::SessionUnavailable,
            format!(
                "The task asked, but its questions cannot be kept in {}: {e}",
                dir.join(interrupts::OPEN_FILE).display()
            ),
        );
        return;
    }
    task_log!(info, task, askedIn = %id, questions = open.interrupts.len(), "the task asked; its questions wait for input.resume");
    ending.asked.session_id = Some(id);
}

/// The questions of `asked`, answered by this task, open again: its child said it could not use
/// what `asked` saved (`resume_state_invalid`) before it ran anything, so the answer was not
/// used and may be given again once the cause is mended.
fn reopen(task: &Task, dir: &std::path::Path, asked: &str, ending: &mut Ending) {
    let reopened = match interrupts::load(dir) {
        Ok(Some(mut open))
            if open.task_id == asked && open.answered_by.as_deref() == Some(&task.id) =>
        {
            open.answered_by = None;
            interrupts::save(dir, &open).map_err(|e| e.to_string())
        }
        Ok(_) => Err("the session's questions changed meanwhile".into()),
        Err(e) => Err(e),
    };
    let error = ending.error.get_or_insert_with(String::new);
    match reopened {
        Ok(()) => {
            task_log!(warn, task, asked = %asked, error = %error, "the resumed run could not use the saved state; the question is open again");
            error.push_str(&format!(
                " The question of task {asked} is still open: answer it again once this is mended."
            ));
        }
        Err(e) => {
            task_log!(warn, task, asked = %asked, error = %e, "cannot open the question again");
        }
    }
}

impl Worker {
    /// `task.list` of a session: the questions open there (`{taskId, interrupts, askedAt}`),
    /// read from its folder so that they are listed after a worker restart too; `null` when
    /// none is open, an `{error}` when the folder cannot be read.
    pub async fn open_questions(&self, session: &str) -> Value {
        let dir = self.cfg.session_dir.join(sessions::folder_name(session));
        let read = self
            .off_thread(session, move || interrupts::load(&dir))
            .await
            .and_then(|r| r);
        match read {
            Ok(Some(open)) if open.is_open() => json!({
                "taskId": open.task_id,
                "interrupts": open.interrupts,
                "askedAt": open.asked_at,
                "framework": open.framework,
            }),
            Ok(_) => Value::Null,
            Err(e) => json!({ "error": e }),
        }
    }
}

impl Worker {
    /// The task that answered `asked`'s questions in `session`, when the session folder says so
    /// (a door shows that run under the asking task's id).
    pub async fn answered_by(&self, session: &str, asked: &str) -> Option<String> {
        let dir = self.cfg.session_dir.join(sessions::folder_name(session));
        let open = self
            .off_thread(session, move || interrupts::load(&dir))
            .await
            .ok()?
            .ok()??;
        (open.task_id == asked)
            .then_some(open.answered_by)
            .flatten()
    }
}
