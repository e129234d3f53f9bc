"""LangGraph runner: streams a compiled graph's node updates as agentdispatch events.

The entrypoint is a compiled graph whose state has "messages" (e.g. MessagesState), or its
uncompiled StateGraph (compiled here), or a factory of yours returning either. Each node
update is reported as it happens: AI messages as model_turn (+ tool_call per tool call), tool
messages as tool_result. The model's text is streamed as it is written (LangGraph's "messages"
stream mode: each AIMessageChunk a model hands out) as task.delta lines. With
AGENTDISPATCH_LANGGRAPH_CUSTOM=1, data a node writes with `get_stream_writer()` becomes a
progress event ("custom").
Without an entrypoint, the default agent is `langchain.agents.create_agent(AGENTDISPATCH_MODEL_ID)`
(add `langchain` and a provider package to requirements.txt).
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "_shared"))
from agentdispatch import as_text, check_sqlite, main, model_id_from_env  # noqa: E402
from agentdispatch.langchain_live import live_chunk  # noqa: E402


def default_agent():
    try:
        from langchain.agents import create_agent  # a LangGraph graph; "provider:model" ids
    except ImportError:
        raise RuntimeError("the default agent needs `langchain` and a provider package in requirements.txt") from None
    return create_agent(model_id_from_env(), tools=[], system_prompt=os.environ.get("AGENTDISPATCH_SYSTEM_PROMPT"))


def report(runner, message):
    kind = getattr(message, "type", None)
    if kind == "ai":
        calls = getattr(message, "tool_calls", None) or []
        text = as_text(message)
        runner.step("model_turn", text=text, toolCalls=[c["name"] for c in calls],
                    messageId=runner.live.close(getattr(message, "id", None), text))
        for call in calls:
            runner.step("tool_call", tool=call["name"], args=call.get("args", {}), toolCallId=call.get("id"))
    elif kind == "tool":
        runner.step("tool_result", tool=message.name, result=as_text(message),
                    toolCallId=getattr(message, "tool_call_id", None))


def live(runner, message):
    """A piece of an AI message as the model writes it ("messages" mode; a message a node
    returned without streaming comes whole). Its id is the one its node update carries."""
    if getattr(message, "type", None) not in ("AIMessageChunk", "ai"):
        return  # the tools node's ToolMessages: reported from the update, as tool_result
    live_chunk(runner.live, getattr(message, "id", None), message)


def sqlite_saver(runner):
    """The session folder's SqliteSaver (langgraph-checkpoint-sqlite, pinned in requirements.txt)."""
    import sqlite3

    from langgraph.checkpoint.sqlite import SqliteSaver

    path = runner.session_file("langgraph.sqlite")
    with runner.saved_state(path):  # a run that answers a question needs the checkpoint it asked in
        check_sqlite(path)
    return SqliteSaver(sqlite3.connect(path, check_same_thread=False))


def with_session(runner, graph, config):
    """In a session, the conversation lives in a SqliteSaver checkpointer in the session folder,
    under thread_id = the session key; a graph compiled with a checkpointer of its own keeps it.
    Without a session, an InMemorySaver (``interrupt()`` needs a checkpointer), under the key of
    the session the worker gives the task if it asks: ``keep_asked`` then copies it to that
    session's folder, so that a stateless run pays for no file unless it asks."""
    # A saver set here is replaced on every run: a warm parent's graph (warmed without a
    # session) is every forked task's graph.
    if getattr(graph, "checkpointer", None) is None or getattr(graph, "_agentdispatch_saver", False):
        if runner.session_dir:
            graph.checkpointer = sqlite_saver(runner)
        else:
            from langgraph.checkpoint.memory import InMemorySaver

            graph.checkpointer = InMemorySaver()
        graph._agentdispatch_saver = True
    spare = (runner.envelope.get("askSession") or {}).get("sessionDir")
    # A run outside the worker (no spare session) still needs a thread for its own checkpoints.
    key = runner.session_key or (os.path.basename(spare) if spare else "stateless")
    config["configurable"] = {"thread_id": key}
    return graph


def earlier_messages(runner, graph, config):
    """The conversation the caller sent (an AG-UI run's messages), unless the thread's checkpoint
    already holds one: then only the new message is given (SPEC §13)."""
    if not runner.history:
        return []
    if getattr(graph, "checkpointer", None) is not None and "configurable" in config:
        if (graph.get_state(config).values or {}).get("messages"):
            return []
    return runner.history


def keep_asked(runner, graph):
    """A stateless run that asks: its in-memory checkpoints (every namespace, oldest first, with
    their pending writes, the interrupt's among them) copied to the SqliteSaver of the session
    the worker gives it, where the answer's run finds them."""
    from langgraph.checkpoint.memory import InMemorySaver

    memory = graph.checkpointer
    if runner.session_dir or not isinstance(memory, InMemorySaver):
        return
    if not runner.state_dir():
        raise RuntimeError("the graph asked (interrupt()), and this run has no session folder to keep its state in")
    saver = sqlite_saver(runner)
    for tup in reversed(list(memory.list(None))):
        conf = tup.config["configurable"]
        parent = tup.parent_config or {"configurable": {"thread_id": conf["thread_id"], "checkpoint_ns": conf.get("checkpoint_ns", "")}}
        saver.put(parent, tup.checkpoint, tup.metadata, tup.checkpoint["channel_versions"])
        by_task = {}
        for task_id, channel, value in tup.pending_writes or []:
            by_task.setdefault(task_id, []).append((channel, value))
        for task_id, writes in by_task.items():
            saver.put_writes(tup.config, writes, task_id)


def questions(interrupts):
    """LangGraph Interrupts as the worker's questions: the interrupt's id, and its value's
    ``kind`` ("approval" or "input", else "input"), ``tool`` and ``args`` when it names them."""
    out = []
    for it in interrupts:
        value = it.value
        named = value if isinstance(value, dict) else {}
        kind = named.get("kind") if named.get("kind") in ("approval", "input") else "input"
        q = {"id": it.id, "kind": kind, "value": value}
        for key in ("tool", "args"):
            if key in named:
                q[key] = named[key]
        out.append(q)
    return out


CUSTOM_VAR = "AGENTDISPATCH_LANGGRAPH_CUSTOM"


def stream_modes() -> list[str]:
    """"updates" (the steps), "messages" (the model's text as it is written: LangGraph then runs
    each node in a worker thread and hands out its model's chunks while it runs) and "values"
    (the final state); "custom" (get_stream_writer() data)
    only with AGENTDISPATCH_LANGGRAPH_CUSTOM=1, as LangGraph's own server streams it only when a
    client asks: with it, LangGraph runs every node in a worker thread so as to stream while the
    node runs, 3-5 ms more per run of the example graph here (bench/README.md, "Warm starts")."""
    modes = ["updates", "messages", "values"]
    if os.environ.get(CUSTOM_VAR) == "1":
        modes.append("custom")
    return modes


def compile_builder(obj):
    """An uncompiled StateGraph (the builder a user may name instead of its compiled graph),
    compiled; None for anything else."""
    from langgraph.graph import StateGraph

    return obj.compile() if isinstance(obj, StateGraph) else None


def run(runner):
    from langgraph.pregel import Pregel
    from langgraph.types import Command

    graph = runner.load_agent(default_factory=default_agent, expect=Pregel, what="a compiled LangGraph graph or its StateGraph",
                              build=compile_builder)
    config = {"metadata": {"taskId": runner.task_id, "sessionId": runner.session_id}}
    graph = with_session(runner, graph, config)
    if runner.resume is not None:
        with runner.saved_state():
            if not graph.get_state(config).interrupts:  # a resume of nothing would end silently
                raise ValueError("its checkpoint has no interrupt waiting for an answer")
        # The answers by interrupt id: LangGraph resumes each interrupt() with its own.
        inputs = Command(resume=runner.resume.get("answers") or {})
    else:
        inputs = {"messages": [*earlier_messages(runner, graph, config), {"role": "user", "content": runner.instruction}]}
    state = None
    asked = []
    # Our own saver writes once, as the run ends or asks ("exit"): a checkpoint per step cost a
    # stateless run ~2.5 ms of its ~9 here (bench/README.md, "Warm starts"); a task is one
    # process, so a checkpoint written before its end serves no one. A graph's own saver keeps
    # LangGraph's default.
    durability = {"durability": "exit"} if getattr(graph, "_agentdispatch_saver", False) else {}
    for mode, chunk in graph.stream(inputs, config=config, stream_mode=stream_modes(), **durability):
        if mode == "values":
            state = chunk
        elif mode == "messages":
            live(runner, chunk[0])
        elif mode == "custom":
            runner.progress("custom", **(chunk if isinstance(chunk, dict) else {"data": chunk}))
        else:
            asked.extend(chunk.get("__interrupt__", ()) if isinstance(chunk, dict) else ())
            for update in chunk.values():
                for message in (update or {}).get("messages", []) if isinstance(update, dict) else []:
                    report(runner, message)
    if asked:
        keep_asked(runner, graph)
        runner.interrupt(questions(asked))
        return None
    messages = state.get("messages") if isinstance(state, dict) else None
    return runner.final_answer(messages[-1] if messages else state)


if __name__ == "__main__":
    main("langgraph", run)
