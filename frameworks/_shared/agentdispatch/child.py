"""``main``: the life of one runner process, from the envelope on stdin to its exit status."""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback

from . import otel
from .entrypoint import AgentLoaded, one_line
from .process import SIGNAL_HANDLERS, exit_now, protect_stdout, quiet_env
from .protocol import Emitter, EnvelopeError, read_envelope
from .request import install
from .runner import EntrypointError, Runner
from .sessions import ResumeStateError, SessionError
from .text import jsonable

CHECK_VAR = "AGENTDISPATCH_CHECK"
TRACEBACK_FILE = "traceback.txt"


def error_code(exc: BaseException) -> str | None:
    """The task's errorCode for what the runner raised (docs/errors.md); None: the
    worker's own for the exit status."""
    if isinstance(exc, EntrypointError):
        return exc.code
    if isinstance(exc, SessionError):
        return "session_unavailable"
    if isinstance(exc, ResumeStateError):
        return "resume_state_invalid"
    if isinstance(exc, EnvelopeError):
        return None
    return "agent_failed"


def first_line(exc: BaseException) -> str:
    """The one line a person reads: what failed, and where in their code."""
    if isinstance(exc, (EntrypointError, EnvelopeError, SessionError, ResumeStateError)):
        return " ".join(str(exc).split()) or type(exc).__name__  # our own words say it
    return f"the agent failed: {one_line(exc)}"


def fail(framework: str, exc: BaseException, code: int = 1, emit=None) -> None:
    """Report ``exc`` and exit ``code``: a result line (ok false, one-line ``error``, ``errorCode``,
    the traceback for the worker's log), the traceback in the task folder's traceback.txt, and
    one line on stderr (the traceback there too when there is no task folder: a manual run)."""
    try:
        line = first_line(exc)
        shown = exc
        if isinstance(exc, (EntrypointError, EnvelopeError, SessionError, ResumeStateError)) and not os.environ.get("AGENTDISPATCH_DEBUG"):
            # Our own wrapping says enough; what the user's code raised (its cause) does not.
            shown = exc.__cause__ if isinstance(exc.__cause__, Exception) else None
        tb = "".join(traceback.format_exception(shown)).rstrip() if shown is not None else ""
        task_dir = os.environ.get("AGENTDISPATCH_TASK_DIR")
        saved = None
        if tb and task_dir:
            try:
                with open(os.path.join(task_dir, TRACEBACK_FILE), "w", encoding="utf-8") as f:
                    f.write(tb + "\n")
                saved = TRACEBACK_FILE
            except OSError:
                pass
        if tb and not saved:
            sys.stderr.write(tb + "\n")
        sys.stderr.write(f"{framework} runner failed: {line}\n")
        sys.stderr.flush()
        if emit is not None:
            event = {"type": "task.result", "ok": False, "error": line, "errorCode": error_code(exc)}
            if saved:
                event["error"] += f"\n(the traceback is in {saved} in the task folder)"
                event["traceback"] = tb
            emit(event)
        otel.flush()
    finally:
        os._exit(code)


def check(framework: str, run) -> None:
    """``frameworks --check``: load and build the agent as a task would, run nothing; one
    task.result line saying what was loaded, or a failure as ``fail`` reports it."""
    emitter = Emitter(protect_stdout())
    try:
        runner = Runner({"input": {}}, framework, check=True)
        run(runner)
        emitter.write_line({"type": "task.result", "output": "the runner did not load an agent"})
    except AgentLoaded as done:
        emitter.write_line({"type": "task.result", "output": done.description})
    except BaseException as exc:  # noqa: BLE001 - report everything, exit 1
        fail(framework, exc, emit=emitter.write_line)
    exit_now(0)


def main(framework: str, run, argv: list[str] | None = None, warmup=None) -> None:
    """Run ``run(runner)`` as an agentdispatch child process and exit.

    Started by the worker as a warm parent (env ``AGENTDISPATCH_WARM_FD``), it first loads and
    builds the agent (``run`` in check mode, and ``warmup()``, if given), then forks one child per
    task; only those children return from ``serve_warm`` and go on below, exactly as a cold
    child would. With env ``AGENTDISPATCH_CHECK=1`` it only checks the agent (``check``)."""
    quiet_env()
    if os.environ.get(CHECK_VAR) == "1":
        check(framework, run)
    if os.environ.get("AGENTDISPATCH_WARM_FD"):
        from . import warm

        otel.preload()  # imports only: a warm parent must stay one thread to fork
        warm.serve(framework, run, warmup)  # returns only in a forked task child
    emitter = Emitter(protect_stdout())
    # After the fork of a warm task: the span processor's thread is this task's own.
    otel.start()

    def on_signal(signum, _frame):
        if emitter.busy_here():  # we interrupted our own protocol write: finish the line first
            emitter.deferred = lambda: on_signal(signum, None)
            return
        name = signal.Signals(signum).name
        try:
            emitter.write_line(
                {"type": "task.log", "message": f"cancelled by {name}", "payload": {"signal": name}},
                timeout=1.0,
            )
            sys.stderr.flush()
        finally:
            os._exit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
        SIGNAL_HANDLERS[signum] = on_signal

    try:
        envelope = read_envelope(sys.argv[1:] if argv is None else argv)
        runner = Runner(envelope, framework, emit=emitter.write_line)
        install(runner.request)  # here, after a warm child's fork: the parent never holds it
        runner.check_resume()
        if otel.setup_ms is not None:
            runner.log("tracing set up", source="runner", setupMs=otel.setup_ms, exporting=otel.exporting)
        output = run(runner)
        if not runner.result_emitted and not runner.asked:
            if output is None:
                sys.stderr.write(f"{framework} runner: finished without a result\n")
            else:
                runner.result(output if isinstance(output, str) else json.dumps(output, default=jsonable))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if code:
            fail(framework, RuntimeError(f"exited with status {code}: {exc.code}"), code, emitter.write_line)
        exit_now(0)
    except BaseException as exc:  # noqa: BLE001 - report everything, exit 1
        fail(framework, exc, emit=emitter.write_line)
    exit_now(0)
