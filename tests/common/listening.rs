//! The worker's `listening` log line, which names the port it bound (it is started on
//! `PORT=0`); shared by the tests (via `common`) and the benches (via `#[path]`).
#![allow(dead_code)]

/// The port of a `listening` log line (`"address":"0.0.0.0:PORT"`); `None` for other lines.
pub fn listening_port(line: &str) -> Option<u16> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    if v["message"] != "listening" {
        return None;
    }
    v["address"].as_str()?.rsplit(':').next()?.parse().ok()
}
