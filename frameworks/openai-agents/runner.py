"""OpenAI Agents SDK runner: streams `Runner.run_streamed().stream_events()` as agentdispatch steps,
and the model's text as it is written (its raw response text, reasoning and tool-argument deltas)
as task.delta lines. A run that stops for tool approvals (`needs_approval`) asks (SPEC §14): its
serialised RunState is kept in the session folder, and the run that answers resumes from it."""

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
    with runner.saved_state(path):  # a run that answers a question continues the conversation it asked in
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


# The serialised RunState of a run waiting for approvals, in the session folder.
STATE_FILE = "openai-agents-runstate.json"


def _call_id(item):
    """An approval item's id: its tool call's call_id (a hosted MCP approval has only an id)."""
    return getattr(item, "call_id", None) or _get(item.raw_item, "call_id") or _get(item.raw_item, "id")


def questions(interruptions):
    """The SDK's ToolApprovalItems as the worker's approval questions, by call id."""
    return [{"id": _call_id(item), "kind": "approval", "tool": item.name or "", "args": _args(item.arguments)}
            for item in interruptions]


async def answered_state(runner, agent):
    """The asking run's RunState read back, with each approval decided by the person's answer:
    approved, or rejected with their message (the SDK gives it to the model as the tool's
    output). Everything here happens before anything runs: a failure is resume_state_invalid."""
    from agents import RunState

    path = runner.session_file(STATE_FILE)
    with runner.saved_state(path):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        state = await RunState.from_string(agent, text)
        pending = state.get_interruptions()
        if not pending:  # a resume of nothing would run the model again from the saved turn
            raise ValueError("its RunState has no tool call waiting for approval")
        for item in pending:
            answer = runner.answer(_call_id(item))
            if answer is None:
                raise ValueError(f"no answer to the approval of tool call {_call_id(item)} ({item.name})")
            approved = answer.get("approved") is True if isinstance(answer, dict) else answer is True
            message = answer.get("message") if isinstance(answer, dict) else None
            if approved:
                state.approve(item)
            elif isinstance(message, str) and message:
                state.reject(item, rejection_message=message)
            else:
                state.reject(item)
    return state, {_call_id(item): item.name or "" for item in pending}


async def keep_asked(runner, run):
    """A run that stops for approvals: its RunState saved (atomically) in the session folder, and
    its questions asked. A stateless run also leaves its conversation so far (the instruction and
    the calls waiting) in the SQLiteSession of the session the worker gives it, as a session run
    would have: the answering run, in that session, adds the rest to it."""
    stateless = not runner.session_dir
    folder = runner.state_dir()
    if not folder:
        raise RuntimeError("the agent asked for tool approval, and this run has no session folder to keep its state in")
    if stateless:
        await session(runner).add_items(run.to_input_list())
    path = runner.session_file(STATE_FILE)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(run.to_state().to_string())
    os.replace(tmp, path)
    runner.interrupt(questions(run.interruptions))


async def stream(runner, agent):
    from agents import Runner as AgentsRunner

    kept = session(runner)
    names = {}  # call_id -> tool name
    context = runner.context
    if runner.resume is not None:
        # The SDK runs (or denies) the answered calls first: no tool_called for them here.
        given, names = await answered_state(runner, agent)
        # The answering request's context when it sends one; else the one the asking run kept
        # (a context given to a resumed run replaces the saved one).
        context = runner.context or None
    else:
        given = runner.instruction
        if runner.history:  # no saved conversation: the caller's (SPEC §13)
            if kept is None:
                given = [*runner.history, {"role": "user", "content": runner.instruction}]
            elif not await kept.get_items(limit=1):
                await kept.add_items(runner.history)
    run = AgentsRunner.run_streamed(agent, given, context=context, session=kept)
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
    if run.interruptions:  # no stream event marks the pause
        await keep_asked(runner, run)
    return run


def run(runner):
    from agents import Agent

    agent = runner.load_agent(default_factory=default_agent, expect=Agent, what="an agents.Agent")
    result = asyncio.run(stream(runner, agent))
    if runner.asked:
        return None
    output = result.final_output
    output = output if isinstance(output, str) else json.dumps(output, default=str)
    return runner.final_answer(output, agent=result.last_agent.name)


if __name__ == "__main__":
    main("openai-agents", run)
