//! A task's child process as the supervisor watches it: what to run ([`Spec`]), its pid, its
//! three pipes (created by the worker, so that a spawned child and one forked by a warm parent
//! look the same), and a way to wait for its exit status. Its own room, so that the warm
//! parents hand over a child without importing the supervisor.
//!
//! A spawned child is tokio's. An adopted child was forked by a warm parent and re-parented to
//! the worker (a child subreaper); it is waited for through a pidfd, and its pid is registered
//! with the [`reaper`] so that nothing else reaps it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::libc;
use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;
use tokio::process::Command;

use crate::cgroup::Cgroup;
use crate::reaper;

/// What to run, and how the supervisor watches it.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Program and arguments (no shell).
    pub argv: Vec<String>,
    /// Working directory.
    pub cwd: Option<PathBuf>,
    /// Environment added to the worker's own.
    pub env: Vec<(String, String)>,
    /// Variables of the worker's environment the child must not see.
    pub unset: Vec<String>,
    /// When set, the child's environment starts from these instead of the worker's.
    pub base_env: Option<Vec<(String, String)>>,
    /// `NAME=value` set in the child's environment and looked for in escaped processes.
    pub marker: (String, String),
    /// Bytes written to stdin before it is closed.
    pub stdin: Vec<u8>,
    /// When to stop the child.
    pub deadline: Duration,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// SIGTERM → SIGKILL grace.
    pub kill_grace: Duration,
    /// Longest line kept whole.
    pub max_line: usize,
}

/// The child's ends of its three pipes: stdin (read end), stdout and stderr (write ends).
pub struct ChildEnds {
    /// Read end of stdin.
    pub stdin: OwnedFd,
    /// Write end of stdout.
    pub stdout: OwnedFd,
    /// Write end of stderr.
    pub stderr: OwnedFd,
}

/// The worker's ends of the child's pipes.
pub struct Pipes {
    /// Where the envelope is written.
    pub stdin: pipe::Sender,
    /// The child's stdout.
    pub stdout: pipe::Receiver,
    /// The child's stderr.
    pub stderr: pipe::Receiver,
}

/// Creates the three pipes of one child (close-on-exec on every end).
pub fn pipes() -> io::Result<(ChildEnds, Pipes)> {
    let (in_r, in_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let (out_r, out_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let (err_r, err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let ours = Pipes {
        stdin: pipe::Sender::from_owned_fd(in_w)?,
        stdout: pipe::Receiver::from_owned_fd(out_r)?,
        stderr: pipe::Receiver::from_owned_fd(err_r)?,
    };
    let theirs = ChildEnds {
        stdin: in_r,
        stdout: out_w,
        stderr: err_w,
    };
    Ok((theirs, ours))
}

enum Kind {
    Spawned(tokio::process::Child),
    Adopted(Option<AsyncFd<OwnedFd>>),
}

/// A running child of the worker.
pub struct Child {
    pid: u32,
    kind: Kind,
    /// The worker's ends of its pipes (taken by the supervisor).
    pub pipes: Option<Pipes>,
    /// How it started, for the log: `None` when spawned, the warm parent's pid when forked.
    pub forked_from: Option<u32>,
    /// A forked child's memory holder (the warm parent's `native.Holder`), not a task process.
    pub holder: Option<u32>,
    /// The holder as a pidfd, opened while it could not yet have been reaped: signalled once
    /// the task's leader is reaped (see [`Child::kill_holder`]).
    pub holder_pidfd: Option<OwnedFd>,
    /// How many bytes of `Spec::stdin` are in its stdin pipe already.
    pub stdin_sent: usize,
    /// The task's cgroup, when it has one (taken by the supervisor).
    pub cgroup: Option<Cgroup>,
    /// For a warm child: how many of its parent's pages its spare copied before it was given
    /// the task, as the warm parent said.
    pub pages_ahead: Option<u64>,
}

/// Moves a freshly forked child into its task's cgroup by writing `0` (itself) to the cgroup's
/// open `cgroup.procs`, before it runs a line of its own. A failure is not the child's: it runs
/// anyway, and the runner (`in_its_cgroup`) sees it is not in the cgroup.
fn enter_cgroup(procs: RawFd) {
    // SAFETY: write(2) on a descriptor the parent opened, from a buffer that outlives the call.
    unsafe {
        libc::write(procs, b"0".as_ptr().cast(), 1);
    }
}

impl Child {
    /// Spawns `spec.argv` without a shell in a new process group, on fresh pipes, with the
    /// parent-death signal set ([`reaper::spawn_owned`]), in `cgroup` when given (it enters it
    /// before it execs).
    pub fn spawn(spec: &Spec, cgroup: Option<Cgroup>) -> io::Result<Child> {
        let (ends, pipes) = pipes()?;
        let mut cmd = Command::new(&spec.argv[0]);
        if let Some(base) = &spec.base_env {
            cmd.env_clear().envs(base.iter().map(|(k, v)| (k, v)));
        }
        cmd.args(&spec.argv[1..])
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .env(&spec.marker.0, &spec.marker.1)
            .stdin(Stdio::from(ends.stdin))
            .stdout(Stdio::from(ends.stdout))
            .stderr(Stdio::from(ends.stderr))
            .process_group(0)
            .kill_on_drop(true);
        let procs = cgroup.as_ref().map(Cgroup::procs_fd);
        if let Some(fd) = procs {
            // SAFETY: the closure only calls write, which is async-signal-safe.
            unsafe {
                cmd.pre_exec(move || {
                    enter_cgroup(fd);
                    Ok(())
                });
            }
        }
        if let Some(cwd) = &spec.cwd {
            cmd.current_dir(cwd);
        }
        for k in &spec.unset {
            cmd.env_remove(k);
        }
        let child = reaper::spawn_owned(cmd)?;
        let pid = child.id().unwrap_or(0);
        Ok(Child {
            pid,
            kind: Kind::Spawned(child),
            pipes: Some(pipes),
            forked_from: None,
            holder: None,
            holder_pidfd: None,
            stdin_sent: 0,
            cgroup,
            pages_ahead: None,
        })
    }

    /// Moves an adopted child into the task's cgroup. Only for a child that has not run its
    /// own code yet: a warm child waits for its envelope on stdin, so this is called after
    /// the fork answer and before the supervisor writes the envelope. On an error the child
    /// runs without a cgroup, as everywhere cgroups are not writable.
    pub fn enter_cgroup(&mut self, cgroup: Cgroup) -> io::Result<()> {
        cgroup.add(self.pid)?;
        self.cgroup = Some(cgroup);
        Ok(())
    }

    /// A pidfd for `pid`, when the kernel has them.
    pub fn pidfd(pid: u32) -> Option<OwnedFd> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        // SAFETY: the kernel just returned this descriptor, and nothing else owns it.
        (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }

    /// Adopts a process that was re-parented to the worker, whose pid the caller registered
    /// with [`reaper::Owned`] before it could be reaped.
    pub fn adopt(
        pid: u32,
        pipes: Pipes,
        forked_from: u32,
        holder: Option<u32>,
        stdin_sent: usize,
    ) -> Child {
        let pidfd = Child::pidfd(pid).and_then(|owned| {
            // SAFETY: an OwnedFd keeps its descriptor open and unchanged while the AsyncFd owns it.
            unsafe { AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE) }.ok()
        });
        Child {
            pid,
            kind: Kind::Adopted(pidfd),
            pipes: Some(pipes),
            forked_from: Some(forked_from),
            holder,
            holder_pidfd: None,
            stdin_sent,
            cgroup: None,
            pages_ahead: None,
        }
    }

    /// SIGKILL to the memory holder, once the task's leader is reaped. A holder exits by itself
    /// right after its task; one the task stopped (SIGSTOP) or otherwise kept from waking
    /// would hold the task's whole address space, outside the task's cgroup, until the worker
    /// stops. Through its pidfd: never another process that took a reused pid.
    pub fn kill_holder(&mut self) {
        let Some(fd) = self.holder_pidfd.take() else {
            return;
        };
        // SAFETY: pidfd_send_signal on a pidfd we own, with no siginfo and no flags.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
        }
    }

    /// The child's pid (its process group id too).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits for the exit status.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        match &mut self.kind {
            Kind::Spawned(child) => child.wait().await,
            Kind::Adopted(pidfd) => loop {
                let mut raw = 0;
                // SAFETY: waitpid on our own child's pid with a valid status pointer.
                let r = unsafe { libc::waitpid(self.pid as libc::pid_t, &mut raw, libc::WNOHANG) };
                if r == self.pid as libc::pid_t {
                    return Ok(ExitStatus::from_raw(raw));
                }
                if r < 0 {
                    return Err(io::Error::last_os_error());
                }
                match pidfd {
                    Some(fd) => {
                        let mut ready = fd.readable().await?;
                        ready.clear_ready();
                    }
                    // No pidfd (a kernel before 5.3): look again shortly.
                    None => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            },
        }
    }

    /// SIGKILL to the child alone (used only when its group id is unsafe to signal).
    pub fn start_kill(&mut self) {
        match &mut self.kind {
            Kind::Spawned(child) => {
                let _ = child.start_kill();
            }
            Kind::Adopted(_) => {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(self.pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}
