"""Example OpenAI Agents SDK agent on the SDK's own offline ScriptedModel (no network, no key).

Contract shared by every framework example: one tool `shout`; the model first
calls `shout` with the user's instruction, then answers "Shouted: <result>".
An instruction containing "slow" makes the tool sleep 60 s (cancel tests).

An instruction that starts with "refund" calls `refund` instead, a tool that needs a person's
approval (the SDK's `needs_approval`, SPEC §14): the task ends `input_required`, and the answer
(`input.resume`: true/false or {"approved", "message"}) resumes it; a rejection's message is what
the model gets back instead of the tool's result. Each refund that runs is one line in the file
EXAMPLE_REFUND_LOG names, when set (tests count them).
"""


# frameworks/_shared, on sys.path via runner.py
from agentdispatch import apiece_pause, earlier_turns_note, example_pieces, example_refund, example_shout
from agents import Agent, function_tool, set_tracing_disabled
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call

# Tracing exports to the OpenAI API by default; the scripted example never needs it.
set_tracing_disabled(True)


@function_tool
def shout(text: str) -> str:
    """Return the text in upper case."""
    return example_shout(text)


@function_tool(needs_approval=True)
def refund(text: str) -> str:
    """Refund what the text names, once a person approves."""
    # Runs only approved: the SDK answers a rejection itself, with the person's message.
    return example_refund(text, True)


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


def _this_turn(call):
    """The items after the last user message: the calls and tool outputs of the turn being run."""
    items = _items(call)
    users = [n for n, i in enumerate(items) if isinstance(i, str) or (isinstance(i, dict) and i.get("role") == "user")]
    return items[users[-1] + 1:] if users else items


def _respond(tool):
    """The scripted model's one rule, read from its input rather than from how many calls came
    before: a run resumed in a fresh process (an approval answered, SPEC §14) starts the script
    over, yet must answer, not call the tool again. A tool output in this turn: answer "Shouted:
    <it>"; else call ``tool`` with the instruction (``refund`` for one starting with "refund",
    when the agent has that tool). Call ids are per turn, distinct in a session's history."""

    def respond(call):
        turn = _this_turn(call)
        outputs = [i["output"] for i in turn if isinstance(i, dict) and i.get("type") == "function_call_output"]
        users = len(_user_texts(call))
        if outputs:
            return [assistant_message(f"Shouted: {outputs[-1]}{earlier_turns_note(users - 1)}")]
        instruction = _instruction(call)
        name = tool
        if instruction.lower().startswith("refund") and any(getattr(t, "name", None) == "refund" for t in call.tools):
            name = "refund"
        return [function_call(name, {"text": instruction}, call_id=f"call_{users}")]

    return respond


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
    result>" (`agentdispatch-worker init` gives an own agent this model with a tool of its own).
    Two model calls per run at most, as a ScriptedModel has one step per call."""
    return PiecewiseScriptedModel([ModelStep.respond(_respond(tool)), ModelStep.respond(_respond(tool))])


agent = Agent(
    name="shouter",
    instructions="Shout the user's text with the shout tool (refund with the refund tool), then report it.",
    model=scripted_model(),
    tools=[shout, refund],
)
