"""LangChain runner: streams a LangChain agent's steps (astream_events v2) as agentdispatch events,
and the model's text as it is written (on_chat_model_stream) as task.delta lines.

The entrypoint is a Runnable taking {"messages": [...]} (e.g. `langchain.agents.create_agent`).
Without one, the default agent is `create_agent(AGENTDISPATCH_MODEL_ID)` with no tools.
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "_shared"))
from agentdispatch import as_text, check_sqlite, main, model_id_from_env  # noqa: E402
from agentdispatch.langchain_live import live_chunk  # noqa: E402


def default_agent():
    from langchain.agents import create_agent

    return create_agent(model_id_from_env(), tools=[], system_prompt=os.environ.get("AGENTDISPATCH_SYSTEM_PROMPT"))


def final_text(output):
    messages = output.get("messages") if isinstance(output, dict) else None
    return as_text(messages[-1] if messages else output)


def tool_call_id(ev, call_ids):
    """The model's id of the call a tool event is about: the ToolMessage's (on_tool_end), the
    ToolNode's tool_call_id metadata, else the model's latest call of that tool."""
    output = ev.get("data", {}).get("output")
    return (getattr(output, "tool_call_id", None) or (ev.get("metadata") or {}).get("tool_call_id")
            or call_ids.get(ev["name"]))


async def earlier_messages(runner, agent, config):
    """The conversation the caller sent (an AG-UI run's messages), unless the thread's checkpoint
    already holds one: then only the new message is given (SPEC §13)."""
    if not runner.history:
        return []
    if getattr(agent, "checkpointer", None) is not None and "configurable" in config:
        state = await agent.aget_state(config)
        if (state.values or {}).get("messages"):
            return []
    return runner.history


async def stream(runner, agent):
    config = {"run_name": "agentdispatch", "metadata": {"taskId": runner.task_id, "sessionId": runner.session_id}}
    if runner.session_dir:
        config["configurable"] = {"thread_id": runner.session_key}
    earlier = await earlier_messages(runner, agent, config)
    inputs = {"messages": [*earlier, {"role": "user", "content": runner.instruction}]}
    output, call_ids = None, {}  # call_ids: tool name -> the id of the model's latest call of it
    async for ev in agent.astream_events(inputs, config=config, version="v2"):
        kind, data = ev["event"], ev.get("data", {})
        if kind == "on_chat_model_stream":  # a piece of the model's reply: the model run is the message
            live_chunk(runner.live, ev["run_id"], data.get("chunk"))
        elif kind == "on_chat_model_end":
            msg = data.get("output")
            calls = getattr(msg, "tool_calls", None) or []
            text = as_text(msg)
            runner.step("model_turn", text=text, toolCalls=[c["name"] for c in calls],
                        messageId=runner.live.close(ev["run_id"], text))
            call_ids.update((c["name"], c.get("id")) for c in calls)
        elif kind == "on_tool_start":
            runner.step("tool_call", tool=ev["name"], args=data.get("input"),
                        toolCallId=tool_call_id(ev, call_ids))
        elif kind == "on_tool_end":
            runner.step("tool_result", tool=ev["name"], result=as_text(data.get("output")),
                        toolCallId=tool_call_id(ev, call_ids))
        elif kind == "on_chain_end" and not ev.get("parent_ids"):
            output = data.get("output")
    return runner.final_answer(final_text(output))


async def in_session(runner, agent):
    """In a session, the conversation lives in an AsyncSqliteSaver checkpointer in the session
    folder, under thread_id = the session key (an agent with a checkpointer of its own keeps it)."""
    if not runner.session_dir or getattr(agent, "checkpointer", None) is not None:
        return await stream(runner, agent)
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    path = runner.session_file("langchain.sqlite")
    check_sqlite(path)
    async with AsyncSqliteSaver.from_conn_string(path) as saver:
        agent.checkpointer = saver
        return await stream(runner, agent)


def run(runner):
    from langchain_core.runnables import Runnable

    agent = runner.load_agent(default_factory=default_agent, expect=Runnable, what="a LangChain Runnable")
    return asyncio.run(in_session(runner, agent))


if __name__ == "__main__":
    main("langchain", run)
