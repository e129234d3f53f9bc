"""{{NAME}}: a CrewAI crew of one agent with one tool, `reverse`.

Its model is the worker's offline test model (it calls the tool with your text, then answers
"Shouted: <the tool's result>"), so that this folder runs at once, with no key and no network.
Put your model in its place (e.g. `llm="bedrock/<model id>"`, or `crewai.LLM(...)`), add your
tools to TOOLS, and add their packages to requirements.in (then requirements.txt, see README).
The runner kicks the crew off with the inputs `instruction`, and in a session `history` (the
earlier turns) and `turn`: use them in the task's description.
"""

# First: the offline test model, from ../crewai (see runner.py); importing it also turns off
# CrewAI's telemetry before crewai is imported.
from example_agent import ScriptedLLM

from crewai import Agent, Crew, Task
from crewai.tools import tool


@tool("reverse")
def reverse(text: str) -> str:
    """Return the text reversed."""
    return text[::-1]


TOOLS = [reverse]
helper = Agent(
    role="Helper",
    goal="Answer the user's text with the reverse tool",
    backstory="Reads everything backwards.",
    llm=ScriptedLLM(model="scripted", tool="reverse"),
    tools=TOOLS,
    verbose=False,
)
agent = Crew(
    agents=[helper],
    tasks=[
        Task(
            description="Answer this text: <instruction>{instruction}</instruction>\n"
            "The conversation so far:\n{history}",
            expected_output="The answer",
            agent=helper,
        )
    ],
    verbose=False,
)
