//! The HTTP contract through the real binary: /ping, payload validation, status codes, echo,
//! idempotent task ids, request ids, configuration errors.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn ping_is_healthy_when_idle_and_busy_while_a_task_runs_and_stamps_only_changes() {
    let w = WorkerBuilder::new().start().await;
    let idle = w.ping().await;
    assert_eq!(idle["status"], "Healthy");
    let t0 = idle["time_of_last_update"]
        .as_u64()
        .expect("integer timestamp");
    let health: Value = w.get("/health").await.1;
    assert_eq!(health, idle);
    // Time has to pass (the stamp is in seconds) for a re-stamp to show: a wait, not a sync.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        w.ping().await["time_of_last_update"].as_u64(),
        Some(t0),
        "re-stamped while idle"
    );

    let started = w
        .run(json!({"taskType":"command.run","async":true,"input":{"command":"sleep 2.5"}}))
        .await;
    assert_eq!(started["status"], "running");
    let busy = w.ping().await;
    assert_eq!(busy["status"], "HealthyBusy");
    let t1 = busy["time_of_last_update"].as_u64().unwrap();
    assert!(t1 > t0, "stamp must move when status changes");
    // As above: a second has to pass for a re-stamp to show.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        w.ping().await["time_of_last_update"].as_u64(),
        Some(t1),
        "re-stamped while busy"
    );
    w.wait_done(started["taskId"].as_str().unwrap()).await;
    let after = w.ping().await;
    assert_eq!(after["status"], "Healthy");
    assert!(after["time_of_last_update"].as_u64().unwrap() >= t1 + 2);
}

#[tokio::test]
async fn echo_answers_in_the_reference_shape_with_aliases() {
    let w = WorkerBuilder::new().start().await;
    let r = w
        .run(json!({"prompt":"hello","input":{"context":{"k":1}}}))
        .await;
    assert_eq!(r["ok"], true);
    assert_eq!(r["status"], "succeeded");
    assert_eq!(r["output"], "Accepted instruction: hello");
    assert_eq!(r["result"]["framework"], "echo");
    assert_eq!(r["result"]["instruction"], "hello");
    assert_eq!(r["result"]["context"]["k"], 1);
    assert!(r["result"]["completedAt"].as_str().unwrap().ends_with('Z'));
    let events = r["events"].as_array().unwrap();
    assert_eq!(events[0]["type"], "task.progress");
    assert_eq!(events[0]["message"], "accepted");
    assert_eq!(events[0]["payload"]["framework"], "echo");
    assert_eq!(events.last().unwrap()["type"], "task.result");
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["seq"], i as u64 + 1);
        assert_eq!(e["taskId"], r["taskId"]);
        let ts = e["ts"].as_str().unwrap();
        assert_eq!(ts.len(), 24, "RFC 3339 with milliseconds: {ts}");
    }
    let art = &r["artifacts"][0];
    assert!(art["uri"].as_str().unwrap().ends_with("/result.json"));
    assert_eq!(art["kind"], "json");
    assert_eq!(art["contentType"], "application/json");
    assert_eq!(art["sha256"].as_str().unwrap().len(), 64);
    // input.instruction wins over prompt; taskType given explicitly.
    let r = w
        .run(json!({"taskType":"agent.run","prompt":"no","input":{"instruction":"yes"}}))
        .await;
    assert_eq!(r["output"], "Accepted instruction: yes");
}

#[tokio::test]
async fn bad_bodies_are_400_naming_the_field_and_the_worker_keeps_serving() {
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_MAX_PAYLOAD_BYTES", "1000")
        .start()
        .await;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"not json".to_vec(), "not valid JSON"),
        (b"".to_vec(), "empty"),
        (b"[1,2]".to_vec(), "JSON object"),
        (
            br#"{"input":"text"}"#.to_vec(),
            "input must be a JSON object",
        ),
        (br#"{"taskId":"../etc"}"#.to_vec(), "taskId"),
        (
            br#"{"input":{"timeoutSeconds":-5}}"#.to_vec(),
            "input.timeoutSeconds",
        ),
        (br#"{"taskType":"task.status"}"#.to_vec(), "taskId"),
    ];
    for (body, needle) in cases {
        let (status, v) = w.invoke_raw(body.clone(), &[]).await;
        assert_eq!(status, 400, "{}: {v}", String::from_utf8_lossy(&body));
        assert_eq!(v["ok"], false);
        assert_eq!(v["errorCode"], "invalid_payload");
        assert!(
            v["error"].as_str().unwrap().contains(needle),
            "{v} lacks {needle}"
        );
    }
    let big = format!(r#"{{"prompt":"{}"}}"#, "x".repeat(2000));
    let (status, v) = w.invoke_raw(big.into_bytes(), &[]).await;
    assert_eq!(status, 413);
    assert_eq!(v["errorCode"], "invalid_payload");
    assert!(v["error"]
        .as_str()
        .unwrap()
        .contains("AGENTDISPATCH_MAX_PAYLOAD_BYTES"));
    // A chunked body with no length is limited the same way (not refused with 411).
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(vec![b' '; 600]), Ok(vec![b' '; 600])];
    let resp = w
        .client()
        .post(format!("{}/invocations", w.url))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    // A body of exactly the limit is read.
    let exact = format!(r#"{{"prompt":"{}"}}"#, "y".repeat(1000 - 13));
    assert_eq!(exact.len(), 1000);
    let (status, v) = w.invoke_raw(exact.into_bytes(), &[]).await;
    assert_eq!((status, v["ok"].clone()), (200, json!(true)));

    let r = w.run(json!({"taskType":"dance"})).await;
    assert_eq!(r["ok"], false);
    assert_eq!(r["error"], "Unsupported taskType: dance");
    let r = w.run(json!({"framework":"nope"})).await;
    assert_eq!(r["ok"], false);
    assert_eq!(r["error"], "Unsupported agent framework: nope");
    assert_eq!(r["errorCode"], "unknown_framework");
    // The names it could have used are in a log event beside the reference worker's words.
    let known = r["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "task.log" && e["payload"]["known"].is_array())
        .expect("a task.log naming the known frameworks");
    assert_eq!(known["payload"]["known"], json!(["echo"]));
    assert_eq!(known["message"], "known frameworks: echo");
    assert_eq!(w.ping().await["status"], "Healthy");
}

#[tokio::test]
async fn other_routes_are_404_and_other_methods_405() {
    let w = WorkerBuilder::new().start().await;
    let r = w
        .client()
        .post(format!("{}/nowhere", w.url))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["error"],
        "Not found. Use POST /invocations for HTTP or POST / for A2A."
    );
    let r = w
        .client()
        .get(format!("{}/invocations", w.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let r = w
        .client()
        .delete(format!("{}/ping", w.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn a_repeated_task_id_is_answered_without_a_second_run() {
    let w = WorkerBuilder::new().start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("runs");
    let cmd = format!("sh -c 'echo run >> {}'", file.display());
    let body = json!({"taskType":"command.run","taskId":"same-1","input":{"command":cmd}});
    let a = w.run(body.clone()).await;
    let b = w.run(body).await;
    assert_eq!(a["ok"], true);
    assert!(a.get("repeated").is_none(), "a first run: {a}");
    assert_eq!(b["taskId"], "same-1");
    assert_eq!(b["status"], "succeeded");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "run\n");
    // Said plainly: the answer, a header and the log name it the earlier task's answer.
    assert_eq!(b["repeated"], true, "{b}");
    // The log is read from the worker's stdout by a thread of the test: it may come just after
    // the answer (`Worker::logged` waits for it).
    let said = |id: &'static str, from: &'static str| {
        move |l: &Value| {
            l["taskId"] == id
                && l["from"] == from
                && l["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("not a new run"))
        }
    };
    assert!(
        w.logged(said("same-1", "memory")).await,
        "{:?}",
        w.log_lines()
    );
    // Another prompt under the same id, streamed: the earlier answer, marked by the header.
    let again = json!({"taskType":"command.run","taskId":"same-1","stream":true,"input":{"command":"echo other"}});
    let resp = w
        .client()
        .post(format!("{}/invocations", w.url))
        .json(&again)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-agentdispatch-repeated-task"], "same-1");
    // After a restart, from the task folder on disk.
    let artifacts = tempfile::tempdir().unwrap();
    let at = artifacts.path().to_str().unwrap();
    let body = json!({"taskType":"command.run","taskId":"same-2","input":{"command":"echo first"}});
    let first = WorkerBuilder::new()
        .env("AGENTDISPATCH_ARTIFACT_DIR", at)
        .start()
        .await;
    assert!(first.run(body).await.get("repeated").is_none());
    drop(first);
    let second = WorkerBuilder::new()
        .env("AGENTDISPATCH_ARTIFACT_DIR", at)
        .start()
        .await;
    let other =
        json!({"taskType":"command.run","taskId":"same-2","input":{"command":"echo second"}});
    let c = second.run(other).await;
    assert_eq!(
        (c["repeated"].clone(), c["output"].as_str()),
        (json!(true), Some("first\n")),
        "{c}"
    );
    assert!(
        second.logged(said("same-2", "disk")).await,
        "{:?}",
        second.log_lines()
    );
}

#[tokio::test]
async fn session_and_request_ids_reach_logs_events_and_the_child() {
    let w = WorkerBuilder::new().start().await;
    let body =
        serde_json::to_vec(&json!({"taskType":"command.run","input":{"command":"env"}})).unwrap();
    let (_, r) = w
        .invoke_raw(
            body,
            &[
                ("X-Amzn-Bedrock-AgentCore-Runtime-Session-Id", "sess-42"),
                ("X-Amzn-Bedrock-AgentCore-Runtime-Request-Id", "req-7"),
            ],
        )
        .await;
    let out = r["output"].as_str().unwrap();
    assert!(out.contains("AGENTDISPATCH_SESSION_ID=sess-42"), "{out}");
    assert!(out.contains("AGENTDISPATCH_REQUEST_ID=req-7"));
    assert!(out.contains(&format!(
        "AGENTDISPATCH_TASK_ID={}",
        r["taskId"].as_str().unwrap()
    )));
    assert!(out.contains("AGENTDISPATCH_TASK_DIR="));
    assert_eq!(r["events"][0]["payload"]["sessionId"], "sess-42");
    let task_id = r["taskId"].as_str().unwrap().to_string();
    // Logged before the answer, but read from the worker's stdout by another thread of this test:
    // it may land just after the answer does.
    let finished = |l: &Value| l["message"] == "task finished" && l["taskId"] == task_id.as_str();
    assert!(
        eventually(Duration::from_secs(5), || w
            .log_lines()
            .iter()
            .any(finished))
        .await,
        "task end logged"
    );
    let logs = w.log_lines();
    let end = logs.iter().find(|l| finished(l)).unwrap();
    assert_eq!(end["sessionId"], "sess-42");
    assert_eq!(end["requestId"], "req-7");
    for key in ["timestamp", "level", "target"] {
        assert!(end.get(key).is_some(), "{key} missing in {end}");
    }
    // A task that succeeded logs no error field at all (not "error":"").
    assert_eq!(end["status"], "succeeded");
    assert!(end.get("error").is_none(), "{end}");
    // The start-up line lists the frameworks as one comma-separated value.
    let ready = logs
        .iter()
        .find(|l| l["message"] == "worker ready")
        .expect("worker ready logged");
    assert_eq!(ready["frameworks"], "echo", "{ready}");
    // No session header: not an error, and a request id is generated.
    let r = w.run(json!({"prompt":"x"})).await;
    assert_eq!(r["ok"], true);
    assert!(
        r["events"][0]["payload"]["requestId"]
            .as_str()
            .unwrap()
            .len()
            >= 32
    );
}

#[test]
fn an_invalid_variable_stops_start_up_with_one_line_naming_it() {
    for (var, val) in [
        ("PORT", "eighty"),
        ("AGENTDISPATCH_MAX_CONCURRENT_TASKS", "-3"),
        ("AGENTDISPATCH_FRAMEWORK_COMMANDS", "{broken"),
        ("AGENTDISPATCH_WORKER_PROTOCOL", "smtp"),
    ] {
        let out = worker_command().env(var, val).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(var), "{err}");
    }
}
