"""The warm parent's life: import, prepare (the tricks the tuning has on), report ready, then
answer fork requests with spares until the worker closes the channel."""

from __future__ import annotations

import gc
import json
import os
import signal
import socket
import sys
import time

from .memory import collapse_heap, immortalize, plug_free_blocks
from .messages import Forked, ForkRequest, MessageError, Ready, Refused, encode
from .native import Cloner, die_with_parent, marker_slot
from .pages import LEARN_TASKS, Learning
from .spare import Maker, Spare, close_all
from .tuning import Tuning

WARM_FD_VAR = "AGENTDISPATCH_WARM_FD"
WARMUP_PROMPT_VAR = "AGENTDISPATCH_WARMUP_PROMPT"
WARMUP_RUNS_VAR = "AGENTDISPATCH_WARMUP_RUNS"
# Native thread pools that start at import would make the parent unsafe to fork (a fork copies
# only the calling thread): OpenBLAS (numpy, which crewai imports) starts cores-1 threads unless
# told otherwise. Set only when the user did not set them; forked tasks inherit one BLAS thread.
SINGLE_THREAD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def thread_names() -> list[str]:
    names = []
    for tid in sorted(os.listdir("/proc/self/task")):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                names.append(f.read().strip())
        except OSError:
            names.append(tid)
    return names


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


def _preload(framework: str, run, warmup) -> tuple[str | None, str | None]:
    """Load and build the entrypoint's agent as a task would, without running it (``run`` in
    check mode: it stops in ``runner.load_agent``), and call the runner's ``warmup``, so that
    forked children find it all imported and built; (the entrypoint, None) or (None, why it
    cannot load: the worker logs it and says it in /ping). A model is called only when the
    manifest or the deployment asks for it: with AGENTDISPATCH_WARMUP_PROMPT set, the agent
    also runs on it (AGENTDISPATCH_WARMUP_RUNS times, default 3).

    A first run does lazy work (caches, schemas, first-use imports) that every forked child would
    otherwise repeat: ~4 ms of the LangGraph example's ~11. But it runs the agent: whatever the
    run leaves in the agent's objects, every task inherits, and a real model is called. Set it
    only for agents whose run keeps no state and costs nothing (the shipped offline examples:
    the worker drops a manifest's prompt when the deployment chose another entrypoint)."""
    from ..child import first_line
    from ..entrypoint import AgentLoaded
    from ..request import preload_sdk
    from ..runner import Runner

    discard = lambda _event: None  # noqa: E731
    spec = Runner({"input": {}}, framework, emit=discard).entrypoint()
    problem = None
    if spec and run is not None:
        try:
            run(Runner({"input": {}}, framework, check=True))
        except AgentLoaded:
            pass
        except Exception as exc:  # noqa: BLE001 - every task child reports it in full too
            problem = first_line(exc)
            sys.stderr.write(f"warm parent: loading {spec} failed: {problem}\n")
            spec = None
    # A child sets AWS's request context after its fork (request.install): the SDK is imported
    # here once (0.4-1 s), not in every forked task.
    preload_sdk()
    if warmup is not None:
        warmup()
    prompt = os.environ.get(WARMUP_PROMPT_VAR)
    if prompt and run is not None and problem is None:
        try:
            for _ in range(warmup_runs()):
                run(Runner({"instruction": prompt, "input": {}}, framework, emit=discard))
        except Exception as exc:  # noqa: BLE001
            sys.stderr.write(f"warm parent: the warm-up run failed: {type(exc).__name__}: {exc}\n")
    return spec, problem


def _prepare(tuning: Tuning) -> tuple[int, int, int]:
    """The memory tricks the tuning has on, once the imports are done: (objects made immortal,
    placeholders plugged, bytes in huge pages). A trick that fails is logged and turned off."""
    # Objects that exist now are never collected in the children: a collection there would
    # touch (and so copy) every page of the parent's heap.
    gc.collect()
    immortal = plugged = huge = 0
    if tuning.on("immortal"):
        roots = gc.get_objects()
        immortal = immortalize(roots + [sys.modules])
        del roots
    if tuning.on("plugs"):
        try:
            plugged = plug_free_blocks()
        except Exception as exc:  # noqa: BLE001 - an optimisation: the parent serves without it
            sys.stderr.write(f"warm parent: pymalloc's free blocks not plugged: {type(exc).__name__}: {exc}\n")
            tuning.turn_off("plugs", f"failed: {type(exc).__name__}: {exc}")
    gc.freeze()
    if tuning.on("huge"):
        huge = collapse_heap()
    return immortal, plugged, huge


def serve(framework: str, run=None, warmup=None) -> None:
    """Be a warm parent; return only in a task process."""
    started = time.monotonic()
    for key, value in SINGLE_THREAD_ENV.items():
        os.environ.setdefault(key, value)
    worker_pid = os.getppid()
    die_with_parent()
    if os.getppid() != worker_pid:  # the worker died before prctl took effect
        os._exit(0)
    tuning = Tuning.from_env()
    for warning in tuning.warnings:
        sys.stderr.write(f"warm parent: {warning}\n")
    slot = marker_slot()
    cloner = Cloner(tuning.why("clone"))  # before the imports: its probe forks this process once
    if not cloner.available:
        tuning.turn_off("clone", cloner.why)
    sock = socket.socket(fileno=int(os.environ.pop(WARM_FD_VAR)))
    sock.set_inheritable(False)
    # Nothing here reports on stdout; SIGTERM ends the parent (and its spare) at once.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    entrypoint, problem = _preload(framework, run, warmup)
    immortal, plugged, huge = _prepare(tuning)
    ready = Ready(
        pid=os.getpid(), entrypoint=entrypoint, entrypoint_error=problem, threads=len(thread_names()),
        import_ms=round((time.monotonic() - started) * 1000, 1),
        fork="clone" if cloner.available else "double", fork_why=None if cloner.available else cloner.why,
        huge_mb=round(huge / (1 << 20), 1), immortal=immortal, immortal_why=tuning.why("immortal"),
        plugged=plugged, tuning=tuning.mode, runtime=tuning.runtime, tricks=tuning.tricks(),
        tricks_off=tuning.tricks_off(),
    )
    sock.send(encode(ready))
    learning = Learning(LEARN_TASKS if tuning.on("learn") else 0)
    maker = Maker(sock, slot, worker_pid, learning, cloner, tuning.on("holder"))
    spare = None
    cgroup = None  # the next spare's cgroup.procs, from the last fork request
    busy = False  # whether other tasks ran beside the last one
    while True:
        if spare is None and len(thread_names()) == 1:
            learning.collect()
            spare = maker.fork_spare(cgroup, not busy)
            if spare is None:  # in the spare: it was given a task
                return
            if cgroup is not None:
                spare.enter(cgroup)
                close_all([cgroup])
                cgroup = None
        try:
            msg, fds, _flags, _addr = socket.recv_fds(sock, 1 << 20, 4)
        except InterruptedError:
            continue
        if not msg:
            os._exit(0)  # the worker closed the channel
        if len(fds) == 4:
            if cgroup is not None:
                close_all([cgroup])
            cgroup = fds.pop()
        reply, spare, busy = _assign(msg, fds, spare, learning)
        sock.send(encode(reply))


def _assign(msg: bytes, fds: list[int], spare: Spare | None, learning: Learning):
    """Hand the request to the spare; returns (reply, the spare left: always None once used,
    whether the worker said other tasks run beside this one)."""
    try:
        request = ForkRequest.from_json(msg)
        why = None if len(fds) == 3 else f"op 'fork' with {len(fds)} descriptors"
    except MessageError as exc:
        request, why = None, f"{exc} with {len(fds)} descriptors"
    if request is None or why is not None:
        close_all(fds)
        return Refused(f"bad request: {why}"), spare, request is not None and request.busy
    if spare is None:
        import threading

        threads = thread_names()
        python = ", ".join(t.name for t in threading.enumerate())
        close_all(fds)
        return Refused(f"the warm parent has {len(threads)} threads (OS: {', '.join(threads)}; "
                       f"Python: {python}); fork is unsafe"), None, request.busy
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
            socket.send_fds(spare.conn, [json_for_spare(request, learn)], fds)
    except (OSError, ValueError):
        ok = False
    close_all(fds)
    if ok and learn:
        learning.pending.append(spare.conn)
    else:
        spare.conn.close()
    if not ok:
        return Refused(f"its spare process {spare.pid} is gone"), None, request.busy
    return Forked(spare.pid, ahead, holder), None, request.busy


def json_for_spare(request: ForkRequest, learn: bool) -> bytes:
    """The request as the spare reads it (spare.wait_for_task): the worker's, and whether to
    report its pages."""
    return json.dumps({**request.to_json(), "learn": learn}).encode()
