"""The child protocol (SPEC §6): the JSON envelope read from stdin, and NDJSON event lines
written to the protocol fd, whole and in order."""

from __future__ import annotations

import json
import os
import sys
import threading

from .text import jsonable

STEPS = ("model_turn", "tool_call", "tool_result", "final_answer")


class Emitter:
    """Writes NDJSON lines to the protocol fd: one write per line, under a lock, unbuffered.

    A signal handler that interrupts this thread's own write defers itself (``defer``) until
    the line is complete, so a cancellation never splits or blanks a line."""

    def __init__(self, fd: int):
        self.fd = fd
        self.lock = threading.Lock()
        self.local = threading.local()
        self.deferred = None

    def busy_here(self) -> bool:
        return getattr(self.local, "writing", False)

    def write_line(self, obj: dict, timeout: float = -1) -> None:
        data = (json.dumps(obj, ensure_ascii=False, default=jsonable) + "\n").encode("utf-8")
        self.local.writing = True
        try:
            got = self.lock.acquire(timeout=timeout)
            if not got:  # only the signal handler times out: another thread is stuck mid-line
                data = b"\n" + data
            try:
                while data:
                    n = os.write(self.fd, data)
                    data = data[n:]
            finally:
                if got:
                    self.lock.release()
        finally:
            self.local.writing = False
        if self.deferred is not None:
            deferred, self.deferred = self.deferred, None
            deferred()


# Longest protocol line the worker keeps whole (AGENTDISPATCH_MAX_LINE_BYTES); step texts are
# clipped well below it, and an over-long result output is moved to a file in the task folder.
_STEP_TEXT_LIMIT = 65536


def clip_step_text(value):
    """A step's text value, cut to what a protocol line keeps whole."""
    if isinstance(value, str) and len(value) > _STEP_TEXT_LIMIT:
        return value[:_STEP_TEXT_LIMIT] + f"… [{len(value) - _STEP_TEXT_LIMIT} characters cut]"
    return value


class EnvelopeError(ValueError):
    """The stdin envelope is missing or not a JSON object."""


def read_envelope(argv: list[str]) -> dict:
    """The JSON envelope from stdin; for manual use, ``runner.py some words`` with a terminal
    (or empty) stdin runs the words as the instruction."""
    data = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer.read().decode("utf-8", "replace").strip()
    if not data and argv:
        return {"taskType": "agent.run", "instruction": " ".join(argv), "input": {}}
    if not data:
        raise EnvelopeError("no envelope: expected one JSON object line on stdin")
    try:
        envelope = json.loads(data)
    except json.JSONDecodeError:
        try:
            envelope = json.loads(data.splitlines()[0])
        except json.JSONDecodeError as exc:
            raise EnvelopeError(f"the stdin envelope is not valid JSON: {exc}") from None
    if not isinstance(envelope, dict):
        raise EnvelopeError("the stdin envelope must be a JSON object")
    return envelope
