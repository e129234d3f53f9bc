"""Shared helper for the Python framework runners of agentdispatch-worker.

A runner is a short script that the worker starts as a child process (see SPEC §6). The worker
writes one JSON envelope line on the child's stdin and reads NDJSON events from its stdout.
This module does everything that is the same for every framework:

* ``quiet_env()``  turns telemetry/tracing of all shipped frameworks off (unless the user set the
  variables); call it before importing the framework.
* ``main(framework, run)`` reads the envelope, keeps the protocol stream clean (the original
  stdout is kept for NDJSON events only; ``sys.stdout`` and fd 1 go to stderr, so framework
  chatter and subprocess output can never corrupt the protocol), reports failures as a clear
  last line on stderr with exit status 1, and turns SIGTERM into a ``task.log`` line plus exit 143.
* ``Runner`` is what ``run(runner)`` receives: the envelope fields, ``progress``/``log``/``step``
  events, ``result`` (once), and ``load_agent`` for the user's ``module:attr`` entrypoint.

A runner looks like::

    import os, sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "_shared"))
    from agentdispatch_runner import main, quiet_env
    quiet_env()

    def run(runner):
        import some_framework                      # imported after stdout is protected
        agent = runner.load_agent(default_factory=build_default_agent)
        for ev in agent.stream(runner.instruction):
            runner.step("tool_call", tool=ev.name, args=ev.args)
        return final_text                          # becomes the task.result output

    if __name__ == "__main__":
        main("some-framework", run)

For manual use, ``python runner.py some instruction`` runs without a stdin envelope.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import signal
import sys
import threading
import time
import traceback

__all__ = [
    "Runner",
    "EntrypointError",
    "SessionError",
    "earlier_turns_note",
    "check_sqlite",
    "read_session_json",
    "write_session_file",
    "EnvelopeError",
    "main",
    "quiet_env",
    "reclaim_signals",
    "example_shout",
    "as_text",
    "model_id_from_env",
    "STEPS",
]

STEPS = ("model_turn", "tool_call", "tool_result", "final_answer")

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
    # OpenTelemetry (crewai, strands, logfire)
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

    Call before importing the framework: several read these variables at import time."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)


class EntrypointError(Exception):
    """The user's agent entrypoint is missing, malformed or cannot be imported."""


class SessionError(Exception):
    """The conversation kept in the session folder cannot be read or written (names the file)."""


def earlier_turns_note(earlier: int) -> str:
    """What the example agents' scripted models add to "Shouted: …" when they see earlier turns
    of the conversation (SPEC §7.1): nothing on a first turn, " (earlier turns: N)" after."""
    return f" (earlier turns: {earlier})" if earlier > 0 else ""


def check_sqlite(path: str) -> None:
    """Fail with a SessionError naming ``path`` when it exists and is not a readable SQLite
    database (a framework would otherwise fail later, deep in its run, without the name)."""
    if not os.path.exists(path):
        return
    import sqlite3

    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        raise SessionError(f"the session file {path} cannot be read: {exc}") from None


def read_session_json(path: str, parse):
    """``parse(bytes)`` of the session file at ``path``, None when it does not exist yet; any
    failure is a SessionError naming the file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SessionError(f"the session file {path} cannot be read: {exc}") from None
    try:
        return parse(data)
    except Exception as exc:  # noqa: BLE001 - whatever the framework's parser raises
        raise SessionError(f"the session file {path} is corrupt: {type(exc).__name__}: {exc}") from None


def write_session_file(path: str, data: bytes) -> None:
    """Replace the session file at ``path`` atomically."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        raise SessionError(f"the session file {path} cannot be written: {exc}") from None


def example_shout(text: str) -> str:
    """Body of the example agents' one tool: upper-cases ``text``.

    Sleeps 60 seconds first when ``text`` contains the word "slow" (cancel/deadline tests)."""
    if re.search(r"\bslow\b", text, re.IGNORECASE):
        time.sleep(60)
    return text.upper()


def model_id_from_env() -> str:
    """The production default agent's model id: env ``AGENTDISPATCH_MODEL_ID``."""
    model_id = os.environ.get("AGENTDISPATCH_MODEL_ID", "").strip()
    if not model_id:
        raise EntrypointError(
            "no agent: set AGENTDISPATCH_ENTRYPOINT (or input.entrypoint) to \"module:attr\", "
            "or AGENTDISPATCH_MODEL_ID for the default agent"
        )
    return model_id


def as_text(value) -> str:
    """Best-effort text of a framework value: str, message objects (``.text``/``.content``),
    lists of content blocks (their text parts joined), dicts with "text"/"content", else JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "".join(as_text(v) for v in value if not isinstance(v, dict) or "text" in v or "content" in v)
    if isinstance(value, dict):
        for key in ("text", "content", "output"):
            if key in value:
                return as_text(value[key])
        return json.dumps(value, ensure_ascii=False, default=_jsonable)
    for attr in ("text", "content"):
        v = getattr(value, attr, None)
        if callable(v) and not isinstance(v, str):  # langchain's .text is a callable str
            try:
                v = v()
            except TypeError:
                continue
        if v is not None:
            return as_text(v)
    return json.dumps(value, ensure_ascii=False, default=_jsonable)


def _jsonable(value):
    """json.dumps fallback for framework objects (pydantic models, dataclasses, …)."""
    for attr in ("model_dump", "dict", "_asdict"):
        fn = getattr(value, attr, None)
        if callable(fn):
            try:
                return fn()
            except Exception:  # noqa: BLE001 - fall through to str()
                pass
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class _Emitter:
    """Writes NDJSON lines to the protocol fd: one write per line, under a lock, unbuffered.

    A signal handler that interrupts this thread's own write defers itself (``defer``) until
    the line is complete, so a cancellation never splits or blanks a line."""

    def __init__(self, fd: int):
        self.fd = fd
        self.lock = threading.Lock()
        self.local = threading.local()
        self.deferred = None

    def busy_here(self) -> bool:
        return getattr(self.local, "writing", False)

    def write_line(self, obj: dict, timeout: float = -1) -> None:
        data = (json.dumps(obj, ensure_ascii=False, default=_jsonable) + "\n").encode("utf-8")
        self.local.writing = True
        try:
            got = self.lock.acquire(timeout=timeout)
            if not got:  # only the signal handler times out: another thread is stuck mid-line
                data = b"\n" + data
            try:
                while data:
                    n = os.write(self.fd, data)
                    data = data[n:]
            finally:
                if got:
                    self.lock.release()
        finally:
            self.local.writing = False
        if self.deferred is not None:
            deferred, self.deferred = self.deferred, None
            deferred()


# Longest protocol line the worker keeps whole (AGENTDISPATCH_MAX_LINE_BYTES); step texts are
# clipped well below it, and an over-long result output is moved to a file in the task folder.
_STEP_TEXT_LIMIT = 65536


def _clip(value):
    if isinstance(value, str) and len(value) > _STEP_TEXT_LIMIT:
        return value[:_STEP_TEXT_LIMIT] + f"… [{len(value) - _STEP_TEXT_LIMIT} characters cut]"
    return value


class Runner:
    """What ``run(runner)`` receives. Create through ``main``; tests may pass ``emit``."""

    def __init__(self, envelope: dict, framework: str = "", emit=None):
        if not isinstance(envelope, dict):
            raise ValueError("the envelope must be a JSON object")
        self.envelope = envelope
        self.framework = framework or str(envelope.get("framework") or "")
        inp = envelope.get("input")
        self.input: dict = inp if isinstance(inp, dict) else {}
        instruction = envelope.get("instruction")
        if instruction is None:
            instruction = self.input.get("instruction", "")
        self.instruction: str = instruction if isinstance(instruction, str) else json.dumps(instruction)
        context = envelope.get("context")
        if context is None:
            context = self.input.get("context")
        self.context: dict = context if isinstance(context, dict) else {}
        self.metadata: dict = envelope.get("metadata") if isinstance(envelope.get("metadata"), dict) else {}
        self.task_id: str | None = envelope.get("taskId") or os.environ.get("AGENTDISPATCH_TASK_ID") or None
        self.task_dir: str | None = envelope.get("taskDir") or os.environ.get("AGENTDISPATCH_TASK_DIR") or None
        self.session_id: str | None = envelope.get("sessionId") or None
        # The session's own folder (SPEC §7.1), where the conversation is kept; None without one.
        self.session_dir: str | None = envelope.get("sessionDir") or None
        # The key a framework's persistence files the conversation under: the folder's name
        # (the session id when it is a safe file name, else its hash).
        self.session_key: str | None = os.path.basename(self.session_dir) if self.session_dir else None
        self._emit = emit or _Emitter(sys.stdout.fileno()).write_line
        self.result_emitted = False
        self.steps = 0

    # -- events ---------------------------------------------------------------------------

    def emit(self, event: dict) -> None:
        """Write one raw event object as a protocol line."""
        self._emit(event)

    def progress(self, message: str, **payload) -> None:
        self._emit({"type": "task.progress", "message": message, "payload": payload})

    def log(self, message: str, **payload) -> None:
        self._emit({"type": "task.log", "message": message, "payload": payload})

    def step(self, step: str, **payload) -> None:
        """One agent step as a progress event: payload ``{"step": step, **payload}``.

        tool_call: tool=, args={...}; tool_result: tool=, result=<str>;
        model_turn: text=; final_answer: text=."""
        if step not in STEPS:
            raise ValueError(f"unknown step {step!r}; expected one of {', '.join(STEPS)}")
        self.steps += 1
        payload = {k: _clip(v) for k, v in payload.items()}
        message = f"{step} {payload['tool']}" if payload.get("tool") else step
        self.progress(message, step=step, **payload)

    def result(self, output: str, result: dict | None = None, artifacts: list | None = None) -> None:
        """Emit the task.result line (once)."""
        if self.result_emitted:
            raise RuntimeError("task.result was already emitted")
        self.result_emitted = True
        output = output if isinstance(output, str) else json.dumps(output, default=_jsonable)
        if result is None:
            result = {"framework": self.framework, "instruction": self.instruction, "steps": self.steps}
        limit = int(os.environ.get("AGENTDISPATCH_MAX_LINE_BYTES") or 1048576)
        if len(output.encode("utf-8")) > limit // 2 and self.task_dir:
            path = os.path.join(self.task_dir, "output.txt")
            with open(path, "w", encoding="utf-8") as f:
                f.write(output)
            cut = limit // 4
            output = output[:cut] + f"\n… [output cut; the whole text is in {path}]"
        event = {"type": "task.result", "output": output, "result": result}
        event["artifacts"] = list(artifacts or [])
        self._emit(event)

    def session_file(self, name: str) -> str | None:
        """Path of ``name`` in the session folder; None without a session."""
        return os.path.join(self.session_dir, name) if self.session_dir else None

    # -- the user's agent -----------------------------------------------------------------

    def entrypoint(self) -> str | None:
        """``input.entrypoint`` or env ``AGENTDISPATCH_ENTRYPOINT`` (empty counts as unset)."""
        spec = self.input.get("entrypoint") or os.environ.get("AGENTDISPATCH_ENTRYPOINT") or None
        if spec is not None and not isinstance(spec, str):
            raise EntrypointError(f"input.entrypoint must be a string \"module:attr\", got {spec!r}")
        return spec

    def load_agent(self, default_factory=None):
        """Return the user's agent object.

        The entrypoint ``module:attr`` (attr may be dotted) comes from ``input.entrypoint`` or
        env ``AGENTDISPATCH_ENTRYPOINT``; the module is imported with ``AGENTDISPATCH_APP_DIR``
        (default: the working directory) first on ``sys.path``. The attribute is returned as
        is (it is not called). Without an entrypoint, ``default_factory()`` builds the
        production default agent; without either, EntrypointError."""
        spec = self.entrypoint()
        if not spec:
            if default_factory is None:
                raise EntrypointError(
                    "no agent entrypoint: set input.entrypoint or AGENTDISPATCH_ENTRYPOINT to \"module:attr\""
                )
            return default_factory()
        module_name, sep, attr = spec.strip().partition(":")
        if not sep or not module_name or not attr or not all(p.isidentifier() for p in attr.split(".")):
            raise EntrypointError(f"invalid entrypoint {spec!r}: expected \"module:attr\", e.g. \"my_agent:agent\"")
        app_dir = os.path.abspath(os.environ.get("AGENTDISPATCH_APP_DIR") or os.getcwd())
        if app_dir not in sys.path:
            sys.path.insert(0, app_dir)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            if missing == module_name or module_name.startswith(missing + "."):
                raise EntrypointError(
                    f"entrypoint module {module_name!r} not found (AGENTDISPATCH_APP_DIR={app_dir})"
                ) from None
            raise EntrypointError(f"importing entrypoint module {module_name!r} failed: {exc}") from exc
        except Exception as exc:
            raise EntrypointError(
                f"importing entrypoint module {module_name!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
        reclaim_signals()  # the runner, not the agent module, owns SIGTERM
        obj = module
        for part in attr.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise EntrypointError(f"entrypoint module {module_name!r} has no attribute {attr!r}") from None
        return obj


# -- process plumbing -----------------------------------------------------------------------

def _protect_stdout() -> int:
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


class EnvelopeError(ValueError):
    """The stdin envelope is missing or not a JSON object."""


def _read_envelope(argv: list[str]) -> dict:
    """The JSON envelope from stdin; for manual use, ``runner.py some words`` with a terminal
    (or empty) stdin runs the words as the instruction."""
    data = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer.read().decode("utf-8", "replace").strip()
    if not data and argv:
        return {"taskType": "agent.run", "instruction": " ".join(argv), "input": {}}
    if not data:
        raise EnvelopeError("no envelope: expected one JSON object line on stdin")
    try:
        envelope = json.loads(data)
    except json.JSONDecodeError:
        try:
            envelope = json.loads(data.splitlines()[0])
        except json.JSONDecodeError as exc:
            raise EnvelopeError(f"the stdin envelope is not valid JSON: {exc}") from None
    if not isinstance(envelope, dict):
        raise EnvelopeError("the stdin envelope must be a JSON object")
    return envelope


def _fail(framework: str, exc: BaseException, code: int = 1) -> None:
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


def _exit(code: int) -> None:
    """Exit at once once the result is out: interpreter teardown of a large framework (module
    finalizers, telemetry shutdown, leftover threads) took 0.1-0.6 s per run, and the worker
    waits for the exit status. atexit handlers still run, bounded by
    AGENTDISPATCH_EXIT_GRACE_SECONDS."""
    grace = float(os.environ.get("AGENTDISPATCH_EXIT_GRACE_SECONDS") or 5)
    timer = threading.Timer(grace, os._exit, (code,))
    timer.daemon = True
    timer.start()
    try:
        import atexit

        atexit._run_exitfuncs()
    except Exception:  # noqa: BLE001
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass
    os._exit(code)


_SIGNAL_HANDLERS: dict = {}  # main()'s SIGTERM/SIGINT handlers


def reclaim_signals() -> None:
    """Re-install main()'s SIGTERM/SIGINT handlers if imported code replaced them (CrewAI's
    telemetry, for one, installs handlers that turn SIGTERM into a late SystemExit(0))."""
    for signum, handler in _SIGNAL_HANDLERS.items():
        if signal.getsignal(signum) is not handler:
            signal.signal(signum, handler)


def main(framework: str, run, argv: list[str] | None = None, warmup=None) -> None:
    """Run ``run(runner)`` as an agentdispatch child process and exit.

    Started by the worker as a warm parent (env ``AGENTDISPATCH_WARM_FD``), it first preloads
    the entrypoint (and calls ``warmup()``, if given), then forks one child per task; only those
    children return from ``serve_warm`` and go on below, exactly as a cold child would."""
    quiet_env()
    if os.environ.get("AGENTDISPATCH_WARM_FD"):
        import agentdispatch_warm

        agentdispatch_warm.serve(framework, run, warmup)  # returns only in a forked task child
    emitter = _Emitter(_protect_stdout())

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
        _SIGNAL_HANDLERS[signum] = on_signal

    try:
        envelope = _read_envelope(sys.argv[1:] if argv is None else argv)
        runner = Runner(envelope, framework, emit=emitter.write_line)
        output = run(runner)
        if not runner.result_emitted:
            if output is None:
                sys.stderr.write(f"{framework} runner: finished without a result\n")
            else:
                runner.result(output if isinstance(output, str) else json.dumps(output, default=_jsonable))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if code:
            _fail(framework, RuntimeError(f"exited with status {code}: {exc.code}"), code)
        _exit(0)
    except BaseException as exc:  # noqa: BLE001 - report everything, exit 1
        _fail(framework, exc)
    _exit(0)
