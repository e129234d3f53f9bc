"""Strands Agents runner: streams `Agent.stream_async()` as agentdispatch progress steps."""

import asyncio
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "_shared"))
from agentdispatch_runner import EntrypointError, main, quiet_env  # noqa: E402

quiet_env()


def default_agent():
    """Production default: a Bedrock model id from AGENTDISPATCH_MODEL, no tools."""
    from strands import Agent

    model = os.environ.get("AGENTDISPATCH_MODEL")
    if not model:
        raise EntrypointError("no agent: set AGENTDISPATCH_ENTRYPOINT (module:attr) or AGENTDISPATCH_MODEL")
    return Agent(model=model, system_prompt=os.environ.get("AGENTDISPATCH_SYSTEM_PROMPT"), callback_handler=None)


def _text(blocks):
    return "".join(b["text"] if "text" in b else json.dumps(b["json"]) if "json" in b else "" for b in blocks)


async def stream(runner, agent):
    names, result = {}, None  # toolUseId -> tool name
    async for event in agent.stream_async(runner.instruction):
        message = event.get("message")
        if message and message.get("role") == "assistant":  # a finished model turn
            runner.step("model_turn", text=_text(message["content"]))
            for use in (b["toolUse"] for b in message["content"] if "toolUse" in b):
                names[use["toolUseId"]] = use["name"]
                runner.step("tool_call", tool=use["name"], args=use["input"])
        elif message:  # the user turn that carries the tool results
            for res in (b["toolResult"] for b in message["content"] if "toolResult" in b):
                runner.step("tool_result", tool=names.get(res["toolUseId"], ""), result=_text(res["content"]),
                            status=res.get("status"))
        elif "result" in event:
            result = event["result"]
    return result


def run(runner):
    from strands import Agent

    agent = runner.load_agent(default_factory=default_agent)
    if not isinstance(agent, Agent) and callable(agent):  # a factory
        agent = agent()
    result = asyncio.run(stream(runner, agent))
    output = str(result).strip()
    runner.step("final_answer", text=output)
    runner.result(output, {"framework": "strands", "instruction": runner.instruction, "steps": runner.steps,
                           "stopReason": result.stop_reason})


if __name__ == "__main__":
    main("strands", run)
