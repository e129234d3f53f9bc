"""Offline example agent for the langchain runner (no network, no key).

`create_agent` with two tools on a scripted chat model that first calls a tool with the
instruction, then answers "Shouted: <tool result>". Loaded as `example_agent:agent`.

Most instructions call `shout`. One that starts with "refund" calls `refund`, a tool a person
must approve first (SPEC §14): LangChain's own `HumanInTheLoopMiddleware` pauses the run before
the tool runs, the task ends `input_required`, and the answer (`input.resume`: true/false or
{"approved", "message"}) resumes it. Rejected, the tool does not run and the model gets the
middleware's denial, which carries the person's message. Each refund that runs is one line in
the file EXAMPLE_REFUND_LOG names, when set (tests count them).
"""

from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool

from agentdispatch import example_refund, example_shout  # on sys.path via runner.py
from agentdispatch.scripted_chat_model import ScriptedShoutModel


@tool
def shout(text: str) -> str:
    """Return the text in upper case."""
    return example_shout(text)


@tool
def refund(text: str) -> str:
    """Refund what the text names (runs only once a person approved it)."""
    return example_refund(text, True)


class ScriptedModel(ScriptedShoutModel):
    """The shout script, calling `refund` instead when the turn's instruction starts with
    "refund" (create_agent takes one model; the LangGraph example picks between two)."""

    def _reply(self, messages):
        users = [m for m in messages if isinstance(m, HumanMessage)]
        if users and users[-1].text.lower().startswith("refund"):
            return _REFUND_SCRIPT._reply(messages)
        return super()._reply(messages)


_REFUND_SCRIPT = ScriptedShoutModel(tool="refund")

# per_call: one question per gated call, under LangGraph's own interrupt id, answered with one
# decision ({"type": "approve"} / {"type": "reject", "message"}); the default "batched" mode asks
# once per model turn for all its calls.
agent = create_agent(
    ScriptedModel(),
    tools=[shout, refund],
    middleware=[HumanInTheLoopMiddleware(interrupt_on={"refund": True}, interrupt_mode="per_call")],
    name="shout-agent",
)
