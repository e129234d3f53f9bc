"""The worker's MCP door (`POST /mcp`) through the Python `mcp` SDK's own Streamable HTTP client
with its defaults (`Client(url)`: it probes `server/discover` and speaks 2026-07-28) and forced to
the handshake (`mode="legacy"`: `initialize`, 2025-11-25): tools listed from the frameworks
defined, run_langgraph and run_strands cold and warm on the offline example agents, progress
notifications carrying the model's text while it writes it, cancelling (a closed stream at
2026-07-28, `notifications/cancelled` at 2025-11-25), a failing tool and bad arguments."""

import json
import os
import time

import anyio
import pytest

from mcp import Client, types
from mcp.shared.exceptions import MCPError

from conftest import ROOT, Worker

FRAMEWORKS = os.path.join(ROOT, "frameworks")
ANSWER = "Shouted: HELLO WORLD"
MODES = ["auto", "legacy"]
VERSION = {"auto": "2026-07-28", "legacy": "2025-11-25"}


def require_venvs():
    for fw in ("langgraph", "strands"):
        if not os.path.exists(os.path.join(FRAMEWORKS, fw, ".venv", "bin", "python")):
            why = f"frameworks/{fw}/.venv is missing: run scripts/setup-frameworks.sh {fw}"
            # Under scripts/test.sh (or CI) it was to be installed: a missing one fails.
            if os.environ.get("AGENTDISPATCH_TEST_SH") or os.environ.get("CI"):
                pytest.fail(why)
            pytest.skip(why)


class Gate:
    """AGENTDISPATCH_EXAMPLE_PIECE_GATE: an empty file (the example models never wait) until
    `shut`, then a FIFO: each piece of an answer but the first waits for a line `release` writes."""

    def __init__(self, folder):
        self.path = os.path.join(folder, "gate")
        open(self.path, "w").close()
        self.fd = None

    def shut(self):
        tmp = self.path + ".fifo"
        os.mkfifo(tmp, 0o600)
        # Both ends held: the models' opens never block, lines wait until a model reads them.
        self.fd = os.open(tmp, os.O_RDWR)
        os.rename(tmp, self.path)

    def release(self):
        os.write(self.fd, b"\n")

    def open(self):
        tmp = self.path + ".file"
        open(tmp, "w").close()
        os.rename(tmp, self.path)
        os.close(self.fd)
        self.fd = None


def start(tmp_path_factory, warm, gate=None):
    require_venvs()
    env = {
        "AGENTDISPATCH_FRAMEWORKS_DIR": FRAMEWORKS,
        "AGENTDISPATCH_WARM": warm,
        "AGENTDISPATCH_AGENT_FRAMEWORK": "echo",
        # A framework that fails: a child exiting 3 with a line on stderr.
        "AGENTDISPATCH_FRAMEWORK_COMMAND_BROKEN": "sh -c 'echo boom >&2; exit 3'",
    }
    if gate:
        env["AGENTDISPATCH_EXAMPLE_PIECE_GATE"] = gate.path
    return Worker(env)


@pytest.fixture(scope="module")
def gate(tmp_path_factory):
    return Gate(str(tmp_path_factory.mktemp("gate")))


@pytest.fixture(scope="module")
def cold(tmp_path_factory, gate):
    w = start(tmp_path_factory, "none", gate)
    yield w
    w.stop()
    w.tmp.cleanup()


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    w = start(tmp_path_factory, "langgraph,strands")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        ready = {json.loads(l).get("framework") for l in w.logs().splitlines()
                 if '"warm parent ready"' in l}
        if {"langgraph", "strands"} <= ready:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"warm parents not ready:\n{w.logs()}")
    yield w
    w.stop()
    w.tmp.cleanup()


def mcp_url(w):
    return w.url + "mcp"


def run(fn):
    return anyio.run(fn)


async def status_of(client, task_id):
    r = await client.call_tool("task_status", {"taskId": task_id})
    assert not r.is_error, r
    return r.structured_content


def started_warm(status):
    """Whether the task was forked from a warm parent (its task.log says so; a worker with warm
    starts off says nothing and starts every task cold)."""
    for e in status["events"]:
        if e["type"] == "task.log" and "warm" in (e.get("payload") or {}):
            return e["payload"]["warm"]
    return False


def task_of(notes):
    """The task id the first progress notification names."""
    first = notes[0][1]
    assert first.startswith("accepted: task "), notes
    return first.removeprefix("accepted: task ")


@pytest.mark.parametrize("mode", MODES)
def test_tools_follow_the_frameworks(cold, mode):
    async def go():
        async with Client(mcp_url(cold), mode=mode) as c:
            assert c.protocol_version == VERSION[mode]
            tools = {t.name: t for t in (await c.list_tools()).tools}
            for name in ("run_echo", "run_langgraph", "run_strands", "run_broken", "task_status", "task_cancel"):
                assert name in tools, sorted(tools)
            # The allowlist is empty: nothing a command tool could run.
            assert "command_run" not in tools
            schema = tools["run_langgraph"].input_schema
            assert schema["required"] == ["instruction"]
            assert set(schema["properties"]) == {"instruction", "sessionId", "input"}
            assert tools["run_langgraph"].description.startswith("LangGraph")
    run(go)


def test_command_run_when_the_allowlist_allows(tmp_path):
    w = Worker({"AGENTDISPATCH_COMMAND_ALLOWLIST": "echo"})
    try:
        async def go():
            async with Client(mcp_url(w)) as c:
                names = [t.name for t in (await c.list_tools()).tools]
                assert "command_run" in names
                r = await c.call_tool("command_run", {"command": "echo from mcp"})
                assert not r.is_error and r.content[0].text == "from mcp\n", r
                r = await c.call_tool("command_run", {"command": "uname -a"})
                assert r.is_error and r.content[0].text.startswith("command_rejected: "), r
        run(go)
    finally:
        w.stop()
        w.tmp.cleanup()


@pytest.mark.parametrize("framework", ["langgraph", "strands"])
@pytest.mark.parametrize("kind", ["cold", "warm"])
def test_run_a_framework(cold, warm, framework, kind):
    w = cold if kind == "cold" else warm
    async def go():
        async with Client(mcp_url(w)) as c:
            notes = []

            async def progress(p, total, message):
                notes.append((p, message))

            r = await c.call_tool(f"run_{framework}", {"instruction": "hello world"}, progress_callback=progress)
            assert not r.is_error, r
            assert r.content[0].text == ANSWER
            assert r.structured_content["status"] == "succeeded"
            task_id = r.structured_content["taskId"]
            assert task_of(notes) == task_id
            # Rising progress, the agent's steps and the answer's pieces among them.
            assert [p for p, _ in notes] == sorted(p for p, _ in notes)
            assert any(m.startswith("tool_call") for _, m in notes), notes
            # The answer's text as it was written (pieces a slow reader gets merged).
            assert ANSWER in "".join(m for _, m in notes), notes
            assert started_warm(await status_of(c, task_id)) == (kind == "warm")
    run(go)


def test_progress_carries_the_text_while_the_model_writes_it(cold, gate):
    """The model writes its next piece only after this test saw the previous one arrive as a
    progress notification: a door that held notifications back until the end could not pass."""
    pieces = ["Shouted: ", "HELLO ", "WORLD"]

    async def go():
        seen = []
        arrived = anyio.Event()

        async def progress(p, total, message):
            seen.append(message)
            arrived.set()

        gate.shut()
        try:
            async with Client(mcp_url(cold)) as c:
                result = {}

                async def call():
                    result["r"] = await c.call_tool("run_langgraph", {"instruction": "hello world"},
                                                    progress_callback=progress)

                async with anyio.create_task_group() as tg:
                    tg.start_soon(call)
                    for i, piece in enumerate(pieces):
                        with anyio.fail_after(120):
                            while piece not in seen:
                                await arrived.wait()
                                arrived = anyio.Event()
                        assert "r" not in result
                        if i + 1 < len(pieces):
                            assert pieces[i + 1] not in seen
                            gate.release()
                assert result["r"].content[0].text == ANSWER
        finally:
            gate.open()
    run(go)


@pytest.mark.parametrize("mode", MODES)
def test_cancelling_a_call_cancels_its_task(cold, mode):
    """At 2026-07-28 the SDK closes the call's stream; at 2025-11-25 it sends
    notifications/cancelled. Either way the task ends cancelled while its slow tool sleeps."""
    async def go():
        async with Client(mcp_url(cold), mode=mode) as c:
            notes = []
            tool_started = anyio.Event()

            async def progress(p, total, message):
                notes.append((p, message))
                if message.startswith("tool_call"):
                    tool_started.set()

            with anyio.fail_after(180):
                async with anyio.create_task_group() as tg:
                    async def call():
                        await c.call_tool("run_langgraph", {"instruction": "please be slow"},
                                          progress_callback=progress)
                    tg.start_soon(call)
                    await tool_started.wait()
                    tg.cancel_scope.cancel()
            task_id = task_of(notes)
            with anyio.fail_after(30):
                while (s := await status_of(c, task_id))["status"] == "running":
                    await anyio.sleep(0.1)
            assert s["status"] == "cancelled", s
            assert s["errorCode"] == "cancelled"
    run(go)


@pytest.mark.parametrize("mode", MODES)
def test_a_failing_tool_is_an_error_result(cold, mode):
    async def go():
        async with Client(mcp_url(cold), mode=mode) as c:
            r = await c.call_tool("run_broken", {"instruction": "anything"})
            assert r.is_error
            assert r.content[0].text.startswith("exit_nonzero: "), r
            assert "boom" in r.content[0].text
            assert r.structured_content["errorCode"] == "exit_nonzero"
            assert r.structured_content["exitCode"] == 3
    run(go)


@pytest.mark.parametrize("mode", MODES)
def test_bad_arguments_and_unknown_tools(cold, mode):
    async def go():
        async with Client(mcp_url(cold), mode=mode) as c:
            r = await c.call_tool("run_echo", {"instruction": 5})
            assert r.is_error
            assert r.content[0].text == "invalid_payload: Tool run_echo: argument instruction must be a string, not a number."
            r = await c.call_tool("run_echo", {"instruction": "x", "colour": "red"})
            assert r.is_error and 'no argument "colour"' in r.content[0].text, r
            r = await c.call_tool("task_status", {"taskId": "no-such-task"})
            assert r.is_error and r.structured_content["errorCode"] == "unknown_task", r
            with pytest.raises(MCPError) as e:
                await c.call_tool("run_nothing", {"instruction": "x"})
            assert e.value.error.code == -32602 and "Unknown tool: run_nothing" in e.value.error.message
    run(go)


@pytest.fixture(scope="module")
def refunds(tmp_path_factory):
    """A worker whose LangGraph example agent asks before its `refund` tool, and the file the
    tool appends each refund it makes to."""
    require_venvs()
    log = str(tmp_path_factory.mktemp("refunds") / "refunds.log")
    w = Worker({"AGENTDISPATCH_FRAMEWORKS_DIR": FRAMEWORKS, "AGENTDISPATCH_WARM": "none",
                "EXAMPLE_REFUND_LOG": log})
    yield w, log
    w.stop()
    w.tmp.cleanup()


def refunds_made(log):
    return open(log).read().splitlines() if os.path.exists(log) else []


def test_at_2026_07_28_the_sdk_answers_the_question_with_its_elicitation_callback(refunds):
    w, log = refunds
    asked = []

    async def approve(context, params):
        asked.append(params)
        return types.ElicitResult(action="accept", content={"approved": True})

    async def go():
        async with Client(mcp_url(w), elicitation_callback=approve) as c:
            r = await c.call_tool("run_langgraph", {"instruction": "refund 5 for order 42"})
            assert not r.is_error, r
            assert r.content[0].text == "Shouted: refunded (refund 5 for order 42)", r
    run(go)
    assert len(asked) == 1 and "refund" in asked[0].message, asked
    assert asked[0].requested_schema["properties"]["approved"]["type"] == "boolean"
    assert refunds_made(log) == ["refund 5 for order 42"]


def test_at_2025_11_25_the_question_is_a_result_answered_by_calling_again(refunds):
    w, log = refunds
    before = len(refunds_made(log))

    async def go():
        async with Client(mcp_url(w), mode="legacy") as c:
            r = await c.call_tool("run_langgraph", {"instruction": "refund 7 for order 9"})
            assert not r.is_error, r
            s = r.structured_content
            assert s["status"] == "input_required", s
            assert r.content[0].text.startswith("input_required"), r
            assert s["sessionId"] in r.content[0].text
            assert s["interrupts"][0]["kind"] == "approval"
            assert len(refunds_made(log)) == before, "asking runs no refund"
            r = await c.call_tool("run_langgraph", {
                "instruction": "refund 7 for order 9", "sessionId": s["sessionId"],
                "input": {"resume": True}})
            assert not r.is_error, r
            assert r.structured_content["resumes"] == s["taskId"], r
            assert r.content[0].text == "Shouted: refunded (refund 7 for order 9)", r
    run(go)
    assert refunds_made(log)[before:] == ["refund 7 for order 9"]
