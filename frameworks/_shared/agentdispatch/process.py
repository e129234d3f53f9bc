"""Process plumbing of a runner: telemetry off, the protocol fd kept apart from stdout, a
quick exit once the result is out, and SIGTERM/SIGINT handlers kept ours."""

from __future__ import annotations

import os
import signal
import sys
import threading

# Variables that switch off tracing / telemetry / phone-home of the shipped frameworks and the
# libraries they pull in. Only set when the user has not set them.
QUIET_ENV = {
    # LangChain / LangGraph: LangSmith tracing (runs `git describe`, starts an uploader)
    "LANGSMITH_TRACING": "false",
    "LANGSMITH_TRACING_V2": "false",
    "LANGCHAIN_TRACING_V2": "false",
    "LANGCHAIN_TRACING": "false",
    "LANGCHAIN_CALLBACKS_BACKGROUND": "false",
    # OpenAI Agents SDK: tracing exports to the OpenAI API by default
    "OPENAI_AGENTS_DISABLE_TRACING": "1",
    # CrewAI: telemetry, tracking, tracing (must be set before `import crewai`)
    "CREWAI_DISABLE_TELEMETRY": "true",
    "CREWAI_DISABLE_TRACKING": "true",
    "CREWAI_TRACING_ENABLED": "false",
    # OpenTelemetry (crewai, strands, logfire): off unless the deployment asked for traces
    # (quiet_env leaves it to otel.wanted() then)
    "OTEL_SDK_DISABLED": "true",
    # pydantic-ai / logfire
    "LOGFIRE_SEND_TO_LOGFIRE": "false",
    # libraries pulled in by the frameworks (litellm, chromadb, huggingface, posthog users)
    "LITELLM_TELEMETRY": "False",
    "ANONYMIZED_TELEMETRY": "False",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "SCARF_NO_ANALYTICS": "true",
    "TOKENIZERS_PARALLELISM": "false",
}


def quiet_env() -> None:
    """Turn telemetry and tracing off for every shipped framework, unless the user set them.

    Call before importing the framework: several read these variables at import time. When the
    deployment asked for traces (``otel.wanted``), OpenTelemetry stays on."""
    from .otel import wanted

    traced = wanted()
    for key, value in QUIET_ENV.items():
        if key == "OTEL_SDK_DISABLED" and traced:
            continue
        os.environ.setdefault(key, value)



def protect_stdout() -> int:
    """Keep the original stdout for the protocol; send fd 1 and sys.stdout to stderr.

    Returns the (non-inheritable) protocol fd."""
    try:
        sys.stdout.flush()
    except Exception:  # noqa: BLE001
        pass
    proto_fd = os.dup(1)  # os.dup makes it non-inheritable: subprocesses never hold the pipe
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return proto_fd


def exit_now(code: int) -> None:
    """Exit at once once the result is out: interpreter teardown of a large framework (module
    finalizers, telemetry shutdown, leftover threads) took 0.1-0.6 s per run, and the worker
    waits for the exit status. atexit handlers still run, bounded by
    AGENTDISPATCH_EXIT_GRACE_SECONDS."""
    grace = float(os.environ.get("AGENTDISPATCH_EXIT_GRACE_SECONDS") or 5)
    if threading.current_thread() is threading.main_thread():
        # An alarm, not a timer thread: starting a thread cost ~0.4 ms of every task's exit.
        signal.signal(signal.SIGALRM, lambda *_: os._exit(code))
        signal.setitimer(signal.ITIMER_REAL, grace)
    else:
        timer = threading.Timer(grace, os._exit, (code,))
        timer.daemon = True
        timer.start()
    try:
        import atexit

        atexit._run_exitfuncs()
    except Exception:  # noqa: BLE001
        pass
    flush_std()
    os._exit(code)


def flush_std() -> None:
    """Flush sys.stdout and sys.stderr, whatever they are (None, closed, replaced)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass


SIGNAL_HANDLERS: dict = {}  # main()'s SIGTERM/SIGINT handlers


def reclaim_signals() -> None:
    """Re-install main()'s SIGTERM/SIGINT handlers if imported code replaced them (CrewAI's
    telemetry, for one, installs handlers that turn SIGTERM into a late SystemExit(0))."""
    for signum, handler in SIGNAL_HANDLERS.items():
        if signal.getsignal(signum) is not handler:
            signal.signal(signum, handler)
