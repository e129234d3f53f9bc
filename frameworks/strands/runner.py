"""Strands Agents runner: streams `Agent.stream_async()` as agentdispatch progress steps, and the
model's text as it is written (its "data", "reasoningText" and "tool_use_stream" events) as
task.delta lines."""

import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "_shared"))
from agentdispatch import SessionError, as_text, main, model_id_from_env  # noqa: E402


def default_agent():
    """Production default: the Bedrock model AGENTDISPATCH_MODEL_ID, no tools."""
    from strands import Agent

    return Agent(model=model_id_from_env(), system_prompt=os.environ.get("AGENTDISPATCH_SYSTEM_PROMPT"),
                 callback_handler=None)


async def stream(runner, agent):
    names, result = {}, None  # toolUseId -> tool name
    # Strands writes one model message at a time and names none: the open one is key None.
    async for event in agent.stream_async(runner.instruction):
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
        elif "result" in event:
            result = event["result"]
    return result


def session_manager(runner):
    """In a session, Strands' own FileSessionManager keeps the conversation in the session
    folder, under the session key."""
    if not runner.session_dir:
        return None
    from strands.session.file_session_manager import FileSessionManager

    try:
        return FileSessionManager(session_id=runner.session_key, storage_dir=runner.session_dir)
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
    except Exception as exc:  # noqa: BLE001 - a corrupt stored agent or message
        raise SessionError(f"the Strands session in {manager.storage_dir} cannot be read: {exc}") from None


def run(runner):
    from strands import Agent

    manager = session_manager(runner)
    # An Agent, or a factory of your own that returns one (given session_manager= if it takes it).
    agent = runner.load_agent(default_factory=default_agent, expect=Agent, what="a strands.Agent",
                              offered={"session_manager": manager} if manager else None)
    if manager and getattr(agent, "_session_manager", None) is not manager:
        attach(agent, manager)
    if not agent.messages:  # no saved conversation: the caller's, if it sent one (SPEC §13)
        for m in runner.history:
            if m["role"] in ("user", "assistant"):
                message = {"role": m["role"], "content": [{"text": m["content"]}]}
                agent.messages.append(message)
                if manager:  # kept with the session's conversation, as the turns that follow
                    manager.append_message(message, agent)
    result = asyncio.run(stream(runner, agent))
    return runner.final_answer(str(result).strip(), stopReason=result.stop_reason)


if __name__ == "__main__":
    main("strands", run)
