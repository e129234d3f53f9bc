//! Callers that hold connections (SPEC §8, issue "hostile children and callers" #5), through the
//! real binary: a connection limit (past it, /ping is still answered and other requests get a
//! 503 naming it), HTTP/1.1 only (an HTTP/2 connection cannot sit idle holding a place),
//! a limit on one task's live event streams, headers and bodies that must arrive within the read timeout, and SSE
//! subscribers that never read, which cost a bounded buffer each.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{eventually, eventually_async, fd_count, status_kb, WorkerBuilder};
use serde_json::{json, Value};

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// Reads until the peer closes or errors; what arrived.
fn read_to_close(mut s: TcpStream) -> String {
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// A raw `GET /ping` on a new connection, answered 200 within a minute (else fails, saying
/// `when`); the answer.
async fn ping_answered(port: u16, when: &str) -> String {
    let ping = tokio::task::spawn_blocking(move || {
        let mut s = connect(port);
        s.write_all(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        read_to_close(s)
    });
    let answer = tokio::time::timeout(Duration::from_secs(60), ping)
        .await
        .unwrap_or_else(|_| panic!("no answer to /ping {when}"))
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{when}: {answer}");
    answer
}

#[tokio::test]
async fn past_the_connection_limit_ping_is_answered_and_other_requests_get_503() {
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_MAX_CONNECTIONS", "8")
        .env("AGENTDISPATCH_REQUEST_READ_TIMEOUT_SECONDS", "120")
        .start()
        .await;
    let before = fd_count(w.pid());
    // 8 connections that send half a request and hold on (the kind that stopped /ping).
    let _slow: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut s = connect(w.port);
            s.write_all(b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                .unwrap();
            s
        })
        .collect();
    // Synchronise on the worker having accepted all 8 (each an open descriptor of its own): a
    // connect returns once the kernel has queued it, before the worker has counted it.
    assert!(
        eventually(Duration::from_secs(30), || fd_count(w.pid()) >= before + 8).await,
        "the worker did not accept the 8 connections: {} descriptors, {before} before",
        fd_count(w.pid())
    );
    let port = w.port;
    // Past the limit, the health check is answered...
    let answer = ping_answered(port, "past the limit").await;
    assert!(answer.contains("Healthy"), "{answer}");
    assert!(
        w.logged(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.contains("AGENTDISPATCH_MAX_CONNECTIONS reached")))
            .await,
        "the limit is logged"
    );
    // ...and anything else is refused, naming the limit.
    let refused = tokio::task::spawn_blocking(move || {
        let mut s = connect(port);
        s.write_all(
            b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}",
        )
        .unwrap();
        read_to_close(s)
    })
    .await
    .unwrap();
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(
        refused.contains("AGENTDISPATCH_MAX_CONNECTIONS (8)"),
        "{refused}"
    );
    // 300 more connect and send nothing: the worker's descriptors stay bounded (the limit and
    // its small reserve, each reserve place freed after a short read timeout), and a ping
    // behind them all is still answered.
    let idle: Vec<TcpStream> = (0..300).map(|_| connect(w.port)).collect();
    ping_answered(port, "behind 300 idle connections").await;
    assert!(
        fd_count(w.pid()) <= before + 8 + 64 + 4,
        "descriptors grew past the limit and reserve: {} then {}",
        before,
        fd_count(w.pid())
    );
    drop(idle);
}

#[tokio::test]
async fn http2_with_prior_knowledge_is_refused_and_cannot_hold_places() {
    // The limit the finding used: five idle HTTP/2 connections made every /ping time out.
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_MAX_CONNECTIONS", "5")
        .start()
        .await;
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    // The preface and an empty SETTINGS frame, as an HTTP/2 client opens with; then idle.
    let open = |port| {
        let mut s = connect(port);
        s.write_all(PREFACE).unwrap();
        s.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).unwrap();
        s
    };
    let held: Vec<TcpStream> = (0..200).map(|_| open(w.port)).collect();
    ping_answered(w.port, "with 200 HTTP/2 connections attempted").await;
    // Each is closed by the worker (HTTP/1.1 only), after at most an HTTP/1 error answer.
    let closed = tokio::task::spawn_blocking(move || {
        held.into_iter()
            .map(read_to_close)
            .filter(|a| {
                !a.starts_with("HTTP/1.1 4") && !a.starts_with("HTTP/1.1 5") && !a.is_empty()
            })
            .count()
    });
    let odd = tokio::time::timeout(Duration::from_secs(60), closed)
        .await
        .expect("every HTTP/2 attempt is closed")
        .unwrap();
    assert_eq!(odd, 0, "an HTTP/2 attempt was answered with something else");
    assert_eq!(w.ping().await["status"], "Healthy");
}

#[tokio::test]
async fn headers_or_a_body_that_do_not_arrive_in_time_end_that_connection_only() {
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_REQUEST_READ_TIMEOUT_SECONDS", "1")
        .start()
        .await;
    // Half the headers, then nothing: the worker closes the connection.
    let mut s = connect(w.port);
    s.write_all(b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    let headers = tokio::task::spawn_blocking(move || read_to_close(s));
    // A whole header, a tenth of the body it announced, then nothing: answered 400, naming why.
    let mut s = connect(w.port);
    s.write_all(
        b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"prompt\":",
    )
    .unwrap();
    let body = tokio::task::spawn_blocking(move || read_to_close(s));
    // Meanwhile the worker serves everyone else.
    let r = w.run(json!({"prompt": "still here"})).await;
    assert_eq!(r["ok"], true, "{r}");
    let headers = tokio::time::timeout(Duration::from_secs(60), headers)
        .await
        .expect("a connection with unfinished headers is closed")
        .unwrap();
    assert!(
        headers.is_empty() || headers.starts_with("HTTP/1.1 408"),
        "{headers}"
    );
    let body = tokio::time::timeout(Duration::from_secs(60), body)
        .await
        .expect("a connection with an unfinished body is answered")
        .unwrap();
    assert!(body.starts_with("HTTP/1.1 400"), "{body}");
    assert!(
        body.contains("AGENTDISPATCH_REQUEST_READ_TIMEOUT_SECONDS"),
        "the answer names the limit: {body}"
    );
    // On a new connection: the client's pooled one has been idle past the 1 s read timeout, so
    // the worker closed it, and a request racing that close fails (IncompleteMessage) under load.
    let ping: Value = reqwest::get(format!("{}/ping", w.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ping["status"], "Healthy");
}

#[tokio::test]
async fn subscribers_that_never_read_cost_a_bounded_buffer_each() {
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_COMMAND_ALLOWLIST", "python3")
        .env("AGENTDISPATCH_MAX_OUTPUT_BYTES", "1048576")
        .start()
        .await;
    // ~40 MB of events: 200,000 lines of 200 bytes, written as fast as the worker reads.
    let flood = "python3 -c \"import sys\nfor i in range(200000): sys.stdout.write('x' * 190 + ' %08d\\n' % i)\"";
    let r = w
        .run(json!({"taskType":"command.run","taskId":"flood-subs","async":true,"input":{"command":flood}}))
        .await;
    assert_eq!(r["status"], "running", "{r}");
    let baseline = status_kb(w.pid(), "VmRSS").unwrap();
    // 30 subscribers send their request and never read a byte.
    let subscribers: Vec<TcpStream> = (0..30)
        .map(|_| {
            let mut s = connect(w.port);
            s.write_all(b"GET /tasks/flood-subs/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    let mut peak = baseline;
    let started = std::time::Instant::now();
    let status = loop {
        peak = peak.max(status_kb(w.pid(), "VmRSS").unwrap_or(0));
        let s = w
            .run(json!({"taskType":"task.status","taskId":"flood-subs","afterSeq":u64::MAX - 1}))
            .await;
        if s["status"] != "running" {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the flood did not end"
        );
        tokio::time::sleep(Duration::from_millis(50)).await; // a sampling interval
    };
    assert_eq!(status["status"], "succeeded", "{status}");
    for _ in 0..20 {
        peak = peak.max(status_kb(w.pid(), "VmRSS").unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(50)).await; // samples, not a synchronisation
    }
    eprintln!("30 non-reading subscribers of a 40 MB flood: RSS {baseline} kB → peak {peak} kB");
    // Each held up to 16 MB before (64 steps of 256 KB); now a few steps of 64 KB and its final
    // answer (at most the 1 MB output cap): 30 of them stay well under 30 × 16 MB.
    assert!(
        peak < baseline + 160 * 1024,
        "RSS grew from {baseline} kB to {peak} kB"
    );
    assert_eq!(w.ping().await["status"], "Healthy");
    drop(subscribers);
}

#[tokio::test]
async fn one_task_has_at_most_its_limit_of_live_event_streams() {
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_MAX_SUBSCRIBERS_PER_TASK", "3")
        .start()
        .await;
    let r = w
        .run(json!({"taskType":"command.run","taskId":"watched","async":true,"input":{"command":"sleep 60"}}))
        .await;
    assert_eq!(r["status"], "running", "{r}");
    let follow = || {
        w.client()
            .get(format!("{}/tasks/watched/events", w.url))
            .send()
    };
    let mut live = Vec::new();
    for _ in 0..3 {
        let resp = follow().await.unwrap();
        assert_eq!(resp.status(), 200);
        live.push(resp);
    }
    // A fourth, by either route, is refused naming the limit and its variable.
    let over = follow().await.unwrap();
    assert_eq!(over.status(), 429);
    let body: Value = over.json().await.unwrap();
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("AGENTDISPATCH_MAX_SUBSCRIBERS_PER_TASK") && error.contains('3'),
        "{body}"
    );
    assert_eq!(body["errorCode"], "too_many_subscribers");
    let (status, body) = w
        .invoke(&json!({"taskId":"watched","taskType":"command.run","stream":true,"input":{"command":"sleep 60"}}))
        .await;
    assert_eq!(status, 429, "{body}");
    // A stream that ends frees its place.
    live.pop();
    assert!(
        eventually_async(Duration::from_secs(20), || async {
            follow().await.is_ok_and(|r| r.status() == 200)
        })
        .await,
        "a place freed by a client that left is taken again"
    );
    assert_eq!(w.ping().await["status"], "HealthyBusy");
    w.run(json!({"taskType":"task.cancel","taskId":"watched"}))
        .await;
}
