"""Making a spare: a process forked ahead of its task, the worker's own child, waiting on a private
socket until the parent hands it a task (``fork_spare``); and, in it, taking the task.

The spare must be the worker's child, so that the worker waits for it like a child it spawned
and it outlives this parent. One fork does it where it can: ``clone(CLONE_PARENT)`` makes the
spare a child of this parent's parent, the worker (native.Cloner). Otherwise the parent forks an
intermediate, which forks the spare and exits at once, so the spare is re-parented to the worker
(a child subreaper): a second copy of the whole address space, ~5 ms of CPU per task for a
LangGraph parent. The spare starts its own session, arms its parent-death signal against the
worker, and waits. A request hands it the task's descriptors (as 0/1/2), environment and working
directory.

Parent ↔ spare (a private SOCK_SEQPACKET pair, not the worker's protocol): the spare says
``spare <holder pid or 0> <pages it copies ahead>`` once it started; the parent passes it the
worker's request (with ``"learn"``) and the three descriptors; a learning task sends back the
pages it wrote as it exits (pages.report_pages).
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import sys
import time

from ..process import flush_std
from .native import MARKER_VAR, Cloner, Holder, die_with_parent, write_marker
from .pages import Learning, prefault, report_pages, writable_private_ranges


def close_all(fds) -> None:
    for f in fds:
        try:
            os.close(f)
        except OSError:
            pass


class Spare:
    """A forked process waiting to become a task (seen from the parent)."""

    def __init__(self, pid: int, conn: socket.socket):
        self.pid = pid
        self.conn = conn
        self.hello: list[bytes] | None = None  # what it said when it started, once read

    def greeting(self) -> list[bytes]:
        """The spare's first message (``spare <holder pid or 0> <pages it copies ahead>``), sent
        once it started its holder and its session; waits for it the first time."""
        if self.hello is None:
            self.hello = self.conn.recv(64).split()
        return self.hello

    def enter(self, cgroup: int) -> None:
        """Move the spare into the cgroup whose ``cgroup.procs`` is open as ``cgroup``.

        A move waits for an RCU grace period (6-20 ms here when moves are far apart): done now,
        while the spare copies its pages and before the next request is read, not on a
        request's path. After the spare's hello: its holder, cloned before it, stays out."""
        try:
            if self.greeting()[:1] == [b"spare"]:
                os.write(cgroup, str(self.pid).encode())
        except OSError as exc:
            sys.stderr.write(f"warm parent: spare {self.pid} cannot enter its task's cgroup ({exc}); the worker moves it\n")


class Maker:
    """What every spare is made with: the worker's channel (closed in the spare), the marker
    slot, the worker's pid, the page learning, the cloner, and whether holders are on."""

    def __init__(self, sock, slot, worker_pid: int, learning: Learning, cloner: Cloner, holders: bool):
        self.sock, self.slot, self.worker_pid = sock, slot, worker_pid
        self.learning, self.cloner, self.holders = learning, cloner, holders

    def fork_spare(self, cgroup: int | None, alone: bool = True) -> Spare | None:
        """Fork the next spare, as the worker's child (``cgroup``, the cgroup.procs it is to
        enter, is only closed in it: the parent moves it, see ``Spare.enter``).

        In the parent: the spare. In the spare, once it has been given a task: None."""
        flush_std()  # nothing buffered here may reach a task's pipes
        if self.cloner.available:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                pid = self.cloner.fork()
            except OSError as exc:
                sys.stderr.write(f"warm parent: {exc.strerror}; forking spares through an intermediate from now on\n")
                ours.close()
                theirs.close()
            else:
                if pid == 0:
                    self._spare_life(ours, theirs, None, cgroup, alone=alone)
                    return None
                theirs.close()
                return Spare(pid, ours)
        return self._fork_spare_twice(cgroup, alone)

    def _spare_life(self, ours, theirs, middle_pid, cgroup, report_w=None, alone=True) -> None:
        """In a new spare: drop the parent's channels, become the worker's, say so, copy the hot
        pages, and wait for a task. Returns only with a task; never returns into the parent's loop."""
        learning = self.learning
        try:
            ours.close()
            self.sock.close()
            if cgroup is not None:
                os.close(cgroup)
            for conn in learning.pending:
                conn.close()
            # A holder and pages copied ahead only for a task likely to run alone (the request before
            # ran alone): with other tasks running, the copies would sit idle in this spare and take
            # CPU from them (the task copies what it writes as it writes it), and finished tasks'
            # memory would pile up in holders that tear down beside the running tasks (4 clients:
            # peak PSS 108-112 MB with holders, 85-91 without, at the same rate).
            # The holder before setsid, so that it is in no task's process group; and not with the
            # intermediate, whose report pipe it would hold open.
            holder = Holder.start() if self.holders and report_w is None and alone else None
            become_spare(middle_pid, self.worker_pid)
            ahead = learning.ranges if alone else []
            theirs.send(f"spare {holder or 0} {sum(count for _, count in ahead)}".encode())
            # The parent's layout, for a task that reports what it wrote (the first few only).
            layout = writable_private_ranges() if learning.wants_more() else []
            prefault(ahead)
            if report_w is not None:
                os.write(report_w, f"{os.getpid()}\n".encode())
                os.close(report_w)
        except BaseException as exc:  # noqa: BLE001
            try:
                if report_w is not None:
                    os.write(report_w, f"error {type(exc).__name__}: {exc}\n".encode())
                else:
                    sys.stderr.write(f"warm parent: a spare did not start: {type(exc).__name__}: {exc}\n")
            finally:
                os._exit(127)
        try:
            wait_for_task(theirs, self.slot, layout)
        except BaseException:  # noqa: BLE001
            os._exit(127)

    def _fork_spare_twice(self, cgroup: int | None, alone: bool = True) -> Spare | None:
        """Fork the next spare through an intermediate, so that it re-parents to the worker."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        report_r, report_w = os.pipe()
        middle = os.fork()
        if middle == 0:
            try:
                middle_pid = os.getpid()
                if os.fork() != 0:
                    os._exit(0)
                os.close(report_r)
            except BaseException:  # noqa: BLE001
                os._exit(127)
            self._spare_life(ours, theirs, middle_pid, cgroup, report_w, alone)
            return None
        os.close(report_w)
        theirs.close()
        chunks = []
        while chunk := os.read(report_r, 4096):
            chunks.append(chunk)
        os.close(report_r)
        os.waitpid(middle, 0)
        text = b"".join(chunks).decode("utf-8", "replace").strip()
        if not text.isdigit():
            sys.stderr.write(f"warm parent: a spare did not start: {text or 'no word from it'}\n")
            ours.close()
            return None
        return Spare(int(text), ours)


def become_spare(middle_pid: int | None, worker_pid: int) -> None:
    """Own session; once the worker's child (at once when cloned, after the intermediate's exit
    otherwise), die with it."""
    os.setsid()
    if middle_pid is not None:
        deadline = time.monotonic() + 5
        while os.getppid() == middle_pid and time.monotonic() < deadline:
            time.sleep(0.0002)
    die_with_parent()
    if os.getppid() != worker_pid:  # not the worker's child (or it died): useless
        os._exit(0)


def wait_for_task(conn: socket.socket, slot, layout) -> None:
    """Block until the parent hands over a task, then take its stdio, environment, directory.
    The request was read and checked by the parent (messages.ForkRequest) before it came here."""
    msg, fds, _flags, _addr = socket.recv_fds(conn, 1 << 20, 3)
    if not msg or len(fds) != 3:
        os._exit(0)  # the parent is gone
    request = json.loads(msg)
    for target, f in enumerate(fds):
        os.dup2(f, target)
    close_all(f for f in fds if f > 2)
    env = request.get("env") or {}
    for key in request.get("unset") or []:
        os.environ.pop(str(key), None)
    for key, value in env.items():
        if key != MARKER_VAR:
            os.environ[str(key)] = str(value)
    write_marker(slot, str(request.get("taskId") or env.get(MARKER_VAR) or ""))
    cwd = request.get("cwd")
    try:
        if cwd:
            os.chdir(cwd)
    except OSError as exc:
        sys.stderr.write(f"warm child: cannot enter {cwd}: {exc}\n")
        sys.stderr.flush()
        os._exit(127)
    if request.get("learn"):
        atexit.register(report_pages, conn, layout)
    else:
        conn.close()
