"""LangChain runner: streams a LangChain agent's steps (astream_events v2) as agentdispatch events,
and the model's text as it is written (on_chat_model_stream) as task.delta lines.

The entrypoint is a Runnable taking {"messages": [...]} (e.g. `langchain.agents.create_agent`).
Without one, the default agent is `create_agent(AGENTDISPATCH_MODEL_ID)` with no tools.

A `create_agent` agent may ask a person (SPEC §14): `HumanInTheLoopMiddleware` (or a tool's own
`interrupt()`) pauses it; each pending LangGraph interrupt becomes a question under its own id,
the checkpoint stays in the session folder's `langchain.sqlite`, and the run that answers resumes
it with `Command(resume=…)`, an approval as the middleware's decision (docs/interrupts.md).
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


def decision(answer):
    """A person's answer to a tool approval as HumanInTheLoopMiddleware's decision: approved, the
    tool runs; rejected, the model gets the middleware's denial with the person's message."""
    if answer.get("approved"):
        return {"type": "approve"}
    return {"type": "reject", **({"message": answer["message"]} if answer.get("message") else {})}


def questions(interrupts):
    """LangGraph Interrupts as the worker's questions, by LangGraph's interrupt id. The
    middleware's per_call approval (one tool call) and its batched request with one tool call are
    approvals of that tool (a batched request of several: one approval of them all); any other
    interrupt (a tool of the user's own calling ``interrupt()``) is an input question whose answer
    is passed on as it is."""
    out = []
    for it in interrupts:
        value = it.value if isinstance(it.value, dict) else {}
        requests = value.get("action_requests") if isinstance(value.get("action_requests"), list) else None
        q = {"id": it.id, "kind": "input", "value": it.value}
        if value.get("type") == "tool_approval":
            q.update(kind="approval", tool=value.get("name"), args=value.get("args"))
        elif requests:
            q["kind"] = "approval"
            if len(requests) == 1:
                q.update(tool=requests[0].get("name"), args=requests[0].get("args"))
        out.append(q)
    return out


def resume_command(runner, pending):
    """``Command(resume={interrupt id: answer})`` for the interrupts the thread is paused at, in the
    shape each asked for (``questions``): a middleware's approval answered by its decision."""
    from langgraph.types import Command

    answers = runner.resume.get("answers") or {}
    resume = {}
    for q in questions(pending):
        answer = answers.get(q["id"])
        if q["kind"] == "approval" and isinstance(answer, dict):
            if q["value"].get("type") == "tool_approval":
                answer = decision(answer)
            else:  # batched: one decision per tool call of the model's turn
                answer = {"decisions": [decision(answer)] * len(q["value"]["action_requests"])}
        resume[q["id"]] = answer
    return Command(resume=resume)


def report_denials(runner, chunk, paused):
    """A paused call the resumed run did not run (rejected: the middleware answers for the tool)
    as its tool_result step, from a node update of the graph's stream; ``paused``: tool call id ->
    tool name, of the calls not reported yet."""
    for update in chunk.values() if isinstance(chunk, dict) else ():
        for message in (update or {}).get("messages", ()) if isinstance(update, dict) else ():
            call = getattr(message, "tool_call_id", None)
            if getattr(message, "type", None) == "tool" and call in paused:
                runner.step("tool_result", tool=paused.pop(call), result=as_text(message), toolCallId=call)


async def stream(runner, agent, config):
    call_ids = {}  # tool name -> the id of the model's latest call of it
    paused = {}  # a resumed run's paused calls not reported yet: tool call id -> tool name
    if runner.resume is not None:
        with runner.saved_state():
            pending = (await agent.aget_state(config)).interrupts
            if not pending:  # a resume of nothing would end silently
                raise ValueError("its checkpoint has no interrupt waiting for an answer")
        inputs = resume_command(runner, pending)
        # The model made the paused calls in the asking process: their ids are in the questions.
        for q in questions(pending):
            if q.get("tool") and isinstance(q["value"].get("tool_call_id"), str):
                call_ids[q["tool"]] = q["value"]["tool_call_id"]
                paused[q["value"]["tool_call_id"]] = q["tool"]
    else:
        earlier = await earlier_messages(runner, agent, config)
        inputs = {"messages": [*earlier, {"role": "user", "content": runner.instruction}]}
    output, asked = None, False
    # Our own saver writes once, as the run ends or asks (see the langgraph runner).
    durability = {"durability": "exit"} if getattr(agent, "_agentdispatch_saver", False) else {}
    async for ev in agent.astream_events(inputs, config=config, version="v2", **durability):
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
            call = tool_call_id(ev, call_ids)
            paused.pop(call, None)
            runner.step("tool_result", tool=ev["name"], result=as_text(data.get("output")), toolCallId=call)
        elif kind == "on_chain_stream" and not ev.get("parent_ids"):
            chunk = data.get("chunk")
            # The graph paused (interrupt()): its output is then the state so far, not an answer.
            asked = asked or (isinstance(chunk, dict) and "__interrupt__" in chunk)
            if paused:
                report_denials(runner, chunk, paused)
        elif kind == "on_chain_end" and not ev.get("parent_ids"):
            output = data.get("output")
    if asked:
        # The thread's pending interrupts (several when a turn called several gated tools), each
        # with the id a resume answers.
        pending = (await agent.aget_state(config)).interrupts
        await keep_asked(runner, agent)
        runner.interrupt(questions(pending))
        return None
    return runner.final_answer(final_text(output))


async def keep_asked(runner, agent):
    """A stateless run that asked: its in-memory checkpoints (every namespace, oldest first, with
    their pending writes, the interrupt's among them) copied into the SQLite file of the session
    the worker gives it, where the answer's run finds them. A run in a session wrote them there."""
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    memory = agent.checkpointer
    if runner.session_dir or not getattr(agent, "_agentdispatch_saver", False) or not isinstance(memory, InMemorySaver):
        return  # an agent's own checkpointer keeps its checkpoints where it keeps them
    if not runner.state_dir():
        raise RuntimeError("the agent asked (interrupt()), and this run has no session folder to keep its state in")
    path = runner.session_file(SQLITE_FILE)
    async with AsyncSqliteSaver.from_conn_string(path) as saver:
        for tup in reversed(list(memory.list(None))):
            conf = tup.config["configurable"]
            parent = tup.parent_config or {"configurable": {"thread_id": conf["thread_id"], "checkpoint_ns": conf.get("checkpoint_ns", "")}}
            await saver.aput(parent, tup.checkpoint, tup.metadata, tup.checkpoint["channel_versions"])
            by_task = {}
            for task_id, channel, value in tup.pending_writes or []:
                by_task.setdefault(task_id, []).append((channel, value))
            for task_id, writes in by_task.items():
                await saver.aput_writes(tup.config, writes, task_id)


SQLITE_FILE = "langchain.sqlite"


async def in_session(runner, agent):
    """In a session, the conversation lives in an AsyncSqliteSaver checkpointer in the session
    folder, under thread_id = the session key (an agent with a checkpointer of its own keeps it).
    Without a session, an InMemorySaver (a pause needs a checkpointer) under the key of the
    session the worker gives the task if it asks: ``keep_asked`` then copies it to that session's
    file, so that a stateless run writes no file unless it asks."""
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.pregel import Pregel

    config = {"run_name": "agentdispatch", "metadata": {"taskId": runner.task_id, "sessionId": runner.session_id}}
    if not isinstance(agent, Pregel):  # a Runnable of the user's own: no checkpoints, no pause
        return await stream(runner, agent, config)
    spare = (runner.envelope.get("askSession") or {}).get("sessionDir")
    # A run outside the worker (no spare session) still needs a thread for its own checkpoints.
    key = runner.session_key or (os.path.basename(spare) if spare else "stateless")
    config["configurable"] = {"thread_id": key}
    # A saver set here is replaced on every run: the warm parent's warm-up runs (no session) set
    # one on the agent every forked task starts from.
    if getattr(agent, "checkpointer", None) is not None and not getattr(agent, "_agentdispatch_saver", False):
        return await stream(runner, agent, config)
    agent._agentdispatch_saver = True
    if not runner.session_dir:
        agent.checkpointer = InMemorySaver()
        return await stream(runner, agent, config)
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    path = runner.session_file(SQLITE_FILE)
    with runner.saved_state(path):  # a run that answers a question needs the checkpoint it asked in
        check_sqlite(path)
    async with AsyncSqliteSaver.from_conn_string(path) as saver:
        agent.checkpointer = saver
        return await stream(runner, agent, config)


def run(runner):
    from langchain_core.runnables import Runnable

    agent = runner.load_agent(default_factory=default_agent, expect=Runnable, what="a LangChain Runnable")
    return asyncio.run(in_session(runner, agent))


if __name__ == "__main__":
    main("langchain", run)
