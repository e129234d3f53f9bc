//! An agent task's entrypoint and its loading: whether the payload may choose the entrypoint,
//! and what a task's ending says of whether the framework's agent loads (kept for `/ping`).

use super::finish::Ending;
use super::{Task, Worker};
use crate::task_log;
use crate::wire::{ErrorCode, Payload};

/// What a task of the deployment's own entrypoint tells of its agent: one that cannot be
/// imported or is not an agent fails every such task, so it is kept for `/ping` (and logged at
/// ERROR for the default framework, the first time); one that ran clears it.
pub(super) fn note_agent_loading(worker: &Worker, task: &Task, framework: &str, ending: &Ending) {
    let agents = &worker.warm.agents;
    match ending.error_code {
        Some(ErrorCode::AgentImportFailed | ErrorCode::InvalidEntrypoint) => {
            let why = ending
                .error
                .as_deref()
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or("");
            if agents.problem(framework).is_none() && framework == worker.cfg.default_framework {
                task_log!(
                    error,
                    task,
                    framework,
                    error = why,
                    "the default framework's agent cannot load: its tasks fail until it is fixed"
                );
            }
            agents.failed(framework, why);
        }
        _ if ending.ok => agents.loaded(framework),
        _ => {}
    }
}

/// The payload's `input.entrypoint`, when the deployment allows `framework` to run it;
/// otherwise the refusal's message, logged (the caller answers `entrypoint_not_allowed`).
pub(super) fn entrypoint_allowed<'p>(
    worker: &Worker,
    task: &Task,
    framework: &str,
    payload: &'p Payload,
) -> Result<Option<&'p str>, String> {
    use crate::entrypoints;
    let refuse = |message: String, shown: &str| {
        task_log!(warn, task, framework, entrypoint = %crate::wire::clip(shown, 200), "entrypoint refused");
        message
    };
    match entrypoints::chosen(&payload.input) {
        Err(message) => Err(refuse(message, "")),
        Ok(None) => Ok(None),
        Ok(Some(spec))
            if entrypoints::allowed(&worker.cfg.entrypoint_allowlist, framework, spec) =>
        {
            Ok(Some(spec))
        }
        Ok(Some(spec)) => Err(refuse(entrypoints::refusal(framework, spec), spec)),
    }
}
