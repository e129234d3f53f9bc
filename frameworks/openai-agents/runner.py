"""OpenAI Agents SDK runner: streams `Runner.run_streamed().stream_events()` as agentdispatch steps,
and the model's text as it is written (its raw response text, reasoning and tool-argument deltas)
as task.delta lines."""

import asyncio
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "_shared"))
from agentdispatch import check_sqlite, main, model_id_from_env  # noqa: E402


def default_agent():
    """Production default: the model AGENTDISPATCH_MODEL_ID (OpenAI API, OPENAI_API_KEY), no tools."""
    from agents import Agent

    instructions = os.environ.get("AGENTDISPATCH_SYSTEM_PROMPT") or "You are a helpful assistant."
    return Agent(name="agentdispatch", instructions=instructions, model=model_id_from_env())


def _get(item, key):
    return item.get(key) if isinstance(item, dict) else getattr(item, key, None)


def _args(arguments):
    try:
        return json.loads(arguments)
    except (TypeError, ValueError):
        return arguments


def session(runner):
    """In a session, the SDK's own SQLiteSession keeps the conversation in the session folder,
    under the session key."""
    if not runner.session_dir:
        return None
    from agents import SQLiteSession

    path = runner.session_file("openai-agents.sqlite")
    check_sqlite(path)
    return SQLiteSession(runner.session_key, path)


REASONING_DELTAS = ("response.reasoning_text.delta", "response.reasoning_summary_text.delta")


def live(runner, data):
    """A model event as the model streams it (Responses events, for Chat Completions models too):
    one response at a time is being written, so the open message is key None."""
    kind = data.type
    if kind == "response.output_text.delta":
        runner.live.text(None, data.delta)
    elif kind in REASONING_DELTAS:
        runner.live.text(None, data.delta, kind="reasoning")
    elif kind == "response.output_item.added" and _get(data.item, "type") == "function_call":
        # The call's id and name come with the item; its arguments follow as deltas of item_id.
        runner.live.tool_args(None, "", index=_get(data.item, "id"), tool_call_id=_get(data.item, "call_id"),
                              tool=_get(data.item, "name"))
    elif kind == "response.function_call_arguments.delta":
        runner.live.tool_args(None, data.delta, index=data.item_id)


async def stream(runner, agent):
    from agents import Runner as AgentsRunner

    kept = session(runner)
    given = runner.instruction
    if runner.history:  # no saved conversation: the caller's (SPEC §13)
        if kept is None:
            given = [*runner.history, {"role": "user", "content": runner.instruction}]
        elif not await kept.get_items(limit=1):
            await kept.add_items(runner.history)
    run = AgentsRunner.run_streamed(agent, given, context=runner.context, session=kept)
    names = {}  # call_id -> tool name
    async for event in run.stream_events():
        if event.type == "raw_response_event":
            live(runner, event.data)
        if event.type == "raw_response_event" and event.data.type == "response.completed":
            response = event.data.response
            calls = [_get(i, "name") for i in response.output if _get(i, "type") == "function_call"]
            runner.step("model_turn", text=response.output_text, toolCalls=calls,
                        messageId=runner.live.close(None, response.output_text))
        elif event.type == "run_item_stream_event" and event.name == "tool_called":
            raw = event.item.raw_item
            name = _get(raw, "name") or _get(raw, "type") or ""
            names[_get(raw, "call_id")] = name
            runner.step("tool_call", tool=name, args=_args(_get(raw, "arguments")),
                        toolCallId=_get(raw, "call_id"))
        elif event.type == "run_item_stream_event" and event.name == "tool_output":
            call_id = _get(event.item.raw_item, "call_id")
            runner.step("tool_result", tool=names.get(call_id, ""), result=str(event.item.output),
                        toolCallId=call_id)
    return run


def run(runner):
    from agents import Agent

    agent = runner.load_agent(default_factory=default_agent, expect=Agent, what="an agents.Agent")
    result = asyncio.run(stream(runner, agent))
    output = result.final_output
    output = output if isinstance(output, str) else json.dumps(output, default=str)
    return runner.final_answer(output, agent=result.last_agent.name)


if __name__ == "__main__":
    main("openai-agents", run)
