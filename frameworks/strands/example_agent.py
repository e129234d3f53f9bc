"""Example Strands agent on an offline scripted model (no network, no key).

Contract shared by every framework example: one tool `shout`; the model first
calls `shout` with the user's instruction, then answers "Shouted: <result>".
An instruction containing "slow" makes the tool sleep 60 s (cancel tests).

An instruction that starts with "refund" calls `refund` instead, a tool a person approves first
(SPEC §14) through a Strands interrupt: `ApproveRefunds`, a BeforeToolCallEvent hook, calls
`event.interrupt(...)`; the run stops (stop_reason "interrupt") and the runner asks. The answer
(`{"approved": bool, "message"?}`) comes back as the interrupt's response: approved, the tool runs;
rejected, `cancel_tool` turns the call into an error result that carries the person's message.
Each refund that runs is one line in the file EXAMPLE_REFUND_LOG names, when set (tests count them).
"""

import json

# frameworks/_shared, on sys.path via runner.py
from agentdispatch import apiece_pause, earlier_turns_note, example_pieces, example_refund, example_shout
from strands import Agent, tool
from strands.hooks import BeforeToolCallEvent, HookProvider, HookRegistry
from strands.models.model import Model


@tool
def shout(text: str) -> str:
    """Return the text in upper case."""
    return example_shout(text)


@tool
def refund(text: str) -> str:
    """Refund what the text names (ApproveRefunds lets it run only once a person approved)."""
    return example_refund(text, True)


class ApproveRefunds(HookProvider):
    """Before each `refund` call, a person's approval (a Strands interrupt). The hook runs again
    when the run resumes, in another process: `event.interrupt` then returns the answer."""

    def register_hooks(self, registry: HookRegistry, **kwargs) -> None:
        registry.add_callback(BeforeToolCallEvent, self.approve)

    def approve(self, event: BeforeToolCallEvent) -> None:
        if event.tool_use["name"] != "refund":
            return
        answer = event.interrupt("approve-refund", reason="a person approves each refund before it runs")
        approved = answer.get("approved") if isinstance(answer, dict) else answer is True
        if approved is not True:
            message = answer.get("message") if isinstance(answer, dict) else None
            # Strands' denial: the call ends as an error result with this text, which the model reads.
            event.cancel_tool = example_refund(event.tool_use["input"].get("text", ""), False, message)


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
    """Turn 1: call `tool` (`shout`) with the instruction, or `refund_tool` when one is given and
    the instruction starts with "refund". Turn 2: final text, word by word.
    (`agentdispatch-worker init` gives an own agent this model with a tool of its own.)"""

    def __init__(self, tool: str = "shout", refund_tool: str | None = None):
        self.tool = tool
        self.refund_tool = refund_tool
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
            text = _last_user_text(messages)
            name = self.refund_tool if self.refund_tool and text.lower().startswith("refund") else self.tool
            args = json.dumps({"text": text})
            yield {"contentBlockStart": {"start": {"toolUse": {"toolUseId": "call_1", "name": name}}}}
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
agent = Agent(model=ScriptedModel(refund_tool="refund"), tools=[shout, refund], hooks=[ApproveRefunds()],
              callback_handler=None)
