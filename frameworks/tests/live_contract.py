"""The live-text tests every framework runner passes (SPEC §4.1), part of ``FrameworkContract``.

The example agents' offline models write their answers in pieces (``agentdispatch.examples``);
the runner must hand each piece on as a ``task.delta`` line as its framework's own streaming API
gives it out, and close each message with a step carrying the same ``messageId``.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import threading

from chat_stream_server import ChatStreamServer
from conftest import Run, kill_group, parse_lines, run_framework, start_framework

PIECE_GATE_VAR = "AGENTDISPATCH_EXAMPLE_PIECE_GATE"
PIECE_DELAY_VAR = "AGENTDISPATCH_EXAMPLE_PIECE_DELAY_MS"
ANSWER_PIECES = ["Shouted: ", "HELLO ", "WORLD"]  # how the example models write the answer


# A LangChain chat model that thinks before it answers, streamed as DeepSeek-style
# `reasoning_content` pieces (langchain and langgraph tests: `model = ThinkingModel()`).
THINKING_MODEL = """
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult


class ThinkingModel(BaseChatModel):
    @property
    def _llm_type(self):
        return "thinking"

    def bind_tools(self, tools, **kwargs):
        return self

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="An answer."))])

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        for piece in ("Let me ", "think."):
            yield ChatGenerationChunk(message=AIMessageChunk(content="", additional_kwargs={"reasoning_content": piece}))
        for piece in ("An ", "answer."):
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
"""


def check_thinking_run(run: Run) -> None:
    """THINKING_MODEL's run: its reasoning and its text streamed as deltas of one message."""
    assert run.returncode == 0, run.describe()
    check_live_text(run)
    answer = run.steps("final_answer")[-1][1]
    assert answer["text"] == "An answer.", run.describe()
    assert [p["text"] for _, p in run.deltas(answer["messageId"], kind="reasoning")] == ["Let me ", "think."]
    assert [p["text"] for _, p in run.deltas(answer["messageId"])] == ["An ", "answer."], run.describe()


def check_live_text(run: Run) -> None:
    """Each model message streamed before the step that closes it, its deltas adding up to that
    step's text; the answer in several deltas; tool calls' ids and argument pieces consistent."""
    lines = run.lines
    turns = [(i, e["payload"]) for i, e in enumerate(lines)
             if e["type"] == "task.progress" and (e.get("payload") or {}).get("step") == "model_turn"]
    assert turns, run.describe()
    ids = [t.get("messageId") for _, t in turns]
    assert all(ids) and len(set(ids)) == len(ids), f"model_turn messageIds {ids}\n{run.describe()}"
    for i, turn in turns:
        pieces = run.deltas(turn["messageId"])
        assert all(j < i for j, _ in pieces), f"a delta of {turn['messageId']} after its model_turn\n{run.describe()}"
        assert "".join(p["text"] for _, p in pieces) == turn["text"], run.describe()
    last = turns[-1][1]
    assert len(run.deltas(last["messageId"])) > 1, f"the answer came in one piece\n{run.describe()}"
    final = run.steps("final_answer")[-1][1]
    assert (final.get("messageId"), final["text"]) == (last["messageId"], last["text"]), run.describe()
    calls, outs = run.steps("tool_call"), run.steps("tool_result")
    assert [c.get("toolCallId") for _, c in calls] == [o.get("toolCallId") for _, o in outs], run.describe()
    for _, call in calls:
        assert call.get("toolCallId"), f"a tool_call without toolCallId\n{run.describe()}"
        pieces = [p for _, p in run.deltas(kind="tool_call") if p["toolCallId"] == call["toolCallId"]]
        assert pieces, f"the call's arguments were not streamed\n{run.describe()}"
        assert json.loads("".join(p["argsDelta"] for p in pieces)) == call["args"], run.describe()
        assert {p.get("tool") for p in pieces} == {call["tool"]}, run.describe()


def run_releasing(proc, release, wait: float = 120) -> Run:
    """Read the runner's stdout to its end, calling ``release()`` after each text delta (to let
    a gated model write its next piece); fails when nothing comes for ``wait`` seconds."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [*map(lines.put, proc.stdout), lines.put(None)], daemon=True).start()
    seen, texts = [], 0
    try:
        while True:
            try:
                line = lines.get(timeout=wait)
            except queue.Empty:
                raise AssertionError(
                    f"nothing more on stdout for {wait:.0f} s after {texts} text delta(s): the model is waiting "
                    f"for the previous piece to be seen; lines so far:\n{''.join(seen)}") from None
            if line is None:
                break
            seen.append(line)
            event = json.loads(line)
            if event.get("type") == "task.delta" and event["payload"].get("kind", "text") == "text":
                texts += 1
                release()
        proc.wait(timeout=60)
        run = Run(proc.returncode, "".join(seen), proc.stderr.read(), 0.0)
    finally:
        kill_group(proc.pid)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    run.lines = parse_lines(run.stdout)
    run.events = [e for e in run.lines if e["type"] != "task.delta"]
    return run


def cancel_mid_stream(proc, server) -> None:
    """SIGTERM the runner once its first text delta is out (the model server waits to send the
    next piece): it exits 143 at once, and the server sees its connection closed."""
    try:
        for line in iter(proc.stdout.readline, ""):
            if json.loads(line)["type"] == "task.delta":
                break
        else:
            raise AssertionError(f"the runner ended before its first delta: {proc.stderr.read()[-2000:]}")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 143, proc.returncode
        assert "cancelled by SIGTERM" in proc.stdout.read()
        assert server.hung_up.wait(10), "the model server's connection stayed open after the runner ended"
        assert server.error is None, server.error
    finally:
        kill_group(proc.pid)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def check_fails_mid_stream(proc, server) -> None:
    """The model server sends its pieces, then an error: the pieces are out as deltas, and the
    runner fails (exit 1, no result) with a last stderr line naming the server's error. A framework
    that retries the call (CrewAI does) streams each attempt as a message of its own, never closed."""
    run = run_releasing(proc, server.release)
    assert run.returncode == 1 and not run.results, run.describe()
    messages: dict = {}
    for _, p in run.deltas():
        messages.setdefault(p["messageId"], []).append(p["text"])
    assert list(messages.values()) == [server.pieces] * len(server.requests), run.describe()
    assert server.fail_with in run.last_stderr_line, run.describe()


class LiveTextContract:
    framework: str = ""

    def test_the_answer_streams_in_deltas_that_add_up_to_each_message(self, tmp_path):
        # A slow model (a pause before each piece) streams the same pieces.
        run = run_framework(self.framework, tmp_path, env={PIECE_DELAY_VAR: "5"})
        assert run.returncode == 0, run.describe()
        check_live_text(run)
        answer = run.steps("final_answer")[-1][1]["messageId"]
        assert [p["text"] for _, p in run.deltas(answer)] == ANSWER_PIECES, run.describe()

    def test_each_piece_is_out_before_the_model_writes_the_next(self, tmp_path):
        # The model waits for a line on the gate FIFO before each piece of its answer but the
        # first; this test writes that line only once it has read a text delta on the runner's
        # stdout. A runner that collects the text (or waits for the turn's end) never gets the
        # second piece: the run stalls and the test fails on its wait.
        gate = tmp_path / "gate"
        os.mkfifo(gate)
        gate_fd = os.open(gate, os.O_RDWR)  # both ends: opening never blocks, the data stays
        try:
            proc = start_framework(self.framework, tmp_path, env={PIECE_GATE_VAR: str(gate)})
            run = run_releasing(proc, lambda: os.write(gate_fd, b"\n"))  # let the model write its next piece
        finally:
            os.close(gate_fd)
        assert run.returncode == 0, run.describe()
        check_live_text(run)
        answer = run.steps("final_answer")[-1][1]["messageId"]
        assert [p["text"] for _, p in run.deltas(answer)] == ANSWER_PIECES, run.describe()

    def test_a_long_piece_is_cut_into_deltas_under_the_line_limit(self, tmp_path):
        # One 12 KB word: the model writes it as one piece (and the call's arguments carry it
        # too); with a 4 KiB line limit each delta line must fit, and the pieces still add up.
        word = "abc" * 4000
        run = run_framework(self.framework, tmp_path, word, env={"AGENTDISPATCH_MAX_LINE_BYTES": "4096"})
        assert run.returncode == 0, run.describe()
        check_live_text(run)
        deltas = [line for line in run.stdout.splitlines() if json.loads(line)["type"] == "task.delta"]
        assert max(len(line.encode()) for line in deltas) <= 4096, run.describe()
        answer = run.steps("final_answer")[-1][1]
        assert answer["text"] == f"Shouted: {word.upper()}", run.describe()
        assert len(run.deltas(answer["messageId"])) > 4, run.describe()  # 12 KB in pieces of at most 1 KiB



class OpenAIClientContract:
    """For a framework whose venv holds an OpenAI client: the framework's own client against a
    local chat-completions server (``ChatStreamServer``). Subclasses define
    ``start_live_agent(tmp_path, server)``: the runner started on an agent using that client."""

    live_pieces = ["Hello ", "from ", "a ", "live ", "model"]

    def start_live_agent(self, tmp_path, server):
        raise NotImplementedError

    def test_its_openai_client_streams_each_piece_as_the_server_sends_it(self, tmp_path):
        # The server sends each piece only after this test read the previous one's delta.
        server = ChatStreamServer(self.live_pieces)
        try:
            run = run_releasing(self.start_live_agent(tmp_path, server), server.release)
        finally:
            server.close()
        assert run.returncode == 0 and server.error is None, f"{server.error}\n{run.describe()}"
        assert run.results[0][1]["output"] == "".join(self.live_pieces), run.describe()
        check_live_text(run)
        assert [p["text"] for _, p in run.deltas()] == self.live_pieces, run.describe()
        assert server.requests[0]["body"]["stream"] is True

    def test_sigterm_mid_stream_closes_the_model_connection(self, tmp_path):
        server = ChatStreamServer(self.live_pieces)
        try:
            cancel_mid_stream(self.start_live_agent(tmp_path, server), server)
        finally:
            server.close()

    def test_a_model_error_mid_stream_fails_the_run_naming_it(self, tmp_path):
        server = ChatStreamServer(["Hello "], fail_with="the model is overloaded (test)")
        try:
            check_fails_mid_stream(self.start_live_agent(tmp_path, server), server)
        finally:
            server.close()
