"""Run a command and write the CPU seconds it cost, its descendants included, to a file.

    python3 scripts/cputime.py OUT_FILE COMMAND [ARGS…]

scripts/test.sh runs each suite through this. A process that outlives its parent (a worker's warm
parent once the test has stopped the worker, say) would be re-parented to init and its CPU lost
to any `time`; so this process is a child subreaper (PR_SET_CHILD_SUBREAPER): every descendant
that ends up orphaned becomes its child, is reaped here, and counts. OUT_FILE gets one line,
"<user> <system>" in seconds. The exit status is the command's (128 + N for a signal N).
"""

import ctypes
import os
import resource
import sys

PR_SET_CHILD_SUBREAPER = 36


def main() -> int:
    out, command = sys.argv[1], sys.argv[2:]
    if not command:
        sys.exit("usage: cputime.py OUT_FILE COMMAND [ARGS…]")
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.stderr.write(f"cputime: prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}\n")
    # posix_spawnp, not subprocess.Popen: a Popen object that is dropped at once reaps its child
    # in __del__ when the child has already ended (a test binary with no tests, on a loaded
    # machine), and the loop below then found no child and reported exit status 1.
    try:
        main_pid = os.posix_spawnp(command[0], command, os.environ)
    except OSError as e:
        sys.stderr.write(f"cputime: cannot run {command[0]}: {e}\n")
        with open(out, "w") as f:
            f.write("0.00 0.00\n")
        return 127
    status = 1
    while True:  # reap the command and whatever is re-parented here until the command has ended
        try:
            pid, wait_status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == main_pid:
            status = os.waitstatus_to_exitcode(wait_status)
            break
    while True:  # orphans that already ended; those still running are not waited for
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out, "w") as f:
        f.write(f"{usage.ru_utime:.2f} {usage.ru_stime:.2f}\n")
    return status if status >= 0 else 128 - status


if __name__ == "__main__":
    sys.exit(main())
