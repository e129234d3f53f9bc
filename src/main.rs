//! The command line: `serve` (default), `run`, `frameworks`, `init`; logging set-up; exit codes.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
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
    Serve(ServeArgs),
    /// Run one payload locally, with no server; exit status 0 when it succeeds.
    Run(RunArgs),
    /// List the frameworks found, where each comes from and which agent each runs.
    Frameworks(agentdispatch_worker::check::FrameworksArgs),
    /// Write a framework folder for your own agent, run by a shipped framework's runner.
    Init(agentdispatch_worker::init::InitArgs),
}

/// `serve`'s flags.
#[derive(clap::Args, Default)]
struct ServeArgs {
    /// Dev mode: reload a framework when its files change, and serve a playground page at /.
    #[arg(long)]
    dev: bool,
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
    if !matches!(logs, Logs::Human) {
        log_panics_as_json();
    }
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

/// A panic (a bug, in the worker or a library: it ends only the connection or task it
/// happened in) is logged as one JSON line like any other, not as the default hook's text and
/// multi-line backtrace, which would break a log reader that expects one object a line.
fn log_panics_as_json() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_string();
        // Captured only when RUST_BACKTRACE asks for it; one JSON string either way.
        let backtrace = std::backtrace::Backtrace::capture();
        if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
            tracing::error!(panic = %message, location, thread, backtrace = %backtrace, "panicked");
        } else {
            tracing::error!(panic = %message, location, thread, "panicked");
        }
    }));
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

/// A mistake in what the user gave (flags, payload, environment): exit status 2, as clap's own.
#[derive(Debug)]
struct Usage(anyhow::Error);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The message alone: `main` prints the causes after it, from `source`.
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for Usage {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Marks an error as the user's (exit status 2).
fn usage(e: impl Into<anyhow::Error>) -> anyhow::Error {
    anyhow::Error::new(Usage(e.into()))
}

fn main() -> ExitCode {
    // First, before any thread or child exists.
    let unsealed = agentdispatch_worker::seal::seal();
    bound_allocator();
    match run(Cli::parse(), &unsealed) {
        Ok(code) => code,
        Err(err) => {
            // The one place an error is printed: the chain on one line, then its exit status.
            eprintln!("agentdispatch-worker: {err:#}");
            if err.chain().any(|cause| cause.is::<Usage>()) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Everything the worker does for one command line; an error comes back with its context
/// for `main` to print, and a run that completes decides its own exit status.
fn run(cli: Cli, unsealed: &[String]) -> anyhow::Result<ExitCode> {
    // Writes files only: before the environment is read, which a fresh folder may not suit yet.
    if let Some(Cmd::Init(args)) = &cli.command {
        print!("{}", agentdispatch_worker::init::init(args).map_err(usage)?);
        return Ok(ExitCode::SUCCESS);
    }
    let cfg = Config::from_env().map_err(usage)?;
    let reg = Registry::load(&cfg).map_err(usage)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match cli.command.unwrap_or(Cmd::Serve(ServeArgs::default())) {
        Cmd::Frameworks(args) if args.check => {
            use agentdispatch_worker::check;
            let (text, ok) = check::report(&check::check_all(&reg, &cfg, &args));
            print!("{text}");
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Cmd::Frameworks(_) => {
            print!("{}", cli::list_frameworks(&reg, &cfg));
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Init(_) => unreachable!("init returned above"),
        Cmd::Serve(args) => {
            init_logging(Logs::JsonStdout, "info");
            unsealed.iter().for_each(|w| tracing::warn!("{w}"));
            let mut cfg = cfg;
            cfg.dev = args.dev;
            runtime.block_on(serve(cfg, reg))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run(args) => {
            init_logging(
                if args.json {
                    Logs::JsonStderr
                } else {
                    Logs::Human
                },
                "warn",
            );
            unsealed.iter().for_each(|w| tracing::warn!("{w}"));
            runtime.block_on(run_once(cfg, reg, args))
        }
    }
}

fn prepare(cfg: &Config, reg: &Registry) {
    for w in &reg.warnings {
        tracing::warn!("{w}");
    }
    // Which agent each framework runs, and which setting says so (docs/entrypoints.md).
    for fw in reg.iter() {
        if let Some(ep) = &fw.entrypoint {
            if ep.origin == agentdispatch_worker::entrypoints::Origin::Unset {
                // Nothing names its agent: a runner in another language, most likely.
                tracing::debug!(framework = %fw.name, "framework {} has no entrypoint set", fw.name);
                continue;
            }
            tracing::info!(framework = %fw.name, entrypoint = %ep.spec, from = %ep.origin, "framework {} runs {} (from {})", fw.name, ep.shown(), ep.origin);
        }
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
    for w in agentdispatch_worker::entrypoints::warnings(&cfg.entrypoint_allowlist) {
        tracing::warn!("{w}");
    }
    if let Err(e) = reaper::become_subreaper() {
        tracing::warn!(error = %e, "cannot become a child subreaper; escaped grandchildren may outlive their task");
    }
    if let Err(e) = std::fs::create_dir_all(&cfg.artifact_dir) {
        tracing::warn!(dir = %cfg.artifact_dir.display(), error = %e, "artifact directory cannot be created; tasks will fail until it can");
    }
    tokio::spawn(reaper::run());
    agentdispatch_worker::trace::start_from_env();
}

/// `run`: one payload with no server; exit status 0 when it succeeds, 1 when it fails.
async fn run_once(cfg: Config, reg: Registry, args: RunArgs) -> anyhow::Result<ExitCode> {
    let payload = cli::build_payload(&args).map_err(usage)?;
    prepare(&cfg, &reg);
    // One payload, then exit: a warm parent would cost more than it saves.
    let mut cfg = cfg;
    cfg.warm = agentdispatch_worker::config::WarmPolicy::None;
    let worker = Worker::new(cfg, reg);
    let framework = payload.framework.clone();
    let result = run_answering(&worker, payload, args.json).await;
    worker.release_cgroups();
    agentdispatch_worker::trace::shutdown(Duration::from_secs(2)).await;
    let result = result?;
    if args.json {
        // The answer last, as result.json holds it: the events alone never carry its text.
        println!("{}", serde_json::to_string(&result.record(true))?);
    } else {
        cli::print_summary(&result, framework.as_deref());
    }
    Ok(if result.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs `payload`; while the run asks (SPEC §14) and a person is at the terminal, puts its
/// questions to them and runs the answer, in the session the question named.
async fn run_answering(
    worker: &std::sync::Arc<Worker>,
    payload: agentdispatch_worker::wire::Payload,
    json: bool,
) -> anyhow::Result<agentdispatch_worker::wire::TaskResult> {
    let mut payload = payload;
    loop {
        let result = cli::run(worker.clone(), payload.clone(), json).await?;
        if !cli::ask::asks(&result) || !cli::ask::can_prompt(json) {
            return Ok(result);
        }
        let asked = result.clone();
        let answers = tokio::task::spawn_blocking(move || cli::ask::prompt(&asked)).await??;
        let Some(answers) = answers else {
            return Ok(result); // stdin ended: answered later, with --resume
        };
        payload = cli::ask::resume_payload(&payload, &result, answers);
    }
}

/// `serve`: the HTTP server until SIGTERM or SIGINT, then a bounded graceful stop.
async fn serve(cfg: Config, reg: Registry) -> anyhow::Result<()> {
    // Before anything listens: a signal with default disposition would end the worker abruptly.
    let mut term = signal(SignalKind::terminate()).context("cannot install signal handlers")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install signal handlers")?;
    prepare(&cfg, &reg);
    let addr = SocketAddr::new(cfg.host, cfg.port);
    let grace = cfg.shutdown_grace;
    let frameworks: Vec<String> = reg.iter().map(|f| f.name.clone()).collect();
    let worker = Worker::new(cfg, reg);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = http::serve(worker.clone(), addr, async {
        let _ = stop_rx.await;
    })
    .await
    .inspect_err(|e| tracing::error!(error = %e, "cannot start"))?;
    let server = tokio::spawn(server);
    tracing::info!(frameworks = %frameworks.join(","), "worker ready");
    for w in &worker.warm.warnings {
        tracing::warn!("{w}");
    }
    worker.warm.start();
    if worker.cfg.dev {
        if !worker.cfg.host.is_loopback() {
            tracing::warn!(host = %worker.cfg.host, "dev mode on an address that is not loopback: the playground page is open to whoever reaches it (AGENTDISPATCH_HOST=127.0.0.1 keeps it local)");
        }
        agentdispatch_worker::dev::watch(worker.clone())?;
    }
    tokio::spawn(agentdispatch_worker::retention::run(worker.clone()));
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
    worker.release_cgroups();
    // The spans of the tasks just ended, within what is left of the grace.
    let left = grace
        .saturating_sub(began.elapsed())
        .max(Duration::from_millis(200));
    agentdispatch_worker::trace::shutdown(left).await;
    tracing::info!(elapsedMs = began.elapsed().as_millis() as u64, "stopped");
    Ok(())
}
