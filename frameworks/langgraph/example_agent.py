"""Offline example agent for the langgraph runner (no network, no key).

An explicit StateGraph: a "model" node (a scripted chat model that first calls `shout` with the
instruction, then answers "Shouted: <tool result>") and a ToolNode with its tools, wired with
`tools_condition`. Loaded as `example_agent:agent`.

An instruction that starts with "refund" calls `refund` instead, a tool that asks a person
first (LangGraph `interrupt()`, SPEC §14): the task ends `input_required`, and the answer
(`input.resume`: true/false or {"approved", "message"}) resumes it. Each refund that runs is one
line in the file EXAMPLE_REFUND_LOG names, when set (tests count them).
"""

from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import interrupt

from agentdispatch import example_refund, example_shout  # on sys.path via runner.py
from agentdispatch.scripted_chat_model import ScriptedShoutModel


@tool
def shout(text: str) -> str:
    """Return the text in upper case."""
    return example_shout(text)


@tool
def refund(text: str) -> str:
    """Refund what the text names, once a person approves."""
    answer = interrupt({"kind": "approval", "tool": "refund", "args": {"text": text}})
    approved = answer.get("approved") if isinstance(answer, dict) else answer is True
    message = answer.get("message") if isinstance(answer, dict) else None
    return example_refund(text, approved, message)


model = ScriptedShoutModel().bind_tools([shout])
refund_model = ScriptedShoutModel(tool="refund").bind_tools([refund])


def call_model(state: MessagesState):
    users = [m for m in state["messages"] if isinstance(m, HumanMessage)]
    asks_refund = bool(users) and users[-1].text.lower().startswith("refund")
    return {"messages": [(refund_model if asks_refund else model).invoke(state["messages"])]}


builder = StateGraph(MessagesState)
builder.add_node("model", call_model)
builder.add_node("tools", ToolNode([shout, refund]))
builder.add_edge(START, "model")
builder.add_conditional_edges("model", tools_condition)
builder.add_edge("tools", "model")
agent = builder.compile(name="shout-graph")
