//! Callers that hold connections (SPEC §8, issue "hostile children and callers" #5), through the
//! real binary: a connection limit (past it, connections wait in the backlog and are served
//! once one closes), headers and bodies that must arrive within the read timeout, and SSE
//! subscribers that never read, which cost a bounded buffer each.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{eventually, fd_count, status_kb, WorkerBuilder};
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

#[tokio::test]
async fn past_the_connection_limit_connections_wait_and_are_served_when_one_closes() {
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_MAX_CONNECTIONS", "8")
        .env("AGENTDISPATCH_REQUEST_READ_TIMEOUT_SECONDS", "120")
        .start()
        .await;
    let before = fd_count(w.pid());
    // 8 connections that send half a request and hold on (the kind that stopped /ping).
    let mut slow: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut s = connect(w.port);
            s.write_all(b"POST /invocations HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            s
        })
        .collect();
    assert!(
        eventually(Duration::from_secs(20), || w.log_lines().iter().any(|l| l
            ["message"]
            .as_str()
            .is_some_and(
                |m| m.contains("AGENTDISPATCH_MAX_CONNECTIONS reached")
            )))
        .await,
        "the limit is logged"
    );
    // 200 more connect (the kernel's backlog takes them) but are not accepted: the worker's
    // descriptors do not grow with them.
    let waiting: Vec<TcpStream> = (0..200).map(|_| connect(w.port)).collect();
    let port = w.port;
    let ping = tokio::task::spawn_blocking(move || {
        let mut s = connect(port);
        s.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        read_to_close(s)
    });
    // Not a synchronisation: a ping answered at any time before the slow ones close is the
    // failure; on a slow machine this pause can only miss it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !ping.is_finished(),
        "a connection past the limit was served"
    );
    assert!(
        fd_count(w.pid()) <= before + 8 + 2,
        "descriptors grew past the limit: {} then {}",
        before,
        fd_count(w.pid())
    );
    // Closing the slow ones frees their places: the queued connections are served, the ping too.
    slow.clear();
    drop(waiting);
    let answer = tokio::time::timeout(Duration::from_secs(60), ping)
        .await
        .expect("the ping is served once places free up")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("Healthy"), "{answer}");
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
    s.write_all(b"POST /invocations HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let headers = tokio::task::spawn_blocking(move || read_to_close(s));
    // A whole header, a tenth of the body it announced, then nothing: answered 400, naming why.
    let mut s = connect(w.port);
    s.write_all(
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"prompt\":",
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
            s.write_all(b"GET /tasks/flood-subs/events HTTP/1.1\r\nHost: x\r\n\r\n")
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
