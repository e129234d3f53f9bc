//! Task ids and A2A requests from callers (issue "hostile children and callers" #3).
//!
//! Input: arbitrary bytes, used twice. As a string, through `wire::valid_task_id`, the one gate
//! every path built from a task id goes through (`/tasks/{id}`, control types, A2A
//! get/cancel/subscribe): an accepted id is one plain path component under the artifact
//! directory — never empty, `.`, `..`, absolute, with a `/` or a NUL — and at most 128 bytes.
//! As an A2A JSON-RPC body, through the pure parsing of both versions' params
//! (`http::fuzz_a2a_request`): no panic; a task id a message passes on is valid; a context id
//! is at most 1 KiB.
#![no_main]

use std::path::{Component, Path};

use agentdispatch_worker::http::fuzz_a2a_request;
use agentdispatch_worker::wire::valid_task_id;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(id) = std::str::from_utf8(data) {
        if valid_task_id(id) {
            assert!(id.len() <= 128, "{} bytes", id.len());
            let path = Path::new("/artifacts").join(id);
            let parts: Vec<Component> = path.components().collect();
            assert_eq!(parts.len(), 3, "{id:?} is not one component: {path:?}");
            assert!(matches!(parts[2], Component::Normal(p) if p == id), "{id:?}");
            assert!(!id.contains('\0'));
        }
    }
    fuzz_a2a_request(data);
});
