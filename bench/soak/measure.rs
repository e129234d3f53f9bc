//! Measuring the worker: its resources from `/proc`, sampled once it is idle.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::checks::short;
use crate::common::{ensure, procfs};
use crate::load::post;
use crate::RETENTION_SECONDS;

/// The worker's resources, from `/proc`.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub rss_kb: u64,
    pub hwm_kb: u64,
    pub threads: u64,
    pub fds: usize,
    pub children: usize,
    /// Idle warm parents and their spares (not tasks: `AGENTDISPATCH_WARM=auto` starts a
    /// framework's parent after its first task; SPEC §6.3).
    pub warm: usize,
    pub zombies: Vec<i32>,
}

/// A warm parent or an idle spare: its environment block (a fork keeps its parent's) has the
/// control channel's variable and still the task id placeholder, not a task's id.
fn warm_and_idle(pid: i32) -> bool {
    let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let vars: Vec<&[u8]> = env.split(|b| *b == 0).collect();
    vars.iter()
        .any(|v| v.starts_with(b"AGENTDISPATCH_WARM_FD="))
        && vars.iter().any(|v| {
            v.strip_prefix(b"AGENTDISPATCH_TASK_ID=")
                .is_some_and(|id| !id.is_empty() && id.iter().all(|b| *b == b'_'))
        })
}

pub fn sample(pid: i32) -> Sample {
    let field = |name| procfs::status_kb(pid, name).unwrap_or(0);
    let mut s = Sample {
        rss_kb: field("VmRSS"),
        hwm_kb: field("VmHWM"),
        threads: field("Threads"),
        fds: procfs::fd_count(pid),
        ..Sample::default()
    };
    for (child, state) in procfs::children_with_state(pid) {
        if state == 'Z' {
            s.zombies.push(child);
            s.children += 1;
        } else if warm_and_idle(child) {
            s.warm += 1;
        } else {
            s.children += 1;
        }
    }
    s
}

/// Waits until no task is left in memory, then `settle`; returns how long it took.
pub async fn settle(url: &str, settle: Duration) -> Result<Duration, String> {
    // No keep-alive: the sample should not count this client's socket.
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client");
    let began = Instant::now();
    let limit = Duration::from_secs(RETENTION_SECONDS + 30);
    loop {
        let list = post(&http, url, &json!({"taskType": "task.list"})).await?;
        let n = list["tasks"].as_array().map_or(usize::MAX, Vec::len);
        if n == 0 {
            break;
        }
        if began.elapsed() > limit {
            return Err(format!(
                "{n} tasks still in memory {limit:?} after the last one (retention {RETENTION_SECONDS} s): {}",
                short(&list)
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let ping: Value = http
        .get(format!("{url}/ping"))
        .send()
        .await
        .map_err(|e| format!("ping: {e}"))?
        .json()
        .await
        .map_err(|e| format!("ping: {e}"))?;
    ensure(ping["status"] == "Healthy", || {
        format!("idle worker answers /ping with {ping}")
    })?;
    drop(http);
    tokio::time::sleep(settle).await;
    Ok(began.elapsed())
}
