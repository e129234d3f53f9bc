"""Offline example agent for the langchain runner (no network, no key).

`create_agent` with one tool, `shout`, on a scripted chat model that first calls `shout` with
the instruction, then answers "Shouted: <tool result>". Loaded as `example_agent:agent`.
"""

from langchain.agents import create_agent
from langchain_core.tools import tool

from agentdispatch import example_shout  # on sys.path via runner.py
from agentdispatch.scripted_chat_model import ScriptedShoutModel


@tool
def shout(text: str) -> str:
    """Return the text in upper case."""
    return example_shout(text)


agent = create_agent(ScriptedShoutModel(), tools=[shout], name="shout-agent")
