"""``main``: the life of one runner process, from the envelope on stdin to its exit status."""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback

from .process import SIGNAL_HANDLERS, exit_now, protect_stdout, quiet_env
from .protocol import Emitter, EnvelopeError, read_envelope
from .request import install
from .runner import EntrypointError, Runner
from .sessions import SessionError
from .text import jsonable


def fail(framework: str, exc: BaseException, code: int = 1) -> None:
    """Traceback tail, then one clear line last (the worker shows the last stderr lines)."""
    try:
        shown = exc
        if isinstance(exc, (EntrypointError, EnvelopeError, SessionError)) and not os.environ.get("AGENTDISPATCH_DEBUG"):
            # Our own wrapping says enough; what the user's code raised (its cause) does not.
            shown = exc.__cause__ if isinstance(exc.__cause__, Exception) else None
        if shown is not None:
            lines = "".join(traceback.format_exception(shown)).rstrip().splitlines()
            sys.stderr.write("\n".join(lines[-12:]) + "\n")
        message = " ".join(str(exc).split()) or "(no message)"
        sys.stderr.write(f"{framework} runner failed: {type(exc).__name__}: {message}\n")
        sys.stderr.flush()
    finally:
        os._exit(code)


def main(framework: str, run, argv: list[str] | None = None, warmup=None) -> None:
    """Run ``run(runner)`` as an agentdispatch child process and exit.

    Started by the worker as a warm parent (env ``AGENTDISPATCH_WARM_FD``), it first preloads
    the entrypoint (and calls ``warmup()``, if given), then forks one child per task; only those
    children return from ``serve_warm`` and go on below, exactly as a cold child would."""
    quiet_env()
    if os.environ.get("AGENTDISPATCH_WARM_FD"):
        from . import warm

        warm.serve(framework, run, warmup)  # returns only in a forked task child
    emitter = Emitter(protect_stdout())

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
        output = run(runner)
        if not runner.result_emitted and not runner.asked:
            if output is None:
                sys.stderr.write(f"{framework} runner: finished without a result\n")
            else:
                runner.result(output if isinstance(output, str) else json.dumps(output, default=jsonable))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if code:
            fail(framework, RuntimeError(f"exited with status {code}: {exc.code}"), code)
        exit_now(0)
    except BaseException as exc:  # noqa: BLE001 - report everything, exit 1
        fail(framework, exc)
    exit_now(0)
