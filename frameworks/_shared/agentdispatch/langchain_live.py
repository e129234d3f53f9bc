"""The live text of a LangChain message chunk, for the langchain and langgraph runners (duck-typed:
no LangChain import here).

Text comes from the chunk's ``content`` (a string, or text blocks); reasoning from LangChain's
standard ``content_blocks``, which read every provider's way of sending it (Anthropic "thinking"
blocks, ``reasoning_content`` in ``additional_kwargs``, …); a tool call's arguments from its
``tool_call_chunks`` (name and id on the first piece of each ``index``)."""

from __future__ import annotations


def live_chunk(live, key, chunk) -> None:
    """Hand one ``AIMessageChunk`` (or a whole AI message) of message ``key`` to ``live``."""
    content = getattr(chunk, "content", None)
    if isinstance(content, str):
        live.text(key, content)
    if not isinstance(content, str) or getattr(chunk, "additional_kwargs", None):
        # Only then can there be reasoning: a plain text chunk skips the block translation.
        for block in getattr(chunk, "content_blocks", None) or []:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "reasoning":
                live.text(key, block.get("reasoning"), kind="reasoning")
            elif kind == "text" and not isinstance(content, str):
                live.text(key, block.get("text"))
    for piece in getattr(chunk, "tool_call_chunks", None) or []:
        live.tool_args(key, piece.get("args"), index=piece.get("index") or 0, tool_call_id=piece.get("id"),
                       tool=piece.get("name"))
