"""Offline example agent for the pydantic-ai runner (no network, no key).

A pydantic-ai Agent with one tool, `shout`, on a FunctionModel scripted to first call `shout`
with the instruction, then answer "Shouted: <tool result>". Loaded as `example_agent:agent`.
"""

import json

from pydantic_ai import Agent
from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel

from agentdispatch_runner import example_shout  # on sys.path via runner.py


def _script(messages) -> tuple[str, str]:
    """("tool", <prompt>) before the tool ran, then ("text", "Shouted: <result>")."""
    parts = [p for m in messages if isinstance(m, ModelRequest) for p in m.parts]
    results = [p for p in parts if isinstance(p, ToolReturnPart)]
    if results:
        return "text", f"Shouted: {results[-1].model_response_str()}"
    prompts = [p.content for p in parts if isinstance(p, UserPromptPart)]
    return "tool", str(prompts[-1]) if prompts else ""


def respond(messages, info: AgentInfo) -> ModelResponse:
    kind, value = _script(messages)
    part = TextPart(value) if kind == "text" else ToolCallPart("shout", {"text": value})
    return ModelResponse(parts=[part])


async def stream_respond(messages, info: AgentInfo):
    kind, value = _script(messages)  # one response is either text or tool-call deltas, not both
    yield value if kind == "text" else {0: DeltaToolCall(name="shout", json_args=json.dumps({"text": value}))}


agent = Agent(FunctionModel(respond, stream_function=stream_respond, model_name="scripted-shout"), name="shout-agent")


@agent.tool_plain
def shout(text: str) -> str:
    """Return the text in upper case."""
    return example_shout(text)
