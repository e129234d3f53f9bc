"""pydantic-ai runner: streams an Agent's run (run_stream_events) as agentdispatch events, and the
model's text as it is written (its text, thinking and tool-call part starts and deltas) as
task.delta lines.

The entrypoint is a `pydantic_ai.Agent`. Without one, the default agent is
`Agent(AGENTDISPATCH_MODEL_ID)` (a "provider:model" id; add the provider's extra, e.g.
`pydantic-ai-slim[bedrock]`, to requirements.txt).
"""

import asyncio
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


async def stream(runner, agent):
    from pydantic_ai import AgentRunResultEvent
    from pydantic_ai.messages import (
        FunctionToolCallEvent, FunctionToolResultEvent, PartDeltaEvent, PartEndEvent, PartStartEvent, TextPart,
        ToolCallPart,
    )

    from pydantic_ai.messages import ModelMessagesTypeAdapter

    # In a session, the conversation is pydantic-ai's own message history, kept as JSON in the
    # session folder and given back as message_history.
    path = runner.session_file("pydantic-ai.json")
    history = read_session_json(path, ModelMessagesTypeAdapter.validate_json) if path else None
    if not history:  # no saved conversation: the caller's, if it sent one (SPEC §13)
        history = model_messages(runner.history) or None
    output, texts, calls = None, [], []
    async with agent.run_stream_events(runner.instruction, message_history=history) as events:
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
                output = ev.result.output
                if path:
                    write_session_file(path, ModelMessagesTypeAdapter.dump_json(ev.result.all_messages()))
    return runner.final_answer(output)


def run(runner):
    from pydantic_ai.agent import AbstractAgent

    agent = runner.load_agent(default_factory=default_agent, expect=AbstractAgent, what="a pydantic_ai.Agent")
    return asyncio.run(stream(runner, agent))


if __name__ == "__main__":
    main("pydantic-ai", run)
