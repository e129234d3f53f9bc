"""The floor of the warm-start and live-text benches: AWS's bedrock-agentcore serving the shipped
LangGraph example agent in-process, as a user would without this worker (the agent imported once
at start-up, one call per request, no process per task).

Plain (bench/warm.rs): `graph.invoke` per request, one JSON answer. With --stream
(bench/ttft.rs): as AWS's streaming examples do, an async generator entrypoint that yields each
piece the model writes, as `graph.stream(stream_mode="messages")` hands it out, one SSE message
per piece.

    bench/agentcore/.venv/bin/python bench/agentcore/serve.py [--stream]   # PORT (default 8080), 127.0.0.1
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


def instruction_of(payload):
    return payload.get("prompt") or payload.get("input", {}).get("instruction", "")


def invoke(payload):
    state = example_agent.agent.invoke({"messages": [{"role": "user", "content": instruction_of(payload)}]})
    return {"ok": True, "output": state["messages"][-1].content}


async def invoke_streaming(payload):
    from langchain_core.messages import AIMessageChunk

    inputs = {"messages": [{"role": "user", "content": instruction_of(payload)}]}
    # bedrock-agentcore iterates an async generator on its own worker loop, so the sync
    # graph.stream blocks that loop only, never the one answering /ping.
    for chunk, _meta in example_agent.agent.stream(inputs, stream_mode="messages"):
        # Only the model's text: tool-call argument chunks have empty content, and the tool's
        # own message (the shouted text) is no piece of the model's answer.
        if isinstance(chunk, AIMessageChunk) and isinstance(chunk.content, str) and chunk.content:
            yield chunk.content


if __name__ == "__main__":
    app.entrypoint(invoke_streaming if "--stream" in sys.argv[1:] else invoke)
    app.run(port=int(os.environ.get("PORT", "8080")), host="127.0.0.1")
