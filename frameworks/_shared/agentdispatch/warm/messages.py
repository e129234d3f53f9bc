"""The control messages between the worker and a warm parent, typed (docs/warm-protocol.md; the
worker's side is src/warm/messages.rs, and tests/fixtures/warm-messages.json holds one of each
kind that both test suites read with their types).

Each message is one JSON object in one SOCK_SEQPACKET packet. ``to_json`` gives the object a
message is sent as; ``from_json`` reads one and raises ``MessageError`` naming the first field
that is wrong. Fields a reader does not know are ignored (an older reader, a newer writer)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field


class MessageError(ValueError):
    """A message that is not what its kind says (the reason names the field)."""


def _obj(data) -> dict:
    if isinstance(data, (bytes, bytearray, str)):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise MessageError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MessageError(f"not a JSON object: {type(data).__name__}")
    return data


def _get(obj: dict, key: str, kind, required: bool = True, default=None):
    """obj[key], checked to be of ``kind`` (a type or a tuple of them; bools are no ints)."""
    if key not in obj or obj[key] is None:
        if required:
            raise MessageError(f"{key} is missing")
        return default
    value = obj[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise MessageError(f"{key} is not {names}: {value!r}")
    return value


def _drop_none(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if v is not None}


@dataclass
class Ready:
    """parent → worker, once, when the parent can fork."""

    pid: int
    entrypoint: str | None = None
    entrypoint_error: str | None = None  # why the entrypoint's agent cannot load
    threads: int = 1
    import_ms: float = 0.0
    fork: str = "double"  # "clone" (one clone(CLONE_PARENT)) or "double" (two forks)
    fork_why: str | None = None  # why "double"
    huge_mb: float = 0.0
    immortal: int = 0
    immortal_why: str | None = None  # why no object was made immortal
    plugged: int = 0
    tuning: str = "full"  # "full" or "plain" (AGENTDISPATCH_WARM_TUNING)
    runtime: str = ""  # the gate's view, e.g. "CPython 3.12.1, glibc 2.36, Linux x86_64"
    tricks: list = field(default_factory=list)  # the tricks in effect
    tricks_off: dict = field(default_factory=dict)  # trick -> why it is off

    def to_json(self) -> dict:
        return _drop_none({
            "type": "ready", "pid": self.pid, "entrypoint": self.entrypoint,
            "entrypointError": self.entrypoint_error, "threads": self.threads,
            "importMs": self.import_ms, "fork": self.fork, "forkWhy": self.fork_why, "hugeMB": self.huge_mb,
            "immortal": self.immortal, "immortalWhy": self.immortal_why, "plugged": self.plugged,
            "tuning": self.tuning, "runtime": self.runtime, "tricks": self.tricks, "tricksOff": self.tricks_off,
        })

    @classmethod
    def from_json(cls, data) -> Ready:
        obj = _obj(data)
        if obj.get("type") != "ready":
            raise MessageError(f"type is not \"ready\": {obj.get('type')!r}")
        if _get(obj, "fork", str, False, "double") not in ("clone", "double"):
            raise MessageError(f"fork is neither \"clone\" nor \"double\": {obj['fork']!r}")
        if _get(obj, "tuning", str, False, "full") not in ("full", "plain"):
            raise MessageError(f"tuning is neither \"full\" nor \"plain\": {obj['tuning']!r}")
        tricks = _get(obj, "tricks", list, False, [])
        off = _get(obj, "tricksOff", dict, False, {})
        if not all(isinstance(t, str) for t in tricks) or not all(isinstance(w, str) for w in off.values()):
            raise MessageError("tricks and tricksOff hold names and reasons (strings)")
        return cls(
            pid=_get(obj, "pid", int), entrypoint=_get(obj, "entrypoint", str, False),
            entrypoint_error=_get(obj, "entrypointError", str, False),
            threads=_get(obj, "threads", int, False, 1), import_ms=_get(obj, "importMs", (int, float), False, 0.0),
            fork=_get(obj, "fork", str, False, "double"), fork_why=_get(obj, "forkWhy", str, False),
            huge_mb=_get(obj, "hugeMB", (int, float), False, 0.0), immortal=_get(obj, "immortal", int, False, 0),
            immortal_why=_get(obj, "immortalWhy", str, False), plugged=_get(obj, "plugged", int, False, 0),
            tuning=_get(obj, "tuning", str, False, "full"), runtime=_get(obj, "runtime", str, False, ""),
            tricks=tricks, tricks_off=off,
        )


@dataclass
class ForkRequest:
    """worker → parent, with the task's stdin, stdout and stderr attached (SCM_RIGHTS), and with
    task cgroups a fourth descriptor: the next spare's cgroup.procs."""

    task_id: str
    env: dict = field(default_factory=dict)  # set in the task process (the task id included)
    unset: list = field(default_factory=list)  # removed from its environment
    cwd: str | None = None
    busy: bool = False  # other tasks run beside this one (the next spare copies nothing ahead)

    def to_json(self) -> dict:
        return {"op": "fork", "taskId": self.task_id, "env": self.env, "unset": self.unset, "cwd": self.cwd,
                "busy": self.busy}

    @classmethod
    def from_json(cls, data) -> ForkRequest:
        obj = _obj(data)
        if obj.get("op") != "fork":
            raise MessageError(f"op {obj.get('op')!r}")
        env = _get(obj, "env", dict, False, {})
        unset = _get(obj, "unset", list, False, [])
        if not all(isinstance(v, str) for v in env.values()):
            raise MessageError("env holds a value that is not a string")
        if not all(isinstance(v, str) for v in unset):
            raise MessageError("unset holds a name that is not a string")
        return cls(task_id=_get(obj, "taskId", str), env=env, unset=unset, cwd=_get(obj, "cwd", str, False),
                   busy=_get(obj, "busy", bool, False, False))


@dataclass
class Forked:
    """parent → worker: the task process (the spare that took the request)."""

    pid: int
    pages_ahead: int | None = None  # pages its spare copied ahead (page learning)
    holder: int | None = None  # its memory holder's pid, not a task process

    def to_json(self) -> dict:
        return _drop_none({"ok": True, "pid": self.pid, "pagesAhead": self.pages_ahead, "holder": self.holder})


@dataclass
class Refused:
    """parent → worker: no task process; the worker starts the task cold and says why."""

    reason: str

    def to_json(self) -> dict:
        return {"ok": False, "reason": self.reason}


def reply_from_json(data) -> Forked | Refused:
    obj = _obj(data)
    ok = _get(obj, "ok", bool)
    if not ok:
        return Refused(_get(obj, "reason", str, False, "no reason given"))
    pid = _get(obj, "pid", int)
    if pid <= 0:
        raise MessageError(f"pid is not positive: {pid}")
    ahead, holder = _get(obj, "pagesAhead", int, False), _get(obj, "holder", int, False)
    if min(ahead or 0, holder or 0) < 0:
        raise MessageError("pagesAhead and holder are not negative")
    return Forked(pid, ahead, holder)


def encode(message) -> bytes:
    return json.dumps(message.to_json()).encode()
