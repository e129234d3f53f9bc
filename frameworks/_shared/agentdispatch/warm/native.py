"""The warm parent's calls into the C library through ``ctypes``: the parent-death signal, the task
id written over the environment block, the spare's ``clone(CLONE_PARENT)`` (``Cloner``) and the
memory holder (``Holder``)."""

from __future__ import annotations

import ctypes
import json
import mmap
import os
import signal
import sys

MARKER_VAR = "AGENTDISPATCH_TASK_ID"
_PR_SET_PDEATHSIG = 1
PAGE = os.sysconf("SC_PAGE_SIZE")
LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.getenv.restype = ctypes.c_void_p
LIBC.getenv.argtypes = [ctypes.c_char_p]
LIBC.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


def madvise(addr: int, length: int, advice: int) -> int:
    """madvise(2); its result (-1 where the kernel does not have ``advice``: nothing changes)."""
    return LIBC.madvise(addr, length, advice)


def die_with_parent() -> None:
    """SIGKILL this process when its parent dies."""
    LIBC.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


def marker_slot():
    """(address, length) of the task id's value in the process's original environment block.

    /proc/<pid>/environ shows that block, and the worker finds a task's escaped processes by the
    entry AGENTDISPATCH_TASK_ID=<id> there. A forked child does not exec, so it keeps its parent's
    block: the worker gives the warm parent a placeholder as long as the longest task id, and each
    task process writes its own id over its (copy-on-write) copy. None if there is no such value."""
    value = os.environ.get(MARKER_VAR, "")
    addr = LIBC.getenv(MARKER_VAR.encode())
    if not addr or not value:
        return None
    return addr, len(value.encode())


def write_marker(slot, task_id: str) -> None:
    """Set the task id in os.environ (for subprocesses) and over the placeholder (for /proc)."""
    os.environ[MARKER_VAR] = task_id
    if slot is None:
        return
    addr, size = slot
    data = task_id.encode()[:size]
    ctypes.memmove(addr, data + b"\0" * (size - len(data)), size)


def mapped_bytes(addr: int, span: int) -> bytes:
    """Up to ``span`` bytes from ``addr``, stopping where its mapping ends.

    The main thread's struct pthread may lie near the end of the mapping that holds it (ld.so
    allocates it with the static TLS; where, depends on the layout): reading a fixed span past
    it faulted, and the warm parent died of SIGSEGV at start-up now and then, before it was
    ready (seen as "the warm parent was restarted" in tests/warm/tasks.rs)."""
    with open("/proc/self/maps") as f:
        for line in f:
            lo, hi = (int(x, 16) for x in line.split(None, 1)[0].split("-"))
            if lo <= addr < hi:
                return ctypes.string_at(addr, min(span, hi - addr))
    return b""


class Cloner:
    """``fork()``, except that the child is the worker's: ``clone(CLONE_PARENT)``.

    os.fork() runs Python's fork hooks around glibc's fork(); this runs the same hooks
    (PyOS_BeforeFork, PyOS_AfterFork_Child/_Parent: the GIL and import lock re-made, the
    ``os.register_at_fork`` callbacks, e.g. ``random`` reseeding) around the raw system call.
    What glibc's fork() adds is its thread id cache: the child's ``struct pthread`` keeps this
    process's tid, which glibc uses for the calling thread's own id (mutex owners, signals to
    ``pthread_self()``). ``CLONE_CHILD_SETTID`` makes the kernel write the child's tid there, at
    the field's offset, found once at start-up as the one place that holds the tid both here and
    in an os.fork() child. glibc's own pthread_atfork handlers (native libraries') do not run;
    the parent is single-threaded, so no lock they guard is held at the fork.

    ``available`` is False, with ``why``, when the tuning has it off (``off`` is why) or any of it
    cannot be had (no unique offset, a failed clone): the spare is then made with two forks."""

    _CLONE_PARENT = 0x00008000
    _CLONE_CHILD_SETTID = 0x01000000
    # (clone, gettid) system call numbers; x86_64 passes child_tid 4th, the others 5th.
    _SYSCALLS = {"x86_64": (56, 186), "aarch64": (220, 178)}

    def __init__(self, off: str | None = None):
        self.available = False
        self.why = off or ""
        self.tid_addr = 0
        if off is not None:
            return
        machine = os.uname().machine
        if machine not in self._SYSCALLS:
            self.why = f"no clone() call known for {machine}"
            return
        self.machine = machine
        self.sys_clone, self.sys_gettid = self._SYSCALLS[machine]
        api = ctypes.PyDLL(None, use_errno=True)  # keeps the GIL: nothing else runs during the clone
        self.syscall = api.syscall
        self.syscall.restype = ctypes.c_long
        self.syscall.argtypes = [ctypes.c_long, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        self.before, self.child, self.parent = api.PyOS_BeforeFork, api.PyOS_AfterFork_Child, api.PyOS_AfterFork_Parent
        LIBC.pthread_self.restype = ctypes.c_void_p
        try:
            offset = self._tid_offset()
        except OSError as exc:
            self.why = f"cannot find glibc's thread id field: {exc}"
            return
        if offset is None:
            return
        self.tid_addr = LIBC.pthread_self() + offset
        self.available = True

    def _tids_at(self, span: int = 4096) -> set[int]:
        """Offsets in this thread's struct pthread that hold its tid (within its first ``span``
        bytes, as far as they are mapped)."""
        tid = LIBC.syscall(self.sys_gettid)
        raw = mapped_bytes(LIBC.pthread_self(), span)
        return {i for i in range(0, len(raw) - 3, 4) if int.from_bytes(raw[i : i + 4], sys.byteorder, signed=True) == tid}

    def _tid_offset(self) -> int | None:
        here = self._tids_at()
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.write(w, json.dumps(sorted(self._tids_at())).encode())
            finally:
                os._exit(0)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            data = f.read()
        os.waitpid(pid, 0)
        both = here & set(json.loads(data or b"[]"))
        if len(both) != 1:
            self.why = f"glibc's thread id field is not at one offset (candidates: {sorted(both)})"
            return None
        return both.pop()

    def fork(self) -> int:
        """0 in the child, its pid here; raises OSError (and sets available False) on failure."""
        flags = self._CLONE_PARENT | self._CLONE_CHILD_SETTID | int(signal.SIGCHLD)
        tid = ctypes.c_void_p(self.tid_addr)
        self.before()
        if self.machine == "x86_64":
            pid = self.syscall(self.sys_clone, flags, None, None, tid, None)
        else:
            pid = self.syscall(self.sys_clone, flags, None, None, None, tid)
        if pid == 0:
            self.child()
            return 0
        err = ctypes.get_errno() if pid < 0 else 0
        self.parent()
        if pid < 0:
            self.available = False
            self.why = f"clone(CLONE_PARENT) failed: {os.strerror(err) if err else 'error'}"
            raise OSError(err, self.why)
        return pid


class Holder:
    """A process that shares the spare's address space, so that the task's exit does not wait
    for the kernel to tear it down.

    A process's exit is reported to its parent only after its memory is released, and releasing
    a fork of a 75 MB parent (every page-table entry, every private copy) took 4-10 ms of the
    request's path here. The holder is cloned with CLONE_VM before the spare takes a task and
    runs no Python: its one call is pthread_mutex_lock() on a process-shared mutex that is
    locked, with the spare's clear_child_tid pointing at the lock word. When the task exits (or
    execs), the kernel writes 0 there and wakes the holder (set_tid_address(2)); by then the
    task has let go of the memory, so the holder is the last user: it returns, exits and does
    the tear-down, while the worker already has the task's exit status. It is cloned before the
    spare's setsid and before any task descriptor exists, so it is in no task's process group
    and holds none of its pipes; the worker is told its pid and does not count it as the task's.
    Its signals are blocked (SIGKILL aside): no Python handler ever runs in it."""

    _CLONE_VM = 0x00000100
    _SET_TID_ADDRESS = {"x86_64": 218, "aarch64": 96}
    _STACK = 1 << 16
    keep: list = []  # the mutex and stack, alive as long as this process

    @classmethod
    def start(cls) -> int | None:
        """Clone the holder; its pid, or None where this cannot be done (the task then exits as
        any process does)."""
        nr = cls._SET_TID_ADDRESS.get(os.uname().machine)
        if nr is None:
            return None
        libc = LIBC
        mutex = ctypes.create_string_buffer(64)
        attr = ctypes.create_string_buffer(64)
        if libc.pthread_mutexattr_init(attr) or libc.pthread_mutexattr_setpshared(attr, 1) or libc.pthread_mutex_init(mutex, attr):
            return None
        ctypes.c_int.from_buffer(mutex).value = 1  # locked, no owner: the holder waits on it
        stack = mmap.mmap(-1, cls._STACK, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        top = ctypes.addressof(ctypes.c_char.from_buffer(stack)) + cls._STACK - 64
        clone = libc.clone
        clone.restype = ctypes.c_int
        clone.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
        lock = ctypes.cast(libc.pthread_mutex_lock, ctypes.c_void_p)
        every = set(signal.Signals) - {signal.SIGKILL, signal.SIGSTOP}
        old = signal.pthread_sigmask(signal.SIG_BLOCK, every)
        try:
            pid = clone(lock, top, cls._CLONE_VM | int(signal.SIGCHLD), ctypes.addressof(mutex))
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        if pid <= 0:
            return None
        libc.syscall(ctypes.c_long(nr), ctypes.c_void_p(ctypes.addressof(mutex)))
        cls.keep = [mutex, stack, attr]
        return pid
