//! Splitting a server-sent event stream into messages; shared by the tests and the benches
//! (`#[path = "../tests/common/sse.rs"]`).
#![allow(dead_code)]

/// Takes the next complete message that carries data out of `buf`: its `id:` and its `data:`
/// text. `None` when `buf` holds no complete message yet (more bytes are needed).
pub fn next_message(buf: &mut String) -> Option<(Option<u64>, String)> {
    while let Some(end) = buf.find("\n\n") {
        let block: String = buf.drain(..end + 2).collect();
        let mut id = None;
        let mut data = String::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("id: ") {
                id = v.trim().parse().ok();
            } else if let Some(v) = line.strip_prefix("data: ") {
                data.push_str(v);
            }
        }
        if !data.is_empty() {
            return Some((id, data));
        }
    }
    None
}
