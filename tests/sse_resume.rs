//! `GET /tasks/{id}/events` resumed with `Last-Event-ID` by a real SSE client library
//! (`reqwest-eventsource`: EventSource semantics, it reconnects after an error or a clean close
//! and sends the last id it saw), through the real binary: mid-task after a cut connection, at
//! the last id, past it, from memory and from the task folder (after eviction and after a
//! worker restart). SPEC §4: a finished task ends the stream at once, with the same last
//! message from memory and from the folder.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use reqwest_eventsource::retry::Constant;
use reqwest_eventsource::{Event, EventSource};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bound on one resumed read: a stream that does not end fails here instead of hanging the
/// suite (a liveness bound, not a speed check).
const HANG: Duration = Duration::from_secs(60);

/// The messages of one connection: `(id, data)`.
type Conn = Vec<(u64, Value)>;

/// An EventSource on `url`, retrying every 50 ms, with an initial `Last-Event-ID` if given
/// (sent on every request: the library adds its own last id after it on a reconnect, and the
/// worker reads the first, so reconnects are checked with the same id or none).
fn event_source(url: &str, last_event_id: Option<&str>) -> EventSource {
    let mut req = reqwest::Client::new().get(url);
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    let mut es = EventSource::new(req).expect("a GET can be cloned");
    es.set_retry_policy(Box::new(Constant::new(Duration::from_millis(50), None)));
    es
}

/// Reads until `ends` connections have ended (an error or a clean close, after which the
/// library reconnects by itself with the last id). `on_open(n)` runs when connection `n`
/// (from 1) opens.
async fn read_connections(
    mut es: EventSource,
    ends: usize,
    mut on_open: impl FnMut(usize),
) -> Vec<Conn> {
    let read = async {
        let mut conns: Vec<Conn> = Vec::new();
        let mut ended = 0;
        while let Some(item) = es.next().await {
            match item {
                Ok(Event::Open) => {
                    conns.push(Vec::new());
                    on_open(conns.len());
                }
                Ok(Event::Message(m)) => {
                    let id = m.id.parse().unwrap_or_else(|_| panic!("id {:?}", m.id));
                    let data = serde_json::from_str(&m.data).unwrap();
                    conns
                        .last_mut()
                        .expect("a message after Open")
                        .push((id, data));
                }
                Err(
                    reqwest_eventsource::Error::StreamEnded
                    | reqwest_eventsource::Error::Transport(_),
                ) => {
                    ended += 1;
                    if ended == ends {
                        break;
                    }
                }
                Err(e) => panic!("EventSource error: {e}"),
            }
        }
        es.close();
        conns
    };
    tokio::time::timeout(HANG, read)
        .await
        .expect("the stream did not end")
}

fn ids(conn: &Conn) -> Vec<u64> {
    conn.iter().map(|(id, _)| *id).collect()
}

/// The last message of a task's stream: the whole result with every event, under the id of
/// the `task.result` event.
#[track_caller]
fn assert_final(msg: &(u64, Value), status: &str) {
    let (id, data) = msg;
    assert_eq!(data["status"], status, "{data:#}");
    let events = data["events"].as_array().unwrap();
    assert_eq!(events.len() as u64, *id, "every event, 1..=id: {data:#}");
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["seq"], i as u64 + 1);
    }
}

/// A TCP proxy to `upstream` that cuts its first connection once `cut_after` SSE messages
/// went through (at a read boundary), and records every `Last-Event-ID` the client sends.
struct CutProxy {
    url: String,
    last_event_ids: Arc<Mutex<Vec<String>>>,
}

async fn cut_proxy(upstream: u16, cut_after: usize) -> CutProxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let last_event_ids = Arc::new(Mutex::new(Vec::new()));
    let seen = last_event_ids.clone();
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((client, _)) = listener.accept().await {
            let cut = std::mem::take(&mut first).then_some(cut_after);
            tokio::spawn(relay(client, upstream, cut, seen.clone()));
        }
    });
    CutProxy {
        url: format!("http://127.0.0.1:{port}"),
        last_event_ids,
    }
}

async fn relay(
    client: TcpStream,
    upstream: u16,
    cut: Option<usize>,
    last_event_ids: Arc<Mutex<Vec<String>>>,
) {
    let server = TcpStream::connect(("127.0.0.1", upstream)).await.unwrap();
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n @ 1..) = cr.read(&mut buf).await {
            for line in String::from_utf8_lossy(&buf[..n]).lines() {
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("last-event-id") {
                        last_event_ids
                            .lock()
                            .unwrap()
                            .push(value.trim().to_string());
                    }
                }
            }
            if sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    };
    let down = async {
        let mut buf = vec![0u8; 16 * 1024];
        let (mut messages, mut newline) = (0, false);
        while let Ok(n @ 1..) = sr.read(&mut buf).await {
            if cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
            for &b in &buf[..n] {
                messages += usize::from(newline && b == b'\n');
                newline = b == b'\n';
            }
            if cut.is_some_and(|k| messages >= k) {
                break; // both halves are dropped: the connection is cut
            }
        }
    };
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

#[tokio::test]
async fn a_cut_stream_resumes_mid_task_and_a_finished_one_ends_at_its_last_id_from_memory() {
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_HEARTBEAT_SECONDS", "60")
        .start()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let gate = dir.path().join("gate");
    let command = format!(
        "sh -c 'echo one; while [ ! -e {} ]; do sleep 0.05; done; echo two; echo three'",
        gate.display()
    );
    let r = w
        .run(json!({"taskType":"command.run","taskId":"mid-1","async":true,"input":{"command":command}}))
        .await;
    assert_eq!(r["status"], "running");
    // accepted, heartbeat, "one": then the task waits for the gate, and the proxy cuts.
    let proxy = cut_proxy(w.port, 3).await;
    let es = event_source(&format!("{}/tasks/mid-1/events", proxy.url), None);
    // Three ends: the cut, the clean end after the result, the clean end of the reconnect
    // made with the last id. The gate opens once the library has reconnected.
    let conns = read_connections(es, 3, |n| {
        if n == 2 {
            std::fs::write(&gate, "").unwrap();
        }
    })
    .await;
    assert_eq!(conns.len(), 3, "{conns:#?}");
    let (before, after, again) = (&conns[0], &conns[1], &conns[2]);
    assert_eq!(ids(before), [1, 2, 3], "{before:#?}");
    assert_eq!(before[2].1["message"], "one");
    // The reconnect sent Last-Event-ID 3 and got exactly what followed, once.
    let all: Vec<u64> = ids(before).into_iter().chain(ids(after)).collect();
    let n = *all.last().unwrap();
    assert_eq!(all, (1..=n).collect::<Vec<_>>());
    let lines: Vec<&Value> = after
        .iter()
        .filter(|(_, e)| e["type"] == "task.log")
        .map(|(_, e)| &e["message"])
        .collect();
    assert_eq!(lines, ["two", "three"]);
    let last = after.last().unwrap();
    assert_final(last, "succeeded");
    assert_eq!(last.1["output"], "one\ntwo\nthree\n");
    // Reconnected at the last id, the finished task's stream ends at once, with the same last
    // message under the same id.
    assert_eq!(again.len(), 1, "{again:#?}");
    assert_eq!(again[0], *last);
    let sent = proxy.last_event_ids.lock().unwrap().clone();
    assert_eq!(sent, ["3".to_string(), n.to_string()]);

    // Past the last id: the same single message, and the end.
    let es = event_source(&format!("{}/tasks/mid-1/events", w.url), Some("999"));
    let conns = read_connections(es, 1, |_| {}).await;
    assert_eq!(conns, [vec![last.clone()]]);
}

/// Runs a command task to its end through a stream from memory; its last message.
async fn finished_from_memory(w: &Worker, id: &str, command: &str) -> (u64, Value) {
    w.run(json!({"taskType":"command.run","taskId":id,"input":{"command":command}}))
        .await;
    let es = event_source(&format!("{}/tasks/{id}/events", w.url), None);
    let conns = read_connections(es, 1, |_| {}).await;
    let last = conns[0].last().unwrap().clone();
    assert_eq!(ids(&conns[0]), (1..=last.0).collect::<Vec<_>>());
    assert_final(&last, "succeeded");
    last
}

/// Resumes `id` at 2 (mid-log), at the last id (twice: the library reconnects with it) and
/// past it; each ends with `last`.
async fn resume_everywhere(url: &str, id: &str, last: &(u64, Value)) {
    let n = last.0;
    let events = last.1["events"].as_array().unwrap();
    let es = event_source(&format!("{url}/tasks/{id}/events"), Some("2"));
    let conns = read_connections(es, 1, |_| {}).await;
    let got = &conns[0];
    assert_eq!(ids(got), (3..=n).collect::<Vec<_>>());
    for (i, (seq, e)) in got[..got.len() - 1].iter().enumerate() {
        assert_eq!(e, &events[*seq as usize - 1], "message {i}");
    }
    assert_eq!(got.last().unwrap(), last);
    let es = event_source(&format!("{url}/tasks/{id}/events"), Some(&n.to_string()));
    let conns = read_connections(es, 2, |_| {}).await;
    assert_eq!(conns, [vec![last.clone()], vec![last.clone()]]);
    let es = event_source(&format!("{url}/tasks/{id}/events"), Some("999"));
    let conns = read_connections(es, 1, |_| {}).await;
    assert_eq!(conns, [vec![last.clone()]]);
}

#[tokio::test]
async fn after_eviction_the_folder_resumes_the_same_way_with_the_same_last_message() {
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_MAX_RETAINED_TASKS", "1")
        .start()
        .await;
    let last = finished_from_memory(&w, "ev-1", "sh -c 'echo a; echo b; echo c'").await;
    // In memory: mid, at the last id, past it.
    resume_everywhere(&w.url, "ev-1", &last).await;
    // Another finished task pushes ev-1 out of memory before its answer goes out.
    w.run(json!({"prompt":"next"})).await;
    let list = w.run(json!({"taskType":"task.list"})).await;
    assert!(
        !list["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["taskId"] == "ev-1"),
        "{list}"
    );
    // From the folder: the same messages, the same last one.
    resume_everywhere(&w.url, "ev-1", &last).await;
    // From the start, too.
    let es = event_source(&format!("{}/tasks/ev-1/events", w.url), None);
    let conns = read_connections(es, 1, |_| {}).await;
    assert_eq!(ids(&conns[0]), (1..=last.0).collect::<Vec<_>>());
    assert_eq!(conns[0].last().unwrap(), &last);
    // An unknown task is a 404: the library stops instead of reconnecting.
    let mut es = event_source(&format!("{}/tasks/never-ran/events", w.url), None);
    let first = tokio::time::timeout(HANG, es.next()).await.unwrap();
    assert!(
        matches!(first, Some(Err(reqwest_eventsource::Error::InvalidStatusCode(s, _))) if s == 404)
    );
}

#[tokio::test]
async fn after_a_restart_the_folder_resumes_finished_and_interrupted_tasks() {
    let artifacts = tempfile::tempdir().unwrap();
    let dir = artifacts.path().to_str().unwrap();
    let gate = artifacts.path().join("gate");
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_ARTIFACT_DIR", dir)
        .env("AGENTDISPATCH_HEARTBEAT_SECONDS", "60")
        .start()
        .await;
    let last = finished_from_memory(&w, "rs-1", "sh -c 'echo a; echo b; echo c'").await;
    // A task that is still running when the worker is killed.
    let command = format!(
        "sh -c 'echo one; while [ ! -e {} ]; do sleep 0.05; done'",
        gate.display()
    );
    w.run(
        json!({"taskType":"command.run","taskId":"rs-2","async":true,"input":{"command":command}}),
    )
    .await;
    let log = artifacts.path().join("rs-2/events.ndjson");
    assert!(
        eventually(Duration::from_secs(20), || std::fs::read_to_string(&log)
            .is_ok_and(|t| t.contains(r#""message":"one""#)))
        .await
    );
    drop(w); // SIGKILL: no result.json for rs-2
    std::fs::write(&gate, "").unwrap();

    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_ARTIFACT_DIR", dir)
        .start()
        .await;
    resume_everywhere(&w.url, "rs-1", &last).await;
    // The interrupted task: its events after the id, then its answer from the folder, under
    // the id of its last event (it has no task.result).
    let es = event_source(&format!("{}/tasks/rs-2/events", w.url), Some("1"));
    let conns = read_connections(es, 1, |_| {}).await;
    let got = &conns[0];
    assert_eq!(ids(got), [2, 3, 3], "{got:#?}");
    assert_eq!(got[1].1["message"], "one");
    let end = &got[2];
    assert_eq!(end.1["status"], "failed");
    assert_eq!(end.1["errorCode"], "interrupted");
    assert_eq!(end.1["events"].as_array().unwrap().len(), 3);
    // Resumed at that id (and reconnected with it by the library): only the answer, twice.
    let es = event_source(&format!("{}/tasks/rs-2/events", w.url), Some("3"));
    let conns = read_connections(es, 2, |_| {}).await;
    assert_eq!(conns, [vec![end.clone()], vec![end.clone()]]);
}

#[tokio::test]
async fn a_running_task_resumed_past_its_last_id_ends_with_its_result_when_it_finishes() {
    let w = WorkerBuilder::new().start().await;
    let dir = tempfile::tempdir().unwrap();
    let gate = dir.path().join("gate");
    let command = format!(
        "sh -c 'while [ ! -e {} ]; do sleep 0.05; done; echo done'",
        gate.display()
    );
    w.run(json!({"taskType":"command.run","taskId":"past-1","async":true,"input":{"command":command}}))
        .await;
    // No event will ever come after id 999: the end of the task itself ends the stream.
    let es = event_source(&format!("{}/tasks/past-1/events", w.url), Some("999"));
    let conns = read_connections(es, 1, |_| std::fs::write(&gate, "").unwrap()).await;
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].len(), 1, "{conns:#?}");
    assert_final(&conns[0][0], "succeeded");
    assert_eq!(conns[0][0].1["output"], "done\n");
}
