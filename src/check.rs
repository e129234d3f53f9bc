//! `agentdispatch-worker frameworks --check`: each framework's agent loaded (imported and
//! built, never run) in a child started as its tasks are (its command, folder, venv and
//! environment), so that a broken agent is found before a deployment serves it.
//!
//! The child is told by `AGENTDISPATCH_CHECK=1`; the shared Python helper then loads the agent
//! through the runner's own `runner.load_agent` and answers with one `task.result` line (what
//! it loaded) and exit 0, or its failure as a task would report it (a one-line `error` and an
//! `errorCode`) and exit 1. A runner not on the helper simply runs with an empty instruction.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::frameworks::{Framework, Launch, Registry};
use crate::protocol::{classify, ChildLine};

/// The variable that puts a Python runner in check mode.
pub const CHECK_VAR: &str = "AGENTDISPATCH_CHECK";

/// `frameworks`' flags (the doc comments are its `--help`).
#[derive(Debug, Default, Clone, clap::Args)]
pub struct FrameworksArgs {
    /// Load each framework's agent in a child (import and build, no run); exit 1 naming each
    /// that fails.
    #[arg(long)]
    pub check: bool,
    /// Only these frameworks (with --check).
    pub names: Vec<String>,
    /// Seconds each check may take.
    #[arg(long, default_value_t = 120.0)]
    pub timeout: f64,
}

/// How one framework's check went.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The framework.
    pub name: String,
    /// Whether its agent loaded.
    pub ok: bool,
    /// What loaded, or what failed (one line, with the error code when the child gave one).
    pub line: String,
}

/// Checks every command framework (or those `names`), all at once; in name order.
pub fn check_all(reg: &Registry, cfg: &Config, args: &FrameworksArgs) -> Vec<Checked> {
    let timeout = Duration::from_secs_f64(args.timeout.clamp(1.0, 3600.0));
    let mut out = Vec::new();
    let mut running = Vec::new();
    for name in &args.names {
        if reg.get(name).is_none() {
            out.push(Checked {
                name: name.clone(),
                ok: false,
                line: "no such framework".into(),
            });
        }
    }
    for fw in reg.iter() {
        if !args.names.is_empty() && !args.names.contains(&fw.name) {
            continue;
        }
        if let Launch::Command { .. } = fw.launch {
            running.push((fw.name.clone(), start(fw, cfg)));
        }
    }
    let deadline = Instant::now() + timeout;
    for (name, started) in running {
        let (ok, line) = match started {
            Err(e) => (false, e),
            Ok((pid, rx)) => {
                match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(answer) => answer,
                    Err(_) => {
                        // The check's own child, by the pid it was started with.
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid as i32),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                        let _ = rx.recv();
                        (
                            false,
                            format!("did not finish within {}s", timeout.as_secs()),
                        )
                    }
                }
            }
        };
        out.push(Checked { name, ok, line });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

type Answer = mpsc::Receiver<(bool, String)>;

/// Starts `fw`'s check child; its pid and where its verdict comes.
fn start(fw: &Framework, cfg: &Config) -> Result<(u32, Answer), String> {
    let Launch::Command { argv, cwd, env } = &fw.launch else {
        return Err("not a command".into());
    };
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    if let Some(kept) = cfg.child_env.kept() {
        cmd.env_clear().envs(kept);
    }
    cmd.envs(env)
        .env(CHECK_VAR, "1")
        .env(crate::entrypoints::APPROVED_VAR, "")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", argv[0]))?;
    let pid = child.id();
    let envelope = serde_json::json!({"taskType": "agent.check", "framework": fw.name, "instruction": "", "input": {}});
    if let Some(mut stdin) = child.stdin.take() {
        let _ = writeln!(stdin, "{envelope}");
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(match child.wait_with_output() {
            Ok(out) => verdict(out.status, &out.stdout, &out.stderr),
            Err(e) => (false, format!("waiting for it failed: {e}")),
        });
    });
    Ok((pid, rx))
}

/// The check child's verdict: its result line, else its last stderr line.
fn verdict(status: std::process::ExitStatus, stdout: &[u8], stderr: &[u8]) -> (bool, String) {
    let result = String::from_utf8_lossy(stdout)
        .lines()
        .rev()
        .find_map(|l| match classify(l) {
            ChildLine::Result(r) => Some(r),
            _ => None,
        });
    let stderr = String::from_utf8_lossy(stderr);
    let last_err = stderr.lines().rev().find(|l| !l.trim().is_empty());
    match result {
        Some(r) if status.success() && !r.failed => {
            (true, r.output.unwrap_or_else(|| "loaded".into()))
        }
        Some(r) if r.error.is_some() => {
            let first = r.error.unwrap_or_default();
            let first = first.lines().next().unwrap_or("").to_string();
            let code = r.error_code.map_or("", |c| c.as_str());
            (
                false,
                format!("{code}: {first}")
                    .trim_start_matches(": ")
                    .to_string(),
            )
        }
        _ if status.success() => (true, "exited 0".into()),
        _ => (
            false,
            format!(
                "exited with {status}{}",
                last_err.map_or(String::new(), |l| format!(": {l}"))
            ),
        ),
    }
}

/// The check's report for a person; `true` when every agent loaded.
pub fn report(checked: &[Checked]) -> (String, bool) {
    let mut text = String::new();
    for c in checked {
        let mark = if c.ok { "ok    " } else { "FAILED" };
        text.push_str(&format!("{mark} {:<16} {}\n", c.name, c.line));
    }
    let failed: Vec<&str> = checked
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.name.as_str())
        .collect();
    if !failed.is_empty() {
        text.push_str(&format!(
            "{} of {} failed: {}\n",
            failed.len(),
            checked.len(),
            failed.join(", ")
        ));
    }
    (text, failed.is_empty())
}
