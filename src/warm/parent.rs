//! One warm parent's life: started from its framework's command with the control channel on
//! fd 3, ready or not within a bound, restarted with backoff when it exits, stopped with the
//! worker.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use nix::libc;
use nix::sys::socket;
use tokio::process::Command;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use super::channel::Conn;
use super::messages::ParentHello;
use super::{
    Parent, Ready, Status, BACKOFF_MAX, BACKOFF_MIN, MARKER_SLOT, MARKER_VAR, READY_TIMEOUT,
    STABLE, WARM_FD, WARM_FD_VAR,
};
use crate::childlog;
use crate::reaper;
use crate::supervisor::lines::LineDecoder;

/// Runs `p`'s warm parent until the worker stops, restarting it with backoff.
pub(super) async fn keep_running(p: Arc<Parent>, shutdown: CancellationToken) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let began = Instant::now();
        let generation = *p.generation.borrow();
        p.started.store(generation, Ordering::SeqCst);
        p.status.send_replace(Status::Starting);
        let why = run_once(&p, &shutdown, generation).await;
        if shutdown.is_cancelled() {
            p.status.send_replace(Status::Stopped);
            tracing::info!(framework = %p.name, "warm parent stopped");
            return;
        }
        if *p.generation.borrow() != generation {
            // Replaced on purpose (`serve --dev`): the new one starts now.
            backoff = BACKOFF_MIN;
            continue;
        }
        if began.elapsed() >= STABLE {
            backoff = BACKOFF_MIN;
        }
        tracing::warn!(
            framework = %p.name,
            reason = %why,
            restartInMs = backoff.as_millis() as u64,
            "warm parent exited; restarting"
        );
        p.status.send_replace(Status::Down(why));
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            // The files were fixed: no need to wait out the backoff.
            _ = reloaded(&p, generation) => {
                backoff = BACKOFF_MIN;
                continue;
            }
            _ = shutdown.cancelled() => {
                p.status.send_replace(Status::Stopped);
                return;
            }
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Resolves once a reload is asked after `generation` (see `Pool::reload`).
async fn reloaded(p: &Parent, generation: u64) {
    let mut rx = p.generation.subscribe();
    if rx.wait_for(|g| *g != generation).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Starts the warm parent once (as of reload `generation`) and returns why it ended.
async fn run_once(p: &Parent, shutdown: &CancellationToken, generation: u64) -> String {
    let (ours, theirs) = match socket::socketpair(
        socket::AddressFamily::Unix,
        socket::SockType::SeqPacket,
        None,
        socket::SockFlag::SOCK_CLOEXEC,
    ) {
        Ok(pair) => pair,
        Err(e) => return format!("cannot create its control channel: {e}"),
    };
    let conn = match Conn::new(ours) {
        Ok(c) => c,
        Err(e) => return format!("cannot create its control channel: {e}"),
    };
    let mut cmd = Command::new(&p.argv[0]);
    // The warm parent's environment is what its forks inherit: minimal when children's are.
    if let Some(base) = &p.base_env {
        cmd.env_clear().envs(base.iter().map(|(k, v)| (k, v)));
    }
    cmd.args(&p.argv[1..])
        .envs(&p.env)
        .env(MARKER_VAR, "_".repeat(MARKER_SLOT))
        .env(WARM_FD_VAR, WARM_FD.to_string())
        .env("PYTHONUNBUFFERED", "1")
        .env_remove("AGENTDISPATCH_SESSION_DIR")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(cwd) = &p.cwd {
        cmd.current_dir(cwd);
    }
    let theirs_raw = theirs.as_fd().as_raw_fd();
    // SAFETY: only dup2 and fcntl run between fork and exec; both are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || inherit_at(theirs_raw, WARM_FD));
    }
    let began = Instant::now();
    let mut child = match reaper::spawn_owned(cmd) {
        Ok(c) => c,
        Err(e) => return format!("cannot start {}: {e}", p.argv[0]),
    };
    drop(theirs);
    let pid = child.id().unwrap_or(0);
    forward_output(&p.name, pid, child.stdout.take(), "stdout", p.log_rate);
    forward_output(&p.name, pid, child.stderr.take(), "stderr", p.log_rate);
    tracing::info!(framework = %p.name, pid, "warm parent starting");

    let ended = |status: io::Result<std::process::ExitStatus>| {
        reaper::release(pid as i32);
        match status {
            Ok(s) => format!("it exited with {s}"),
            Err(e) => format!("waiting for it failed: {e}"),
        }
    };
    let ready = tokio::select! {
        msg = conn.recv::<ParentHello>("ready") => msg,
        status = child.wait() => return ended(status),
        _ = shutdown.cancelled() => return stop(&mut child, pid).await,
        _ = reloaded(p, generation) => return replace(&mut child, pid).await,
        _ = tokio::time::sleep(READY_TIMEOUT) => {
            let _ = child.start_kill();
            return ended(child.wait().await).replace("it exited", &format!("not ready within {}s;", READY_TIMEOUT.as_secs()));
        }
    };
    let ParentHello::Ready(ready) = match ready {
        Ok(m) => m,
        Err(e) => {
            let _ = child.start_kill();
            let _ = ended(child.wait().await);
            return format!("no ready message: {e}");
        }
    };
    let threads = ready.threads;
    let tricks_off: Vec<String> = ready
        .tricks_off
        .iter()
        .map(|(trick, why)| format!("{trick}: {why}"))
        .collect();
    // Before "ready" is logged: whoever sees it finds the agent's state said too.
    match &ready.entrypoint_error {
        Some(why) if p.default => {
            tracing::error!(framework = %p.name, pid, error = %why, "the default framework's agent cannot load: its tasks fail until it is fixed");
            p.agents.failed(&p.name, why);
        }
        Some(why) => {
            tracing::warn!(framework = %p.name, pid, error = %why, "the framework's agent cannot load: its tasks fail until it is fixed");
            p.agents.failed(&p.name, why);
        }
        None => p.agents.loaded(&p.name),
    }
    tracing::info!(
        framework = %p.name,
        pid,
        readyMs = began.elapsed().as_millis() as u64,
        importMs = ready.import_ms,
        entrypoint = ready.entrypoint.as_deref().unwrap_or(""),
        threads,
        fork = ready.fork.as_str(),
        forkWhy = ready.fork_why.as_deref(),
        hugeMB = ready.huge_mb,
        immortal = ready.immortal,
        immortalWhy = ready.immortal_why.as_deref(),
        plugged = ready.plugged,
        tuning = ready.tuning.as_str(),
        runtime = %ready.runtime,
        tricks = %ready.tricks.join(","),
        tricksOff = %tricks_off.join("; "),
        "warm parent ready"
    );
    if threads > 1 {
        tracing::warn!(framework = %p.name, pid, threads, "warm parent is not single-threaded; its tasks run cold until it is");
    }
    let broken = CancellationToken::new();
    p.status.send_replace(Status::Ready(Arc::new(Ready {
        pid,
        conn,
        serial: tokio::sync::Mutex::new(None),
        broken: broken.clone(),
    })));
    tokio::select! {
        status = child.wait() => ended(status),
        _ = shutdown.cancelled() => stop(&mut child, pid).await,
        _ = reloaded(p, generation) => replace(&mut child, pid).await,
        _ = broken.cancelled() => {
            let _ = child.start_kill();
            let _ = ended(child.wait().await);
            "it was killed after a failed fork request".into()
        }
    }
}

/// Puts `fd` at `target` for the program a forked child execs (between fork and exec). dup2
/// clears close-on-exec on its copy, but when `fd` is `target` already it does nothing, and
/// the flag (set on every descriptor the worker makes) would close it at exec: it is cleared
/// by hand then.
fn inherit_at(fd: RawFd, target: RawFd) -> io::Result<()> {
    // SAFETY: dup2 and fcntl on descriptors of this process, no memory passed.
    let r = unsafe {
        if fd == target {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags == -1 {
                -1
            } else {
                libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC)
            }
        } else {
            libc::dup2(fd, target)
        }
    };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// SIGTERM, a short wait, then SIGKILL.
async fn stop(child: &mut tokio::process::Child, pid: u32) -> String {
    if pid > 1 {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if tokio::time::timeout(Duration::from_millis(500), child.wait())
        .await
        .is_err()
    {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
    reaper::release(pid as i32);
    "stopped with the worker".into()
}

/// Stops a parent being replaced (its framework's files changed).
async fn replace(child: &mut tokio::process::Child, pid: u32) -> String {
    stop(child, pid).await;
    "replaced: its framework's files changed".into()
}

/// Copies a warm parent's own output (its imports' warnings, a traceback) into the worker's
/// log: lines clipped and held to the child-log rate like a task's, so that an agent module
/// writing without end at import can neither fill the worker's memory nor drown its log.
fn forward_output<R>(framework: &str, pid: u32, pipe: Option<R>, stream: &'static str, rate: u32)
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    let Some(pipe) = pipe else { return };
    let framework = framework.to_string();
    tokio::spawn(async move {
        let mut lines = FramedRead::new(pipe, LineDecoder::new(childlog::MAX_LINE_BYTES));
        let mut limit = childlog::Limited::new(rate);
        let report = |limit: &mut childlog::Limited| {
            if let Some((n, total)) = limit.take_dropped() {
                tracing::warn!(framework = %framework, pid, stream, source = "warm parent", droppedLines = n, droppedTotal = total, "{n} lines of the warm parent's output were not logged (rate limit)");
            }
        };
        loop {
            // Lines held back are said within a few seconds even when no further line comes
            // (the parent keeps its pipes open while it lives).
            let next = if limit.holding() {
                match tokio::time::timeout(childlog::REPORT_EVERY, lines.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        report(&mut limit);
                        continue;
                    }
                }
            } else {
                lines.next().await
            };
            let Some(Ok(line)) = next else { break };
            let now = Instant::now();
            let passes = limit.admit(now, || true);
            if limit.due(now) {
                report(&mut limit);
            }
            if passes {
                let cut = line.truncated;
                let (text, _) = line.into_text();
                let (text, clipped) = childlog::clip(&text, cut);
                tracing::info!(framework = %framework, pid, stream, source = "warm parent", clipped, "{text}");
            }
        }
        report(&mut limit);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `fd` is closed at exec.
    fn cloexec(fd: RawFd) -> bool {
        // SAFETY: F_GETFD on a descriptor of this process.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        assert_ne!(flags, -1, "{}", io::Error::last_os_error());
        flags & libc::FD_CLOEXEC != 0
    }

    #[test]
    fn the_channel_survives_exec_whether_or_not_it_is_at_its_place_already() {
        let (a, b) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let (fd, other) = (a.as_raw_fd(), b.as_raw_fd());
        assert!(cloexec(fd) && cloexec(other));
        // At its place already: dup2 would do nothing and leave the flag set.
        inherit_at(fd, fd).unwrap();
        assert!(!cloexec(fd));
        // Elsewhere: the copy at `target` is inherited (the pipe's other end stands in for a
        // descriptor that was at the target).
        nix::fcntl::fcntl(
            &a,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .unwrap();
        inherit_at(fd, other).unwrap();
        assert!(!cloexec(other));
        assert!(cloexec(fd));
    }
}
