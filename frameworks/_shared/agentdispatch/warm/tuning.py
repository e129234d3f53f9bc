"""Which of the warm parent's tricks run: one ``Tuning``, read once from the environment, and one
gate that says which tricks this CPython, C library and machine allow (docs/warm-protocol.md).

A trick is something a plain ``os.fork()`` server does not need and that reaches into CPython or
glibc: each saves CPU or memory per task, none is needed for a task to run. With
``AGENTDISPATCH_WARM_TUNING=plain`` none of them runs: spares are made with two ``os.fork()``
calls, objects keep their reference counts, pymalloc's gaps stay open, the heap stays in 4 KB
pages, nothing is learnt or copied ahead, a task's exit waits for its memory to be torn down.
What stays in plain mode is what warm starts need or what is plain Python: the spare forked ahead,
the task id written over the environment block (/proc shows it: the worker finds a task's escaped
processes by it), the parent-death signal, ``gc.freeze()`` and the next spare's cgroup move.

Each trick's own variable (``AGENTDISPATCH_WARM_IMMORTAL`` etc.) set to ``0`` turns it off, and
set to anything else turns it on over ``plain``; unset, the mode decides. The gate has the last
word: a trick it refuses is off whatever the variables say, with its reason.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

TUNING_VAR = "AGENTDISPATCH_WARM_TUNING"
MODES = ("full", "plain")
# Each trick and the variable that switches it (see the modules that do them).
TRICK_VARS = {
    "clone": "AGENTDISPATCH_WARM_CLONE",  # a spare in one clone(CLONE_PARENT) (native.Cloner)
    "holder": "AGENTDISPATCH_WARM_HOLDER",  # a process that tears a task's memory down (native.Holder)
    "immortal": "AGENTDISPATCH_WARM_IMMORTAL",  # the parent's objects immortal (memory.immortalize)
    "plugs": "AGENTDISPATCH_WARM_PLUGS",  # pymalloc's gaps plugged (memory.plug_free_blocks)
    "huge": "AGENTDISPATCH_WARM_HUGE",  # the heap in huge pages (memory.collapse_heap)
    "learn": "AGENTDISPATCH_WARM_LEARN",  # pages learnt and copied ahead in spares (pages.Learning)
}
TRICKS = tuple(TRICK_VARS)
# The machines whose clone and set_tid_address system call numbers native.py knows.
MACHINES = ("x86_64", "aarch64")


@dataclass(frozen=True)
class Runtime:
    """What the gate looks at: the interpreter, its C library and the machine."""

    implementation: str = "cpython"
    version: tuple = (3, 12, 0)
    bits: int = 64
    free_threaded: bool = False
    trace_refs: bool = False
    # Whether an object's reference count is its first word (a probe, on this interpreter only).
    refcount_first: bool = True
    libc: tuple = ("glibc", "2.36")
    system: str = "Linux"
    machine: str = "x86_64"

    @classmethod
    def here(cls) -> Runtime:
        import ctypes
        import sysconfig

        probe = object()
        libc = os.confstr("CS_GNU_LIBC_VERSION") if "CS_GNU_LIBC_VERSION" in os.confstr_names else None
        name, _, version = (libc or "").partition(" ")
        return cls(
            implementation=sys.implementation.name,
            version=tuple(sys.version_info[:3]),
            bits=64 if sys.maxsize > 2**32 else 32,
            free_threaded=bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
            trace_refs=hasattr(sys, "getobjects"),
            refcount_first=ctypes.c_ssize_t.from_address(id(probe)).value == sys.getrefcount(probe) - 1,
            libc=(name, version) if name else ("", ""),
            system=os.uname().sysname,
            machine=os.uname().machine,
        )

    def describe(self) -> str:
        """E.g. ``CPython 3.12.1, glibc 2.36, Linux x86_64``: the ready message's ``runtime``."""
        impl = {"cpython": "CPython", "pypy": "PyPy"}.get(self.implementation, self.implementation)
        libc = " ".join(self.libc).strip() or "no glibc"
        return f"{impl} {'.'.join(map(str, self.version))}, {libc}, {self.system} {self.machine}"


def gate(rt: Runtime) -> dict[str, str]:
    """The tricks this runtime does not allow, each with the reason; the others it allows.

    The tricks that reach into CPython's objects (immortal, plugs) are allowed only on the
    versions the tests run them on: a later CPython may lay its objects or its allocator out
    otherwise, and these writes would then corrupt it, not fail. The ones that reach into glibc
    (clone: its thread id field; holder: its mutex word) only with glibc."""
    off: dict[str, str] = {}
    version = ".".join(map(str, rt.version[:2]))
    cpython = rt.implementation == "cpython"
    if not cpython or rt.version[:2] < (3, 12):
        off["immortal"] = f"{rt.implementation} {version} has no immortal objects (CPython 3.12+)"
    elif rt.version[:2] >= (3, 14):
        # 3.14 marks immortality differently (a count of 3 << 30, flags in the same word).
        off["immortal"] = f"CPython {version}: immortal objects are made only on 3.12 and 3.13"
    elif rt.bits != 64:
        off["immortal"] = "32-bit CPython keeps immortality in the whole count"
    elif rt.free_threaded:
        off["immortal"] = "free-threaded CPython counts references per thread"
    elif rt.trace_refs:
        off["immortal"] = "a --with-trace-refs build puts other fields before the count"
    elif not rt.refcount_first:
        off["immortal"] = "the reference count is not where CPython 3.12 keeps it"
    if not cpython or not (3, 11) <= rt.version[:2] < (3, 14):
        off["plugs"] = f"{rt.implementation} {version}: pymalloc's gaps are plugged only on CPython 3.11 to 3.13"
    elif rt.bits != 64 or rt.free_threaded:
        off["plugs"] = "pymalloc's block sizes are known only for 64-bit CPython with the GIL"
    for trick, what in (("clone", "clone()"), ("holder", "set_tid_address()")):
        if rt.machine not in MACHINES:
            off[trick] = f"no {what} call known for {rt.machine}"
        elif rt.libc[0] != "glibc":
            off[trick] = f"{' '.join(rt.libc).strip() or 'this C library'} is not glibc"
    for trick in ("huge", "learn"):
        if rt.system != "Linux":
            off[trick] = f"{rt.system} has no madvise() of Linux's"
    return off


@dataclass
class Tuning:
    """The warm parent's tricks, decided once at start-up: ``on(trick)`` and ``why(trick)``."""

    mode: str = "full"
    runtime: str = ""
    off: dict[str, str] = field(default_factory=dict)  # trick -> why it is off
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_env(cls, environ=None, rt: Runtime | None = None) -> Tuning:
        env = os.environ if environ is None else environ
        rt = rt or Runtime.here()
        warnings = []
        mode = env.get(TUNING_VAR, "full") or "full"
        if mode not in MODES:
            # Fewer tricks, not more, for a value that was meant to say something.
            warnings.append(f"{TUNING_VAR}={mode!r} is neither 'full' nor 'plain': serving plain")
            mode = "plain"
        off = {}
        for trick, var in TRICK_VARS.items():
            value = env.get(var)
            if value == "0":
                off[trick] = f"{var}=0"
            elif value is None and mode == "plain":
                off[trick] = f"{TUNING_VAR}=plain"
        for trick, why in gate(rt).items():
            off.setdefault(trick, why)
        return cls(mode, rt.describe(), off, warnings)

    def on(self, trick: str) -> bool:
        return trick not in self.off

    def why(self, trick: str) -> str | None:
        return self.off.get(trick)

    def turn_off(self, trick: str, why: str) -> None:
        """A trick that failed at run time (a probe, a system call): off from now on, with why."""
        self.off.setdefault(trick, why)

    def tricks(self) -> list[str]:
        """The tricks in effect (the ready message's ``tricks``)."""
        return [t for t in TRICKS if self.on(t)]

    def tricks_off(self) -> dict[str, str]:
        """The others, each with why (the ready message's ``tricksOff``)."""
        return {t: self.off[t] for t in TRICKS if t in self.off}
