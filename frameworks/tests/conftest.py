"""Shared fixtures and helpers for the framework runner tests.

Each framework's test file is a subclass of ``FrameworkContract``::

    from conftest import FrameworkContract

    class TestLangchain(FrameworkContract):
        framework = "langchain"

It runs ``frameworks/<name>/runner.py`` the way the worker does (SPEC §6): the command of
``framework.json`` (``command[0]`` with a "/" resolved against the folder), the folder as working
directory, the manifest's env, one JSON envelope line on stdin, a new process group.
A missing ``.venv`` fails the tests with the set-up command to run; it never skips them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FRAMEWORKS = REPO / "frameworks"
SHARED = FRAMEWORKS / "_shared"
sys.path.insert(0, str(SHARED))  # unit tests import the agentdispatch package directly

EVENT_TYPES = {"task.progress", "task.log", "task.heartbeat", "task.result"}
STEPS = {"model_turn", "tool_call", "tool_result", "final_answer"}
RUN_TIMES: dict[str, list[float]] = {}  # framework → seconds per hello-world run (for the summary)

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


def framework_env(name: str, task_dir: Path, extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTDISPATCH_", "PYTHONPATH"))}
    env.update(manifest(name).get("env", {}))
    env.update({"AGENTDISPATCH_TASK_ID": "test-task", "AGENTDISPATCH_TASK_DIR": str(task_dir), "PYTHONUNBUFFERED": "1"})
    env.update(extra or {})
    return env


def envelope(name: str, instruction: str, task_dir: Path, input: dict | None = None) -> str:
    inp = {"instruction": instruction, **(input or {})}
    return json.dumps({
        "taskType": "agent.run", "framework": name, "instruction": instruction, "context": {},
        "input": inp, "metadata": {}, "taskId": "test-task", "taskDir": str(task_dir), "sessionId": "test-session",
    })


def parse_events(stdout: str) -> list[dict]:
    """Every stdout line must be one JSON event object (the protocol stream stays clean)."""
    events = []
    for line in stdout.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"non-JSON line on the protocol stdout: {line!r}", pytrace=False)
        assert isinstance(event, dict) and event.get("type") in EVENT_TYPES, f"not an event: {line!r}"
        if event["type"] == "task.progress" and "step" in (event.get("payload") or {}):
            assert event["payload"]["step"] in STEPS, f"unknown step: {line!r}"
        events.append(event)
    return events


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    events: list = field(default_factory=list)

    def steps(self, step: str | None = None) -> list[tuple[int, dict]]:
        """(index in events, payload) of the step progress events, optionally of one kind."""
        return [
            (i, e["payload"]) for i, e in enumerate(self.events)
            if e["type"] == "task.progress" and isinstance(e.get("payload"), dict)
            and "step" in e["payload"] and step in (None, e["payload"]["step"])
        ]

    @property
    def results(self) -> list[tuple[int, dict]]:
        return [(i, e) for i, e in enumerate(self.events) if e["type"] == "task.result"]

    @property
    def last_stderr_line(self) -> str:
        lines = self.stderr.strip().splitlines()
        return lines[-1] if lines else ""

    def describe(self) -> str:
        return f"exit {self.returncode}\n--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr[-4000:]}"


def start_framework(name: str, tmp_path: Path, instruction: str = "hello world", *, input: dict | None = None,
                    env: dict | None = None) -> subprocess.Popen:
    task_dir = tmp_path / "task"
    task_dir.mkdir(exist_ok=True)
    proc = subprocess.Popen(
        framework_command(name), cwd=FRAMEWORKS / name, env=framework_env(name, task_dir, env),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group, like the worker does
    )
    proc.stdin.write(envelope(name, instruction, task_dir, input) + "\n")
    proc.stdin.close()
    proc.stdin = None  # so that communicate() does not flush the closed pipe
    return proc


def run_framework(name: str, tmp_path: Path, instruction: str = "hello world", *, input: dict | None = None,
                  env: dict | None = None, timeout: float = 180) -> Run:
    started = time.monotonic()
    proc = start_framework(name, tmp_path, instruction, input=input, env=env)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        kill_group(proc.pid)
    run = Run(proc.returncode, stdout, stderr, time.monotonic() - started)
    run.events = parse_events(stdout)
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
    run.events = parse_events(proc.stdout)
    return run


ALL_STEPS = ("model_turn", "tool_call", "tool_result", "model_turn", "final_answer")


class FrameworkContract:
    """The tests every framework runner passes; subclasses set ``framework``."""

    framework: str = ""
    # the exact sequence of step kinds of the hello-world run, when the runner reports all of them
    expected_steps: tuple = ()

    def test_hello_world_streams_steps_then_result(self, tmp_path):
        run = run_framework(self.framework, tmp_path)
        assert run.returncode == 0, run.describe()
        RUN_TIMES.setdefault(self.framework, []).append(run.seconds)
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
        assert "no_such_agent_module" in run.last_stderr_line and "not found" in run.last_stderr_line, run.describe()

    def test_entrypoint_that_raises_fails_with_its_message(self, tmp_path):
        app = tmp_path / "app"
        write_module(app, "broken_agent", 'raise RuntimeError("agent construction failed: 42")\n')
        run = run_framework(self.framework, tmp_path, input={"entrypoint": "broken_agent:agent"},
                            env={"AGENTDISPATCH_APP_DIR": str(app)})
        assert run.returncode != 0, run.describe()
        assert "agent construction failed: 42" in run.last_stderr_line, run.describe()

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
                if '"tool_call"' in line:
                    break
            assert lines and '"tool_call"' in lines[-1], f"no tool_call event before the tool ended: {lines}"
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
            time.sleep(0.2)
            assert group_members(proc.pid) == [], "processes left behind"
        finally:
            kill_group(proc.pid)
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def test_runs_offline(self, tmp_path):
        hook_dir, log = tmp_path / "audit", tmp_path / "audit.log"
        write_module(hook_dir, "sitecustomize", AUDIT_SITECUSTOMIZE)
        run = run_framework(self.framework, tmp_path, env={"PYTHONPATH": str(hook_dir), "AGENTDISPATCH_AUDIT_LOG": str(log)})
        assert run.returncode == 0, run.describe()
        lines = log.read_text().splitlines()
        assert lines[:1] == ["# audit hook loaded"], lines
        assert lines[1:] == [], "network or process calls:\n" + "\n".join(lines[1:])


def pytest_terminal_summary(terminalreporter):
    if RUN_TIMES:
        timings = ", ".join(f"{name} {min(t):.2f}s" for name, t in sorted(RUN_TIMES.items()))
        terminalreporter.write_line(f"hello-world run time per framework (wall, incl. start-up): {timings}")
