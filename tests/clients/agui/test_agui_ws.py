"""AG-UI on /ws and AG-UI's interrupts, through AG-UI's own Python models (ag-ui-protocol) and the
`websockets` client: a RunAgentInput sent as a socket message runs as on POST /invocations and
each text message is one AG-UI event, validated by the SDK's `Event` union and equal to what its
`EventEncoder` writes (without SSE's `data: `), in an order AG-UI's clients accept; a bad
RunAgentInput is the error then close 1003. The LangGraph example's `refund` asks first: the run
ends RUN_FINISHED with the interrupt outcome (over SSE and /ws), and a RunAgentInput whose
`resume` answers it runs the tool once.

Run by scripts/test-clients.sh agui-ws (which installs the venv)."""

import contextlib
import json
import os
import uuid

import pytest
from ag_ui.core import ResumeEntry, RunAgentInput, UserMessage
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from test_agui import ENCODER, EVENT, SIX, check_order, run as sse_run, run_input, start_worker, validated


def ws_url(worker):
    return worker.url.replace("http://", "ws://", 1) + "ws"


def ws_run(ws, body):
    """Sends a RunAgentInput on an open socket; its events, each validated, up to the run's end."""
    ws.send(json.dumps(body))
    events = []
    while True:
        text = ws.recv(timeout=300)
        assert isinstance(text, str), f"not a text message: {text!r}"
        data = json.loads(text)
        event = EVENT.validate_python(data)
        assert json.loads(ENCODER.encode(event)[len("data: "):]) == data, f"not as the encoder writes it: {data}"
        events.append(data)
        if data["type"] in ("RUN_FINISHED", "RUN_ERROR"):
            break
    check_order(events)
    return events


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
@pytest.mark.parametrize("framework", SIX)
def test_a_run_agent_input_on_the_socket_answers_valid_ag_ui_events(framework, warm):
    w = start_worker(framework, warm)
    try:
        with connect(ws_url(w)) as ws:
            # Two runs of one thread on one socket: the second is given the first as history.
            thread = f"agui-ws-{framework}-{uuid.uuid4()}"
            events = ws_run(ws, run_input(thread, "hello world", framework))
            finished = events[-1]
            assert finished["type"] == "RUN_FINISHED", events
            assert finished["threadId"] == thread
            assert finished["result"]["output"] == "Shouted: HELLO WORLD", finished
            assert "outcome" not in finished, finished
            assert [e["toolCallName"] for e in events if e["type"] == "TOOL_CALL_START"] == ["shout"], events
            assert any(e["type"] == "TOOL_CALL_RESULT" and "HELLO WORLD" in e["content"] for e in events)
            again = ws_run(ws, run_input(thread, "hello again", framework))
            assert again[-1]["result"]["output"].startswith("Shouted: HELLO AGAIN"), again[-1]
            assert again[-1]["result"]["taskId"] != finished["result"]["taskId"]
    finally:
        w.stop()
        w.tmp.cleanup()


def test_a_bad_run_agent_input_on_the_socket_is_the_error_then_close_1003():
    w = start_worker("langgraph", False)
    try:
        body = run_input("t-bad", "hi", "langgraph")
        del body["forwardedProps"]
        with connect(ws_url(w)) as ws:
            ws.send(json.dumps(body))
            err = json.loads(ws.recv(timeout=30))
            assert err["errorCode"] == "invalid_payload", err
            assert "Invalid RunAgentInput" in err["error"] and "forwardedProps" in err["error"], err
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=30)
            assert closed.value.rcvd.code == 1003
            assert "forwardedProps" in closed.value.rcvd.reason
        # The worker stays up and runs the next one; a run the worker refuses at once (an
        # unknown framework) is RUN_STARTED then RUN_ERROR naming it, and the socket stays open.
        with connect(ws_url(w)) as ws:
            refused = ws_run(ws, run_input("t-none", "hi", "no-such-framework"))
            assert [e["type"] for e in refused] == ["RUN_STARTED", "RUN_ERROR"], refused
            assert refused[1]["code"] == "unknown_framework", refused
            assert ws_run(ws, run_input("t-good", "hello world", "langgraph"))[-1]["type"] == "RUN_FINISHED"
    finally:
        w.stop()
        w.tmp.cleanup()


def refunds(log):
    return open(log).read().splitlines() if os.path.exists(log) else []


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_a_refund_asks_with_the_interrupt_outcome_and_the_resume_runs_it_once(transport, warm, monkeypatch, tmp_path):
    log = str(tmp_path / "refunds.log")
    monkeypatch.setenv("EXAMPLE_REFUND_LOG", log)
    w = start_worker("langgraph", warm)
    sockets = contextlib.ExitStack()
    ws = sockets.enter_context(connect(ws_url(w))) if transport == "ws" else None
    send = (lambda body: ws_run(ws, body)) if ws else (lambda body: validated(sse_run(w, body)))
    try:
        thread = f"agui-refund-{transport}-{uuid.uuid4()}"
        asked = send(run_input(thread, "refund 5 for order 42", "langgraph"))
        finished = asked[-1]
        assert finished["type"] == "RUN_FINISHED", asked
        outcome = finished["outcome"]
        assert outcome["type"] == "interrupt", finished
        [question] = outcome["interrupts"]
        assert question["reason"] == "approval", question
        assert question["metadata"]["question"]["tool"] == "refund", question
        assert question["responseSchema"]["required"] == ["approved"], question
        assert finished["result"]["status"] == "input_required", finished
        assert finished["result"]["sessionId"] == thread, finished
        assert refunds(log) == [], "asking runs no refund"

        # The answer: a new run of the thread whose `resume` answers the interrupt by its id.
        def answer(payload, status="resolved"):
            return RunAgentInput(
                thread_id=thread, run_id=str(uuid.uuid4()),
                messages=[UserMessage(id="u1", content="refund 5 for order 42")],
                tools=[], context=[], forwarded_props={"framework": "langgraph"},
                resume=[ResumeEntry(interrupt_id=question["id"], status=status, payload=payload)],
            ).model_dump(by_alias=True, exclude_none=True)

        done = send(answer({"approved": True}))
        assert done[-1]["type"] == "RUN_FINISHED", done
        assert "outcome" not in done[-1], done[-1]
        assert done[-1]["result"]["status"] == "succeeded", done[-1]
        assert "refunded" in done[-1]["result"]["output"], done[-1]
        assert refunds(log) == ["refund 5 for order 42"]

        # Answered once: a second answer is an error naming why, and nothing runs again.
        again = send(answer({"approved": True}))
        assert again[-1]["type"] == "RUN_ERROR", again
        assert again[-1]["code"] == "interrupt_not_open", again[-1]
        assert refunds(log) == ["refund 5 for order 42"]
    finally:
        sockets.close()
        w.stop()
        w.tmp.cleanup()
