"""Example Strands agent on an offline scripted model (no network, no key).

Contract shared by every framework example: one tool `shout`; the model first
calls `shout` with the user's instruction, then answers "Shouted: <result>".
An instruction containing "slow" makes the tool sleep 60 s (cancel tests).
"""

import json

# frameworks/_shared, on sys.path via runner.py
from agentdispatch import apiece_pause, earlier_turns_note, example_pieces, example_shout
from strands import Agent, tool
from strands.models.model import Model


@tool
def shout(text: str) -> str:
    """Return the text in upper case."""
    return example_shout(text)


def _user_turns(messages):
    """Indexes of the user's text messages (turns), oldest first."""
    return [
        i for i, m in enumerate(messages)
        if m.get("role") == "user" and any("text" in b for b in m.get("content", []))
    ]


def _last_user_text(messages):
    turns = _user_turns(messages)
    if not turns:
        return ""
    return "".join(b["text"] for b in messages[turns[-1]].get("content", []) if "text" in b)


def _tool_result_text(messages):
    """Text of the current turn's latest toolResult block, or None before its tool ran."""
    turns = _user_turns(messages)
    for message in reversed(messages[turns[-1]:] if turns else messages):
        for block in message.get("content", []):
            if "toolResult" in block:
                return "".join(c.get("text", "") for c in block["toolResult"]["content"])
    return None


class ScriptedModel(Model):
    """Turn 1: call `tool` (`shout`) with the instruction. Turn 2: final text, word by word.
    (`agentdispatch-worker init` gives an own agent this model with a tool of its own.)"""

    def __init__(self, tool: str = "shout"):
        self.tool = tool
        self.config = {"model_id": "scripted"}

    def update_config(self, **model_config):
        self.config.update(model_config)

    def get_config(self):
        return self.config

    async def structured_output(self, output_model, prompt, system_prompt=None, **kwargs):
        raise NotImplementedError("the scripted model has no structured output")
        yield  # pragma: no cover

    async def stream(self, messages, tool_specs=None, system_prompt=None, **kwargs):
        yield {"messageStart": {"role": "assistant"}}
        shouted = _tool_result_text(messages)
        if shouted is None:
            args = json.dumps({"text": _last_user_text(messages)})
            yield {"contentBlockStart": {"start": {"toolUse": {"toolUseId": "call_1", "name": self.tool}}}}
            for piece in example_pieces(args):  # the arguments in pieces, as a model writes them
                yield {"contentBlockDelta": {"delta": {"toolUse": {"input": piece}}}}
            yield {"contentBlockStop": {}}
            yield {"messageStop": {"stopReason": "tool_use"}}
        else:
            note = earlier_turns_note(len(_user_turns(messages)) - 1)
            for n, piece in enumerate(example_pieces(f"Shouted: {shouted}{note}")):
                await apiece_pause(n)  # a slow model (AGENTDISPATCH_EXAMPLE_PIECE_*), in tests
                yield {"contentBlockDelta": {"delta": {"text": piece}}}
            yield {"contentBlockStop": {}}
            yield {"messageStop": {"stopReason": "end_turn"}}
        yield {
            "metadata": {
                "usage": {"inputTokens": 0, "outputTokens": 0, "totalTokens": 0},
                "metrics": {"latencyMs": 0},
            }
        }


# callback_handler=None: the default handler prints every delta to stdout.
agent = Agent(model=ScriptedModel(), tools=[shout], callback_handler=None)
