//! What a task and a caller cannot reach (issue 21, findings 6-9), through the real binary:
//! the worker's environment and inherited descriptors, a warm task's memory holder, another
//! session's tasks, and the artifact directory over time.

mod common;

#[path = "boundaries/disk.rs"]
mod disk;
#[path = "boundaries/processes.rs"]
mod processes;
#[path = "boundaries/sessions.rs"]
mod sessions;
