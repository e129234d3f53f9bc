"""{{NAME}}: a Strands agent with one tool, `reverse`.

Its model is the worker's offline test model (it calls the tool with your text, then answers
"Shouted: <the tool's result>"), so that this folder runs at once, with no key and no network.
Put your model in its place, e.g. `from strands.models.openai import OpenAIModel` or Strands'
default Bedrock model (`Agent(tools=TOOLS)`), add your tools to TOOLS, and add their packages to
requirements.in (then requirements.txt, see README).
"""

from strands import Agent, tool

from example_agent import ScriptedModel  # the offline test model, from ../strands (see runner.py)


@tool
def reverse(text: str) -> str:
    """Return the text reversed."""
    return text[::-1]


TOOLS = [reverse]
agent = Agent(model=ScriptedModel(tool="reverse"), tools=TOOLS, callback_handler=None)
