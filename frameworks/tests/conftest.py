"""Shared fixtures and helpers for the framework runner tests.

Each framework's test file is a subclass of ``FrameworkContract``::

    from conftest import FrameworkContract

    class TestLangchain(FrameworkContract):
        framework = "langchain"

It runs ``frameworks/<name>/runner.py`` the way the worker does (SPEC §6): the command of
``framework.json`` (``command[0]`` with a "/" resolved against the folder), the folder as working
directory, the manifest's env, one JSON envelope line on stdin, a new process group.
A missing ``.venv`` fails the tests with the set-up command to run; it never skips them.

Warm or cold, as the worker starts a task: by default a test's runner is a process forked by the
framework's warm parent (README "The warm-parent protocol"), one per framework for the whole test
session, driven here as the worker drives it (this process is a child subreaper, so the task
processes are its children); so the framework's imports are paid once per framework, not once per
test. ``cold=True`` starts a fresh interpreter instead: for what only a fresh one shows (an audit
hook loaded at start-up, what the imports themselves write), and so that every framework has cold
tests too (``test_runs_offline``).
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FRAMEWORKS = REPO / "frameworks"
SHARED = FRAMEWORKS / "_shared"
sys.path.insert(0, str(SHARED))  # unit tests import the agentdispatch package directly

EVENT_TYPES = {"task.progress", "task.log", "task.heartbeat", "task.result", "task.interrupt"}
DELTA_KINDS = {"text", "reasoning", "tool_call"}
STEPS = {"model_turn", "tool_call", "tool_result", "final_answer"}
RUN_TIMES: dict[tuple[str, str], list[float]] = {}  # (framework, "cold"/"warm") → seconds per run
PR_SET_CHILD_SUBREAPER = 36

# Loaded through PYTHONPATH: logs every network look-up/connection and process start to the file
# named by AGENTDISPATCH_AUDIT_LOG, after a first "loaded" line that proves the hook was active.
AUDIT_SITECUSTOMIZE = textwrap.dedent(
    """
    import os, sys
    _log = os.environ.get("AGENTDISPATCH_AUDIT_LOG")
    _watched = {"socket.getaddrinfo", "socket.gethostbyname", "socket.connect", "subprocess.Popen",
                "os.system", "os.posix_spawn", "os.exec"}
    if _log:
        with open(_log, "a") as f:
            f.write("# audit hook loaded\\n")
        def _hook(event, args):
            if event in _watched:
                with open(_log, "a") as f:
                    f.write(f"{event} {args!r:.300}\\n")
        sys.addaudithook(_hook)
    """
)


def manifest(name: str) -> dict:
    return json.loads((FRAMEWORKS / name / "framework.json").read_text())


def framework_command(name: str) -> list[str]:
    """framework.json's command, command[0] resolved against the folder; fails if the venv is missing."""
    folder = FRAMEWORKS / name
    command = list(manifest(name)["command"])
    if "/" in command[0]:
        command[0] = str(folder / command[0])
    if not Path(command[0]).exists():
        pytest.fail(f"{name}: {command[0]} is missing; run scripts/setup-frameworks.sh {name}", pytrace=False)
    return command


def base_env(name: str) -> dict:
    """This process's environment without the worker's variables, plus the manifest's env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTDISPATCH_", "PYTHONPATH"))}
    env.update(manifest(name).get("env", {}))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def framework_env(name: str, task_dir: Path, extra: dict | None = None) -> dict:
    env = base_env(name)
    env.update({"AGENTDISPATCH_TASK_ID": "test-task", "AGENTDISPATCH_TASK_DIR": str(task_dir)})
    env.update(extra or {})
    return env


def envelope(name: str, instruction: str, task_dir: Path, input: dict | None = None) -> str:
    inp = {"instruction": instruction, **(input or {})}
    return json.dumps({
        "taskType": "agent.run", "framework": name, "instruction": instruction, "context": {},
        "input": inp, "metadata": {}, "taskId": "test-task", "taskDir": str(task_dir), "sessionId": "test-session",
    })


def parse_lines(stdout: str) -> list[dict]:
    """Every stdout line must be one JSON event object or live delta (the protocol stream stays
    clean); deltas must have SPEC §4.1's shape."""
    lines = []
    for line in stdout.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"non-JSON line on the protocol stdout: {line!r}", pytrace=False)
        assert isinstance(event, dict), f"not an object: {line!r}"
        if event.get("type") == "task.delta":
            check_delta(event, line)
        else:
            assert event.get("type") in EVENT_TYPES, f"not an event: {line!r}"
        if event["type"] == "task.progress" and "step" in (event.get("payload") or {}):
            assert event["payload"]["step"] in STEPS, f"unknown step: {line!r}"
        lines.append(event)
    return lines


def check_delta(event: dict, line: str) -> None:
    payload = event.get("payload")
    assert set(event) == {"type", "payload"} and isinstance(payload, dict), f"not a delta: {line!r}"
    assert isinstance(payload.get("messageId"), str) and payload["messageId"], f"no messageId: {line!r}"
    kind = payload.get("kind", "text")
    assert kind in DELTA_KINDS, f"unknown delta kind: {line!r}"
    if kind == "tool_call":
        assert isinstance(payload.get("toolCallId"), str) and payload["toolCallId"], line
        assert isinstance(payload.get("argsDelta"), str) and payload["argsDelta"], line
    else:
        assert isinstance(payload.get("text"), str) and payload["text"], f"a delta without text: {line!r}"


def parse_events(stdout: str) -> list[dict]:
    """The events of the protocol stdout (``parse_lines``' checks), without the live deltas."""
    return [e for e in parse_lines(stdout) if e["type"] != "task.delta"]


def is_step(line: str, step: str) -> bool:
    """Whether a protocol line is a ``step`` progress event (a delta line may name it too)."""
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return False
    return isinstance(event, dict) and event.get("type") == "task.progress" \
        and (event.get("payload") or {}).get("step") == step


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    cold: bool = False
    events: list = field(default_factory=list)  # the events, without the deltas
    lines: list = field(default_factory=list)  # every protocol line in order: events and deltas

    def deltas(self, message_id: str | None = None, kind: str = "text") -> list[tuple[int, dict]]:
        """(index in lines, payload) of the live deltas of one kind, optionally of one message."""
        return [
            (i, e["payload"]) for i, e in enumerate(self.lines)
            if e["type"] == "task.delta" and e["payload"].get("kind", "text") == kind
            and message_id in (None, e["payload"]["messageId"])
        ]

    def steps(self, step: str | None = None) -> list[tuple[int, dict]]:
        """(index in events, payload) of the step progress events, optionally of one kind."""
        return [
            (i, e["payload"]) for i, e in enumerate(self.events)
            if e["type"] == "task.progress" and isinstance(e.get("payload"), dict)
            and "step" in e["payload"] and step in (None, e["payload"]["step"])
        ]

    @property
    def results(self) -> list[tuple[int, dict]]:
        """The answers (a failure's result line, ok false, is ``failure``)."""
        return [(i, e) for i, e in enumerate(self.events) if e["type"] == "task.result" and e.get("ok") is not False]

    @property
    def failure(self) -> dict | None:
        """The failure's result line: one-line ``error``, ``errorCode``; None without one."""
        failed = [e for e in self.events if e["type"] == "task.result" and e.get("ok") is False]
        return failed[-1] if failed else None

    @property
    def last_stderr_line(self) -> str:
        lines = self.stderr.strip().splitlines()
        return lines[-1] if lines else ""

    def describe(self) -> str:
        how = "cold" if self.cold else "forked by the warm parent"
        return f"{how}, exit {self.returncode}\n--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr[-4000:]}"


class WarmTask:
    """A task process forked by a warm parent, with the parts of ``subprocess.Popen`` the tests
    use. It is re-parented to this process (a child subreaper), which waits for it."""

    def __init__(self, pid: int, stdin: int, stdout: int, stderr: int, holder: int | None = None):
        self.pid = pid
        self.holder = holder  # shares the task's memory and exits right after it (README)
        self.returncode = None
        self.stdin = os.fdopen(stdin, "w")
        self.stdout = os.fdopen(stdout)
        self.stderr = os.fdopen(stderr)
        self._pidfd = os.pidfd_open(pid)  # readable once the process has ended

    def poll(self):
        if self.returncode is None and select.select([self._pidfd], [], [], 0)[0]:
            self.wait()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if not select.select([self._pidfd], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(f"warm task {self.pid}", timeout)
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
            os.close(self._pidfd)
            self._reap_holder()
        return self.returncode

    def _reap_holder(self) -> None:
        """The memory holder, orphaned by the task's exit, is re-parented here: wait for it."""
        if self.holder is None:
            return
        try:
            pidfd = os.pidfd_open(self.holder)
        except ProcessLookupError:
            return
        try:
            if not select.select([pidfd], [], [], 10)[0]:
                raise AssertionError(f"the memory holder {self.holder} outlived its task by 10 s")
            os.waitpid(self.holder, 0)
        except ChildProcessError:
            pass  # not ours (already reaped, or never re-parented here)
        finally:
            os.close(pidfd)

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """Both pipes to their end, then the exit, as Popen's."""
        texts: dict[str, str] = {}
        readers = [threading.Thread(target=lambda k=k, f=f: texts.__setitem__(k, f.read()), daemon=True)
                   for k, f in (("out", self.stdout), ("err", self.stderr))]
        for reader in readers:
            reader.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        left = lambda: None if deadline is None else max(0.0, deadline - time.monotonic())  # noqa: E731
        for reader in readers:
            reader.join(left())
            if reader.is_alive():
                raise subprocess.TimeoutExpired(f"warm task {self.pid}", timeout)
        self.wait(left())
        return texts["out"], texts["err"]


class WarmParent:
    """``name``'s runner as a warm parent, driven as the worker drives one (README "The
    warm-parent protocol"): a SOCK_SEQPACKET socket as AGENTDISPATCH_WARM_FD, a ready message
    once the framework is imported, then a fork request per task with its stdin, stdout, stderr."""

    def __init__(self, name: str):
        self.name = name
        command = framework_command(name)
        self.log = tempfile.NamedTemporaryFile(prefix=f"warm-parent-{name}-", suffix=".log")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        fd = theirs.fileno()
        # As the worker does: the task id variable is a placeholder each task writes its id over.
        self.env = {**base_env(name), "AGENTDISPATCH_WARM_FD": str(fd), "AGENTDISPATCH_TASK_ID": "_" * 128}
        started = time.monotonic()
        self.proc = subprocess.Popen(command, cwd=FRAMEWORKS / name, env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT, pass_fds=(fd,))
        theirs.close()
        self.sock = ours
        self.sock.settimeout(300)  # the framework's imports, on a loaded machine
        self.ready = self._receive("its ready message")
        self.start_seconds = time.monotonic() - started
        if self.ready.get("type") != "ready" or self.ready.get("threads") != 1:
            self.fail(f"not a ready single-threaded parent: {self.ready}")

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-4000:]

    def fail(self, what: str):
        pytest.fail(f"{self.name} warm parent: {what}\n--- its output ---\n{self.output()}", pytrace=False)

    def _receive(self, what: str) -> dict:
        try:
            data = self.sock.recv(65536)
        except OSError as exc:
            self.fail(f"no {what}: {exc}")
        if not data:
            self.fail(f"closed its socket before {what} (exit {self.proc.poll()})")
        return json.loads(data)

    def fork(self, env: dict, cwd: Path) -> WarmTask:
        """A task process with exactly ``env`` as its environment and ``cwd`` as its directory."""
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        request = {"op": "fork", "taskId": env.get("AGENTDISPATCH_TASK_ID", ""), "env": env,
                   "unset": sorted(set(self.env) - set(env)), "cwd": str(cwd)}
        socket.send_fds(self.sock, [json.dumps(request).encode()], [in_r, out_w, err_w])
        for f in (in_r, out_w, err_w):
            os.close(f)
        reply = self._receive("a fork reply")
        if not reply.get("ok"):
            for f in (in_w, out_r, err_r):
                os.close(f)
            self.fail(f"refused a fork: {reply}")
        return WarmTask(reply["pid"], in_w, out_r, err_r, reply.get("holder"))

    def close(self) -> int:
        self.sock.close()  # the end of the channel ends the parent
        try:
            return self.proc.wait(timeout=30)
        finally:
            self.log.close()


WARM_PARENTS: dict[str, WarmParent] = {}


def warm_parent(name: str) -> WarmParent:
    """The test session's warm parent of ``name``, started on first use."""
    if name not in WARM_PARENTS:
        WARM_PARENTS[name] = WarmParent(name)
    return WARM_PARENTS[name]


def pytest_configure(config):
    # Forked task processes are re-parented to the nearest child subreaper: this process, as the
    # worker is for its tasks (the warm parent's spares check it and refuse to serve otherwise).
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise RuntimeError(f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}")


def pytest_sessionfinish(session, exitstatus):
    for parent in WARM_PARENTS.values():
        parent.close()


def start_framework(name: str, tmp_path: Path, instruction: str = "hello world", *, input: dict | None = None,
                    env: dict | None = None, cold: bool = False) -> subprocess.Popen | WarmTask:
    """The runner on one envelope: forked by the framework's warm parent, or with ``cold`` a
    fresh interpreter; either way in its own session and process group, like the worker's. An
    ``input.entrypoint`` comes approved, as from a worker whose allowlist has it, unless ``env``
    sets AGENTDISPATCH_PAYLOAD_ENTRYPOINT itself."""
    task_dir = tmp_path / "task"
    task_dir.mkdir(exist_ok=True)
    task_env = framework_env(name, task_dir, env)
    if (input or {}).get("entrypoint"):  # as the worker says it allowed the payload's entrypoint
        task_env.setdefault("AGENTDISPATCH_PAYLOAD_ENTRYPOINT", input["entrypoint"])
    if cold:
        proc = subprocess.Popen(
            framework_command(name), cwd=FRAMEWORKS / name, env=task_env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,  # its own process group, like the worker does
        )
    else:
        proc = warm_parent(name).fork(task_env, FRAMEWORKS / name)
    proc.stdin.write(envelope(name, instruction, task_dir, input) + "\n")
    proc.stdin.close()
    proc.stdin = None  # so that communicate() does not flush the closed pipe
    return proc


def run_framework(name: str, tmp_path: Path, instruction: str = "hello world", *, input: dict | None = None,
                  env: dict | None = None, timeout: float = 180, cold: bool = False) -> Run:
    if not cold:
        warm_parent(name)  # started (and timed) on its own
    started = time.monotonic()
    proc = start_framework(name, tmp_path, instruction, input=input, env=env, cold=cold)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        kill_group(proc.pid)
    run = Run(proc.returncode, stdout, stderr, time.monotonic() - started, cold=cold)
    run.lines = parse_lines(stdout)
    run.events = [e for e in run.lines if e["type"] != "task.delta"]
    if run.returncode == 0 and instruction == "hello world":
        RUN_TIMES.setdefault((name, "cold" if cold else "warm"), []).append(run.seconds)
    return run


def group_members(pgid: int) -> list[str]:
    """Processes whose process group or session is ``pgid`` (pid and command line)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and pgid in (int(fields[2]), int(fields[3])):
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{stat.parent.name}: {cmdline}")
    return found


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@pytest.fixture
def app(tmp_path, monkeypatch):
    """``tmp_path/app`` as AGENTDISPATCH_APP_DIR (no AGENTDISPATCH_ENTRYPOINT); sys.path is
    restored and the modules imported meanwhile are forgotten afterwards."""
    root = tmp_path / "app"
    root.mkdir()
    monkeypatch.setenv("AGENTDISPATCH_APP_DIR", str(root))
    monkeypatch.delenv("AGENTDISPATCH_ENTRYPOINT", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield root
    for name in set(sys.modules) - before:
        del sys.modules[name]


def write_module(folder: Path, name: str, source: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


def run_plain_runner(tmp_path: Path, body: str, stdin: str = '{"instruction": "hi"}', *, args: tuple = (),
                     env: dict | None = None, timeout: float = 30) -> Run:
    """Run a tiny runner on the shared helper with plain python3: ``body`` defines ``run(runner)``."""
    script = write_module(tmp_path / "plain", "plain_runner", textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(SHARED)!r})
        from agentdispatch import main
    """) + textwrap.dedent(body) + '\nmain("plain", run)\n')
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTDISPATCH_")}
    full_env.update(env or {})
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(script), *args], input=stdin, capture_output=True, text=True,
                          env=full_env, cwd=tmp_path, timeout=timeout)
    run = Run(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)
    run.lines = parse_lines(proc.stdout)
    run.events = [e for e in run.lines if e["type"] != "task.delta"]
    return run


ALL_STEPS = ("model_turn", "tool_call", "tool_result", "model_turn", "final_answer")

# The live-text tests, in their own module; imported here, after what it takes from this one.
from live_contract import LiveTextContract, check_live_text  # noqa: E402


class FrameworkContract(LiveTextContract):
    """The tests every framework runner passes; subclasses set ``framework``. The live-text ones
    (SPEC §4.1) come from ``live_contract.LiveTextContract``."""

    framework: str = ""
    # the exact sequence of step kinds of the hello-world run, when the runner reports all of them
    expected_steps: tuple = ()

    def test_hello_world_streams_steps_then_result(self, tmp_path):
        run = run_framework(self.framework, tmp_path)
        assert run.returncode == 0, run.describe()
        results = run.results
        assert len(results) == 1, run.describe()
        result_index, result = results[0]
        assert result["output"] == "Shouted: HELLO WORLD", run.describe()
        assert result_index == len(run.events) - 1, "task.result must be the last event"
        calls, outs = run.steps("tool_call"), run.steps("tool_result")
        assert calls and outs, f"no tool_call/tool_result step events\n{run.describe()}"
        (call_i, call), (out_i, out) = calls[0], outs[0]
        assert call["tool"] == "shout" and call["args"] == {"text": "hello world"}, call
        assert out["tool"] == "shout" and "HELLO WORLD" in out["result"], out
        assert call_i < out_i < result_index, run.describe()
        if self.expected_steps:
            assert tuple(p["step"] for _, p in run.steps()) == self.expected_steps, run.describe()
            assert run.steps("final_answer")[-1][1]["text"] == "Shouted: HELLO WORLD"

    def test_missing_entrypoint_module_fails_clearly(self, tmp_path):
        run = run_framework(self.framework, tmp_path, input={"entrypoint": "no_such_agent_module:agent"})
        assert run.returncode != 0, run.describe()
        assert not run.results, run.describe()
        assert "no module 'no_such_agent_module'" in run.last_stderr_line, run.describe()
        assert run.failure["errorCode"] == "agent_import_failed", run.describe()

    def test_entrypoint_that_raises_fails_with_its_message(self, tmp_path):
        app = tmp_path / "app"
        write_module(app, "broken_agent", 'raise RuntimeError("agent construction failed: 42")\n')
        run = run_framework(self.framework, tmp_path, input={"entrypoint": "broken_agent:agent"},
                            env={"AGENTDISPATCH_APP_DIR": str(app)})
        assert run.returncode != 0, run.describe()
        assert "agent construction failed: 42 (broken_agent.py:1, in <module>)" in run.last_stderr_line, run.describe()
        assert run.failure["errorCode"] == "agent_import_failed", run.describe()

    def test_a_factory_of_your_own_returning_the_agent_runs(self, tmp_path):
        app = tmp_path / "app"
        module, _, attr = manifest(self.framework)["env"]["AGENTDISPATCH_ENTRYPOINT"].partition(":")
        write_module(app, "agent_factory", f"""
            import importlib
            def build():  # the example agent, from the runner's folder (on sys.path)
                return getattr(importlib.import_module({module!r}), {attr!r})
        """)
        run = run_framework(self.framework, tmp_path, input={"entrypoint": "agent_factory:build"},
                            env={"AGENTDISPATCH_APP_DIR": str(app)})
        assert run.returncode == 0, run.describe()
        assert run.results[0][1]["output"] == "Shouted: HELLO WORLD", run.describe()

    def test_a_function_returning_no_agent_fails_saying_what_was_expected(self, tmp_path):
        app = tmp_path / "app"
        write_module(app, "not_an_agent", "def build():\n    return 42\n")
        run = run_framework(self.framework, tmp_path, input={"entrypoint": "not_an_agent:build"},
                            env={"AGENTDISPATCH_APP_DIR": str(app)})
        assert run.returncode == 1 and not run.results, run.describe()
        line = run.last_stderr_line
        assert "'not_an_agent:build' is a function returning an int, expected" in line, run.describe()
        assert line.endswith("or a factory returning one"), run.describe()
        assert run.failure["errorCode"] == "invalid_entrypoint", run.describe()

    def test_a_library_function_is_never_called_even_when_allowed(self, tmp_path):
        # cgi.print_environ prints the whole environment: called as a "factory", it would put
        # the worker's secrets into the task's stderr (and so into its answer).
        canary = "canary-" + os.urandom(6).hex()
        run = run_framework(self.framework, tmp_path, input={"entrypoint": "cgi:print_environ"},
                            env={"AGENTDISPATCH_TEST_SECRET": canary})
        assert run.returncode == 1 and not run.results, run.describe()
        assert canary not in run.stdout + run.stderr, run.describe()
        assert "'cgi:print_environ' is the function cgi.print_environ from outside your code" in run.last_stderr_line

    def test_a_payload_entrypoint_the_worker_did_not_allow_is_not_imported(self, tmp_path):
        app = tmp_path / "app"
        marker = tmp_path / "imported"
        write_module(app, "unapproved", f"open({str(marker)!r}, 'w').close()\nagent = None\n")
        run = run_framework(self.framework, tmp_path, input={"entrypoint": "unapproved:agent"},
                            env={"AGENTDISPATCH_APP_DIR": str(app), "AGENTDISPATCH_PAYLOAD_ENTRYPOINT": ""})
        assert run.returncode == 1 and not run.results, run.describe()
        assert "was not allowed by the worker" in run.last_stderr_line, run.describe()
        assert not marker.exists(), "the module was imported"

    def test_sigterm_mid_slow_tool_exits_quickly_and_leaves_no_process(self, tmp_path):
        proc = start_framework(self.framework, tmp_path, "please be slow")
        try:
            lines = []
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # the tool_call event arrives while the tool runs
                line = proc.stdout.readline()
                if not line:
                    break
                lines.append(line)
                if is_step(line, "tool_call"):
                    break
            assert lines and is_step(lines[-1], "tool_call"), f"no tool_call event before the tool ended: {lines}"
            time.sleep(0.3)  # let the tool start sleeping
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
            waited = time.monotonic() - sent
            rest = proc.stdout.read()
            assert waited < 5, f"took {waited:.1f}s to exit after SIGTERM"
            assert proc.returncode == 143, proc.returncode
            assert "cancelled by SIGTERM" in rest, rest
            assert not [e for e in parse_events(rest) if e["type"] == "task.result"]
            assert eventually(lambda: group_members(proc.pid) == [], 2), \
                f"processes left behind: {group_members(proc.pid)}"
        finally:
            kill_group(proc.pid)
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def test_runs_offline(self, tmp_path):
        # Cold: the hook loads at interpreter start-up, before the framework's imports.
        hook_dir, log, home = tmp_path / "audit", tmp_path / "audit.log", tmp_path / "home"
        write_module(hook_dir, "sitecustomize", AUDIT_SITECUSTOMIZE)
        home.mkdir()
        run = run_framework(self.framework, tmp_path, cold=True, env={
            "PYTHONPATH": str(hook_dir), "AGENTDISPATCH_AUDIT_LOG": str(log), "HOME": str(home)})
        assert run.returncode == 0, run.describe()
        assert run.results and run.results[-1][1]["output"] == "Shouted: HELLO WORLD", run.describe()
        lines = log.read_text().splitlines()
        assert lines[:1] == ["# audit hook loaded"], lines
        assert lines[1:] == [], "network or process calls:\n" + "\n".join(lines[1:])
        check_live_text(run)  # a cold child streams as a warm one does
        self.check_cold_run(run, tmp_path, home)

    def check_cold_run(self, run: Run, tmp_path: Path, home: Path) -> None:
        """A framework's own checks of its cold run (test_runs_offline's, with ``home`` as $HOME):
        what only a fresh interpreter shows, checked on the one such run rather than another."""


def eventually(condition, within: float) -> bool:
    """Whether ``condition()`` holds within ``within`` seconds (checked every 10 ms)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def pytest_terminal_summary(terminalreporter):
    if RUN_TIMES:
        timings = ", ".join(f"{name} {kind} {min(t):.2f}s" for (name, kind), t in sorted(RUN_TIMES.items()))
        terminalreporter.write_line(f"hello-world run time (wall; cold: incl. start-up and imports): {timings}")
    if WARM_PARENTS:
        starts = ", ".join(f"{name} {p.start_seconds:.2f}s" for name, p in sorted(WARM_PARENTS.items()))
        terminalreporter.write_line(f"warm parents, start to ready (the imports, once per framework): {starts}")
