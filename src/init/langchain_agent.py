"""{{NAME}}: a LangChain agent (create_agent) with one tool, `reverse`.

Its model is the worker's offline test model (it calls the tool with your text, then answers
"Shouted: <the tool's result>"), so that this folder runs at once, with no key and no network.
Put your model in its place, e.g. `create_agent("openai:gpt-4o-mini", ...)` or a
`langchain_openai.ChatOpenAI`, add your tools to TOOLS, and add their packages to
requirements.in (then requirements.txt, see README).
"""

from langchain.agents import create_agent
from langchain_core.tools import tool

from agentdispatch.scripted_chat_model import ScriptedShoutModel  # the offline test model


@tool
def reverse(text: str) -> str:
    """Return the text reversed."""
    return text[::-1]


TOOLS = [reverse]
agent = create_agent(ScriptedShoutModel(tool="reverse"), tools=TOOLS, name="{{NAME}}")
