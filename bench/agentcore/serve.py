"""The floor of the warm-start bench: AWS's bedrock-agentcore serving the shipped LangGraph example
agent in-process, as a user would without this worker (the agent imported once at start-up, one
call per request, no process per task).

    bench/agentcore/.venv/bin/python bench/agentcore/serve.py   # PORT (default 8080), 127.0.0.1
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
FRAMEWORKS = os.path.join(HERE, os.pardir, os.pardir, "frameworks")
sys.path.insert(0, os.path.join(FRAMEWORKS, "_shared"))
sys.path.insert(0, os.path.join(FRAMEWORKS, "langgraph"))

from agentdispatch import quiet_env  # noqa: E402

quiet_env()

from bedrock_agentcore import BedrockAgentCoreApp  # noqa: E402

import example_agent  # noqa: E402

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload):
    instruction = payload.get("prompt") or payload.get("input", {}).get("instruction", "")
    state = example_agent.agent.invoke({"messages": [{"role": "user", "content": instruction}]})
    return {"ok": True, "output": state["messages"][-1].content}


if __name__ == "__main__":
    app.run(port=int(os.environ.get("PORT", "8080")), host="127.0.0.1")
