"""An offline scripted LangChain chat model for the langchain and langgraph example agents.

Needs ``langchain-core`` (present in both venvs). langchain-core's own fake chat models cannot
be used: none implements ``bind_tools`` and ``GenericFakeChatModel._stream`` drops tool calls,
so streaming consumers fail with "No generations found in stream".

Script: when the current turn (the messages after the last user message) has no tool result yet,
call ``tool`` with ``{"text": <last user message>}``; afterwards answer ``"Shouted: <tool
result>"``, followed by ``" (earlier turns: N)"`` when the conversation holds N earlier turns. Works with ``invoke``,
``stream`` and ``astream_events`` (``_stream`` yields ``tool_call_chunks``).
"""

from __future__ import annotations

from typing import Any, Iterator

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult


class ScriptedShoutModel(BaseChatModel):
    """Calls ``tool`` once with the user's text, then answers ``Shouted: <result>``."""

    tool: str = "shout"

    @property
    def _llm_type(self) -> str:
        return "scripted-shout"

    def bind_tools(self, tools: Any, **kwargs: Any) -> "ScriptedShoutModel":
        return self  # the script already knows its one tool

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        from .examples import earlier_turns_note

        users = [i for i, m in enumerate(messages) if isinstance(m, HumanMessage)]
        turn = messages[users[-1]:] if users else messages
        results = [m for m in turn if isinstance(m, ToolMessage)]
        if results:
            note = earlier_turns_note(len(users) - 1)
            return AIMessage(content=f"Shouted: {results[-1].text}{note}")
        text = messages[users[-1]].text if users else ""
        call_id = f"call_{len(messages)}"
        return AIMessage(content="", tool_calls=[{"name": self.tool, "args": {"text": text}, "id": call_id}])

    def _generate(self, messages: list[BaseMessage], stop=None, run_manager=None, **kwargs: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages))])

    def _stream(self, messages: list[BaseMessage], stop=None, run_manager=None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        reply = self._reply(messages)
        if reply.tool_calls:
            import json

            chunks = [
                {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i}
                for i, c in enumerate(reply.tool_calls)
            ]
            chunk = AIMessageChunk(content="", tool_call_chunks=chunks, chunk_position="last")
        else:
            chunk = AIMessageChunk(content=reply.content, chunk_position="last")
        if run_manager and chunk.content:
            run_manager.on_llm_new_token(chunk.content, chunk=ChatGenerationChunk(message=chunk))
        yield ChatGenerationChunk(message=chunk)
