"""What the shipped example agents share: their one tool, their scripted models' note, and how
those models write their answers piece by piece."""

from __future__ import annotations

import os
import re
import time


def earlier_turns_note(earlier: int) -> str:
    """What the example agents' scripted models add to "Shouted: …" when they see earlier turns
    of the conversation (SPEC §7.1): nothing on a first turn, " (earlier turns: N)" after."""
    return f" (earlier turns: {earlier})" if earlier > 0 else ""


REFUND_LOG_VAR = "EXAMPLE_REFUND_LOG"


def example_refund(text: str, approved: bool, message: str | None = None) -> str:
    """Body of the example agents' ``refund`` tool, run once a person answered its approval
    (SPEC §14): approved, one line ``text`` in the file EXAMPLE_REFUND_LOG names (tests count
    the refunds that ran) and "refunded (<text>)"; rejected, "refund rejected: <message>"."""
    if not approved:
        return f"refund rejected: {message or 'not approved'}"
    log = os.environ.get(REFUND_LOG_VAR)
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(text + "\n")
    return f"refunded ({text})"


def example_shout(text: str) -> str:
    """Body of the example agents' one tool: upper-cases ``text``.

    Sleeps 60 seconds first when ``text`` contains the word "slow" (cancel/deadline tests)."""
    if re.search(r"\bslow\b", text, re.IGNORECASE):
        time.sleep(60)
    return text.upper()


# How the example agents' offline models play a model that writes its answer bit by bit (SPEC §4.1):
# every answer comes in several pieces; tests and benches may slow each piece down, or hold each
# piece back until they have seen the previous one arrive (the proof that a runner streams).
PIECE_DELAY_VAR = "AGENTDISPATCH_EXAMPLE_PIECE_DELAY_MS"
PIECE_GATE_VAR = "AGENTDISPATCH_EXAMPLE_PIECE_GATE"


def example_pieces(text: str) -> list[str]:
    """``text`` as the pieces a model would write it in: word by word, each with the spaces after
    it ("Shouted: ", "HELLO ", "WORLD"); they add up to ``text``."""
    return [p for p in re.split(r"(?<=\s)(?=\S)", text) if p] or [text]


def piece_pause(index: int) -> None:
    """What the example models do before writing text piece ``index`` (0 first): sleep
    AGENTDISPATCH_EXAMPLE_PIECE_DELAY_MS, and, when AGENTDISPATCH_EXAMPLE_PIECE_GATE names a FIFO,
    before every piece but the first, wait for one line from it: a test writes that line only after
    it has read the previous piece's delta, so a runner that holds text back never gets the next."""
    delay = os.environ.get(PIECE_DELAY_VAR)
    if delay:
        time.sleep(float(delay) / 1000)
    gate = os.environ.get(PIECE_GATE_VAR)
    if gate and index > 0:
        fd = os.open(gate, os.O_RDONLY)
        try:
            while os.read(fd, 1) not in (b"\n", b""):  # byte by byte: never take the next line
                pass
        finally:
            os.close(fd)


async def apiece_pause(index: int) -> None:
    """``piece_pause`` for an async model: in a thread, so the event loop meanwhile goes on
    handing the previous piece to the runner."""
    if os.environ.get(PIECE_DELAY_VAR) or os.environ.get(PIECE_GATE_VAR):
        import asyncio

        await asyncio.to_thread(piece_pause, index)
