//! What the worker keeps from its own children, set once at start, before any thread or child
//! exists: its memory and environment (`/proc/<worker>/environ`, `mem`), and the descriptors it
//! inherited from whoever started it.

use std::io;

use nix::libc;

/// `close_range(2)`'s flag: mark the range close-on-exec instead of closing it.
const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;

/// Makes the worker non-dumpable and every inherited descriptor above stderr close-on-exec;
/// what could not be done, in words, for the log.
pub fn seal() -> Vec<String> {
    let mut failed = Vec::new();
    // A non-dumpable process's /proc files (environ, mem, maps, fd) are readable only with
    // CAP_SYS_PTRACE: a child of the same uid, with AGENTDISPATCH_CHILD_ENV=minimal, cannot
    // read the worker's environment through /proc/$PPID/environ. Children are dumpable again
    // after their exec, so the worker still reads theirs (the task marker).
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        failed.push(format!(
            "cannot make the worker non-dumpable ({e}): its children can read its environment through /proc"
        ));
    }
    if let Err(e) = cloexec_inherited() {
        failed.push(format!(
            "cannot mark inherited descriptors close-on-exec ({e}): its children may inherit them"
        ));
    }
    failed
}

/// Marks fds 3 and above close-on-exec: whatever the worker's own starter left open (a
/// socket, a log file, a pipe) must not reach every task. The worker's own descriptors are
/// all opened close-on-exec already; the ones a child should get are handed over explicitly.
fn cloexec_inherited() -> io::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on descriptors.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        return Ok(());
    }
    // A kernel before 5.11: one by one, from /proc.
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: F_GETFD/F_SETFD on a descriptor number only read and set its flags; a number
        // that closed meanwhile (read_dir's own) fails harmlessly.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
    Ok(())
}
