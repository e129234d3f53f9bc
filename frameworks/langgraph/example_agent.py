"""Offline example agent for the langgraph runner (no network, no key).

An explicit StateGraph: a "model" node (a scripted chat model that first calls `shout` with the
instruction, then answers "Shouted: <tool result>") and a ToolNode with one tool, `shout`,
wired with `tools_condition`. Loaded as `example_agent:agent`.
"""

from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from agentdispatch import example_shout  # on sys.path via runner.py
from agentdispatch.scripted_chat_model import ScriptedShoutModel


@tool
def shout(text: str) -> str:
    """Return the text in upper case."""
    return example_shout(text)


model = ScriptedShoutModel().bind_tools([shout])


def call_model(state: MessagesState):
    return {"messages": [model.invoke(state["messages"])]}


builder = StateGraph(MessagesState)
builder.add_node("model", call_model)
builder.add_node("tools", ToolNode([shout]))
builder.add_edge(START, "model")
builder.add_conditional_edges("model", tools_condition)
builder.add_edge("tools", "model")
agent = builder.compile(name="shout-graph")
