//! A warm parent's control channel (a `SOCK_SEQPACKET` socket, one JSON message a packet,
//! pipe ends passed with `SCM_RIGHTS`) and the fork request made over it.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::socket::{self, ControlMessage, MsgFlags};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::messages::{self, ForkRequest, Reply, Request};
use super::{Ready, FORK_TIMEOUT};
use crate::cgroup::TaskCgroups;
use crate::child::{self, Child, Spec};
use crate::{procfs, reaper};

/// The worker's end of a control channel.
pub(super) struct Conn(AsyncFd<OwnedFd>);

impl Conn {
    pub(super) fn new(fd: OwnedFd) -> io::Result<Conn> {
        let flags = OFlag::from_bits_truncate(fcntl(&fd, FcntlArg::F_GETFL)?);
        fcntl(&fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        // SAFETY: an OwnedFd keeps its descriptor open and unchanged while the AsyncFd owns it.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)?;
        Ok(Conn(fd))
    }

    /// Sends one message with file descriptors attached.
    pub(super) async fn send(&self, data: &[u8], fds: &[RawFd]) -> io::Result<()> {
        self.0
            .async_io(Interest::WRITABLE, |fd| {
                let iov = [IoSlice::new(data)];
                let cmsg = [ControlMessage::ScmRights(fds)];
                let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
                socket::sendmsg::<()>(fd.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None)
                    .map_err(io::Error::from)
            })
            .await
            .map(|_| ())
    }

    /// The next message, read as a `what` message (see `messages`); an error at the end of the
    /// channel or for a message that is not one.
    pub(super) async fn recv<T: serde::de::DeserializeOwned>(&self, what: &str) -> io::Result<T> {
        let mut buf = vec![0u8; 64 * 1024];
        let n = self
            .0
            .async_io(Interest::READABLE, |fd| {
                socket::recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(io::Error::from)
            })
            .await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the warm parent closed its control channel",
            ));
        }
        messages::parse(what, &buf[..n]).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

/// Longest fork request sent: well under what one `SOCK_SEQPACKET` message may hold (the
/// socket's send buffer, ~208 KiB by default), so that no request fails to send, which would
/// look like a broken channel and restart the parent. The environment is the worker's own
/// settings and ids bounded at 1 KiB each: a request past this is the task's fault.
pub(super) const MAX_FORK_REQUEST: usize = 64 * 1024;

/// Why a fork request gave no child.
pub(super) enum ForkError {
    /// The request is larger than [`MAX_FORK_REQUEST`]: the task fails, the parent is fine.
    TooLarge(usize),
    /// The parent answered no (e.g. it is not single-threaded).
    Refused(String),
    /// The channel failed: the parent is stuck or gone.
    Channel(io::Error),
}

/// Asks a ready parent to fork the task's child with `spec`'s pipes and environment, and
/// adopts the child it names once `/proc` shows it is the worker's.
///
/// With task `cgroups`, the request carries a fourth descriptor: `cgroup.procs` of a new
/// cgroup for the parent's next spare, which the parent moves in as soon as that spare has
/// started. Moving a process waits for an RCU grace period (6-20 ms when moves are far apart),
/// so it happens while the spare waits, not on a request's path. The child named by
/// the answer is normally the spare given the previous request's cgroup: it is the task's.
pub(super) async fn fork_on(
    ready: &Ready,
    spec: &Spec,
    cgroups: Option<&TaskCgroups>,
    busy: bool,
) -> Result<Child, ForkError> {
    let (ends, pipes) = child::pipes().map_err(ForkError::Channel)?;
    let mut env: std::collections::BTreeMap<String, String> = spec.env.iter().cloned().collect();
    env.insert(spec.marker.0.clone(), spec.marker.1.clone());
    let request = Request::Fork(ForkRequest {
        task_id: spec.marker.1.clone(),
        env,
        unset: spec.unset.clone(),
        cwd: spec.cwd.clone(),
        busy,
    });
    let bytes =
        serde_json::to_vec(&request).map_err(|e| ForkError::Channel(io::Error::other(e)))?;
    if bytes.len() > MAX_FORK_REQUEST {
        return Err(ForkError::TooLarge(bytes.len()));
    }
    let mut pending = ready.serial.lock().await;
    let next = cgroups.and_then(|c| match c.create("") {
        Ok(cg) => Some(cg),
        Err(e) => {
            tracing::warn!(error = %e, "cannot create a cgroup for the warm parent's next spare");
            None
        }
    });
    // The envelope goes into the pipe now (as much as it holds), so that the child reads it as
    // soon as it has its descriptors, with no wait for the supervisor. With task cgroups only
    // when the spare is already in its own (it must not run before it is in its cgroup).
    let stdin_sent = if cgroups.is_none() || pending.is_some() {
        pipes.stdin.try_write(&spec.stdin).unwrap_or(0)
    } else {
        0
    };
    // Until the new pid is registered, no orphan is reaped: it could be this child.
    let hold = reaper::hold();
    let mut fds = vec![
        ends.stdin.as_raw_fd(),
        ends.stdout.as_raw_fd(),
        ends.stderr.as_raw_fd(),
    ];
    if let Some(cg) = &next {
        fds.push(cg.procs_fd());
    }
    ready
        .conn
        .send(&bytes, &fds)
        .await
        .map_err(ForkError::Channel)?;
    drop(ends);
    let reply =
        match tokio::time::timeout(FORK_TIMEOUT, ready.conn.recv::<Reply>("fork reply")).await {
            Ok(r) => r.map_err(ForkError::Channel)?,
            Err(_) => {
                return Err(ForkError::Channel(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no answer within {}s", FORK_TIMEOUT.as_secs()),
                )))
            }
        };
    let (pid, pages_ahead, holder) = match reply {
        Reply::Refused { reason } => return Err(ForkError::Refused(reason)),
        Reply::Forked {
            pid,
            pages_ahead,
            holder,
        } => (pid, pages_ahead, holder),
    };
    let me = std::process::id() as i32;
    let parent = procfs::read_stat(pid).map(|s| s.ppid);
    if parent != Some(me) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        return Err(ForkError::Refused(format!(
            "its child {pid} has parent {parent:?}, not the worker (is the worker a child subreaper?)"
        )));
    }
    reaper::Owned::lock().insert(pid);
    // The holder's pidfd before the hold ends: until then no orphan is reaped, so the pid is
    // still the holder's (a child of the task, or re-parented to the worker if the task
    // already ended).
    let holder_pidfd = holder
        .filter(|h| {
            let ppid = procfs::read_stat(*h as i32).map(|s| s.ppid);
            ppid == Some(pid) || ppid == Some(me)
        })
        .and_then(Child::pidfd);
    drop(hold);
    // The previous request's cgroup is this child's if its spare moved in; the caller checks
    // (the parent's first spare had none, a move can fail).
    let cgroup = pending.take();
    *pending = next;
    let mut child = Child::adopt(pid as u32, pipes, ready.pid, holder, stdin_sent);
    child.holder_pidfd = holder_pidfd;
    child.cgroup = cgroup;
    child.pages_ahead = pages_ahead;
    Ok(child)
}
