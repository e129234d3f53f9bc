"""Strands Agents runner: streams `Agent.stream_async()` as agentdispatch progress steps, and the
model's text as it is written (its "data", "reasoningText" and "tool_use_stream" events) as
task.delta lines.

A run that stops on a Strands interrupt (`event.interrupt(...)` in a hook, `tool_context.interrupt(...)`
in a tool; stop_reason "interrupt") asks (SPEC §14): one question per interrupt, under its id. What
Strands needs to go on is its FileSessionManager's agent.json (`_internal_state.interrupt_state`) in
the session folder; the run that answers restores it and streams the answers as
`interruptResponse` blocks."""

import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "_shared"))
from agentdispatch import ResumeStateError, SessionError, as_text, main, model_id_from_env  # noqa: E402


def default_agent():
    """Production default: the Bedrock model AGENTDISPATCH_MODEL_ID, no tools."""
    from strands import Agent

    return Agent(model=model_id_from_env(), system_prompt=os.environ.get("AGENTDISPATCH_SYSTEM_PROMPT"),
                 callback_handler=None)


async def stream(runner, agent, prompt, asked):
    """The run's result; ``asked`` gets, by interrupt id, the tool use each interrupt of a tool
    call holds back."""
    # toolUseId -> tool name. A resumed run streams no assistant message for the call it held
    # back (it was the asking run's): its name is in the restored conversation.
    names = {b["toolUse"]["toolUseId"]: b["toolUse"]["name"] for m in agent.messages if m.get("role") == "assistant"
             for b in m.get("content", []) if "toolUse" in b}
    result = None
    # Strands writes one model message at a time and names none: the open one is key None.
    async for event in agent.stream_async(prompt):
        message = event.get("message")
        if "data" in event:  # a piece of the model's text, as it is written
            runner.live.text(None, event["data"])
        elif "reasoningText" in event:
            runner.live.text(None, event["reasoningText"], kind="reasoning")
        elif event.get("type") == "tool_use_stream":  # a piece of a tool call's arguments
            use = event.get("current_tool_use") or {}
            piece = ((event.get("delta") or {}).get("toolUse") or {}).get("input")
            runner.live.tool_args(None, piece, tool_call_id=use.get("toolUseId"), tool=use.get("name"))
        elif message and message.get("role") == "assistant":  # a finished model turn
            uses = [b["toolUse"] for b in message["content"] if "toolUse" in b]
            text = as_text(message["content"])
            runner.step("model_turn", text=text, toolCalls=[u["name"] for u in uses],
                        messageId=runner.live.close(None, text))
            for use in uses:
                names[use["toolUseId"]] = use["name"]
                runner.step("tool_call", tool=use["name"], args=use["input"], toolCallId=use["toolUseId"])
        elif message:  # the user turn that carries the tool results
            for res in (b["toolResult"] for b in message["content"] if "toolResult" in b):
                runner.step("tool_result", tool=names.get(res["toolUseId"], ""), result=as_text(res["content"]),
                            status=res.get("status"), toolCallId=res["toolUseId"])
        elif "tool_interrupt_event" in event:  # a tool call held back until a person answers
            held = event["tool_interrupt_event"]
            for it in held.get("interrupts", ()):
                asked[it.id] = held.get("tool_use") or {}
        elif "result" in event:
            result = event["result"]
    return result


def agent_file(manager, agent) -> str:
    """The FileSessionManager file that keeps ``agent``'s state, its pending interrupt among it."""
    return os.path.join(manager._get_agent_path(manager.session_id, agent.agent_id), "agent.json")


def session_manager(runner):
    """In a session, Strands' own FileSessionManager keeps the conversation in the session
    folder, under the session key. In a run that answers a question, restoring the agent is
    reading back what the asking run saved (``runner.saved_state``): missing, unreadable or not
    waiting for these answers, it is ``resume_state_invalid`` before anything runs."""
    if not runner.session_dir:
        return None
    from strands.session.file_session_manager import SESSION_PREFIX, FileSessionManager

    class Manager(FileSessionManager):
        def initialize(self, agent, **kwargs):
            if runner.resume is None:
                return super().initialize(agent, **kwargs)
            with runner.saved_state(agent_file(self, agent)):
                super().initialize(agent, **kwargs)
                waiting = agent._interrupt_state.interrupts if agent._interrupt_state.activated else {}
                if not waiting:
                    raise ValueError("it holds no interrupt waiting for an answer (answered, or given up for a later "
                                     "instruction in the session)")
                for answered in (runner.resume.get("answers") or {}):
                    if answered not in waiting:
                        raise ValueError(f"it holds no interrupt {answered!r} (it waits for {', '.join(waiting)})")

    session_file = os.path.join(runner.session_dir, f"{SESSION_PREFIX}{runner.session_key}", "session.json")
    # Without session.json, FileSessionManager would start a new session: the question's run is gone.
    with runner.saved_state(session_file):
        try:
            return Manager(session_id=runner.session_key, storage_dir=runner.session_dir)
        except Exception as exc:  # noqa: BLE001 - a corrupt session.json
            raise SessionError(f"the Strands session in {runner.session_dir} cannot be read: {exc}") from None


def attach(agent, manager):
    """Give an already built Agent a session manager, as Agent(session_manager=…) would: the
    manager's hooks, then the restore that Agent.__init__ triggers (AgentInitializedEvent)."""
    agent._session_manager = manager
    agent._session_id = manager.session_id
    agent.hooks.add_hook(manager)
    try:
        manager.initialize(agent)
    except ResumeStateError:
        raise
    except Exception as exc:  # noqa: BLE001 - a corrupt stored agent or message
        raise SessionError(f"the Strands session in {manager.storage_dir} cannot be read: {exc}") from None


def questions(interrupts, asked):
    """Strands interrupts as the worker's questions, under their ids: one that holds back a tool
    call is an approval of that tool with its input; another is an input question. The
    interrupt's reason is the question's value, and names its kind when it says one."""
    out = []
    for it in interrupts:
        use = asked.get(it.id)
        named = it.reason if isinstance(it.reason, dict) else {}
        kind = named.get("kind") if named.get("kind") in ("approval", "input") else ("approval" if use else "input")
        q = {"id": it.id, "kind": kind}
        if it.reason is not None:
            q["value"] = it.reason
        if use:
            q["tool"], q["args"] = use.get("name"), use.get("input", {})
        out.append(q)
    return out


def keep_asked(runner, agent):
    """A run without a session that asks: its agent, the pending interrupt with it, saved by a
    FileSessionManager in the session folder the worker gives it (made now), so that a stateless
    run writes no file unless it asks."""
    if runner.session_dir:
        return  # the session's manager (run() attaches it) saved it as the run went
    if not runner.state_dir():
        raise RuntimeError("the agent asked (a Strands interrupt), and this run has no session folder to keep its state in")
    attach(agent, session_manager(runner))


def give_up_asking(runner, agent):
    """A new instruction where the agent still waits for answers (the person moved on, or the
    run that answered failed before its tool ran): while paused Strands takes nothing but the
    answers (a text is a TypeError), so the wait ends here. Its held-back tool calls never run:
    Strands gives each the error result of a call that got none, and the text goes on from there."""
    waiting = list(agent._interrupt_state.interrupts)
    agent._interrupt_state.deactivate()
    runner.log("a new instruction instead of input.resume: the agent's unanswered questions are given up, "
               "their tool calls do not run", interrupts=waiting)


def run(runner):
    from strands import Agent

    manager = session_manager(runner)
    # An Agent, or a factory of your own that returns one (given session_manager= if it takes it).
    agent = runner.load_agent(default_factory=default_agent, expect=Agent, what="a strands.Agent",
                              offered={"session_manager": manager} if manager else None)
    if manager and getattr(agent, "_session_manager", None) is not manager:
        attach(agent, manager)
    if runner.resume is not None:
        # The answers, each the response its interrupt's event.interrupt(...) now returns.
        prompt = [{"interruptResponse": {"interruptId": i, "response": a}}
                  for i, a in (runner.resume.get("answers") or {}).items()]
    else:
        if agent._interrupt_state.activated:
            give_up_asking(runner, agent)
        prompt = runner.instruction
        if not agent.messages:  # no saved conversation: the caller's, if it sent one (SPEC §13)
            for m in runner.history:
                if m["role"] in ("user", "assistant"):
                    message = {"role": m["role"], "content": [{"text": m["content"]}]}
                    agent.messages.append(message)
                    if manager:  # kept with the session's conversation, as the turns that follow
                        manager.append_message(message, agent)
    asked = {}
    result = asyncio.run(stream(runner, agent, prompt, asked))
    if result.stop_reason == "interrupt":  # str(result) would be the interrupts, not an answer
        keep_asked(runner, agent)
        runner.interrupt(questions(result.interrupts or [], asked))
        return None
    return runner.final_answer(str(result).strip(), stopReason=result.stop_reason)


if __name__ == "__main__":
    main("strands", run)
