"""pydantic-ai runner: streams an Agent's run (run_stream_events) as agentdispatch events, and the
model's text as it is written (its text, thinking and tool-call part starts and deltas) as
task.delta lines.

A run whose tools defer their calls (pydantic-ai's deferred tools: `requires_approval=True`,
`ApprovalRequired`, `CallDeferred`) asks a person (SPEC §14; docs/interrupts.md, "pydantic-ai"):
its messages and `DeferredToolRequests` are kept in the session folder, and the run that
answers continues it with `DeferredToolResults`.

The entrypoint is a `pydantic_ai.Agent`. Without one, the default agent is
`Agent(AGENTDISPATCH_MODEL_ID)` (a "provider:model" id; add the provider's extra, e.g.
`pydantic-ai-slim[bedrock]`, to requirements.txt).
"""

import asyncio
import contextlib
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "_shared"))
from agentdispatch import (  # noqa: E402
    as_text, main, model_id_from_env, read_session_json, write_session_file,
)


def default_agent():
    from pydantic_ai import Agent

    return Agent(model_id_from_env(), instructions=os.environ.get("AGENTDISPATCH_SYSTEM_PROMPT"))


def live(runner, ev):
    """A part of the model response being written: its first piece comes with PartStartEvent,
    the rest as PartDeltaEvents of the same index. One response at a time: the open message is
    key None."""
    from pydantic_ai.messages import (
        PartStartEvent, TextPart, TextPartDelta, ThinkingPart, ThinkingPartDelta, ToolCallPart, ToolCallPartDelta,
    )

    part = ev.part if isinstance(ev, PartStartEvent) else ev.delta
    if isinstance(part, TextPart):
        runner.live.text(None, part.content)
    elif isinstance(part, TextPartDelta):
        runner.live.text(None, part.content_delta)
    elif isinstance(part, ThinkingPart):
        runner.live.text(None, part.content, kind="reasoning")
    elif isinstance(part, ThinkingPartDelta):
        runner.live.text(None, part.content_delta, kind="reasoning")
    elif isinstance(part, (ToolCallPart, ToolCallPartDelta)):
        args = part.args if isinstance(part, ToolCallPart) else part.args_delta
        name = part.tool_name if isinstance(part, ToolCallPart) else part.tool_name_delta
        runner.live.tool_args(None, args if isinstance(args, str) else json.dumps(args) if args else "",
                              index=ev.index, tool_call_id=part.tool_call_id, tool=name)


def model_messages(history):
    """The caller's earlier messages as pydantic-ai's: user and system prompts as requests, the
    assistant's text as responses."""
    from pydantic_ai.messages import ModelRequest, ModelResponse, SystemPromptPart, TextPart, UserPromptPart

    part = {"user": UserPromptPart, "system": SystemPromptPart}
    return [ModelResponse(parts=[TextPart(m["content"])]) if m["role"] == "assistant"
            else ModelRequest(parts=[part[m["role"]](m["content"])]) for m in history]


# A run that asks (SPEC §14: a tool with requires_approval=True, or raising ApprovalRequired or
# CallDeferred) ends with DeferredToolRequests as its output; what the answer's run needs is kept
# in the session folder under these names: the messages so far (the last one the model's response
# with the calls waiting), and the requests themselves.
PAUSED_MESSAGES = "pydantic-ai-paused-messages.json"
DEFERRED_REQUESTS = "pydantic-ai-deferred-requests.json"


def output_types(spec) -> list:
    """An output spec (a type, a union of types, a marker, or a list of them) as one flat list."""
    import types
    import typing

    if isinstance(spec, (list, tuple)):
        return [t for item in spec for t in output_types(item)]
    if typing.get_origin(spec) in (typing.Union, types.UnionType):
        return list(typing.get_args(spec))
    return [spec]


def run_output_type(agent):
    """The output type to run ``agent`` with so that a deferred tool call ends the run with
    DeferredToolRequests (without it among the output types, pydantic-ai raises a UserError):
    the agent's own output types plus DeferredToolRequests, or None when the agent has it already
    or cannot take a run-time output type (an agent with output validators: pydantic-ai refuses
    one there, as its validators expect the agent's own type; such an agent must list
    DeferredToolRequests itself)."""
    from pydantic_ai import DeferredToolRequests

    own = output_types(agent.output_type)
    if DeferredToolRequests in own:
        return None
    inner = agent
    while inner is not None:  # a WrapperAgent runs the agent it wraps
        if getattr(inner, "_output_validators", None):
            return None
        inner = getattr(inner, "wrapped", None)
    return [*own, DeferredToolRequests]


def question(requests, call, kind: str) -> dict:
    """One deferred call as the worker's question: pydantic-ai's tool call id, the tool and its
    arguments, and the metadata the tool deferred it with (ApprovalRequired, CallDeferred) as
    its value."""
    q = {"id": call.tool_call_id, "kind": kind, "tool": call.tool_name, "args": call.args_as_dict()}
    if requests.metadata.get(call.tool_call_id):
        q["value"] = requests.metadata[call.tool_call_id]
    return q


def ask(runner, result) -> None:
    """The run ended with deferred tool calls: keep its messages and requests in the session
    folder (made now for a task sent without a session) and ask one question per call: an
    approval for each call awaiting one, an input (its answer is the call's result) for each
    call deferred to be answered outside the agent (CallDeferred, an external tool)."""
    from pydantic import TypeAdapter
    from pydantic_ai import DeferredToolRequests
    from pydantic_ai.messages import ModelMessagesTypeAdapter

    requests = result.output
    folder = runner.state_dir()
    if not folder:
        raise RuntimeError("a tool call waits for a person, and this run has no session folder to keep its state in")
    write_session_file(os.path.join(folder, PAUSED_MESSAGES), ModelMessagesTypeAdapter.dump_json(result.all_messages()))
    write_session_file(os.path.join(folder, DEFERRED_REQUESTS), TypeAdapter(DeferredToolRequests).dump_json(requests))
    runner.interrupt([question(requests, c, "approval") for c in requests.approvals]
                     + [question(requests, c, "input") for c in requests.calls])


def resumed(runner):
    """The run that answers: the asking run's messages and its DeferredToolResults from the
    person's answers (approved: ToolApproved; rejected: ToolDenied with their message, which
    pydantic-ai gives the model as the tool's result; an input's answer: the call's result).
    Read under ``runner.saved_state``: a missing or unreadable file, or requests that do not
    match the questions answered, keep the question open (resume_state_invalid), nothing run."""
    from pydantic import TypeAdapter
    from pydantic_ai import DeferredToolRequests, ToolApproved, ToolDenied
    from pydantic_ai.messages import ModelMessagesTypeAdapter

    folder = runner.session_dir or ""
    path = os.path.join(folder, PAUSED_MESSAGES)
    with runner.saved_state(path):
        with open(path, "rb") as f:
            history = ModelMessagesTypeAdapter.validate_json(f.read())
    path = os.path.join(folder, DEFERRED_REQUESTS)
    with runner.saved_state(path):
        with open(path, "rb") as f:
            requests = TypeAdapter(DeferredToolRequests).validate_json(f.read())
        answers = runner.resume.get("answers") or {}
        unanswered = [c.tool_call_id for c in requests.approvals + requests.calls if c.tool_call_id not in answers]
        if unanswered:  # the questions answered are not the calls this file holds
            raise ValueError(f"its deferred tool calls {', '.join(unanswered)} are not among the questions answered")
        approvals = {}
        for call in requests.approvals:
            answer = answers[call.tool_call_id]  # the worker gives an approval as {"approved", "message"?}
            message = answer.get("message") if isinstance(answer, dict) else None
            approvals[call.tool_call_id] = (ToolApproved() if isinstance(answer, dict) and answer.get("approved") is True
                                            else ToolDenied(message) if message else ToolDenied())
        results = requests.build_results(approvals=approvals,
                                         calls={c.tool_call_id: answers[c.tool_call_id] for c in requests.calls})
    return history, results


async def stream(runner, agent):
    from pydantic_ai import AgentRunResultEvent, DeferredToolRequests
    from pydantic_ai.messages import (
        FunctionToolCallEvent, FunctionToolResultEvent, PartDeltaEvent, PartEndEvent, PartStartEvent, TextPart,
        ToolCallPart,
    )

    from pydantic_ai.messages import ModelMessagesTypeAdapter

    # In a session, the conversation is pydantic-ai's own message history, kept as JSON in the
    # session folder and given back as message_history. A turn that asks is not in it until the
    # answer's run finishes it: a turn run meanwhile continues the conversation as it was.
    path = runner.session_file("pydantic-ai.json")
    options = {}
    if runner.resume is not None:  # the answer: the asking run continues, with no new prompt
        prompt = None
        options["message_history"], options["deferred_tool_results"] = resumed(runner)
    else:
        prompt = runner.instruction
        history = read_session_json(path, ModelMessagesTypeAdapter.validate_json) if path else None
        # no saved conversation: the caller's, if it sent one (SPEC §13)
        options["message_history"] = history or model_messages(runner.history) or None
    output_type = run_output_type(agent)
    if output_type is not None:
        options["output_type"] = output_type
    result, texts, calls = None, [], []
    async with agent.run_stream_events(prompt, **options) as events:
        async for ev in events:
            if isinstance(ev, (PartStartEvent, PartDeltaEvent)):
                live(runner, ev)
            elif isinstance(ev, PartEndEvent):  # the last part of a model response ends its turn
                texts += [ev.part.content] if isinstance(ev.part, TextPart) else []
                calls += [ev.part.tool_name] if isinstance(ev.part, ToolCallPart) else []
                if ev.next_part_kind is None:
                    text = "".join(texts)
                    runner.step("model_turn", text=text, toolCalls=calls, messageId=runner.live.close(None, text))
                    texts, calls = [], []
            elif isinstance(ev, FunctionToolCallEvent):
                runner.step("tool_call", tool=ev.part.tool_name, args=ev.part.args_as_dict(),
                            toolCallId=ev.part.tool_call_id)
            elif isinstance(ev, FunctionToolResultEvent):
                runner.step("tool_result", tool=ev.part.tool_name, result=as_text(ev.part.model_response_str()),
                            toolCallId=ev.tool_call_id)
            elif isinstance(ev, AgentRunResultEvent):
                result = ev.result
    if isinstance(result.output, DeferredToolRequests):
        ask(runner, result)  # its as_text() is no answer: the task asks instead
        return None
    if path:
        write_session_file(path, ModelMessagesTypeAdapter.dump_json(result.all_messages()))
    if runner.resume is not None:  # answered: what the question kept is spent
        for name in (PAUSED_MESSAGES, DEFERRED_REQUESTS):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(runner.session_dir, name))
    return runner.final_answer(result.output)


def run(runner):
    from pydantic_ai.agent import AbstractAgent

    agent = runner.load_agent(default_factory=default_agent, expect=AbstractAgent, what="a pydantic_ai.Agent")
    return asyncio.run(stream(runner, agent))


if __name__ == "__main__":
    main("pydantic-ai", run)
