//! Callers and children that try to reach past the worker (the hardening issue), through the
//! real binary: task ids that are paths, floods that must not starve heartbeats, output that
//! must not be lost when a task ends.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

// The two sides, one file each under tests/hostile/, task folders read back, and headers.
#[path = "hostile/callers.rs"]
mod callers;
#[path = "hostile/children.rs"]
mod children;
#[path = "hostile/folders.rs"]
mod folders;
#[path = "hostile/headers.rs"]
mod headers;

/// A raw request line, as a hostile client sends it (no client-side path normalisation).
pub(crate) fn raw_get(w: &Worker, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", w.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}
