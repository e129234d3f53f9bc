//! Task folders read back: FIFOs planted where the worker's own files were, a task that swaps
//! its log for one, and a task folder that is a link. Every read-back answers (an error naming
//! the file), `/ping` keeps answering, SIGTERM still stops the worker.

use super::*;

/// A client whose requests give up (and fail the test) instead of hanging it.
fn bounded_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// `/ping` answers; the test fails (instead of hanging) when it does not.
async fn ping_answers(w: &Worker) {
    let r = bounded_client()
        .get(format!("{}/ping", w.url))
        .send()
        .await
        .expect("/ping answers");
    assert!(r.status().is_success());
}

/// Posts `body` to `/invocations` with a bounded client; the JSON answer.
async fn post(w: &Worker, body: Value) -> Value {
    bounded_client()
        .post(format!("{}/invocations", w.url))
        .json(&body)
        .send()
        .await
        .expect("the request is answered")
        .json()
        .await
        .unwrap()
}

fn mkfifo(path: &std::path::Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

#[tokio::test]
async fn a_fifo_planted_as_a_result_is_an_error_answer_and_never_stops_the_server() {
    let mut w = WorkerBuilder::new().start().await;
    let dir = w.task_dir("x");
    std::fs::create_dir_all(&dir).unwrap();
    mkfifo(&dir.join("result.json"));
    // Several at once: more than the reads the worker runs at a time.
    let asks: Vec<_> = (0..8)
        .map(|_| post(&w, json!({"taskType":"task.status","taskId":"x"})))
        .collect();
    for r in futures_util::future::join_all(asks).await {
        assert_eq!(r["ok"], false, "{r:#}");
        assert_eq!(r["errorCode"], "artifact_read_failed", "{r:#}");
        let e = r["error"].as_str().unwrap();
        assert!(e.contains("result.json") && e.contains("FIFO"), "{e}");
    }
    ping_answers(&w).await;
    // The other read-backs of a folder answer the same way.
    let cancel = post(&w, json!({"taskType":"task.cancel","taskId":"x"})).await;
    assert_eq!(cancel["errorCode"], "artifact_read_failed", "{cancel:#}");
    let again = post(&w, json!({"taskId":"x","prompt":"hi"})).await;
    assert_eq!(again["errorCode"], "artifact_read_failed", "{again:#}");
    assert!(again["error"].as_str().unwrap().contains("result.json"));
    let get = w
        .rpc(json!({"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"id":"x"}}))
        .await;
    assert!(get.to_string().contains("result.json"), "{get}");
    ping_answers(&w).await;
    // SIGTERM stops it as usual.
    w.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(w.wait_exit(Duration::from_secs(20)), Some(0));
}

#[tokio::test]
async fn a_task_that_swaps_its_log_for_a_fifo_reads_back_as_an_error_naming_it() {
    // One finished task in memory: the next one sends the first to its folder.
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_MAX_RETAINED_TASKS", "1")
        .start()
        .await;
    let r = w
        .run(children::sh(
            "swapped",
            r#"d="$AGENTDISPATCH_TASK_DIR"; rm "$d/events.ndjson"; mkfifo "$d/events.ndjson"; echo swapped"#,
        ))
        .await;
    assert_eq!(r["status"], "succeeded", "{r:#}");
    let r = w.run(json!({"taskId":"next","prompt":"x"})).await;
    assert_eq!(r["ok"], true, "{r:#}");
    let s = post(&w, json!({"taskType":"task.status","taskId":"swapped"})).await;
    assert_eq!(s["errorCode"], "artifact_read_failed", "{s:#}");
    let e = s["error"].as_str().unwrap();
    assert!(e.contains("events.ndjson") && e.contains("FIFO"), "{e}");
    ping_answers(&w).await;
    // Its event stream is that one answer.
    let resp = bounded_client()
        .get(format!("{}/tasks/swapped/events", w.url))
        .send()
        .await
        .expect("the stream is answered");
    let messages = read_sse(resp, usize::MAX).await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0].data["errorCode"], "artifact_read_failed");
    ping_answers(&w).await;
}

#[tokio::test]
async fn many_event_replays_against_a_fifo_leave_ping_answering() {
    let w = WorkerBuilder::new().start().await;
    let r = w.run(json!({"taskId":"real","prompt":"x"})).await;
    assert_eq!(r["ok"], true, "{r:#}");
    // A finished task's folder whose log is a FIFO.
    let dir = w.task_dir("y");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        w.task_dir("real").join("result.json"),
        dir.join("result.json"),
    )
    .unwrap();
    mkfifo(&dir.join("events.ndjson"));
    let client = bounded_client();
    let asks: Vec<_> = (0..100)
        .map(|_| {
            let client = client.clone();
            let url = format!("{}/tasks/y/events", w.url);
            async move {
                let resp = client.get(url).send().await.expect("answered");
                read_sse(resp, usize::MAX).await
            }
        })
        .collect();
    for messages in futures_util::future::join_all(asks).await {
        let last = &messages.last().expect("one message").data;
        assert_eq!(last["errorCode"], "artifact_read_failed", "{last:#}");
        assert!(last["error"].as_str().unwrap().contains("events.ndjson"));
    }
    ping_answers(&w).await;
    assert_eq!(w.ping().await["status"], "Healthy");
}

#[tokio::test]
async fn a_task_folder_that_is_a_link_is_refused_and_nothing_is_written_through_it() {
    let w = WorkerBuilder::new().start().await;
    let target = w.artifacts.parent().unwrap().join("elsewhere");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("kept.txt"), "precious").unwrap();
    std::os::unix::fs::symlink(&target, w.task_dir("linked")).unwrap();
    for body in [
        json!({"taskType":"command.run","taskId":"linked","input":{"command":"echo hi"}}),
        json!({"taskId":"linked","prompt":"hi"}),
        json!({"taskType":"task.status","taskId":"linked"}),
    ] {
        let r = post(&w, body.clone()).await;
        assert_eq!(r["ok"], false, "{body}: {r:#}");
        let e = r["error"].as_str().unwrap();
        assert!(e.contains("symbolic link") && e.contains("linked"), "{e}");
    }
    let left: Vec<_> = std::fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["kept.txt"], "written into the link's target");
    // A caller-chosen id whose folder a link took cannot be run under it; others can.
    let r = w.run(json!({"taskId":"fine","prompt":"hi"})).await;
    assert_eq!(r["ok"], true, "{r:#}");
}
