"""Warm parent of agentdispatch-worker (SPEC §6.3; README "Warm starts").

``agentdispatch.main`` calls ``serve`` when the worker started the runner with
``AGENTDISPATCH_WARM_FD``: the runner has imported its framework, ``serve`` imports the manifest's
entrypoint (and calls the runner's ``warmup``), reports ready on the control socket, and then hands
each task a fresh forked process. ``serve`` returns only in that process, which goes on exactly as
a cold child: it reads the envelope on stdin and writes the protocol on stdout.

The control socket (SOCK_SEQPACKET, one JSON object per message):
  parent → worker, once:  {"type": "ready", "pid", "entrypoint", "threads", "importMs", "fork", "hugeMB", "immortal", "plugged"}
  worker → parent:        {"op": "fork", "taskId", "env": {…}, "cwd"} + SCM_RIGHTS [stdin, stdout, stderr]
                          (+ the next task's cgroup.procs, with task cgroups: the next spare
                          is moved in before the next request is read)
  parent → worker:        {"ok": true, "pid"}  or  {"ok": false, "reason"}

The task process is forked ahead of time (a "spare"), so a request costs a message, not a fork.
The spare must be the worker's own child, so that the worker waits for it like a child it
spawned and it outlives this parent. One fork does it where it can: ``clone(CLONE_PARENT)``
makes the spare a child of this parent's parent, the worker (see ``_Cloner``). Otherwise the
parent forks an intermediate, which forks the spare and exits at once, so the spare is
re-parented to the worker (a child subreaper): a second copy of the whole address space, ~5 ms
of CPU per task for a LangGraph parent. The spare starts its own session, arms its parent-death
signal against the worker, and waits on a private socket. A request hands it the task's
descriptors (as 0/1/2), environment and working directory; the parent answers with the spare's
pid and forks the next spare.

The parent forks only while it is single-threaded (a fork copies only the calling thread: locks
held by another thread stay locked forever in the child); otherwise it refuses with the reason and
the worker starts the task cold.
"""

from __future__ import annotations

import atexit
import bisect
import ctypes
import gc
import json
import mmap
import os
import signal
import socket
import sys
import time
from array import array

from .process import flush_std

WARM_FD_VAR = "AGENTDISPATCH_WARM_FD"
MARKER_VAR = "AGENTDISPATCH_TASK_ID"
CLONE_VAR = "AGENTDISPATCH_WARM_CLONE"  # "0": spares through an intermediate fork (see _Cloner)
HOLDER_VAR = "AGENTDISPATCH_WARM_HOLDER"  # "0": no memory holder (see _Holder)
HUGE_VAR = "AGENTDISPATCH_WARM_HUGE"  # "0": the parent's memory stays in 4 KB pages (see _collapse_heap)
IMMORTAL_VAR = "AGENTDISPATCH_WARM_IMMORTAL"  # "0": the parent's objects keep their reference counts (see immortalize)
_PR_SET_PDEATHSIG = 1
_MADV_POPULATE_WRITE = 23  # Linux 5.14
_MADV_COLLAPSE = 25  # Linux 6.1
_MADV_NOHUGEPAGE = 15
_PAGE = os.sysconf("SC_PAGE_SIZE")
# Native thread pools that start at import would make the parent unsafe to fork (a fork copies
# only the calling thread): OpenBLAS (numpy, which crewai imports) starts cores-1 threads unless
# told otherwise. Set only when the user did not set them; forked tasks inherit one BLAS thread.
SINGLE_THREAD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# Tasks whose written pages are reported back (see _Learning); the union is pre-faulted in spares.
LEARN_TASKS = 3
# A page is copied in advance when at least this many of the learners wrote it: pages only one
# task wrote (its own allocations, its own data) are copied for nothing by every other task.
LEARN_QUORUM = 2
_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.getenv.restype = ctypes.c_void_p
_LIBC.getenv.argtypes = [ctypes.c_char_p]
_LIBC.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


def _die_with_parent() -> None:
    """SIGKILL this process when its parent dies."""
    _LIBC.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


def marker_slot():
    """(address, length) of the task id's value in the process's original environment block.

    /proc/<pid>/environ shows that block, and the worker finds a task's escaped processes by the
    entry AGENTDISPATCH_TASK_ID=<id> there. A forked child does not exec, so it keeps its parent's
    block: the worker gives the warm parent a placeholder as long as the longest task id, and each
    task process writes its own id over its (copy-on-write) copy. None if there is no such value."""
    value = os.environ.get(MARKER_VAR, "")
    addr = _LIBC.getenv(MARKER_VAR.encode())
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


def thread_names() -> list[str]:
    names = []
    for tid in sorted(os.listdir("/proc/self/task")):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                names.append(f.read().strip())
        except OSError:
            names.append(tid)
    return names


WARMUP_PROMPT_VAR = "AGENTDISPATCH_WARMUP_PROMPT"
WARMUP_RUNS_VAR = "AGENTDISPATCH_WARMUP_RUNS"


def warmup_runs() -> int:
    """How many times the warm-up prompt runs (default 3, at least 1). CPython specializes an
    instruction the second time it runs it, rewriting the code object in place: run once, the
    agent's code would be specialized in every task instead, a write (and a page copied) per
    code object. Three runs leave it specialized in the parent (-1.6 ms of CPU per LangGraph
    task here, bench/README.md "Warm starts")."""
    try:
        return max(1, int(os.environ.get(WARMUP_RUNS_VAR, "3")))
    except ValueError:
        return 3


def _preload(framework: str, run, warmup) -> str | None:
    """Import the manifest's entrypoint (and call the runner's ``warmup``) so that forked children
    find it loaded; with AGENTDISPATCH_WARMUP_PROMPT set, also run the agent on it
    (AGENTDISPATCH_WARMUP_RUNS times, default 3).

    A first run does lazy work (caches, schemas, first-use imports) that every forked child would
    otherwise repeat: ~4 ms of the LangGraph example's ~11. But it runs the agent: whatever the
    run leaves in the agent's objects, every task inherits, and a real model is called. Set it
    only for agents whose run keeps no state and costs nothing (the shipped offline examples)."""
    from .runner import Runner

    discard = lambda _event: None  # noqa: E731
    runner = Runner({"input": {}}, framework, emit=discard)
    spec = runner.entrypoint()
    if spec:
        try:
            runner.load_agent()
        except Exception as exc:  # noqa: BLE001 - the task child reports it in full
            sys.stderr.write(f"warm parent: preloading {spec} failed: {type(exc).__name__}: {exc}\n")
            spec = None
    if warmup is not None:
        warmup()
    prompt = os.environ.get(WARMUP_PROMPT_VAR)
    if prompt and run is not None:
        try:
            for _ in range(warmup_runs()):
                run(Runner({"instruction": prompt, "input": {}}, framework, emit=discard))
        except Exception as exc:  # noqa: BLE001
            sys.stderr.write(f"warm parent: the warm-up run failed: {type(exc).__name__}: {exc}\n")
    return spec


class _Cloner:
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

    ``available`` is False, with ``why``, when any of it cannot be had (unknown architecture, no
    unique offset, a failed clone): the spare is then made with two forks."""

    _CLONE_PARENT = 0x00008000
    _CLONE_CHILD_SETTID = 0x01000000
    # (clone, gettid) system call numbers; x86_64 passes child_tid 4th, the others 5th.
    _SYSCALLS = {"x86_64": (56, 186), "aarch64": (220, 178)}

    def __init__(self):
        self.available = False
        self.why = ""
        self.tid_addr = 0
        if os.environ.get(CLONE_VAR, "1") == "0":
            self.why = f"{CLONE_VAR}=0"
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
        _LIBC.pthread_self.restype = ctypes.c_void_p
        try:
            offset = self._tid_offset()
        except OSError as exc:
            self.why = f"cannot find glibc's thread id field: {exc}"
            return
        if offset is None:
            return
        self.tid_addr = _LIBC.pthread_self() + offset
        self.available = True

    def _tids_at(self, span: int = 4096) -> set[int]:
        """Offsets in this thread's struct pthread that hold its tid."""
        tid = _LIBC.syscall(self.sys_gettid)
        raw = ctypes.string_at(_LIBC.pthread_self(), span)
        return {i for i in range(0, span - 3, 4) if int.from_bytes(raw[i : i + 4], sys.byteorder, signed=True) == tid}

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


class _Holder:
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
        if nr is None or os.environ.get(HOLDER_VAR, "1") == "0":
            return None
        libc = _LIBC
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


class _Spare:
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


class _Learning:
    """Which of the parent's pages a task writes, learnt from the first tasks.

    A forked task pays a copy-on-write fault for every page of the parent it writes (reference
    counts touch thousands: ~1,600 pages and ~12 ms for the LangGraph example here). The first
    LEARN_TASKS tasks report, as they exit, which pages of the parent's writable mappings they hold
    privately (/proc/self/pagemap "exclusively mapped"); later spares copy the pages that at
    least LEARN_QUORUM of them wrote in advance, with one madvise(MADV_POPULATE_WRITE) per
    range, before any task is theirs. What the reports
    say only chooses pages to copy early: a bogus range costs a failed madvise, nothing more."""

    def __init__(self):
        self.pending: list[socket.socket] = []  # learners' channels, open until they report
        self.reports = 0
        self.seen: dict[int, int] = {}  # page address -> how many learners wrote it
        self.ranges: list[tuple[int, int]] = []

    def wants_more(self) -> bool:
        return self.reports + len(self.pending) < LEARN_TASKS

    def collect(self) -> None:
        """Read whatever reports arrived, without waiting."""
        for conn in list(self.pending):
            try:
                data = conn.recv(1 << 22, socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            self.pending.remove(conn)
            conn.close()
            try:
                pairs = json.loads(data) if data else None
            except ValueError:
                pairs = None
            if not isinstance(pairs, list):
                continue
            self.reports += 1
            for page in _pages_of_ours(pairs, _writable_private_ranges()):
                self.seen[page] = self.seen.get(page, 0) + 1
            quorum = min(LEARN_QUORUM, self.reports)
            hot = [page for page, n in self.seen.items() if n >= quorum]
            self.ranges = _merge(hot)
            if self.reports == LEARN_TASKS:
                sys.stderr.write(
                    f"warm parent: {len(hot)} pages written by at least {quorum} of the first "
                    f"{LEARN_TASKS} tasks ({len(self.seen)} by any) are copied ahead in each spare\n"
                )


def _pages_of_ours(pairs, layout) -> set[int]:
    """The pages a report's (start, count) runs name inside the parent's own writable mappings,
    each once: a report (a task's word) can make the parent count at most the pages it has."""
    layout = sorted(layout)
    his = [hi for _, hi in layout]
    pages: set[int] = set()
    for pair in pairs[: len(his) + (1 << 16)]:
        if not (isinstance(pair, list) and len(pair) == 2 and all(type(x) is int for x in pair)):
            continue
        start, end = pair[0], pair[0] + max(pair[1], 0) * _PAGE
        i = bisect.bisect_right(his, start)
        while i < len(layout) and layout[i][0] < end:
            lo = max(start, layout[i][0])
            pages.update(range(lo - lo % _PAGE, min(end, his[i]), _PAGE))
            i += 1
    return pages


def _merge(pages) -> list[tuple[int, int]]:
    """Page addresses → (start, page count) runs."""
    runs: list[tuple[int, int]] = []
    for addr in sorted(pages):
        if runs and runs[-1][0] + runs[-1][1] * _PAGE == addr:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((addr, 1))
    return runs


def _writable_private_ranges(anonymous: bool = False) -> list[tuple[int, int]]:
    """The process's private writable mappings, except stacks and kernel pages (with
    ``anonymous``, only those backed by no file: the heap and anonymous maps)."""
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            perms = parts[1]
            name = parts[5] if len(parts) > 5 else ""
            if perms[1] != "w" or perms[3] != "p" or name.startswith("[") and name != "[heap]":
                continue
            if anonymous and name not in ("", "[heap]"):
                continue
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            out.append((lo, hi))
    return out


def _private_pages(ranges) -> list[tuple[int, int]]:
    """Runs of pages in ``ranges`` that this process holds exclusively (pagemap bit 56)."""
    pages = []
    with open("/proc/self/pagemap", "rb") as f:
        for lo, hi in ranges:
            f.seek(lo // _PAGE * 8)
            entries = array("Q")
            entries.frombytes(f.read((hi - lo) // _PAGE * 8))
            for i, entry in enumerate(entries):
                if entry >> 63 and (entry >> 56) & 1:
                    pages.append(lo + i * _PAGE)
    return _merge(pages)


def _prefault(ranges) -> None:
    """Copy these pages now (in a spare), so that the task does not fault on them."""
    for start, count in ranges:
        _LIBC.madvise(start, count * _PAGE, _MADV_POPULATE_WRITE)


def _collapse_heap() -> int:
    """Back the parent's anonymous memory with huge pages where whole 2 MB runs of it are in use
    (MADV_COLLAPSE, Linux 6.1); returns how many bytes are huge-page-backed now.

    Every spare's clone copies one page-table entry per 4 KB page of the parent (~14,000 for a
    LangGraph parent) and every task's tear-down drops them again; a huge page is one entry
    either way. A task that writes into one still copies only the 4 KB it touches (the kernel
    splits the mapping in the task). MADV_NOHUGEPAGE after it keeps new memory in these
    mappings in 4 KB pages, so that a task's own allocations stay small. Where the kernel has no
    MADV_COLLAPSE or THP is off, the calls fail and nothing changes."""
    huge = 2 << 20
    for lo, hi in _writable_private_ranges(anonymous=True):
        start, end = (lo + huge - 1) // huge * huge, hi // huge * huge
        if end > start:
            _LIBC.madvise(start, end - start, _MADV_COLLAPSE)
            _LIBC.madvise(lo, hi - lo, _MADV_NOHUGEPAGE)
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            if line.startswith("AnonHugePages:"):
                return int(line.split()[1]) * 1024
    return 0


def immortal_why_not() -> str | None:
    """Why this interpreter cannot have objects made immortal (see ``immortalize``), or None."""
    import sysconfig

    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    if sys.implementation.name != "cpython" or sys.version_info < (3, 12):
        return f"{sys.implementation.name} {version} has no immortal objects (CPython 3.12+)"
    if sys.version_info >= (3, 14):
        # 3.14 marks immortality differently (a count of 3 << 30, flags in the same word).
        return f"CPython {version}: immortal objects are made only on 3.12 and 3.13"
    if sys.maxsize <= 2**32:
        return "32-bit CPython keeps immortality in the whole count"
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        return "free-threaded CPython counts references per thread"
    if hasattr(sys, "getobjects"):
        return "a --with-trace-refs build puts other fields before the count"
    probe = object()
    if ctypes.c_ssize_t.from_address(id(probe)).value != sys.getrefcount(probe) - 1:
        return "the reference count is not where CPython 3.12 keeps it"
    return None


# CPython 3.12 and 3.13 on 64-bit (PEP 683): an object whose reference count has its low 32 bits
# all set is immortal: Py_INCREF and Py_DECREF leave it unwritten (Py_DECREF tests the sign of
# the low 32 bits). CPython's own immortal objects start at this value there; extensions built
# for older stable ABIs still write the full count, and the value is chosen so that they never
# bring it to zero.
_IMMORTAL = 0xFFFFFFFF


def immortalize(roots) -> int:
    """Make every object reachable from ``roots`` immortal; returns how many were made so.

    A forked task writes every page of the parent that holds a reference count it changes: to
    read an attribute, call a function or build a list, CPython increments and decrements the
    counts of the objects involved, thousands of pages of the parent for one agent run (~1,700
    for the LangGraph example on CPython 3.12), each a copy-on-write fault, a page copied and
    a page freed at exit. Immortal objects' counts are never written, so a task copies only the
    pages it really changes (~950). The price: an object of the parent is never freed, in the
    parent or in a task (the parent keeps its imports alive anyway, and a task ends with
    ``os._exit``), and ``sys.getrefcount`` of one is meaningless (numpy's ``ndarray.resize``
    with ``refcheck`` refuses to resize such an array). Objects that are already immortal are
    not walked again: the mark is also the walk's "seen" set."""
    cell = ctypes.c_ssize_t
    made = 0
    stack = list(roots)
    get_referents = gc.get_referents
    while stack:
        obj = stack.pop()
        count = cell.from_address(id(obj))
        if count.value & _IMMORTAL >= 0x80000000:  # immortal already (_Py_IsImmortal)
            continue
        count.value = _IMMORTAL
        made += 1
        stack.extend(get_referents(obj))
    return made


_PLUGS: list = []  # placeholders in pymalloc's free blocks, alive as long as this process
_POOL = 16384  # pymalloc's pool size on 64-bit CPython 3.10+ (the stats name it: "* 16384 bytes")


def pymalloc_free() -> tuple[dict[int, int], int]:
    """pymalloc's free room, from ``sys._debugmallocstats()``: free blocks in used pools by block
    size, and the number of unused pools in its arenas. Empty when there is no pymalloc (another
    interpreter, PYTHONMALLOC=malloc) or its report reads otherwise."""
    stats = getattr(sys, "_debugmallocstats", None)
    if stats is None:
        return {}, 0
    with open(os.memfd_create("mallocstats"), "w+b") as f:
        flush_std()
        saved = os.dup(2)
        try:
            os.dup2(f.fileno(), 2)  # it writes to the C stderr
            stats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        text = f.read().decode("ascii", "replace")
    avail: dict[int, int] = {}
    unused = 0
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 5 and all(p.isdigit() for p in parts):  # class size pools in-use avail
            avail[int(parts[1])] = int(parts[4])
        elif len(parts) > 4 and parts[1:3] == ["unused", "pools"] and parts[0].isdigit() and parts[4] == str(_POOL):
            unused = int(parts[0])
    return avail, unused


def plug_free_blocks() -> int:
    """Fill pymalloc's free blocks and unused pools with placeholders; returns how many.

    An object the parent or a task allocates after this lands in a fresh arena instead of in a
    gap of a page the parent filled before it was ready: a task's new objects then cost it a
    zero-filled page rather than a copied one of the parent, and the parent's own allocations
    while it serves stop writing (and so copying) pages its spare shares. ~3,600 placeholders,
    ~1.2 MB, for a LangGraph parent."""
    avail, unused = pymalloc_free()
    made = 0
    for size, free in avail.items():
        for _ in range(free):
            # Objects of exactly that block size: object() takes 16 bytes, an int below 2**60
            # of two 30-bit digits 32, a bytes object of n bytes 33 + n.
            if size <= 16:
                _PLUGS.append(object())
            elif size <= 32:
                _PLUGS.append((1 << 40) + made)  # an int of two digits: 32 bytes, no free list
            else:
                _PLUGS.append(bytes(size - 33))
            made += 1
    if avail and max(avail) >= 48:
        biggest = max(avail)
        for _ in range(unused * ((_POOL - 48) // biggest)):  # a pool's header is 48 bytes
            _PLUGS.append(bytes(biggest - 33))
            made += 1
    return made


def serve(framework: str, run=None, warmup=None) -> None:
    """Be a warm parent; return only in a task process."""
    started = time.monotonic()
    for key, value in SINGLE_THREAD_ENV.items():
        os.environ.setdefault(key, value)
    worker_pid = os.getppid()
    _die_with_parent()
    if os.getppid() != worker_pid:  # the worker died before prctl took effect
        os._exit(0)
    slot = marker_slot()
    cloner = _Cloner()  # before the imports: its probe forks this process once
    sock = socket.socket(fileno=int(os.environ.pop(WARM_FD_VAR)))
    sock.set_inheritable(False)
    # Nothing here reports on stdout; SIGTERM ends the parent (and its spare) at once.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    entrypoint = _preload(framework, run, warmup)
    # Objects that exist now are never collected in the children: a collection there would
    # touch (and so copy) every page of the parent's heap.
    gc.collect()
    immortal_why = immortal_why_not() if os.environ.get(IMMORTAL_VAR, "1") != "0" else f"{IMMORTAL_VAR}=0"
    immortal = 0
    if immortal_why is None:
        roots = gc.get_objects()
        immortal = immortalize(roots + [sys.modules])
        del roots
    try:
        plugged = plug_free_blocks()
    except Exception as exc:  # noqa: BLE001 - an optimisation: the parent serves without it
        sys.stderr.write(f"warm parent: pymalloc's free blocks not plugged: {type(exc).__name__}: {exc}\n")
        plugged = 0
    gc.freeze()
    huge = _collapse_heap() if os.environ.get(HUGE_VAR, "1") != "0" else 0
    ready = {
        "type": "ready",
        "pid": os.getpid(),
        "entrypoint": entrypoint,
        "threads": len(thread_names()),
        "importMs": round((time.monotonic() - started) * 1000, 1),
        "fork": "clone" if cloner.available else "double",
        "hugeMB": round(huge / (1 << 20), 1),
        "immortal": immortal,
        "plugged": plugged,
    }
    if immortal_why is not None:
        ready["immortalWhy"] = immortal_why
    if not cloner.available:
        ready["forkWhy"] = cloner.why
    sock.send(json.dumps(ready).encode())
    spare = None
    learning = _Learning()
    cgroup = None  # the next spare's cgroup.procs, from the last fork request
    busy = False  # whether other tasks ran beside the last one
    while True:
        if spare is None and len(thread_names()) == 1:
            learning.collect()
            spare = _fork_spare(sock, slot, worker_pid, learning, cloner, cgroup, not busy)
            if spare is None:  # in the spare: it was given a task
                return
            if cgroup is not None:
                spare.enter(cgroup)
                _close([cgroup])
                cgroup = None
        try:
            msg, fds, _flags, _addr = socket.recv_fds(sock, 1 << 20, 4)
        except InterruptedError:
            continue
        if not msg:
            os._exit(0)  # the worker closed the channel
        if len(fds) == 4:
            if cgroup is not None:
                _close([cgroup])
            cgroup = fds.pop()
        reply, spare, busy = _assign(msg, fds, spare, learning)
        sock.send(json.dumps(reply).encode())


def _close(fds) -> None:
    for f in fds:
        try:
            os.close(f)
        except OSError:
            pass


def _assign(msg: bytes, fds: list[int], spare: _Spare | None, learning: _Learning):
    """Hand the request to the spare; returns (reply, the spare left: always None once used,
    whether the worker said other tasks run beside this one)."""
    try:
        request = json.loads(msg)
    except ValueError:
        request = {}
    busy = request.get("busy") is True
    if request.get("op") != "fork" or len(fds) != 3:
        _close(fds)
        return {"ok": False, "reason": f"bad request: op {request.get('op')!r} with {len(fds)} descriptors"}, spare, busy
    if spare is None:
        import threading

        threads = thread_names()
        python = ", ".join(t.name for t in threading.enumerate())
        _close(fds)
        return {
            "ok": False,
            "reason": f"the warm parent has {len(threads)} threads (OS: {', '.join(threads)}; "
            f"Python: {python}); fork is unsafe",
        }, None, busy
    learn = learning.wants_more()
    holder = None
    ahead = 0
    try:
        # The spare says it is alive, names its holder (0: none) and how many pages it copies
        # ahead, when it starts: normally long ago.
        hello = spare.greeting()
        ok = hello[:1] == [b"spare"]
        if ok and len(hello) > 1 and hello[1].isdigit() and int(hello[1]) > 0:
            holder = int(hello[1])
        if ok and len(hello) > 2 and hello[2].isdigit():
            ahead = int(hello[2])
        if ok:
            socket.send_fds(spare.conn, [json.dumps({**request, "learn": learn}).encode()], fds)
    except (OSError, ValueError):
        ok = False
    _close(fds)
    if ok and learn:
        learning.pending.append(spare.conn)
    else:
        spare.conn.close()
    if not ok:
        return {"ok": False, "reason": f"its spare process {spare.pid} is gone"}, None, busy
    reply = {"ok": True, "pid": spare.pid, "pagesAhead": ahead}
    if holder is not None:
        reply["holder"] = holder
    return reply, None, busy


def _fork_spare(sock, slot, worker_pid: int, learning: _Learning, cloner: _Cloner, cgroup: int | None,
                alone: bool = True) -> _Spare | None:
    """Fork the next spare, as the worker's child (``cgroup``, the cgroup.procs it is to enter,
    is only closed in it: the parent moves it, see ``_Spare.enter``).

    In the parent: the spare. In the spare, once it has been given a task: None."""
    flush_std()  # nothing buffered here may reach a task's pipes
    if cloner.available:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            pid = cloner.fork()
        except OSError as exc:
            sys.stderr.write(f"warm parent: {exc.strerror}; forking spares through an intermediate from now on\n")
            ours.close()
            theirs.close()
        else:
            if pid == 0:
                _spare_life(sock, ours, theirs, slot, learning, lambda: _become_spare(None, worker_pid), cgroup,
                            alone=alone)
                return None
            theirs.close()
            return _Spare(pid, ours)
    return _fork_spare_twice(sock, slot, worker_pid, learning, cgroup, alone)


def _spare_life(sock, ours, theirs, slot, learning: _Learning, become, cgroup, report_w=None, alone=True) -> None:
    """In a new spare: drop the parent's channels, become the worker's, say so, copy the hot
    pages, and wait for a task. Returns only with a task; never returns into the parent's loop."""
    try:
        ours.close()
        sock.close()
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
        holder = _Holder.start() if report_w is None and alone else None
        become()
        ahead = learning.ranges if alone else []
        theirs.send(f"spare {holder or 0} {sum(count for _, count in ahead)}".encode())
        # The parent's layout, for a task that reports what it wrote (the first few only).
        layout = _writable_private_ranges() if learning.wants_more() else []
        _prefault(ahead)
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
        _wait_for_task(theirs, slot, layout)
    except BaseException:  # noqa: BLE001
        os._exit(127)


def _fork_spare_twice(sock, slot, worker_pid: int, learning: _Learning, cgroup: int | None,
                      alone: bool = True) -> _Spare | None:
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
        _spare_life(sock, ours, theirs, slot, learning, lambda: _become_spare(middle_pid, worker_pid), cgroup, report_w,
                    alone)
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
    return _Spare(int(text), ours)


def _become_spare(middle_pid: int | None, worker_pid: int) -> None:
    """Own session; once the worker's child (at once when cloned, after the intermediate's exit
    otherwise), die with it."""
    os.setsid()
    if middle_pid is not None:
        deadline = time.monotonic() + 5
        while os.getppid() == middle_pid and time.monotonic() < deadline:
            time.sleep(0.0002)
    _die_with_parent()
    if os.getppid() != worker_pid:  # not the worker's child (or it died): useless
        os._exit(0)


def _wait_for_task(conn: socket.socket, slot, layout) -> None:
    """Block until the parent hands over a task, then take its stdio, environment, directory."""
    msg, fds, _flags, _addr = socket.recv_fds(conn, 1 << 20, 3)
    if not msg or len(fds) != 3:
        os._exit(0)  # the parent is gone
    request = json.loads(msg)
    for target, f in enumerate(fds):
        os.dup2(f, target)
    _close(f for f in fds if f > 2)
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
        atexit.register(_report_pages, conn, layout)
    else:
        conn.close()


def _report_pages(conn: socket.socket, layout) -> None:
    """At exit of a learning task: tell the parent which of its pages this task wrote."""
    try:
        conn.send(json.dumps(_private_pages(layout)).encode())
    except OSError:
        pass
