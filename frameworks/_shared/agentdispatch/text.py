"""Text of framework values: ``as_text`` for answers, ``jsonable`` for JSON of any object."""

from __future__ import annotations

import json


def as_text(value) -> str:
    """Best-effort text of a framework value: str, message objects (``.text``/``.content``),
    lists of content blocks (their text parts joined), dicts with "text"/"content", else JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "".join(as_text(v) for v in value if not isinstance(v, dict) or "text" in v or "content" in v)
    if isinstance(value, dict):
        for key in ("text", "content", "output"):
            if key in value:
                return as_text(value[key])
        return json.dumps(value, ensure_ascii=False, default=jsonable)
    for attr in ("text", "content"):
        v = getattr(value, attr, None)
        if callable(v) and not isinstance(v, str):  # langchain's .text is a callable str
            try:
                v = v()
            except TypeError:
                continue
        if v is not None:
            return as_text(v)
    return json.dumps(value, ensure_ascii=False, default=jsonable)


def jsonable(value):
    """json.dumps fallback for framework objects (pydantic models, dataclasses, …)."""
    for attr in ("model_dump", "dict", "_asdict"):
        fn = getattr(value, attr, None)
        if callable(fn):
            try:
                return fn()
            except Exception:  # noqa: BLE001 - fall through to str()
                pass
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
