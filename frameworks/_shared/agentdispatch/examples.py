"""What the shipped example agents share: their one tool and their scripted models' note."""

from __future__ import annotations

import re
import time


def earlier_turns_note(earlier: int) -> str:
    """What the example agents' scripted models add to "Shouted: …" when they see earlier turns
    of the conversation (SPEC §7.1): nothing on a first turn, " (earlier turns: N)" after."""
    return f" (earlier turns: {earlier})" if earlier > 0 else ""


def example_shout(text: str) -> str:
    """Body of the example agents' one tool: upper-cases ``text``.

    Sleeps 60 seconds first when ``text`` contains the word "slow" (cancel/deadline tests)."""
    if re.search(r"\bslow\b", text, re.IGNORECASE):
        time.sleep(60)
    return text.upper()
