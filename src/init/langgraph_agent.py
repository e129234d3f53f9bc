"""{{NAME}}: a LangGraph graph with one tool, `reverse`.

Its model is the worker's offline test model (it calls the tool with your text, then answers
"Shouted: <the tool's result>"), so that this folder runs at once, with no key and no network.
Put your model in its place, e.g. `from langchain_openai import ChatOpenAI` and
`model = ChatOpenAI(model="gpt-4o-mini").bind_tools(TOOLS)`, add your tools to TOOLS, and add
their packages to requirements.in (then requirements.txt, see README).
"""

from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from agentdispatch.scripted_chat_model import ScriptedShoutModel  # the offline test model


@tool
def reverse(text: str) -> str:
    """Return the text reversed."""
    return text[::-1]


TOOLS = [reverse]
model = ScriptedShoutModel(tool="reverse").bind_tools(TOOLS)


def call_model(state: MessagesState):
    return {"messages": [model.invoke(state["messages"])]}


builder = StateGraph(MessagesState)
builder.add_node("model", call_model)
builder.add_node("tools", ToolNode(TOOLS))
builder.add_edge(START, "model")
builder.add_conditional_edges("model", tools_condition)
builder.add_edge("tools", "model")
agent = builder.compile(name="{{NAME}}")
