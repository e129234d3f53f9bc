"""Offline example agent for the pydantic-ai runner (no network, no key).

A pydantic-ai Agent with one tool, `shout`, on a FunctionModel scripted to first call `shout`
with the instruction, then answer "Shouted: <tool result>". Loaded as `example_agent:agent`.

An instruction that starts with "refund" calls `refund` instead, a tool that needs a person's
approval first (pydantic-ai's deferred tools, `requires_approval=True`; SPEC §14): the run ends
with `DeferredToolRequests` as its output (hence that type among the agent's output types), the
task `input_required`, and the answer (`input.resume`: true/false or {"approved", "message"})
resumes it. Approved, the tool runs (one line in the file EXAMPLE_REFUND_LOG names, when set);
denied, pydantic-ai gives the model the denial's message as the tool's result instead.
"""

import json

from pydantic_ai import Agent, DeferredToolRequests
from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel

from agentdispatch import apiece_pause, earlier_turns_note, example_pieces, example_refund, example_shout  # via runner.py


def _script(messages) -> tuple[str, str]:
    """("tool", <prompt>) before the current turn's tool ran, then ("text", "Shouted: <result>"),
    noting the conversation's earlier turns (a session's message history)."""
    parts = [p for m in messages if isinstance(m, ModelRequest) for p in m.parts]
    prompts = [i for i, p in enumerate(parts) if isinstance(p, UserPromptPart)]
    turn = parts[prompts[-1]:] if prompts else parts
    results = [p for p in turn if isinstance(p, ToolReturnPart)]
    if results:
        return "text", f"Shouted: {results[-1].model_response_str()}{earlier_turns_note(len(prompts) - 1)}"
    return "tool", str(parts[prompts[-1]].content) if prompts else ""


def scripted_model(tool: str = "shout", asking: str | None = None) -> FunctionModel:
    """The offline model: it calls ``tool`` with the instruction, then answers "Shouted: <its
    result>" (`agentdispatch-worker init` gives an own agent this model with a tool of its own).
    With ``asking``, an instruction starting with "refund" calls that tool instead."""

    def chosen(prompt: str) -> str:
        return asking if asking and prompt.lower().startswith("refund") else tool

    def respond(messages, info: AgentInfo) -> ModelResponse:
        kind, value = _script(messages)
        part = TextPart(value) if kind == "text" else ToolCallPart(chosen(value), {"text": value})
        return ModelResponse(parts=[part])

    async def stream_respond(messages, info: AgentInfo):
        """The response in pieces, as a real model writes it: the text word by word (``apiece_pause``
        before each: a slow model when AGENTDISPATCH_EXAMPLE_PIECE_* asks for one), or the call's
        arguments, its name and id with the first piece only."""
        kind, value = _script(messages)  # one response is either text or tool-call deltas, not both
        if kind == "text":
            for n, piece in enumerate(example_pieces(value)):
                await apiece_pause(n)
                yield piece
            return
        for n, piece in enumerate(example_pieces(json.dumps({"text": value}))):
            yield {0: DeltaToolCall(name=chosen(value), json_args=piece, tool_call_id="call_1") if n == 0
                   else DeltaToolCall(json_args=piece)}

    return FunctionModel(respond, stream_function=stream_respond, model_name="scripted-shout")


# DeferredToolRequests among the output types: a run whose model calls `refund` ends with the
# calls awaiting approval as its output (without it, pydantic-ai raises a UserError).
agent = Agent(scripted_model(asking="refund"), name="shout-agent", output_type=[str, DeferredToolRequests])


@agent.tool_plain
def shout(text: str) -> str:
    """Return the text in upper case."""
    return example_shout(text)


@agent.tool_plain(requires_approval=True)
def refund(text: str) -> str:
    """Refund what the text names; pydantic-ai runs it only once a person approved the call."""
    return example_refund(text, True)
