//! Checks of answers, streams and task folders.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common::ensure;
use crate::load::{post, Expect, Shared};
use crate::RETENTION_SECONDS;

pub fn short(v: &Value) -> String {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        if let Some(n) = o.get("events").and_then(Value::as_array).map(Vec::len) {
            o.insert("events".into(), json!(format!("[{n} events]")));
        }
    }
    let s = v.to_string();
    if s.len() > 600 {
        format!("{}…", &s[..s.floor_char_boundary(600)])
    } else {
        s
    }
}

/// Checks events in order: seq 1, 2, … with `accepted` first and `task.result` (the status
/// as its message, the result value as its payload) last.
pub fn check_events(events: &[Value], exp: &Expect, whence: &str) -> Result<(), String> {
    ensure(events.len() >= 2, || {
        format!("{whence}: {} events", events.len())
    })?;
    for (n, e) in events.iter().enumerate() {
        ensure(e["seq"] == n as u64 + 1, || {
            format!("{whence}: event {n} has seq {} (want {})", e["seq"], n + 1)
        })?;
        ensure(e["taskId"] == exp.id.as_str(), || {
            format!("{whence}: event {n} of another task: {e}")
        })?;
    }
    ensure(
        events[0]["type"] == "task.progress" && events[0]["message"] == "accepted",
        || format!("{whence}: first event is not accepted: {}", events[0]),
    )?;
    let last = &events[events.len() - 1];
    ensure(
        last["type"] == "task.result" && last["message"] == exp.status,
        || {
            format!(
                "{whence}: last event is not task.result {}: {last}",
                exp.status
            )
        },
    )?;
    ensure(
        events[..events.len() - 1]
            .iter()
            .all(|e| e["type"] != "task.result"),
        || format!("{whence}: task.result before the last event"),
    )
}

/// Checks a result object (a JSON answer, the end of a stream, or `task.status`).
pub fn check_result(v: &Value, exp: &Expect) -> Result<(), String> {
    let fields_ok = v["taskId"] == exp.id.as_str()
        && v["ok"] == exp.ok
        && v["status"] == exp.status
        && exp
            .output
            .as_ref()
            .is_none_or(|o| v["output"] == o.as_str())
        && exp.error_code.is_none_or(|c| v["errorCode"] == c)
        && (exp.ok || v["error"].as_str().is_some_and(|e| !e.is_empty()))
        && exp.exit_code.is_none_or(|c| v["exitCode"] == c)
        && v.get("eventsTruncated").is_none();
    ensure(fields_ok, || format!("wanted {exp:?}, got {}", short(v)))?;
    let events = v["events"].as_array().cloned().unwrap_or_default();
    check_events(&events, exp, "answer")?;
    let first = &v["artifacts"][0]["uri"];
    ensure(
        first
            .as_str()
            .is_some_and(|u| u.ends_with(&format!("{}/result.json", exp.id))),
        || format!("first artifact is not result.json: {}", short(v)),
    )
}

/// Checks the task folder: `result.json`, `manifest.json` (its digest of `result.json`) and
/// `events.ndjson` ending with `task.result`. Returns the number of events on disk.
pub fn check_folder(artifacts: &Path, exp: &Expect) -> Result<usize, String> {
    let dir = artifacts.join(&exp.id);
    let read =
        |name: &str| std::fs::read(dir.join(name)).map_err(|e| format!("{}/{name}: {e}", exp.id));
    let result_bytes = read("result.json")?;
    let result: Value = serde_json::from_slice(&result_bytes)
        .map_err(|e| format!("{}/result.json is not JSON: {e}", exp.id))?;
    ensure(
        result["taskId"] == exp.id.as_str()
            && result["status"] == exp.status
            && result["ok"] == exp.ok
            && exp
                .output
                .as_ref()
                .is_none_or(|o| result["output"] == o.as_str()),
        || format!("{}/result.json: {}", exp.id, short(&result)),
    )?;
    let manifest: Value = serde_json::from_slice(&read("manifest.json")?)
        .map_err(|e| format!("{}/manifest.json is not JSON: {e}", exp.id))?;
    let first = &manifest["artifacts"][0];
    let digest = format!("{:x}", Sha256::digest(&result_bytes));
    ensure(
        first["uri"]
            .as_str()
            .is_some_and(|u| u.ends_with("/result.json"))
            && first["sha256"] == digest.as_str()
            && first["sizeBytes"] == result_bytes.len() as u64,
        || {
            format!(
                "{}/manifest.json does not describe result.json: {manifest}",
                exp.id
            )
        },
    )?;
    if let Some((name, content)) = &exp.file {
        let listed = manifest["artifacts"].as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x["uri"].as_str().is_some_and(|u| u.ends_with(name)))
        });
        ensure(listed, || {
            format!("{}/manifest.json does not list {name}: {manifest}", exp.id)
        })?;
        let got = String::from_utf8_lossy(&read(name)?).into_owned();
        ensure(got == *content, || {
            format!("{}/{name} holds {got:?}, want {content:?}", exp.id)
        })?;
    }
    let text = String::from_utf8(read("events.ndjson")?)
        .map_err(|_| format!("{}/events.ndjson is not UTF-8", exp.id))?;
    ensure(text.ends_with('\n'), || {
        format!("{}/events.ndjson does not end with a newline", exp.id)
    })?;
    let events: Vec<Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}/events.ndjson has a bad line: {e}", exp.id))?;
    check_events(&events, exp, "events.ndjson")?;
    Ok(events.len())
}

/// Checks an answer and the folder, and that the answer held every event on disk.
pub fn check_all(v: &Value, exp: &Expect, artifacts: &Path) -> Result<(), String> {
    check_result(v, exp)?;
    let on_disk = check_folder(artifacts, exp)?;
    let answered = v["events"].as_array().map_or(0, Vec::len);
    ensure(answered == on_disk, || {
        format!("answer holds {answered} events, events.ndjson {on_disk}")
    })
}

/// Checks a stream: each event under its seq, then the whole result under the `task.result`
/// event's seq, and nothing after it.
pub fn check_stream(msgs: &[(Option<u64>, Value)], exp: &Expect) -> Result<Value, String> {
    ensure(msgs.len() >= 2, || format!("{} SSE messages", msgs.len()))?;
    let (last_id, result) = &msgs[msgs.len() - 1];
    for (n, (id, e)) in msgs[..msgs.len() - 1].iter().enumerate() {
        ensure(
            *id == Some(n as u64 + 1)
                && e["seq"] == n as u64 + 1
                && e["taskId"] == exp.id.as_str()
                && e["type"] != "task.result",
            || format!("SSE message {n}: id {id:?}, data {e}"),
        )?;
    }
    ensure(*last_id == Some(msgs.len() as u64), || {
        format!(
            "the result came under id {last_id:?}, want {} (the task.result seq)",
            msgs.len()
        )
    })?;
    Ok(result.clone())
}

/// `task.status` of the most recent task that has left memory (not in `task.list`) must answer
/// from its folder as the task did.
pub async fn disk_check(http: &reqwest::Client, sh: &Shared) -> Result<bool, String> {
    let old = Duration::from_secs(RETENTION_SECONDS + 3);
    let pick = {
        let mut records = sh.records.lock().unwrap();
        let mut pick = None;
        while records.front().is_some_and(|r| r.at.elapsed() > old) {
            pick = records.pop_front();
        }
        pick
    };
    let Some(rec) = pick else {
        return Ok(false);
    };
    let id = rec.expect.id.as_str();
    let list = post(http, &sh.url, &json!({"taskType": "task.list"})).await?;
    let tasks = list["tasks"].as_array().cloned().unwrap_or_default();
    ensure(list["ok"] == true, || {
        format!("task.list: {}", short(&list))
    })?;
    ensure(!tasks.iter().any(|t| t["taskId"] == id), || {
        format!(
            "{id} is still in memory {:?} after it finished (retention {RETENTION_SECONDS} s)",
            rec.at.elapsed()
        )
    })?;
    let v = post(
        http,
        &sh.url,
        &json!({"taskType": "task.status", "taskId": id}),
    )
    .await?;
    check_result(&v, &rec.expect).map_err(|e| format!("task.status of {id} from disk: {e}"))?;
    Ok(true)
}

/// Every task folder, complete: the three files, the last event a `task.result`.
pub fn scan_folders(artifacts: &Path, tasks: usize) -> Result<usize, String> {
    let mut complete = 0;
    let mut bad = Vec::new();
    for i in 0..tasks {
        let dir = artifacts.join(format!("soak-{i:05}"));
        let last_ok = std::fs::read_to_string(dir.join("events.ndjson"))
            .ok()
            .and_then(|t| t.lines().last().map(str::to_string))
            .and_then(|l| serde_json::from_str::<Value>(&l).ok())
            .is_some_and(|e| e["type"] == "task.result");
        if last_ok && dir.join("result.json").is_file() && dir.join("manifest.json").is_file() {
            complete += 1;
        } else if bad.len() < 10 {
            bad.push(
                dir.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    let folders = std::fs::read_dir(artifacts).map_or(0, |d| d.count());
    if complete == tasks && folders == tasks {
        Ok(complete)
    } else {
        Err(format!(
            "{complete} complete task folders of {tasks} ({folders} folders); incomplete: {bad:?}"
        ))
    }
}
