//! The soak test: `cargo bench --bench soak [-- --tasks N]` (or `scripts/soak.sh`).
//!
//! Starts the real release worker on a loopback port of its choosing with a temp artifact directory and a
//! short task retention, then sends it `SOAK_TASKS` (10,000) tasks from `SOAK_CLIENTS` (8)
//! concurrent clients, in a fixed mix: echo `agent.run`, `command.run echo <word>`, commands
//! exiting non-zero, a `sh` framework child speaking the NDJSON protocol, a few real Python
//! framework runs (pydantic-ai), timeouts, cancels and server-sent event streams. Every answer is
//! checked, every task folder must be complete, and `task.status` of tasks already dropped from
//! memory must answer from disk.
//!
//! The worker's RSS, open fds, threads and zombie children are sampled after the first 500 tasks
//! (the baseline) and at the end, each time once every task has left memory and a settle
//! (`SOAK_SETTLE_SECONDS`, 11: past tokio's 10 s keep-alive of idle blocking threads) has
//! passed. PASS requires RSS within 10% of the baseline, fds and threads back to the baseline
//! (+1), no zombie, no task process left (idle warm parents and spares are counted apart) and
//! no wrong answer; the exit status is non-zero
//! otherwise, and the temp directory (worker log, task folders) is kept for a look.
//!
//! Options: `--tasks N`, `--clients N`, `--settle SECONDS` (or the variables above).
//!
//! The parts: [`load`] (the mix of tasks and the clients), [`checks`] (answers, streams,
//! folders), [`measure`] (the worker's resources), [`report`]; the worker is started through the
//! benches' shared harness (`bench/common`).

use std::collections::VecDeque;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "soak/checks.rs"]
mod checks;
mod common;
#[path = "soak/load.rs"]
mod load;
#[path = "soak/measure.rs"]
mod measure;
#[path = "soak/report.rs"]
mod report;

use common::{ensure, repo, Log, Server, BIN};
use load::{run_phase, Shared, Stat, CHILD_SCRIPT, HOSTILE_SCRIPT, KINDS};
use measure::{sample, settle};

/// `AGENTDISPATCH_TASK_RETENTION_SECONDS`: short, so that memory is measured in a steady state.
const RETENTION_SECONDS: u64 = 5;

/// `AGENTDISPATCH_MAX_CONCURRENT_TASKS`.
const MAX_CONCURRENT: usize = 16;

/// Tasks before the baseline sample.
const BASELINE_TASKS: usize = 500;

/// RSS growth allowed between the baseline and the end.
const RSS_SLACK: f64 = 0.10;

/// Sockets allowed above the baseline fd count (a keep-alive connection).
const FD_SLACK: usize = 1;

/// Threads allowed above the baseline.
const THREAD_SLACK: u64 = 1;

/// The framework defined by `AGENTDISPATCH_FRAMEWORK_COMMAND_SOAK_CHILD`.
const CHILD_FRAMEWORK: &str = "soak-child";
/// The framework defined by `AGENTDISPATCH_FRAMEWORK_COMMAND_SOAK_HOSTILE`.
const HOSTILE_FRAMEWORK: &str = "soak-hostile";

/// The Python framework run now and then.
const PYTHON_FRAMEWORK: &str = "pydantic-ai";

struct Options {
    tasks: usize,
    clients: usize,
    settle: Duration,
}

fn options() -> Result<Options, String> {
    let env = |name: &str, default: f64| -> Result<f64, String> {
        match std::env::var(name) {
            Ok(v) => v
                .trim()
                .parse()
                .map_err(|_| format!("{name} must be a number, got {v:?}")),
            Err(_) => Ok(default),
        }
    };
    let mut tasks = env("SOAK_TASKS", 10_000.0)?;
    let mut clients = env("SOAK_CLIENTS", 8.0)?;
    let mut settle = env("SOAK_SETTLE_SECONDS", 11.0)?;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (key, inline) = match arg.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let slot = match key.as_str() {
            // cargo bench passes --bench to harness = false targets.
            "--bench" => continue,
            "--tasks" => &mut tasks,
            "--clients" => &mut clients,
            "--settle" => &mut settle,
            "-h" | "--help" => {
                return Err("usage: soak [--tasks N] [--clients N] [--settle SECONDS]".into())
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        };
        let value = inline
            .or_else(|| args.next())
            .ok_or_else(|| format!("{key} needs a value"))?;
        *slot = value
            .parse()
            .map_err(|_| format!("{key} must be a number, got {value:?}"))?;
    }
    if tasks < 2.0 || clients < 1.0 || settle < 0.0 {
        return Err("need --tasks >= 2, --clients >= 1, --settle >= 0".into());
    }
    Ok(Options {
        tasks: tasks as usize,
        clients: clients as usize,
        settle: Duration::from_secs_f64(settle),
    })
}

/// The worker under soak, its log in `tmp/worker.log`, its tasks in `tmp/artifacts`.
async fn start_worker(tmp: &Path) -> Result<Server, String> {
    let script = tmp.join("soak-child.sh");
    let hostile = tmp.join("soak-hostile.sh");
    for (path, text) in [(&script, CHILD_SCRIPT), (&hostile, HOSTILE_SCRIPT)] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, text).map_err(|e| e.to_string())?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
    }
    let log = std::fs::File::create(tmp.join("worker.log")).map_err(|e| e.to_string())?;
    let mut cmd = common::worker_command();
    cmd.env("AGENTDISPATCH_ARTIFACT_DIR", tmp.join("artifacts"))
        .env("AGENTDISPATCH_COMMAND_ALLOWLIST", "*")
        .env("AGENTDISPATCH_FRAMEWORKS_DIR", repo().join("frameworks"))
        .env(
            "AGENTDISPATCH_FRAMEWORK_COMMAND_SOAK_CHILD",
            format!("'{}'", script.display()),
        )
        .env(
            "AGENTDISPATCH_FRAMEWORK_COMMAND_SOAK_HOSTILE",
            format!("'{}'", hostile.display()),
        )
        .env(
            "AGENTDISPATCH_MAX_CONCURRENT_TASKS",
            MAX_CONCURRENT.to_string(),
        )
        .env(
            "AGENTDISPATCH_TASK_RETENTION_SECONDS",
            RETENTION_SECONDS.to_string(),
        )
        .env("RUST_LOG", "info")
        .stderr(Stdio::inherit());
    let worker = Server::start(cmd, Log::File(log)).await?;
    // No keep-alive: the samples should not count this client's socket.
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .expect("http client");
    worker
        .first_ping(&http, Duration::from_secs(20), Duration::from_millis(20))
        .await?;
    Ok(worker)
}

/// The pydantic-ai venv, made by `scripts/setup-frameworks.sh` when missing.
fn ensure_python_framework() -> Result<(), String> {
    let python = repo()
        .join("frameworks")
        .join(PYTHON_FRAMEWORK)
        .join(".venv/bin/python");
    if python.exists() {
        return Ok(());
    }
    println!(
        "{PYTHON_FRAMEWORK} has no venv: running scripts/setup-frameworks.sh {PYTHON_FRAMEWORK}"
    );
    let status = Command::new(repo().join("scripts/setup-frameworks.sh"))
        .arg(PYTHON_FRAMEWORK)
        .status()
        .map_err(|e| format!("scripts/setup-frameworks.sh: {e}"))?;
    ensure(status.success() && python.exists(), || {
        format!("scripts/setup-frameworks.sh {PYTHON_FRAMEWORK} failed ({status})")
    })
}

/// SIGTERM; the worker must exit with status 0 within 15 s.
fn stop(worker: &mut Server) -> Result<(), String> {
    let status = worker
        .terminate(Duration::from_secs(15))
        .map_err(|e| format!("the worker {e}"))?;
    ensure(status.success(), || {
        format!("the worker exited with {status} on SIGTERM")
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let opts = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = ensure_python_framework() {
        eprintln!("soak: {e}");
        return ExitCode::FAILURE;
    }
    let tmp = tempfile::Builder::new()
        .prefix("agentdispatch-soak-")
        .tempdir()
        .expect("temp dir");
    let mut worker = match start_worker(tmp.path()).await {
        Ok(w) => w,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::FAILURE;
        }
    };
    let pid = worker.pid();
    let baseline_at = BASELINE_TASKS.min(opts.tasks / 2);
    println!(
        "soak: {} tasks from {} clients against {BIN} (pid {pid}, {}); baseline after {baseline_at}; \
         retention {RETENTION_SECONDS} s, max {MAX_CONCURRENT} tasks, settle {:?}",
        opts.tasks,
        opts.clients,
        worker.url,
        opts.settle
    );
    let sh = Arc::new(Shared {
        url: worker.url.clone(),
        artifacts: tmp.path().join("artifacts"),
        pid,
        total: opts.tasks,
        began: Instant::now(),
        next: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        disk_checks: AtomicUsize::new(0),
        failures: Mutex::new(Vec::new()),
        stats: Mutex::new([Stat::default(); KINDS.len()]),
        records: Mutex::new(VecDeque::new()),
    });

    run_phase(&sh, opts.clients, baseline_at).await;
    let first_phase = sh.began.elapsed();
    match settle(&sh.url, opts.settle).await {
        Ok(d) => println!("baseline: all tasks left memory; settled {d:.1?}"),
        Err(e) => sh.fail(format!("before the baseline: {e}")),
    }
    let base = sample(pid);
    println!(
        "baseline after {baseline_at} tasks ({first_phase:.1?}): RSS {} kB, fds {}, threads {}, children {}, zombies {:?}",
        base.rss_kb, base.fds, base.threads, base.children, base.zombies
    );

    let second = Instant::now();
    run_phase(&sh, opts.clients, opts.tasks).await;
    let second_phase = second.elapsed();
    let wall = sh.began.elapsed();
    let run_time = first_phase + second_phase;
    let mid = sample(pid);
    match settle(&sh.url, opts.settle).await {
        Ok(d) => println!("end: all tasks left memory; settled {d:.1?}"),
        Err(e) => sh.fail(format!("at the end: {e}")),
    }
    let end = sample(pid);
    let folders = checks::scan_folders(&sh.artifacts, opts.tasks);
    let shutdown = stop(&mut worker);
    let pass = report::print(
        &sh,
        &report::Run {
            tasks: opts.tasks,
            baseline_at,
            run_time,
            second_phase,
            wall,
            base,
            mid,
            end,
            folders,
            shutdown,
        },
    );
    if pass {
        println!("PASS");
        println!(
            "(removing the temp dir and its {} task folders)",
            opts.tasks
        );
        let began = Instant::now();
        drop(tmp);
        println!("removed in {:.1?}", began.elapsed());
        ExitCode::SUCCESS
    } else {
        let kept = tmp.keep();
        println!(
            "FAIL (worker log and task folders kept in {})",
            kept.display()
        );
        ExitCode::FAILURE
    }
}
