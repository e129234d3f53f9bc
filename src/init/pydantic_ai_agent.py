"""{{NAME}}: a Pydantic AI agent with one tool, `reverse`.

Its model is the worker's offline test model (it calls the tool with your text, then answers
"Shouted: <the tool's result>"), so that this folder runs at once, with no key and no network.
Put your model in its place, e.g. `Agent("openai:gpt-4o-mini", ...)`, add your tools, and add
their packages to requirements.in (then requirements.txt, see README).
"""

from pydantic_ai import Agent

from example_agent import scripted_model  # the offline test model, from ../pydantic-ai (see runner.py)

agent = Agent(scripted_model(tool="reverse"), name="{{NAME}}")


@agent.tool_plain
def reverse(text: str) -> str:
    """Return the text reversed."""
    return text[::-1]
