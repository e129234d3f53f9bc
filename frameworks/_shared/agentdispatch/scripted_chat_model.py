"""An offline scripted LangChain chat model for the langchain and langgraph example agents.

Needs ``langchain-core`` (present in both venvs). langchain-core's own fake chat models cannot
be used: none implements ``bind_tools`` and ``GenericFakeChatModel._stream`` drops tool calls,
so streaming consumers fail with "No generations found in stream".

Script: when the current turn (the messages after the last user message) has no tool result yet,
call ``tool`` with ``{"text": <last user message>}``; afterwards answer ``"Shouted: <tool
result>"``, followed by ``" (earlier turns: N)"`` when the conversation holds N earlier turns. Works with ``invoke``,
``stream`` and ``astream_events``: ``_stream`` writes the reply in pieces (``tool_call_chunks``
for the call, the answer word by word).
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
        """The reply piece by piece, as a real model streams it (``examples.piece_pause`` before
        each text piece): a tool call's arguments in pieces, the name and id on the first one
        only; the text word by word. langchain-core reports each chunk to the callbacks itself
        (``on_llm_new_token``), which is what streaming consumers read."""
        import json

        from .examples import example_pieces, piece_pause

        reply = self._reply(messages)
        if reply.tool_calls:
            for i, call in enumerate(reply.tool_calls):
                for n, piece in enumerate(example_pieces(json.dumps(call["args"]))):
                    first = n == 0
                    chunk = {"name": call["name"] if first else None, "args": piece,
                             "id": call["id"] if first else None, "index": i}
                    yield ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=[chunk]))
        else:
            for n, piece in enumerate(example_pieces(reply.content)):
                piece_pause(n)
                yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
        yield ChatGenerationChunk(message=AIMessageChunk(content="", chunk_position="last"))
