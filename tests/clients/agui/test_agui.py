"""AG-UI on POST /invocations through AG-UI's own Python models (ag-ui-protocol): every event of
a run of each of the six frameworks' example agents, cold and warm, is validated by the SDK's
`Event` union, is what the SDK's `EventEncoder` writes for it (camelCase, no nulls, nothing
extra), and comes in an order AG-UI's clients accept (the rules of @ag-ui/client's verifier).
The example agents call their `shout` tool, so the tool call events are checked too.

Run by scripts/test-clients.sh agui-py (which installs the venv and the framework venvs' absence
is a failure, not a skip)."""

import importlib.util
import json
import os
import time
import urllib.request
import uuid

import pytest
from ag_ui.core import Event, RunAgentInput, Tool, UserMessage
from ag_ui.encoder import EventEncoder
from pydantic import TypeAdapter

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, os.pardir, os.pardir, os.pardir))
FRAMEWORKS = os.path.join(ROOT, "frameworks")
SIX = ["langchain", "langgraph", "crewai", "strands", "openai-agents", "pydantic-ai"]

# The A2A suites' worker starter (tests/clients/python/conftest.py), loaded by path.
_spec = importlib.util.spec_from_file_location("a2a_conftest", os.path.join(HERE, os.pardir, "python", "conftest.py"))
_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_conftest)

EVENT = TypeAdapter(Event)
ENCODER = EventEncoder()


def start_worker(framework, warm):
    python = os.path.join(FRAMEWORKS, framework, ".venv", "bin", "python")
    assert os.path.exists(python), f"{python} is missing: run scripts/setup-frameworks.sh {framework}"
    w = _conftest.Worker({"AGENTDISPATCH_FRAMEWORKS_DIR": FRAMEWORKS, "AGENTDISPATCH_AGENT_FRAMEWORK": "echo",
                          "AGENTDISPATCH_WARM": framework if warm else "none"})
    if warm:
        deadline = time.monotonic() + 180
        while not any(json.loads(line).get("message") == "warm parent ready"
                      for line in w.logs().splitlines() if line.startswith("{")):
            assert time.monotonic() < deadline, f"{framework}: no warm parent; log:\n{w.logs()}"
            time.sleep(0.05)
    return w


def run(worker, body):
    """POST a RunAgentInput; the raw SSE messages (each `data: …` without its blank line)."""
    req = urllib.request.Request(worker.url + "invocations", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json", "accept": "text/event-stream"})
    with urllib.request.urlopen(req, timeout=300) as r:
        assert r.status == 200
        assert r.headers["content-type"] == ENCODER.get_content_type()
        text = r.read().decode("utf-8")
    # SSE comments (keep-alives) are not messages.
    return [m for m in text.split("\n\n") if m and not m.startswith(":")]


def check_order(events):
    """@ag-ui/client's verifier (verify.ts), for one run: RUN_STARTED first; a message, reasoning
    or tool call started before its content and ended once; nothing open at RUN_FINISHED, nothing
    after RUN_FINISHED or RUN_ERROR."""
    assert events[0]["type"] == "RUN_STARTED", events[0]
    assert events[-1]["type"] in ("RUN_FINISHED", "RUN_ERROR"), events[-1]
    open_ = {"text": set(), "tool": set(), "reasoning": set()}
    kinds = {"TEXT_MESSAGE": ("text", "messageId"), "TOOL_CALL": ("tool", "toolCallId"),
             "REASONING_MESSAGE": ("reasoning", "messageId")}
    for e in events[1:-1]:
        t = e["type"]
        assert t not in ("RUN_STARTED", "RUN_FINISHED", "RUN_ERROR"), f"{t} inside the run: {events}"
        for prefix, (kind, key) in kinds.items():
            if not t.startswith(prefix + "_") or t == "TOOL_CALL_RESULT":
                continue
            ident = e[key]
            if t.endswith("_START"):
                assert ident not in open_[kind], f"{t} of {ident} already open"
                open_[kind].add(ident)
            elif t.endswith("_END"):
                assert ident in open_[kind], f"{t} of {ident} not open"
                open_[kind].remove(ident)
            else:
                assert ident in open_[kind], f"{t} of {ident} not open"
    if events[-1]["type"] == "RUN_FINISHED":
        assert not any(open_.values()), f"open at RUN_FINISHED: {open_}"


def validated(raw_messages):
    """Each message parsed by the SDK's models, and equal to what its encoder writes for it."""
    events = []
    for raw in raw_messages:
        assert raw.startswith("data: ") and "\n" not in raw, f"not one data: line: {raw!r}"
        data = json.loads(raw[len("data: "):])
        event = EVENT.validate_python(data)
        assert json.loads(ENCODER.encode(event)[len("data: "):]) == data, f"not as the encoder writes it: {data}"
        events.append(data)
    check_order(events)
    return events


def run_input(thread, text, framework):
    """A RunAgentInput as the SDK's own model writes it (camelCase)."""
    return RunAgentInput(
        thread_id=thread, run_id=str(uuid.uuid4()), state={"units": "metric"},
        messages=[UserMessage(id=str(uuid.uuid4()), content=text)],
        tools=[Tool(name="confirm", description="asks the user to confirm", parameters={"type": "object"})],
        context=[], forwarded_props={"framework": framework},
    ).model_dump(by_alias=True)


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
@pytest.mark.parametrize("framework", SIX)
def test_each_framework_answers_valid_ag_ui_events_with_its_tool_call(framework, warm):
    w = start_worker(framework, warm)
    try:
        thread = f"agui-{framework}-{uuid.uuid4()}"
        events = validated(run(w, run_input(thread, "hello world", framework)))
        types = [e["type"] for e in events]
        assert types[-1] == "RUN_FINISHED", events
        finished = events[-1]
        assert finished["threadId"] == thread
        assert finished["result"]["output"] == "Shouted: HELLO WORLD", finished

        # The example agent calls its shout tool: started, its arguments (streamed or whole)
        # the JSON it was called with, ended, answered.
        starts = [e for e in events if e["type"] == "TOOL_CALL_START"]
        assert [s["toolCallName"] for s in starts] == ["shout"], types
        call = starts[0]["toolCallId"]
        args = "".join(e["delta"] for e in events if e["type"] == "TOOL_CALL_ARGS" and e["toolCallId"] == call)
        assert "hello world" in json.dumps(json.loads(args)).lower(), args
        results = [e for e in events if e["type"] == "TOOL_CALL_RESULT"]
        assert [r["toolCallId"] for r in results] == [call], events
        assert "HELLO WORLD" in results[0]["content"]
        assert types.index("TOOL_CALL_END") < types.index("TOOL_CALL_RESULT")

        # The model's words: the answer is among its messages' text.
        texts = {}
        for e in events:
            if e["type"] == "TEXT_MESSAGE_CONTENT":
                texts[e["messageId"]] = texts.get(e["messageId"], "") + e["delta"]
        assert "Shouted: HELLO WORLD" in texts.values(), texts

        # The task is the worker's own, started as asked (forked from the warm parent or not).
        status = w_status(w, finished["result"]["taskId"], thread)
        forked = [e for e in status["events"] if e["type"] == "task.log" and (e.get("payload") or {}).get("warm") is True]
        assert bool(forked) == warm, status["events"]

        # History: a new thread whose client sends an earlier turn: the framework is given it
        # (its example model says how many earlier turns it saw); the next run of that thread
        # sends the whole conversation again, as AG-UI clients do, and the framework, which now
        # keeps it in the session, is given only the new message.
        thread = f"agui-{framework}-history-{uuid.uuid4()}"
        sent = [{"id": "h1", "role": "user", "content": "first"},
                {"id": "h2", "role": "assistant", "content": "Shouted: FIRST"},
                {"id": "h3", "role": "user", "content": "hello world"}]
        body = dict(run_input(thread, "", framework), messages=sent)
        events = validated(run(w, body))
        assert events[-1]["result"]["output"] == "Shouted: HELLO WORLD (earlier turns: 1)", events[-1]
        sent += [{"id": "h4", "role": "assistant", "content": events[-1]["result"]["output"]},
                 {"id": "h5", "role": "user", "content": "hello again"}]
        events = validated(run(w, dict(body, runId=str(uuid.uuid4()), messages=sent)))
        assert events[-1]["result"]["output"] == "Shouted: HELLO AGAIN (earlier turns: 2)", events[-1]
    finally:
        w.stop()
        w.tmp.cleanup()


def w_status(w, task_id, session):
    body = json.dumps({"taskType": "task.status", "taskId": task_id, "sessionId": session}).encode()
    req = urllib.request.Request(w.url + "invocations", data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


@pytest.fixture
def agui_worker():
    """A worker whose every /invocations body is a RunAgentInput (AgentCore's serverProtocol AGUI)."""
    w = _conftest.Worker({"AGENTDISPATCH_WORKER_PROTOCOL": "agui"})
    yield w
    w.stop()
    w.tmp.cleanup()


def test_bad_input_is_a_400_as_aguiapp_answers(agui_worker):
    """Bad JSON and bodies the SDK's RunAgentInput refuses: 400 with a JSON error naming it."""
    worker = agui_worker
    good = run_input("t-bad", "hi", "pyfixture")
    broken = dict(good, messages=[{"id": "1", "role": "user"}])
    for body, error in [(b"{not json", "Invalid JSON"), (json.dumps(broken).encode(), "Invalid RunAgentInput")]:
        req = urllib.request.Request(worker.url + "invocations", data=body,
                                     headers={"content-type": "application/json", "accept": "text/event-stream"})
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(req, timeout=30)
        assert caught.value.code == 400
        answer = json.loads(caught.value.read())
        assert answer["error"] == error, answer
        assert answer["details"], answer
        if error == "Invalid RunAgentInput":
            with pytest.raises(Exception):
                RunAgentInput.model_validate(broken)  # the SDK refuses it too
            assert "messages[0].content is required" in answer["details"]
