"""Live text (SPEC §4.1): the model's words as ``task.delta`` lines, as the framework hands them out.

A delta line is ``{"type":"task.delta","payload":{"messageId":"m-1","text":"Hel"}}``; ``kind``
is "text" (left out, the default), "reasoning", or "tool_call" (a tool call being written:
``toolCallId``, ``tool``, ``argsDelta`` instead of ``text``). The step that closes a message
(``model_turn``, ``final_answer``) carries the same ``messageId``.

Each piece is written at once, one ``os.write`` per line, so a delta costs the caller no more
than the write itself (no buffering, no thread, no timer): a piece the framework hands out is on
the worker's pipe before the framework is asked for the next one. A piece longer than a line may
hold is cut into several deltas that each fit well under the worker's line limit
(``AGENTDISPATCH_MAX_LINE_BYTES``, 1 MiB by default), which the worker would otherwise clip.
"""

from __future__ import annotations

import json
import os

KINDS = ("text", "reasoning", "tool_call")

# A JSON-encoded character takes at most 6 bytes ("\u001f"; non-ASCII is written as UTF-8, at most
# 4 bytes), so a piece of budget // 6 characters always fits in ``budget`` bytes.
_WORST_BYTES_PER_CHAR = 6
# The cap on one delta's piece: far under the default limit, and small enough that a late or slow
# subscriber's merged deltas stay cheap for the worker.
_PIECE_CAP = 65536


def piece_budget() -> int:
    """Bytes of JSON-encoded text one delta may carry: a quarter of the worker's line limit (the
    rest is the line's other fields and room to spare), at most 64 KiB, at least 256."""
    try:
        limit = int(os.environ.get("AGENTDISPATCH_MAX_LINE_BYTES") or 1048576)
    except ValueError:
        limit = 1048576
    return max(256, min(_PIECE_CAP, limit // 4))


def _encoded_len(text: str) -> int:
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8")) - 2  # without the quotes


def split_piece(text: str, budget: int) -> list[str]:
    """``text`` cut into consecutive parts whose JSON encoding fits ``budget`` bytes each; the
    parts add up to ``text``. Ordinary text takes one encode per part."""
    if len(text) * _WORST_BYTES_PER_CHAR <= budget or _encoded_len(text) <= budget:
        return [text]
    floor = max(1, budget // _WORST_BYTES_PER_CHAR)
    parts, start = [], 0
    while start < len(text):
        size = budget  # as many characters as bytes: right for ASCII, halved until it fits
        while size > floor and _encoded_len(text[start:start + size]) > budget:
            size = max(floor, size // 2)
        parts.append(text[start:start + size])
        start += size
    return parts


class LiveText:
    """The model messages of one task as they are written, for one runner (``runner.live``).

    A framework names its messages its own way (a run id, a response id, a message id); ``key``
    is that name, and each key gets the task's next ``messageId`` ("m-1", "m-2", …) the first
    time it is seen. ``close(key)`` gives the id for the step that closes the message."""

    def __init__(self, emit):
        self._emit = emit
        self._ids: dict = {}  # framework key -> messageId, while the message is open
        self._tools: dict = {}  # (messageId, index) -> (toolCallId, tool name)
        self._count = 0
        self.budget = piece_budget()  # the environment is the task's from the start
        self.last: tuple[str, str | None] | None = None  # (messageId, text) of the last closed message

    # -- messages -----------------------------------------------------------------------------

    def message_id(self, key=None) -> str:
        """The messageId of the open message ``key``, a new one when it is not open."""
        mid = self._ids.get(key)
        if mid is None:
            self._count += 1
            mid = self._ids[key] = f"m-{self._count}"
        return mid

    def close(self, key=None, text: str | None = None) -> str:
        """The messageId of ``key`` (new if it had no delta), now closed; ``text`` is its whole
        text, kept so that a ``final_answer`` with the same text carries the same id."""
        mid = self.message_id(key)
        del self._ids[key]
        self._tools = {k: v for k, v in self._tools.items() if k[0] != mid}
        self.last = (mid, text)
        return mid

    def id_for_answer(self, text: str) -> str | None:
        """The messageId of the last closed message when ``text`` is its text."""
        return self.last[0] if self.last and self.last[1] == text else None

    # -- deltas -------------------------------------------------------------------------------

    def text(self, key, piece, kind: str = "text") -> None:
        """A piece of the text (or, ``kind="reasoning"``, of the reasoning) of message ``key``."""
        if isinstance(piece, str) and piece:
            self.delta(self.message_id(key), piece, kind=kind)

    def tool_args(self, key, piece, *, index=0, tool_call_id: str | None = None, tool: str | None = None) -> None:
        """A piece of the arguments of tool call ``index`` of message ``key``. Frameworks give the
        call's id and name with its first piece only: they are remembered for the later ones."""
        mid = self.message_id(key)
        known_id, known_tool = self._tools.get((mid, index), (None, None))
        tool_call_id, tool = tool_call_id or known_id, tool or known_tool
        self._tools[(mid, index)] = (tool_call_id, tool)
        if isinstance(piece, str) and piece and tool_call_id:
            self.delta(mid, piece, kind="tool_call", tool_call_id=tool_call_id, tool=tool)

    def delta(self, message_id: str, text: str, *, kind: str = "text", tool_call_id: str | None = None,
              tool: str | None = None) -> None:
        """Write ``text`` as delta lines of ``message_id`` (several when it is too long for one)."""
        if kind not in KINDS:
            raise ValueError(f"unknown delta kind {kind!r}; expected one of {', '.join(KINDS)}")
        if not isinstance(text, str):
            raise TypeError(f"a delta's text must be a string, not {type(text).__name__}")
        if kind == "tool_call" and not tool_call_id:
            raise ValueError("a tool_call delta needs the tool call's id")
        for part in split_piece(text, self.budget):
            if kind == "tool_call":
                payload = {"messageId": message_id, "kind": kind, "toolCallId": tool_call_id}
                if tool:
                    payload["tool"] = tool
                payload["argsDelta"] = part
            else:
                payload = {"messageId": message_id, "text": part}
                if kind != "text":
                    payload["kind"] = kind
            self._emit({"type": "task.delta", "payload": payload})
