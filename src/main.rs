//! The command line: `serve` (default), `run`, `frameworks`; logging set-up; exit codes.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use tokio::signal::unix::{signal, SignalKind};

use agentdispatch_worker::cli::{self, RunArgs};
use agentdispatch_worker::config::Config;
use agentdispatch_worker::frameworks::Registry;
use agentdispatch_worker::task::Worker;
use agentdispatch_worker::{http, reaper};

#[derive(Parser)]
#[command(
    name = "agentdispatch-worker",
    version,
    about = "Runs agent frameworks and allowlisted commands as supervised tasks for AWS Bedrock AgentCore Runtime."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve HTTP (the default).
    Serve,
    /// Run one payload locally, with no server; exit status 0 when it succeeds.
    Run {
        /// A payload JSON file, or - for stdin.
        file: Option<String>,
        /// Framework for agent.run.
        #[arg(long)]
        framework: Option<String>,
        /// Instruction for agent.run.
        #[arg(long)]
        instruction: Option<String>,
        /// Command line for command.run.
        #[arg(long)]
        command: Option<String>,
        /// Print events as NDJSON (the last line is the task.result event).
        #[arg(long)]
        json: bool,
        /// Session id: the conversation carries on from earlier runs of the same session.
        #[arg(long)]
        session: Option<String>,
    },
    /// List the frameworks found and where each comes from.
    Frameworks,
}

/// Where log lines go and how they look.
#[derive(Clone, Copy)]
enum Logs {
    /// The server: JSON lines on stdout (requestId, sessionId, taskId where known).
    JsonStdout,
    /// `run --json`: JSON lines on stderr, beside the NDJSON events on stdout.
    JsonStderr,
    /// `run` for a person: `warning: …` lines on stderr, like the rest of its output.
    Human,
}

fn init_logging(logs: Logs, default_level: &str) {
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level))
    };
    let json = || {
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_env_filter(filter())
    };
    match logs {
        Logs::JsonStdout => json().with_writer(std::io::stdout).init(),
        Logs::JsonStderr => json().with_writer(std::io::stderr).init(),
        Logs::Human => tracing_subscriber::fmt()
            .event_format(cli::HumanLog)
            .with_env_filter(filter())
            .with_writer(std::io::stderr)
            .init(),
    }
}

fn load() -> Result<(Config, Registry), ExitCode> {
    let fail = |e: agentdispatch_worker::config::ConfigError| {
        eprintln!("agentdispatch-worker: {e}");
        ExitCode::from(2)
    };
    let cfg = Config::from_env().map_err(fail)?;
    let reg = Registry::load(&cfg).map_err(fail)?;
    Ok((cfg, reg))
}

/// Keeps large buffers (a 10 MB answer, output, a read-back of events) in their own
/// mappings, returned to the system when freed. glibc otherwise raises its mmap threshold
/// after the first large free, and later large buffers stay in the heap: RSS then creeps.
fn bound_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator tunable; it is called before any thread starts.
    unsafe {
        nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

fn main() -> ExitCode {
    bound_allocator();
    let cli = Cli::parse();
    let (cfg, reg) = match load() {
        Ok(v) => v,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("agentdispatch-worker: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command.unwrap_or(Cmd::Serve) {
        Cmd::Frameworks => {
            print!("{}", cli::list_frameworks(&reg, &cfg));
            ExitCode::SUCCESS
        }
        Cmd::Serve => {
            init_logging(Logs::JsonStdout, "info");
            runtime.block_on(serve(cfg, reg))
        }
        Cmd::Run {
            file,
            framework,
            instruction,
            command,
            json,
            session,
        } => {
            init_logging(if json { Logs::JsonStderr } else { Logs::Human }, "warn");
            let args = RunArgs {
                file,
                framework,
                instruction,
                command,
                json,
                session,
            };
            runtime.block_on(run_once(cfg, reg, args))
        }
    }
}

fn prepare(cfg: &Config, reg: &Registry) {
    for w in &reg.warnings {
        tracing::warn!("{w}");
    }
    if reg.get(&cfg.default_framework).is_none() {
        let known: Vec<&str> = reg.iter().map(|f| f.name.as_str()).collect();
        tracing::warn!(
            "AGENTDISPATCH_AGENT_FRAMEWORK={} is not a known framework (known: {}); tasks that name no framework will fail",
            cfg.default_framework,
            known.join(", ")
        );
    }
    let entries = &cfg.command_allowlist;
    for w in entries
        .iter()
        .filter_map(agentdispatch_worker::command::warning)
    {
        tracing::warn!("{w}");
    }
    if entries.len() > 1 && entries.contains(&agentdispatch_worker::command::Entry::Any) {
        tracing::warn!("AGENTDISPATCH_COMMAND_ALLOWLIST holds * beside other entries: every command is allowed, the others are moot");
    }
    if let Err(e) = reaper::become_subreaper() {
        tracing::warn!(error = %e, "cannot become a child subreaper; escaped grandchildren may outlive their task");
    }
    if let Err(e) = std::fs::create_dir_all(&cfg.artifact_dir) {
        tracing::warn!(dir = %cfg.artifact_dir.display(), error = %e, "artifact directory cannot be created; tasks will fail until it can");
    }
    tokio::spawn(reaper::run());
}

async fn run_once(cfg: Config, reg: Registry, args: RunArgs) -> ExitCode {
    let payload = match cli::build_payload(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("agentdispatch-worker: {e}");
            return ExitCode::from(2);
        }
    };
    prepare(&cfg, &reg);
    // One payload, then exit: a warm parent would cost more than it saves.
    let mut cfg = cfg;
    cfg.warm = agentdispatch_worker::config::WarmPolicy::None;
    let worker = Worker::new(cfg, reg);
    let result = match cli::run(worker, payload, args.json).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("agentdispatch-worker: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if !args.json {
        cli::print_summary(&result);
    }
    if result.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn serve(cfg: Config, reg: Registry) -> ExitCode {
    prepare(&cfg, &reg);
    let addr = SocketAddr::new(cfg.host, cfg.port);
    let grace = cfg.shutdown_grace;
    let frameworks: Vec<String> = reg.iter().map(|f| f.name.clone()).collect();
    let worker = Worker::new(cfg, reg);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = match http::serve(worker.clone(), addr, async {
        let _ = stop_rx.await;
    })
    .await
    {
        Ok(s) => tokio::spawn(s),
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("agentdispatch-worker: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(frameworks = %frameworks.join(","), "worker ready");
    for w in &worker.warm.warnings {
        tracing::warn!("{w}");
    }
    worker.warm.start();
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        _ => {
            eprintln!("agentdispatch-worker: cannot install signal handlers");
            return ExitCode::FAILURE;
        }
    };
    let sig = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    let began = Instant::now();
    tracing::info!(signal = sig, "shutting down: cancelling running tasks");
    // Tasks first (their results are written and open answers receive them), then the server.
    let tasks_done = worker
        .shutdown(grace.saturating_sub(Duration::from_millis(500)))
        .await;
    if !tasks_done {
        tracing::warn!("some tasks did not finish within the shutdown grace");
    }
    let _ = stop_tx.send(());
    let left = grace
        .saturating_sub(began.elapsed())
        .max(Duration::from_millis(200));
    if tokio::time::timeout(left, server).await.is_err() {
        tracing::warn!("open connections did not close within the shutdown grace; exiting anyway");
    }
    tracing::info!(elapsedMs = began.elapsed().as_millis() as u64, "stopped");
    ExitCode::SUCCESS
}
