//! Figures 1–4: the round trip, `/ping` under load (and figure 6), lines per second, RSS.

use super::table::*;
use super::*;

pub(crate) fn spawn_true() -> Duration {
    let t = Instant::now();
    let status = Command::new("true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run true");
    assert!(status.success());
    t.elapsed()
}

/// An `events.ndjson`: its line count, and the seconds between its first and last
/// `task.log` events (the streaming span, without start-up and the final answer).
pub(crate) fn scan_events(path: &Path) -> (u64, f64) {
    use std::io::BufRead;
    let Ok(f) = std::fs::File::open(path) else {
        return (0, 0.0);
    };
    let mut reader = std::io::BufReader::with_capacity(1 << 20, f);
    let (mut n, mut first, mut last) = (0u64, None, None);
    const LOG: &[u8] = b"\"type\":\"task.log\"";
    let mut line = Vec::new();
    while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
        n += 1;
        if line.windows(LOG.len()).any(|w| w == LOG) {
            let ts = serde_json::from_slice::<Value>(&line)
                .ok()
                .and_then(|v| chrono::DateTime::parse_from_rfc3339(v["ts"].as_str()?).ok());
            if first.is_none() {
                first = ts;
            }
            last = ts.or(last);
        }
        line.clear();
    }
    let span = match (first, last) {
        (Some(a), Some(b)) => (b - a).num_milliseconds() as f64 / 1000.0,
        _ => 0.0,
    };
    (n, span)
}

/// Lines of a task's `events.ndjson`.
pub(crate) fn count_lines(path: &Path) -> u64 {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(_) => return 0,
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => return n,
            Ok(k) => n += buf[..k].iter().filter(|b| **b == b'\n').count() as u64,
        }
    }
}

/// Figure 1: command.run `true` round trip against spawn+wait of `true` from here,
/// interleaved so that both see the same machine load.
pub(crate) async fn round_trip(w: &Worker, rows: &mut Vec<Row>, place: &str) {
    let n = knob("BENCH_ROUND_TRIPS", 300);
    let body = json!({"taskType": "command.run", "input": {"command": "true"}});
    for _ in 0..20 {
        spawn_true();
        let r = w.invoke(&body).await;
        assert_eq!(r["ok"], true, "{r}");
    }
    let (mut worker, mut floor) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let cpu0 = cpu_seconds(w.pid());
    for _ in 0..n {
        floor.push(spawn_true());
        let t = Instant::now();
        let r = w.invoke(&body).await;
        worker.push(t.elapsed());
        assert_eq!(r["ok"], true, "{r}");
    }
    let cpu = cpu_seconds(w.pid()) - cpu0;
    let (p50, p99, f50, f99) = (
        pct(&worker, 50.0),
        pct(&worker, 99.0),
        pct(&floor, 50.0),
        pct(&floor, 99.0),
    );
    let mut r = row(
        &format!("1. command.run `true` round trip p50 (n={n}{place})"),
        ms(p50),
        ms(f50),
        ratio(p50, f50),
        "p50 - floor <= 1.5 ms",
    );
    r.met = Some(p50 - f50 <= 1.5);
    r.ratio = format!("{} (+{:.3} ms)", r.ratio, p50 - f50);
    if !place.is_empty() {
        r.target = "-".into();
        r.met = None;
    }
    rows.push(r);
    rows.push(row_of(
        &format!("1. command.run `true` round trip p99{place}"),
        ms(p99),
        ms(f99),
        ratio(p99, f99),
    ));
    rows.push(row_of(
        &format!("1. (worker CPU time per round trip{place})"),
        ms(cpu * 1000.0 / n as f64),
        "-".into(),
        "-".into(),
    ));
}

/// Figures 2 and 6: `/ping` idle, with 8 sleeping async tasks, and while 4 children flood stdout.
pub(crate) async fn pings(w: &Worker, rows: &mut Vec<Row>) {
    let n = knob("BENCH_PINGS", 1000);
    w.pings(100).await;
    let idle = w.pings(n).await;
    let (i50, i99) = (pct(&idle, 50.0), pct(&idle, 99.0));

    // 6: eight async `sleep` tasks (the default capacity).
    let ids = w
        .start_async("sleep", 8, json!({"command": "sleep 30"}))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let busy = w.pings(n).await;
    for id in &ids {
        w.cancel(id).await;
    }
    w.wait_idle().await;

    // 2: four children writing "y" lines as fast as they can.
    let ids = w
        .start_async("flood", 4, json!({"command": "yes", "timeoutSeconds": 8}))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut flood = Vec::new();
    let began = Instant::now();
    while flood.len() < n || began.elapsed() < Duration::from_secs(3) {
        flood.push(w.ping().await);
        if began.elapsed() > Duration::from_secs(6) {
            break;
        }
    }
    let window = began.elapsed();
    // How many lines the floods had turned into events when the pings ended.
    let mut carried = 0u64;
    for id in &ids {
        let v = w
            .invoke(&json!({"taskType": "task.status", "taskId": id, "afterSeq": u64::MAX / 2}))
            .await;
        assert!(v["taskId"] == id.as_str(), "{v}");
        carried += count_lines(&w.artifacts.join(id).join("events.ndjson"));
    }
    for id in &ids {
        w.cancel(id).await;
    }
    w.wait_idle().await;

    // The same load outside the worker: four `yes > /dev/null` beside an idle worker. What
    // is left of the flood figure above this is the worker's own doing.
    let mut hogs: Vec<Child> = (0..4)
        .map(|_| {
            Command::new("yes")
                .stdout(Stdio::null())
                .spawn()
                .expect("yes")
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut contended = Vec::new();
    let began = Instant::now();
    while contended.len() < n || began.elapsed() < Duration::from_secs(3) {
        contended.push(w.ping().await);
        if began.elapsed() > Duration::from_secs(6) {
            break;
        }
    }
    for h in &mut hogs {
        let _ = h.kill();
        let _ = h.wait();
    }

    let (f50, f99) = (pct(&flood, 50.0), pct(&flood, 99.0));
    rows.push(row(
        &format!("2. /ping p50 during 4 `yes` floods (n={})", flood.len()),
        ms(f50),
        ms(i50),
        ratio(f50, i50),
        "-",
    ));
    let mut r = row(
        "2. /ping p99 during 4 `yes` floods",
        ms(f99),
        ms(i99),
        ratio(f99, i99),
        "< 5 ms",
    );
    r.met = Some(f99 < 5.0);
    rows.push(r);
    rows.push(row(
        &format!(
            "2. (CPU contention alone: /ping p50/p99 beside 4 `yes > /dev/null`, n={})",
            contended.len()
        ),
        format!(
            "{} / {}",
            ms(pct(&contended, 50.0)),
            ms(pct(&contended, 99.0))
        ),
        format!("{} / {}", ms(i50), ms(i99)),
        ratio(pct(&contended, 99.0), i99),
        "-",
    ));
    let mut r = row(
        "2. (lines carried by the floods meanwhile)",
        rate(carried as f64 / (window.as_secs_f64() + 0.3)),
        "-".into(),
        "-".into(),
        "-",
    );
    r.value = format!("~{}", r.value);
    rows.push(r);

    let (b50, b99) = (pct(&busy, 50.0), pct(&busy, 99.0));
    rows.push(row(
        &format!("6. /ping p50 with 8 async `sleep` tasks (n={n})"),
        ms(b50),
        ms(i50),
        ratio(b50, i50),
        "-",
    ));
    let mut r = row(
        "6. /ping p99 with 8 async `sleep` tasks",
        ms(b99),
        ms(i99),
        ratio(b99, i99),
        "< 5 ms",
    );
    r.met = Some(b99 < 5.0);
    rows.push(r);
}

/// Figure 3: lines per second from a child's stdout into events (JSON answer), against the
/// same child into `cat > /dev/null`. Returns the worker's rate.
pub(crate) async fn lines_per_second(rows: &mut Vec<Row>) -> f64 {
    let n = knob("BENCH_LINES", 2_000_000);
    let w = Worker::start(&[]).await;
    let t = Instant::now();
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("seq 1 {n} | cat > /dev/null"))
        .status()
        .expect("sh");
    let floor = t.elapsed();
    assert!(status.success());
    let cpu0 = cpu_seconds(w.pid());
    let t = Instant::now();
    let r = w
        .invoke(&json!({"taskType": "command.run", "taskId": "lines",
            "input": {"command": format!("seq 1 {n}")}}))
        .await;
    let took = t.elapsed();
    let cpu = cpu_seconds(w.pid()) - cpu0;
    assert_eq!(r["ok"], true, "{}", r["error"]);
    let (logged, span) = scan_events(&w.artifacts.join("lines").join("events.ndjson"));
    assert!(logged >= n as u64, "events.ndjson holds {logged} events");
    let (v, f) = (
        n as f64 / took.as_secs_f64(),
        n as f64 / floor.as_secs_f64(),
    );
    let mut r = row(
        &format!("3. lines/s, child stdout -> events (`seq 1 {n}`, {took:.2?})"),
        rate(v),
        rate(f),
        ratio(v, f),
        ">= 1 M/s",
    );
    r.met = Some(v >= 1e6);
    rows.push(r);
    if span > 0.0 {
        rows.push(row_of(
            &format!("3. (streaming only: first to last task.log event, {span:.2}s)"),
            rate(n as f64 / span),
            rate(f),
            ratio(n as f64 / span, f),
        ));
    }
    rows.push(row_of(
        "3. (worker CPU time for the task, per million lines)",
        format!("{:.2} s", cpu / (n as f64 / 1e6)),
        "-".into(),
        "-".into(),
    ));
    v
}

/// Figure 4: worker RSS idle after a few echo tasks, and its peak during a 200 MB flood.
pub(crate) async fn memory(rows: &mut Vec<Row>) {
    let bytes = knob("BENCH_FLOOD_BYTES", 200_000_000);
    let w = Worker::start(&[]).await;
    for i in 0..5 {
        let r = w.invoke(&json!({"prompt": format!("hello {i}")})).await;
        assert_eq!(r["ok"], true, "{r}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = w.pid();
    let idle = proc_kb(pid, "VmRSS");

    // Reset the high-water mark (clear_refs 5), then also sample every 10 ms.
    let reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
    let sampler = Sampler::every(Duration::from_millis(10), move || proc_kb(pid, "VmRSS"));
    // 100-byte lines (99 characters and a newline).
    let line = "x".repeat(99);
    let t = Instant::now();
    let r = w
        .invoke(&json!({"taskType": "command.run", "taskId": "flood",
            "input": {"command": format!("sh -c 'yes {line} | head -c {bytes}'")}}))
        .await;
    let took = t.elapsed();
    let mut samples = sampler.finish();
    assert_eq!(r["ok"], true, "{}", r["error"]);
    drop(r);
    let mut top = samples.iter().copied().max().unwrap_or(0);
    if reset {
        top = top.max(proc_kb(pid, "VmHWM"));
    }
    // The plateau while lines stream (the median sample), and what stays after the answer.
    samples.sort_unstable();
    let plateau = samples.get(samples.len() / 2).copied().unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = proc_kb(pid, "VmRSS");
    let mut r = row(
        "4. worker RSS idle (after 5 echo tasks)",
        mb(idle),
        "-".into(),
        "-".into(),
        "< 15 MB",
    );
    r.met = Some(idle < 15 * 1024);
    rows.push(r);
    let mut r = row(
        &format!(
            "4. worker RSS peak, {} MB flood of 100 B lines ({took:.2?})",
            bytes / 1_000_000
        ),
        mb(top),
        mb(idle),
        ratio(top as f64, idle as f64),
        "< 64 MB",
    );
    r.met = Some(top < 64 * 1024);
    rows.push(r);
    rows.push(row_of(
        "4. (worker RSS median during that flood / after its answer)",
        format!("{} / {}", mb(plateau), mb(after)),
        mb(idle),
        ratio(after as f64, idle as f64),
    ));
}
