"""Example OpenAI Agents SDK agent on the SDK's own offline ScriptedModel (no network, no key).

Contract shared by every framework example: one tool `shout`; the model first
calls `shout` with the user's instruction, then answers "Shouted: <result>".
An instruction containing "slow" makes the tool sleep 60 s (cancel tests).
"""


# frameworks/_shared, on sys.path via runner.py
from agentdispatch import apiece_pause, earlier_turns_note, example_pieces, example_shout
from agents import Agent, function_tool, set_tracing_disabled
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call

# Tracing exports to the OpenAI API by default; the scripted example never needs it.
set_tracing_disabled(True)


@function_tool
def shout(text: str) -> str:
    """Return the text in upper case."""
    return example_shout(text)


def _items(call):
    return [call.input] if isinstance(call.input, str) else call.input


def _user_texts(call):
    """The user's messages of the conversation (a session's earlier turns first)."""
    texts = []
    for item in _items(call):
        if isinstance(item, str):
            texts.append(item)
        elif item.get("role") == "user":
            content = item["content"]
            texts.append(content if isinstance(content, str) else "".join(p.get("text", "") for p in content))
    return texts


def _instruction(call):
    texts = _user_texts(call)
    return texts[-1] if texts else ""




def _answer(call):
    outputs = [i["output"] for i in _items(call) if isinstance(i, dict) and i.get("type") == "function_call_output"]
    note = earlier_turns_note(len(_user_texts(call)) - 1)
    return [assistant_message(f"Shouted: {outputs[-1]}{note}")]


class PiecewiseScriptedModel(ScriptedModel):
    """ScriptedModel streams each text and each call's arguments whole: this one hands them out
    in pieces, as a real model writes them (the text word by word, with ``apiece_pause`` before
    each piece: a slow model when AGENTDISPATCH_EXAMPLE_PIECE_* asks for one)."""

    async def stream_response(self, *args, **kwargs):
        async for event in super().stream_response(*args, **kwargs):
            if event.type == "response.output_text.delta":
                for n, piece in enumerate(example_pieces(event.delta)):
                    await apiece_pause(n)
                    yield event.model_copy(update={"delta": piece})
            elif event.type == "response.function_call_arguments.delta":
                for piece in example_pieces(event.delta):
                    yield event.model_copy(update={"delta": piece})
            else:
                yield event


def scripted_model(tool: str = "shout") -> PiecewiseScriptedModel:
    """The offline model: it calls ``tool`` with the instruction, then answers "Shouted: <its
    result>" (`agentdispatch-worker init` gives an own agent this model with a tool of its own)."""

    def call(request):
        return [function_call(tool, {"text": _instruction(request)}, call_id="call_1")]

    return PiecewiseScriptedModel([ModelStep.respond(call), ModelStep.respond(_answer)])


agent = Agent(
    name="shouter",
    instructions="Shout the user's text with the shout tool, then report it.",
    model=scripted_model(),
    tools=[shout],
)
