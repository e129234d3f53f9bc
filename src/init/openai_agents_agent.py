"""{{NAME}}: an OpenAI Agents SDK agent with one tool, `reverse`.

Its model is the worker's offline test model (it calls the tool with your text, then answers
"Shouted: <the tool's result>"), so that this folder runs at once, with no key and no network.
Put your model in its place (drop `model=` for the SDK's default OpenAI model, or pass one of
its providers), add your tools to TOOLS, and add their packages to requirements.in (then
requirements.txt, see README).
"""

from agents import Agent, function_tool

from example_agent import scripted_model  # the offline test model, from ../openai-agents (see runner.py)


@function_tool
def reverse(text: str) -> str:
    """Return the text reversed."""
    return text[::-1]


TOOLS = [reverse]
agent = Agent(name="{{NAME}}", instructions="Answer with the reverse tool.", model=scripted_model(tool="reverse"),
              tools=TOOLS)
