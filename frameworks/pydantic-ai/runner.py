"""pydantic-ai runner: streams an Agent's run (run_stream_events) as agentdispatch events.

The entrypoint is a `pydantic_ai.Agent`. Without one, the default agent is
`Agent(AGENTDISPATCH_MODEL_ID)` (a "provider:model" id; add the provider's extra, e.g.
`pydantic-ai-slim[bedrock]`, to requirements.txt).
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "_shared"))
from agentdispatch import (  # noqa: E402
    as_text, main, model_id_from_env, read_session_json, write_session_file,
)


def default_agent():
    from pydantic_ai import Agent

    return Agent(model_id_from_env(), instructions=os.environ.get("AGENTDISPATCH_SYSTEM_PROMPT"))


async def stream(runner, agent):
    from pydantic_ai import AgentRunResultEvent
    from pydantic_ai.messages import (
        FunctionToolCallEvent, FunctionToolResultEvent, PartEndEvent, TextPart, ToolCallPart,
    )

    from pydantic_ai.messages import ModelMessagesTypeAdapter

    # In a session, the conversation is pydantic-ai's own message history, kept as JSON in the
    # session folder and given back as message_history.
    path = runner.session_file("pydantic-ai.json")
    history = read_session_json(path, ModelMessagesTypeAdapter.validate_json) if path else None
    output, texts, calls = None, [], []
    async with agent.run_stream_events(runner.instruction, message_history=history) as events:
        async for ev in events:
            if isinstance(ev, PartEndEvent):  # the last part of a model response ends its turn
                texts += [ev.part.content] if isinstance(ev.part, TextPart) else []
                calls += [ev.part.tool_name] if isinstance(ev.part, ToolCallPart) else []
                if ev.next_part_kind is None:
                    runner.step("model_turn", text="".join(texts), toolCalls=calls)
                    texts, calls = [], []
            elif isinstance(ev, FunctionToolCallEvent):
                runner.step("tool_call", tool=ev.part.tool_name, args=ev.part.args_as_dict())
            elif isinstance(ev, FunctionToolResultEvent):
                runner.step("tool_result", tool=ev.part.tool_name, result=as_text(ev.part.model_response_str()))
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
