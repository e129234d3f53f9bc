//! Figures 5 and 7: SSE events per second, and memory per idle async task.

use super::table::*;
use super::*;

/// Counts `data:` messages in an SSE body, across chunk boundaries.
#[derive(Default)]
pub(crate) struct SseCounter {
    pub(crate) partial: Vec<u8>,
    pub(crate) messages: u64,
    pub(crate) last: Vec<u8>,
}

impl SseCounter {
    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        while let Some(i) = rest.iter().position(|b| *b == b'\n') {
            let line: &[u8] = if self.partial.is_empty() {
                &rest[..i]
            } else {
                self.partial.extend_from_slice(&rest[..i]);
                &self.partial
            };
            if let Some(data) = line.strip_prefix(b"data: ") {
                self.messages += 1;
                self.last.clear();
                self.last.extend_from_slice(data);
            }
            self.partial.clear();
            rest = &rest[i + 1..];
        }
        self.partial.extend_from_slice(rest);
    }
}

/// Figure 5: events per second delivered to an SSE client from one chatty child.
pub(crate) async fn sse_rate(rows: &mut Vec<Row>, n: usize, json_rate: f64) {
    let w = Worker::start(&[]).await;
    let t = Instant::now();
    let resp = w
        .client
        .post(format!("{}/invocations", w.url))
        .header("accept", "text/event-stream")
        .json(&json!({"taskType": "command.run", "taskId": "sse",
            "input": {"command": format!("seq 1 {n}")}}))
        .send()
        .await
        .expect("POST /invocations (SSE)");
    let mut body = resp.bytes_stream();
    let mut counter = SseCounter::default();
    let bound = Duration::from_secs(30);
    let mut timed_out = false;
    loop {
        match tokio::time::timeout(bound.saturating_sub(t.elapsed()), body.next()).await {
            Ok(Some(chunk)) => counter.feed(&chunk.expect("SSE body")),
            Ok(None) => break,
            Err(_) => {
                timed_out = true;
                break;
            }
        }
    }
    let took = t.elapsed();
    let v = counter.messages as f64 / took.as_secs_f64();
    let label = if timed_out {
        format!(
            "5. SSE events/s, `seq 1 {n}` (STOPPED at {}s: {} of {n} events)",
            bound.as_secs(),
            counter.messages
        )
    } else {
        let result: Value = serde_json::from_slice(&counter.last).unwrap_or(Value::Null);
        assert_eq!(result["ok"], true, "last SSE message: {result}");
        format!(
            "5. SSE events/s, `seq 1 {n}` ({} messages, {took:.2?})",
            counter.messages
        )
    };
    rows.push(row(
        &label,
        rate(v),
        format!("{} (fig. 3)", rate(json_rate)),
        ratio(v, json_rate),
        "-",
    ));
}

/// Figure 7: memory per idle async task.
pub(crate) async fn per_task_memory(rows: &mut Vec<Row>) {
    let n = knob("BENCH_IDLE_TASKS", 100);
    let cap = (2 * n).max(200).to_string();
    let w = Worker::start(&[("AGENTDISPATCH_MAX_CONCURRENT_TASKS", &cap)]).await;
    // Warm up the paths a sleeping task uses (spawn, heartbeat, cancel), then measure.
    for i in 0..5 {
        let id = format!("warm-{i}");
        w.invoke(
            &json!({"taskType": "command.run", "taskId": id, "async": true,
            "input": {"command": "sleep 30"}}),
        )
        .await;
        w.cancel(&id).await;
    }
    w.wait_idle().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = proc_kb(w.pid(), "VmRSS");
    let ids = w
        .start_async("idle", n, json!({"command": "sleep 30"}))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = proc_kb(w.pid(), "VmRSS");
    let t = Instant::now();
    futures_util::future::join_all(ids.iter().map(|id| w.cancel(id))).await;
    let cancelled = t.elapsed();
    w.wait_idle().await;
    let per = after.saturating_sub(before) as f64 / n as f64;
    let mut r = row(
        &format!(
            "7. RSS per idle async task ({n} x `sleep 30`: {} -> {}; cancel all {cancelled:.2?})",
            mb(before),
            mb(after)
        ),
        format!("{per:.1} KB"),
        "-".into(),
        "-".into(),
        "< 100 KB",
    );
    r.met = Some(per < 100.0);
    rows.push(r);
}
