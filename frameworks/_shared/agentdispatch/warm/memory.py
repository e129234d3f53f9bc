"""Memory tricks done once in the warm parent before it is ready, so that its tasks write (and so
copy) fewer of its pages: its objects made immortal, pymalloc's gaps plugged, its heap in huge
pages. Whether each runs is the tuning's (tuning.py); each is safe to leave out."""

from __future__ import annotations

import ctypes
import gc
import os
import sys

from ..process import flush_std
from .native import madvise
from .pages import writable_private_ranges

_MADV_COLLAPSE = 25  # Linux 6.1
_MADV_NOHUGEPAGE = 15

# CPython 3.12 and 3.13 on 64-bit (PEP 683): an object whose reference count has its low 32 bits
# all set is immortal: Py_INCREF and Py_DECREF leave it unwritten (Py_DECREF tests the sign of
# the low 32 bits). CPython's own immortal objects start at this value there; extensions built
# for older stable ABIs still write the full count, and the value is chosen so that they never
# bring it to zero. tuning.gate allows this only where that holds.
_IMMORTAL = 0xFFFFFFFF


def immortal_why_not() -> str | None:
    """Why this interpreter cannot have objects made immortal (the gate's answer), or None."""
    from .tuning import Runtime, gate

    return gate(Runtime.here()).get("immortal")


def immortalize(roots) -> int:
    """Make every object reachable from ``roots`` immortal; returns how many were made so.

    A forked task writes every page of the parent that holds a reference count it changes: to
    read an attribute, call a function or build a list, CPython increments and decrements the
    counts of the objects involved, thousands of pages of the parent for one agent run (~1,700
    for the LangGraph example on CPython 3.12), each a copy-on-write fault, a page copied and
    a page freed at exit. Immortal objects' counts are never written, so a task copies only the
    pages it really changes (~950). The price: an object of the parent is never freed, in the
    parent or in a task (the parent keeps its imports alive anyway, and a task ends with
    ``os._exit``), and ``sys.getrefcount`` of one is meaningless (numpy's ``ndarray.resize``
    with ``refcheck`` refuses to resize such an array). Objects that are already immortal are
    not walked again: the mark is also the walk's "seen" set."""
    cell = ctypes.c_ssize_t
    made = 0
    stack = list(roots)
    get_referents = gc.get_referents
    while stack:
        obj = stack.pop()
        count = cell.from_address(id(obj))
        if count.value & _IMMORTAL >= 0x80000000:  # immortal already (_Py_IsImmortal)
            continue
        count.value = _IMMORTAL
        made += 1
        stack.extend(get_referents(obj))
    return made


_PLUGS: list = []  # placeholders in pymalloc's free blocks, alive as long as this process
_POOL = 16384  # pymalloc's pool size on 64-bit CPython 3.10+ (the stats name it: "* 16384 bytes")


def pymalloc_free() -> tuple[dict[int, int], int]:
    """pymalloc's free room, from ``sys._debugmallocstats()``: free blocks in used pools by block
    size, and the number of unused pools in its arenas. Empty when there is no pymalloc (another
    interpreter, PYTHONMALLOC=malloc) or its report reads otherwise."""
    stats = getattr(sys, "_debugmallocstats", None)
    if stats is None:
        return {}, 0
    with open(os.memfd_create("mallocstats"), "w+b") as f:
        flush_std()
        saved = os.dup(2)
        try:
            os.dup2(f.fileno(), 2)  # it writes to the C stderr
            stats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        text = f.read().decode("ascii", "replace")
    avail: dict[int, int] = {}
    unused = 0
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 5 and all(p.isdigit() for p in parts):  # class size pools in-use avail
            avail[int(parts[1])] = int(parts[4])
        elif len(parts) > 4 and parts[1:3] == ["unused", "pools"] and parts[0].isdigit() and parts[4] == str(_POOL):
            unused = int(parts[0])
    return avail, unused


def plug_free_blocks() -> int:
    """Fill pymalloc's free blocks and unused pools with placeholders; returns how many.

    An object the parent or a task allocates after this lands in a fresh arena instead of in a
    gap of a page the parent filled before it was ready: a task's new objects then cost it a
    zero-filled page rather than a copied one of the parent, and the parent's own allocations
    while it serves stop writing (and so copying) pages its spare shares. ~3,600 placeholders,
    ~1.2 MB, for a LangGraph parent."""
    avail, unused = pymalloc_free()
    made = 0
    for size, free in avail.items():
        for _ in range(free):
            # Objects of exactly that block size: object() takes 16 bytes, an int below 2**60
            # of two 30-bit digits 32, a bytes object of n bytes 33 + n.
            if size <= 16:
                _PLUGS.append(object())
            elif size <= 32:
                _PLUGS.append((1 << 40) + made)  # an int of two digits: 32 bytes, no free list
            else:
                _PLUGS.append(bytes(size - 33))
            made += 1
    if avail and max(avail) >= 48:
        biggest = max(avail)
        for _ in range(unused * ((_POOL - 48) // biggest)):  # a pool's header is 48 bytes
            _PLUGS.append(bytes(biggest - 33))
            made += 1
    return made


def collapse_heap() -> int:
    """Back the parent's anonymous memory with huge pages where whole 2 MB runs of it are in use
    (MADV_COLLAPSE, Linux 6.1); returns how many bytes are huge-page-backed now.

    Every spare's clone copies one page-table entry per 4 KB page of the parent (~14,000 for a
    LangGraph parent) and every task's tear-down drops them again; a huge page is one entry
    either way. A task that writes into one still copies only the 4 KB it touches (the kernel
    splits the mapping in the task). MADV_NOHUGEPAGE after it keeps new memory in these
    mappings in 4 KB pages, so that a task's own allocations stay small. Where the kernel has no
    MADV_COLLAPSE or THP is off, the calls fail and nothing changes."""
    huge = 2 << 20
    for lo, hi in writable_private_ranges(anonymous=True):
        start, end = (lo + huge - 1) // huge * huge, hi // huge * huge
        if end > start:
            madvise(start, end - start, _MADV_COLLAPSE)
            madvise(lo, hi - lo, _MADV_NOHUGEPAGE)
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            if line.startswith("AnonHugePages:"):
                return int(line.split()[1]) * 1024
    return 0
