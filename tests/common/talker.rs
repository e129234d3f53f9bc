//! The scripted model of the live-text tests: a child that writes its next piece only once the
//! test has seen the previous one arrive (a signal file per piece), so a worker that held
//! pieces back could not pass.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use super::{script, Worker, WorkerBuilder};

/// A child writing `pieces` of message `m-1` as deltas, each after the test created the signal
/// file for the one before, then the `model_turn` step that closes the message, and the result.
pub fn talker(dir: &Path, pieces: &[&str]) -> PathBuf {
    let body = format!(
        r#"#!/usr/bin/env python3
import json, os, sys, time
D = {dir:?}
PIECES = {pieces}
def out(o):
    sys.stdout.write(json.dumps(o) + "\n")
    sys.stdout.flush()
out({{"type": "task.progress", "message": "model_turn started"}})
for i, p in enumerate(PIECES):
    out({{"type": "task.delta", "payload": {{"messageId": "m-1", "text": p}}}})
    while not os.path.exists(os.path.join(D, "go%d" % i)):
        time.sleep(0.01)
text = "".join(PIECES)
out({{"type": "task.progress", "message": "model_turn",
      "payload": {{"step": "model_turn", "messageId": "m-1", "text": text}}}})
out({{"type": "task.result", "output": text}})
"#,
        dir = dir.to_str().unwrap(),
        pieces = serde_json::to_string(pieces).unwrap(),
    );
    script(dir, "talker.py", &body)
}

/// Lets the talker write its piece after piece `i`.
pub fn go(dir: &Path, i: usize) {
    std::fs::write(dir.join(format!("go{i}")), b"").unwrap();
}

/// A worker with the framework `talker` ([`talker`]) and `extra` ones.
pub async fn worker(dir: &Path, pieces: &[&str], extra: &[(&str, &Path)]) -> Worker {
    let talker = talker(dir, pieces);
    let mut b = WorkerBuilder::new().env(
        "AGENTDISPATCH_FRAMEWORK_COMMAND_TALKER",
        talker.to_str().unwrap(),
    );
    for (name, path) in extra {
        b = b.env(
            &format!("AGENTDISPATCH_FRAMEWORK_COMMAND_{}", name.to_uppercase()),
            path.to_str().unwrap(),
        );
    }
    b.start().await
}
