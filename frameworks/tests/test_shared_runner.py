"""Unit tests of the helper package frameworks/_shared/agentdispatch with plain python3 (no framework)."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import agentdispatch as adr
from conftest import AUDIT_SITECUSTOMIZE, parse_events, run_plain_runner, write_module


def collecting_runner(envelope, **kw):
    events = []
    return adr.Runner(envelope, "test", emit=events.append, **kw), events


# -- envelope --------------------------------------------------------------------------------

def test_envelope_fields():
    env = {"taskType": "agent.run", "framework": "x", "instruction": "do it", "context": {"a": 1},
           "input": {"entrypoint": "m:a", "k": 2}, "metadata": {"m": 3}, "taskId": "t1",
           "taskDir": "/tmp/t1", "sessionId": "s1"}
    r, _ = collecting_runner(env)
    assert (r.instruction, r.context, r.input, r.metadata) == ("do it", {"a": 1}, env["input"], {"m": 3})
    assert (r.task_id, r.task_dir, r.session_id, r.envelope) == ("t1", "/tmp/t1", "s1", env)


def test_envelope_falls_back_to_input_and_env(monkeypatch):
    monkeypatch.setenv("AGENTDISPATCH_TASK_DIR", "/tmp/from-env")
    r, _ = collecting_runner({"input": {"instruction": "from input", "context": {"c": 1}}})
    assert (r.instruction, r.context, r.task_dir) == ("from input", {"c": 1}, "/tmp/from-env")
    r, _ = collecting_runner({"input": "not an object", "context": None})
    assert (r.instruction, r.context, r.input) == ("", {}, {})


def test_history_is_the_callers_conversation_before_the_turn():
    """An AG-UI run's messages (SPEC §13): the text of those before the last user message."""
    messages = [
        {"id": "1", "role": "developer", "content": "be brief"},
        {"id": "2", "role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image", "source": {}}]},
        {"id": "3", "role": "assistant", "content": "", "toolCalls": [{"id": "c"}]},
        {"id": "4", "role": "tool", "content": "x", "toolCallId": "c"},
        {"id": "5", "role": "assistant", "content": "hello"},
        {"id": "6", "role": "user", "content": "again"},
        {"id": "7", "role": "assistant", "content": "a reply after the turn is not history"},
    ]
    r, _ = collecting_runner({"input": {"instruction": "again", "messages": messages}})
    assert r.history == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
                         {"role": "assistant", "content": "hello"}]
    assert r.history_turns() == [{"instruction": "hi", "output": "hello"}]
    assert collecting_runner({"input": {"messages": "no"}})[0].history == []
    assert collecting_runner({"instruction": "x"})[0].history == []


def test_envelope_must_be_an_object():
    with pytest.raises(ValueError):
        adr.Runner(["not", "a", "dict"])


# -- events ----------------------------------------------------------------------------------

def test_step_progress_log_and_result_shapes():
    r, events = collecting_runner({"instruction": "hi"})
    r.step("tool_call", tool="shout", args={"text": "hi"})
    r.step("tool_result", tool="shout", result="HI")
    r.log("note", level="info")
    r.result("Shouted: HI")
    assert events == [
        {"type": "task.progress", "message": "tool_call shout", "payload": {"step": "tool_call", "tool": "shout", "args": {"text": "hi"}}},
        {"type": "task.progress", "message": "tool_result shout", "payload": {"step": "tool_result", "tool": "shout", "result": "HI"}},
        {"type": "task.log", "message": "note", "payload": {"level": "info"}},
        {"type": "task.result", "output": "Shouted: HI", "result": {"framework": "test", "instruction": "hi", "steps": 2}, "artifacts": []},
    ]


def test_unknown_step_and_second_result_are_errors():
    r, _ = collecting_runner({})
    with pytest.raises(ValueError):
        r.step("thinking")
    r.result("one")
    with pytest.raises(RuntimeError):
        r.result("two")


def test_long_step_text_is_clipped():
    r, events = collecting_runner({})
    r.step("model_turn", text="x" * 200_000)
    assert len(events[0]["payload"]["text"]) < 70_000


def test_over_long_output_goes_to_a_file(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTDISPATCH_MAX_LINE_BYTES", "1000")
    r, events = collecting_runner({"taskDir": str(tmp_path)})
    r.result("y" * 5000)
    assert (tmp_path / "output.txt").read_text() == "y" * 5000
    assert len(events[0]["output"]) < 1000 and "output.txt" in events[0]["output"]


def test_as_text():
    assert adr.as_text([{"type": "text", "text": "a"}, {"type": "image"}, "b"]) == "ab"
    assert adr.as_text(None) == "" and adr.as_text({"content": "c"}) == "c" and adr.as_text(3) == "3"


def test_quiet_env_keeps_user_values(monkeypatch):
    monkeypatch.setenv("LANGSMITH_TRACING", "true")
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    monkeypatch.delenv("CREWAI_DISABLE_TELEMETRY", raising=False)
    adr.quiet_env()
    assert os.environ["LANGSMITH_TRACING"] == "true"
    assert os.environ["OTEL_SDK_DISABLED"] == "true" and os.environ["CREWAI_DISABLE_TELEMETRY"] == "true"


@pytest.mark.parametrize("asked", [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                                   ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/v1/traces"),
                                   ("AGENT_OBSERVABILITY_ENABLED", "true")])
def test_quiet_env_keeps_opentelemetry_on_when_traces_are_asked_for(monkeypatch, asked):
    for name in ("OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                 "AGENT_OBSERVABILITY_ENABLED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(*asked)
    adr.quiet_env()
    assert "OTEL_SDK_DISABLED" not in os.environ and os.environ["CREWAI_DISABLE_TELEMETRY"] == "true"
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")  # the user's word wins
    assert not adr.otel.wanted()


def test_example_shout():
    assert adr.example_shout("hello world") == "HELLO WORLD"



# -- live text (SPEC §4.1) ---------------------------------------------------------------------

from agentdispatch.live import piece_budget, split_piece  # noqa: E402


@pytest.mark.parametrize("limit, budget", [(None, 65536), ("4096", 1024), ("100", 256), ("not a number", 65536)])
def test_piece_budget_is_a_quarter_of_the_line_limit(monkeypatch, limit, budget):
    if limit is None:
        monkeypatch.delenv("AGENTDISPATCH_MAX_LINE_BYTES", raising=False)
    else:
        monkeypatch.setenv("AGENTDISPATCH_MAX_LINE_BYTES", limit)
    assert piece_budget() == budget


@pytest.mark.parametrize("text", ["a" * 5000, "\x01" * 5000, "é" * 5000, "😀" * 5000, '"\\' * 2000, "x"])
def test_split_piece_fits_every_part_and_keeps_the_text(text):
    parts = split_piece(text, 1024)
    assert "".join(parts) == text and all(parts)
    assert all(len(json.dumps(p, ensure_ascii=False).encode()) - 2 <= 1024 for p in parts)
    if text == "a" * 5000:
        assert len(parts) == 5  # plain text: parts as long as the budget allows


def test_live_text_deltas_and_message_ids():
    r, events = collecting_runner({})
    r.live.text("run-a", "Hel")
    r.live.text("run-a", "")  # nothing to say: no line
    r.live.text("run-a", None)
    r.live.text("run-a", "lo", kind="reasoning")
    r.live.tool_args("run-a", "{\"te", index=0, tool_call_id="c1", tool="shout")
    r.live.tool_args("run-a", "xt\": 1}", index=0)  # id and name come with the first piece only
    r.live.tool_args("run-a", "lost", index=1)  # a call whose id is not known yet: not announced
    assert r.live.close("run-a", "Hel") == "m-1"
    r.live.text("run-a", "again")  # a closed key that writes again is a new message
    r.delta("m-9", "direct")
    assert [e["payload"] for e in events] == [
        {"messageId": "m-1", "text": "Hel"},
        {"messageId": "m-1", "text": "lo", "kind": "reasoning"},
        {"messageId": "m-1", "kind": "tool_call", "toolCallId": "c1", "tool": "shout", "argsDelta": '{"te'},
        {"messageId": "m-1", "kind": "tool_call", "toolCallId": "c1", "tool": "shout", "argsDelta": 'xt": 1}'},
        {"messageId": "m-2", "text": "again"},
        {"messageId": "m-9", "text": "direct"},
    ]
    assert {e["type"] for e in events} == {"task.delta"}
    assert r.live.close(None) == "m-3"  # a message with no delta still gets its id


def test_bad_deltas_are_refused_by_name():
    r, events = collecting_runner({})
    with pytest.raises(ValueError, match="unknown delta kind 'image'"):
        r.delta("m-1", "x", kind="image")
    with pytest.raises(TypeError, match="must be a string, not int"):
        r.delta("m-1", 42)
    with pytest.raises(ValueError, match="needs the tool call's id"):
        r.delta("m-1", "{}", kind="tool_call")
    assert events == []


def test_final_answer_carries_the_messageId_of_the_message_it_repeats():
    r, events = collecting_runner({})
    r.live.text(None, "Hi")
    r.step("model_turn", text="Hi", messageId=r.live.close(None, "Hi"))
    r.final_answer("Hi")
    r.final_answer("something else")  # not that message's text: no messageId
    assert events[-2]["payload"] == {"step": "final_answer", "text": "Hi", "messageId": "m-1"}
    assert events[-1]["payload"] == {"step": "final_answer", "text": "something else"}


def test_a_long_piece_goes_out_in_lines_under_the_limit(tmp_path):
    run = run_plain_runner(tmp_path, """
        def run(r):
            r.delta("m-1", "é" * 300000)
            return "done"
    """, env={"AGENTDISPATCH_MAX_LINE_BYTES": "65536"})
    assert run.returncode == 0, run.describe()
    assert "".join(p["text"] for _, p in run.deltas("m-1")) == "é" * 300000
    assert max(len(line.encode()) for line in run.stdout.splitlines()) <= 65536 // 4 + 100


def test_example_pieces_add_up():
    assert adr.example_pieces("Shouted: HELLO WORLD") == ["Shouted: ", "HELLO ", "WORLD"]
    assert adr.example_pieces("one") == ["one"]


def test_piece_pause_sleeps_the_piece_delay(monkeypatch):
    monkeypatch.setenv("AGENTDISPATCH_EXAMPLE_PIECE_DELAY_MS", "30")
    started = time.monotonic()
    adr.piece_pause(0)
    assert time.monotonic() - started >= 0.03


def test_piece_pause_waits_for_a_line_on_the_gate(tmp_path, monkeypatch):
    # Before every piece but the first, the example models wait for one line on the gate FIFO.
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    fd = os.open(gate, os.O_RDWR)
    monkeypatch.setenv("AGENTDISPATCH_EXAMPLE_PIECE_GATE", str(gate))
    try:
        adr.piece_pause(0)  # the first piece never waits
        done = threading.Event()
        waiter = threading.Thread(target=lambda: (adr.piece_pause(1), done.set()), daemon=True)
        waiter.start()
        assert not done.wait(0.2), "piece 1 went on without a line on the gate"
        os.write(fd, b"go\nnext\n")
        assert done.wait(10)
        assert os.read(fd, 100) == b"next\n", "the wait took more than its one line"
    finally:
        os.close(fd)

# -- load_agent ------------------------------------------------------------------------------

def approved(monkeypatch, spec):
    """As the worker says it allowed a payload's entrypoint (test_entrypoints.py: when it did not)."""
    monkeypatch.setenv("AGENTDISPATCH_PAYLOAD_ENTRYPOINT", spec)
    return {"input": {"entrypoint": spec}}


def test_load_agent_from_input_entrypoint(app, monkeypatch):
    write_module(app, "ad_agent_a", "class Box:\n    agent = object()\nagent = 'the agent'\n")
    r, _ = collecting_runner(approved(monkeypatch, "ad_agent_a:agent"))
    assert r.load_agent() == "the agent"
    r, _ = collecting_runner(approved(monkeypatch, "ad_agent_a:Box.agent"))
    assert r.load_agent() is sys.modules["ad_agent_a"].Box.agent


def test_input_entrypoint_wins_over_env(app, monkeypatch):
    write_module(app, "ad_agent_b", "one = 1\ntwo = 2\n")
    monkeypatch.setenv("AGENTDISPATCH_ENTRYPOINT", "ad_agent_b:one")
    assert collecting_runner({})[0].load_agent() == 1
    assert collecting_runner(approved(monkeypatch, "ad_agent_b:two"))[0].load_agent() == 2


def test_load_agent_default_factory_and_none(app, monkeypatch):
    r, _ = collecting_runner({})
    assert r.load_agent(default_factory=lambda: "default") == "default"
    with pytest.raises(adr.EntrypointError, match="no agent entrypoint"):
        r.load_agent()
    monkeypatch.delenv("AGENTDISPATCH_MODEL_ID", raising=False)
    with pytest.raises(adr.EntrypointError, match="AGENTDISPATCH_MODEL_ID"):
        adr.model_id_from_env()


@pytest.mark.parametrize("spec, message, code", [
    ("no_colon", "invalid entrypoint", "invalid_entrypoint"),
    ("mod:", "invalid entrypoint", "invalid_entrypoint"),
    ("mod:not-an-identifier", "invalid entrypoint", "invalid_entrypoint"),
    ("ad_missing_module:agent", "cannot import 'ad_missing_module' .*no module 'ad_missing_module'", "agent_import_failed"),
    ("ad_agent_c:missing", "has no attribute 'missing'", "invalid_entrypoint"),
    ("ad_agent_raises:agent", r"failed: RuntimeError: construction failed \(ad_agent_raises.py:1, in <module>\)",
     "agent_import_failed"),
    ("ad_agent_bad_import:agent", "failed: ModuleNotFoundError: No module named 'ad_dependency_missing'",
     "agent_import_failed"),
])
def test_load_agent_errors(app, monkeypatch, spec, message, code):
    write_module(app, "ad_agent_c", "agent = 1\n")
    write_module(app, "ad_agent_raises", "raise RuntimeError('construction failed')\n")
    write_module(app, "ad_agent_bad_import", "import ad_dependency_missing\n")
    with pytest.raises(adr.EntrypointError, match=message) as caught:
        collecting_runner(approved(monkeypatch, spec))[0].load_agent()
    assert caught.value.code == code


def test_load_agent_builds_what_is_not_the_agent_yet(app, monkeypatch):
    """A runner's ``build`` turns a builder into the agent (LangGraph compiles a StateGraph),
    given directly or returned by a factory; what it cannot build is refused as before."""
    write_module(app, "ad_builders", "class Builder:\n    pass\nbuilder = Builder()\n"
                                     "def make():\n    return builder\nother = 3\n")
    build = lambda obj: "built" if type(obj).__name__ == "Builder" else None  # noqa: E731
    is_agent = lambda obj: obj == "built"  # noqa: E731
    for spec in ("ad_builders:builder", "ad_builders:make"):
        r, _ = collecting_runner(approved(monkeypatch, spec))
        assert r.load_agent(expect=is_agent, what="a built thing", build=build) == "built"
    r, _ = collecting_runner(approved(monkeypatch, "ad_builders:other"))
    with pytest.raises(adr.EntrypointError, match="is an int, expected a built thing or a factory"):
        r.load_agent(expect=is_agent, what="a built thing", build=build)


def test_check_mode_loads_and_builds_then_stops_before_running(app, monkeypatch):
    from agentdispatch.entrypoint import AgentLoaded

    write_module(app, "ad_checked", "agent = 'the agent'\n")
    monkeypatch.setenv("AGENTDISPATCH_ENTRYPOINT", "ad_checked:agent")
    r = adr.Runner({"input": {}}, "test", check=True)
    with pytest.raises(AgentLoaded, match="ad_checked:agent: a str"):
        r.load_agent(expect=str, what="a string")
    # A runner that writes events before loading its agent is stopped at the first one.
    with pytest.raises(adr.EntrypointError, match="before it loaded its agent"):
        r.progress("running already")


def test_the_worker_names_the_framework_not_the_runner():
    """A folder of the user's own that copies a shipped runner is its own framework."""
    r, _ = collecting_runner({"framework": "my-graph", "input": {}})
    assert r.framework == "my-graph"
    r, _ = collecting_runner({"input": {}})
    assert r.framework == "test"


# -- main(): the process plumbing ------------------------------------------------------------

def test_main_keeps_stdout_for_protocol_lines_only(tmp_path):
    run = run_plain_runner(tmp_path, """
        import os, subprocess, sys
        def run(r):
            print("framework chatter")
            sys.__stdout__.write("raw chatter\\n"); sys.__stdout__.flush()
            os.write(1, b"fd 1 chatter\\n")
            subprocess.run(["echo", "subprocess chatter"])
            r.step("tool_call", tool="shout", args={"text": r.instruction})
            return "done " + r.instruction
    """)
    assert run.returncode == 0, run.describe()
    assert [e["type"] for e in run.events] == ["task.progress", "task.result"]  # parse_events: all JSON
    assert run.events[-1]["output"] == "done hi"
    for chatter in ("framework chatter", "raw chatter", "fd 1 chatter", "subprocess chatter"):
        assert chatter in run.stderr


def test_main_concurrent_threads_write_whole_lines(tmp_path):
    run = run_plain_runner(tmp_path, """
        import threading
        def run(r):
            def spam(n):
                for i in range(200):
                    r.log("x" * 5000, thread=n, i=i)
            threads = [threading.Thread(target=spam, args=(n,)) for n in range(4)]
            [t.start() for t in threads]; [t.join() for t in threads]
            return "ok"
    """)
    assert run.returncode == 0 and len(run.events) == 801, run.describe()


def test_main_exception_exits_1_with_clear_last_line(tmp_path):
    run = run_plain_runner(tmp_path, """
        def run(r):
            raise RuntimeError("the model is\\nunreachable")
    """)
    line = "the agent failed: RuntimeError: the model is unreachable (plain/plain_runner.py:7, in run)"
    assert run.returncode == 1 and run.events == [
        {"type": "task.result", "ok": False, "error": line, "errorCode": "agent_failed"}], run.describe()
    assert run.last_stderr_line == f"plain runner failed: {line}"
    assert "Traceback" in run.stderr  # no task folder (a manual run): the traceback on stderr


def test_main_with_a_task_folder_puts_the_traceback_there_not_on_stderr(tmp_path):
    task_dir = tmp_path / "task"
    task_dir.mkdir()
    run = run_plain_runner(tmp_path, """
        def run(r):
            raise ValueError("boom")
    """, env={"AGENTDISPATCH_TASK_DIR": str(task_dir)})
    assert run.returncode == 1, run.describe()
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.describe()
    (result,) = run.events
    assert result["errorCode"] == "agent_failed"
    assert result["error"].splitlines() == [
        "the agent failed: ValueError: boom (plain/plain_runner.py:7, in run)",
        "(the traceback is in traceback.txt in the task folder)"]
    assert result["traceback"].startswith("Traceback") and result["traceback"].endswith("ValueError: boom")
    assert (task_dir / "traceback.txt").read_text() == result["traceback"] + "\n"


def test_main_entrypoint_that_raises_shows_its_traceback_tail(tmp_path):
    write_module(tmp_path, "ad_user_agent", "def build():\n    raise ValueError('bad config')\nagent = build()\n")
    run = run_plain_runner(tmp_path, """
        def run(r):
            return r.load_agent()
    """, env={"AGENTDISPATCH_ENTRYPOINT": "ad_user_agent:agent", "AGENTDISPATCH_APP_DIR": str(tmp_path)})
    assert run.returncode == 1, run.describe()
    assert "ad_user_agent.py" in run.stderr and "ValueError: bad config" in run.stderr, run.describe()
    assert run.last_stderr_line == ("plain runner failed: importing 'ad_user_agent' failed: "
                                    "ValueError: bad config (ad_user_agent.py:2, in build)")
    assert run.events[-1]["errorCode"] == "agent_import_failed"


def test_check_mode_answers_what_loaded_without_running_it(tmp_path):
    write_module(tmp_path, "ad_checked_agent", "agent = 'the agent'\n")
    run = run_plain_runner(tmp_path, """
        def run(r):
            agent = r.load_agent(expect=str, what="a string")
            raise AssertionError("ran in check mode")
    """, env={"AGENTDISPATCH_ENTRYPOINT": "ad_checked_agent:agent", "AGENTDISPATCH_APP_DIR": str(tmp_path),
              "AGENTDISPATCH_CHECK": "1"})
    assert run.returncode == 0, run.describe()
    assert run.events == [{"type": "task.result", "output": "ad_checked_agent:agent: a str"}]


def test_main_exits_at_once_after_the_result(tmp_path):
    run = run_plain_runner(tmp_path, """
        import atexit, sys
        atexit.register(lambda: sys.stderr.write("atexit ran\\n"))
        def run(r):
            return "done"
    """)
    assert run.returncode == 0 and run.events[-1]["output"] == "done", run.describe()
    assert "atexit ran" in run.stderr


def test_main_without_envelope_fails(tmp_path):
    for stdin, message in (("", "no envelope"), ("not json", "not valid JSON"), ("[1]", "must be a JSON object")):
        run = run_plain_runner(tmp_path, "def run(r):\n    return 'x'\n", stdin=stdin)
        assert run.returncode == 1 and message in run.last_stderr_line, run.describe()


def test_main_manual_instruction_from_argv(tmp_path):
    run = run_plain_runner(tmp_path, "def run(r):\n    return r.instruction.upper()\n", stdin="", args=("hello", "there"))
    assert run.returncode == 0 and run.events[-1]["output"] == "HELLO THERE", run.describe()


def test_main_result_emitted_by_run_is_not_repeated(tmp_path):
    run = run_plain_runner(tmp_path, "def run(r):\n    r.result('mine', {'k': 1})\n    return 'ignored'\n")
    assert run.returncode == 0 and [e.get("output") for e in run.events] == ["mine"], run.describe()


def test_main_lingering_thread_does_not_keep_runner_alive(tmp_path):
    run = run_plain_runner(tmp_path, """
        import threading, time
        def run(r):
            threading.Thread(target=time.sleep, args=(60,)).start()
            return "done"
    """, env={"AGENTDISPATCH_EXIT_GRACE_SECONDS": "0.5"})
    assert run.returncode == 0 and run.seconds < 10 and run.events[-1]["output"] == "done", run.describe()


def test_main_hanging_atexit_handler_is_cut_at_the_exit_grace(tmp_path):
    run = run_plain_runner(tmp_path, """
        import atexit, time
        def run(r):
            atexit.register(time.sleep, 60)
            return "done"
    """, env={"AGENTDISPATCH_EXIT_GRACE_SECONDS": "0.5"})
    assert run.returncode == 0 and run.seconds < 10 and run.events[-1]["output"] == "done", run.describe()


def test_main_sigterm_logs_and_exits_143(tmp_path):
    script = write_module(tmp_path, "sleepy_runner", f"""
        import sys, time
        sys.path.insert(0, {str(adr.__file__.rsplit('/', 2)[0])!r})
        from agentdispatch import main
        def run(r):
            r.step("tool_call", tool="sleep", args={{}})
            time.sleep(60)
        main("plain", run)
    """)
    proc = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        proc.stdin.write("{}\n")
        proc.stdin.close()
        assert "tool_call" in proc.stdout.readline()
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 143 and time.monotonic() - sent < 3
        events = parse_events(proc.stdout.read())
        assert events == [{"type": "task.log", "message": "cancelled by SIGTERM", "payload": {"signal": "SIGTERM"}}]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_entrypoint_module_cannot_take_over_sigterm(tmp_path):
    """An agent module that installs its own SIGTERM handler (as CrewAI's telemetry does) at import."""
    write_module(tmp_path / "app", "ad_grabby_agent", """
        import signal, sys
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
        agent = "grabby"
    """)
    script = write_module(tmp_path, "grabby_runner", f"""
        import sys, time
        sys.path.insert(0, {str(adr.__file__.rsplit('/', 2)[0])!r})
        from agentdispatch import main
        def run(r):
            r.load_agent()
            r.step("tool_call", tool="sleep", args={{}})
            time.sleep(60)
        main("plain", run)
    """)
    env = {**os.environ, "AGENTDISPATCH_APP_DIR": str(tmp_path / "app"), "AGENTDISPATCH_ENTRYPOINT": "ad_grabby_agent:agent"}
    proc = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        proc.stdin.write("{}\n")
        proc.stdin.close()
        assert "tool_call" in proc.stdout.readline()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 143
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_audit_hook_sees_network_and_process_calls(tmp_path):
    """The offline check of the contract tests really detects what it claims to."""
    hook_dir, log = tmp_path / "audit", tmp_path / "audit.log"
    write_module(hook_dir, "sitecustomize", AUDIT_SITECUSTOMIZE)
    code = ("import socket, subprocess\n"
            "try:\n    socket.getaddrinfo('localhost', 80)\nexcept OSError:\n    pass\n"
            "subprocess.run(['true'])\n")
    env = {**os.environ, "PYTHONPATH": str(hook_dir), "AGENTDISPATCH_AUDIT_LOG": str(log)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    text = log.read_text()
    assert text.startswith("# audit hook loaded") and "socket.getaddrinfo" in text and "subprocess.Popen" in text


def test_framework_manifests_are_valid():
    """Every framework.json has the fields the worker reads and a runner next to it; one whose
    program is its own .venv's (a Python framework) has the requirements.txt it is made from.
    A user's folder in another language (README "Bring your own framework") passes too."""
    from conftest import FRAMEWORKS
    import shlex

    for path in sorted(FRAMEWORKS.glob("*/framework.json")):
        m = json.loads(path.read_text())
        # The worker takes the folder's name when "name" is left out, and a command as a string.
        assert m.get("name", path.parent.name) == path.parent.name, path
        command = shlex.split(m["command"]) if isinstance(m["command"], str) else m["command"]
        assert isinstance(command, list) and command, path
        assert (path.parent / command[-1]).exists(), f"{path}: {command[-1]} is missing"
        if command[0].startswith(".venv/"):
            assert (path.parent / "requirements.txt").exists(), f"{path}: its .venv needs a requirements.txt"
        assert isinstance(m.get("env", {}), dict) and m.get("timeoutSeconds", 1) > 0, path


def test_a_users_framework_in_another_language_passes_the_manifest_check(tmp_path, monkeypatch):
    """The README's hello-sh folder (no requirements.txt) is a valid framework folder."""
    import conftest

    folder = tmp_path / "hello-sh"
    folder.mkdir()
    (folder / "framework.json").write_text(json.dumps({"name": "hello-sh", "command": ["./run.sh"]}))
    (folder / "run.sh").write_text("#!/bin/sh\n")
    monkeypatch.setattr(conftest, "FRAMEWORKS", tmp_path)
    test_framework_manifests_are_valid()
    (folder / "framework.json").write_text(json.dumps({"name": "hello-sh", "command": [".venv/bin/python", "run.sh"]}))
    with pytest.raises(AssertionError, match="requirements.txt"):
        test_framework_manifests_are_valid()


# -- interrupts (SPEC §14) -------------------------------------------------------------------

def test_interrupt_writes_one_line_and_uses_the_spare_session_without_one(tmp_path):
    spare = tmp_path / "spare-1"
    r, events = collecting_runner({"taskId": "t1", "askSession": {"sessionId": "spare-1", "sessionDir": str(spare)}})
    assert r.session_dir is None and r.resume is None
    q = [{"id": "refund-1", "kind": "approval", "tool": "refund", "args": {"amount": 5}}]
    r.interrupt(q)
    assert events == [{"type": "task.interrupt", "payload": {"interrupts": q}}]
    assert (r.session_dir, r.session_id, spare.is_dir()) == (str(spare), "spare-1", True)
    with pytest.raises(RuntimeError):
        r.interrupt(q)
    for bad in ([], [{"kind": "approval"}], [{"id": "a", "kind": "maybe"}], [{"id": "a", "kind": "input"}] * 2):
        r, _ = collecting_runner({})
        with pytest.raises(ValueError):
            r.interrupt(bad)


def test_a_resumed_run_reads_its_answers():
    r, _ = collecting_runner({"resume": {"taskId": "t0", "answers": {"refund-1": {"approved": False}}}})
    assert r.answer("refund-1") == {"approved": False}
    assert r.answer("other") is None
    assert collecting_runner({})[0].answer("refund-1") is None
