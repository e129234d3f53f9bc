//! Warm starts (SPEC §6.3) through the real binary, on the `pyfixture` framework: a warm task is
//! a fresh process each time, cancel and deadline leave nothing, a warm parent killed from
//! outside is restarted, a parent that is not fork-safe falls back to cold with the reason, the
//! `AGENTDISPATCH_WARM` policies, nothing is left after SIGTERM or SIGKILL of the worker, the
//! memory tricks seen from outside, and a plain-fork parent (`AGENTDISPATCH_WARM_TUNING=plain`).
//! One test binary; its tests are in `tests/warm/`, by what they test.

mod common;

#[path = "warm/memory.rs"]
mod memory;
#[path = "warm/parents.rs"]
mod parents;
#[path = "warm/tasks.rs"]
mod tasks;
#[path = "warm/teardown.rs"]
mod teardown;
#[path = "warm/tuning.rs"]
mod tuning;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

fn output_json(r: &Value) -> Value {
    serde_json::from_str(r["output"].as_str().unwrap_or("")).unwrap_or_else(|_| panic!("{r:#}"))
}

fn alive(pid: i32) -> bool {
    state(pid).is_some_and(|s| s != 'Z')
}

/// The field `key` of the `warm parent ready` line of `framework`.
fn ready_field(w: &Worker, framework: &str, key: &str) -> Option<String> {
    w.log_lines()
        .into_iter()
        .find(|l| l["message"] == "warm parent ready" && l["framework"] == framework)
        .and_then(|l| l[key].as_str().map(str::to_string))
}

/// The fork mode the warm parent of `framework` reported ready with.
fn fork_mode(w: &Worker, framework: &str) -> String {
    ready_field(w, framework, "fork").unwrap_or_default()
}

/// Why the warm parent of `framework` makes spares with two forks, if it said.
fn fork_why(w: &Worker, framework: &str) -> Option<String> {
    ready_field(w, framework, "forkWhy")
}

/// The fork event's payload of the warm task `id`, from its task folder.
fn fork_event(w: &Worker, id: &str) -> Value {
    w.folder_events(id)
        .into_iter()
        .find(|e| e["type"] == "task.log" && e["payload"]["warm"] == true)
        .map(|e| e["payload"].clone())
        .unwrap_or_else(|| panic!("{id}: no fork event"))
}
