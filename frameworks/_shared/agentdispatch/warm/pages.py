"""Page learning: which of the warm parent's pages its tasks write, learnt from the first tasks and
copied ahead in later spares (``Learning``), and the /proc readers it needs."""

from __future__ import annotations

import bisect
import json
import socket
import sys
from array import array

from .native import PAGE, madvise

_MADV_POPULATE_WRITE = 23  # Linux 5.14
# Tasks whose written pages are reported back; the union is pre-faulted in spares.
LEARN_TASKS = 3
# A page is copied in advance when at least this many of the learners wrote it: pages only one
# task wrote (its own allocations, its own data) are copied for nothing by every other task.
LEARN_QUORUM = 2


class Learning:
    """Which of the parent's pages a task writes, learnt from the first tasks.

    A forked task pays a copy-on-write fault for every page of the parent it writes (reference
    counts touch thousands: ~1,600 pages and ~12 ms for the LangGraph example here). The first
    ``tasks`` (LEARN_TASKS; 0 with the trick off: nothing is learnt, nothing copied ahead)
    report, as they exit, which pages of the parent's writable mappings they hold privately
    (/proc/self/pagemap "exclusively mapped"); later spares copy the pages that at least
    LEARN_QUORUM of them wrote in advance, with one madvise(MADV_POPULATE_WRITE) per range,
    before any task is theirs. What the reports say only chooses pages to copy early: a bogus
    range costs a failed madvise, nothing more."""

    def __init__(self, tasks: int = LEARN_TASKS):
        self.tasks = tasks
        self.pending: list[socket.socket] = []  # learners' channels, open until they report
        self.reports = 0
        self.seen: dict[int, int] = {}  # page address -> how many learners wrote it
        self.ranges: list[tuple[int, int]] = []

    def wants_more(self) -> bool:
        return self.reports + len(self.pending) < self.tasks

    def collect(self) -> None:
        """Read whatever reports arrived, without waiting."""
        for conn in list(self.pending):
            try:
                data = conn.recv(1 << 22, socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            self.pending.remove(conn)
            conn.close()
            try:
                pairs = json.loads(data) if data else None
            except ValueError:
                pairs = None
            if not isinstance(pairs, list):
                continue
            self.reports += 1
            for page in pages_of_ours(pairs, writable_private_ranges()):
                self.seen[page] = self.seen.get(page, 0) + 1
            quorum = min(LEARN_QUORUM, self.reports)
            hot = [page for page, n in self.seen.items() if n >= quorum]
            self.ranges = merge(hot)
            if self.reports == self.tasks:
                sys.stderr.write(
                    f"warm parent: {len(hot)} pages written by at least {quorum} of the first "
                    f"{self.tasks} tasks ({len(self.seen)} by any) are copied ahead in each spare\n"
                )


def pages_of_ours(pairs, layout) -> set[int]:
    """The pages a report's (start, count) runs name inside the parent's own writable mappings,
    each once: a report (a task's word) can make the parent count at most the pages it has."""
    layout = sorted(layout)
    his = [hi for _, hi in layout]
    pages: set[int] = set()
    for pair in pairs[: len(his) + (1 << 16)]:
        if not (isinstance(pair, list) and len(pair) == 2 and all(type(x) is int for x in pair)):
            continue
        start, end = pair[0], pair[0] + max(pair[1], 0) * PAGE
        i = bisect.bisect_right(his, start)
        while i < len(layout) and layout[i][0] < end:
            lo = max(start, layout[i][0])
            pages.update(range(lo - lo % PAGE, min(end, his[i]), PAGE))
            i += 1
    return pages


def merge(pages) -> list[tuple[int, int]]:
    """Page addresses → (start, page count) runs."""
    runs: list[tuple[int, int]] = []
    for addr in sorted(pages):
        if runs and runs[-1][0] + runs[-1][1] * PAGE == addr:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((addr, 1))
    return runs


def writable_private_ranges(anonymous: bool = False) -> list[tuple[int, int]]:
    """The process's private writable mappings, except stacks and kernel pages (with
    ``anonymous``, only those backed by no file: the heap and anonymous maps)."""
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            perms = parts[1]
            name = parts[5] if len(parts) > 5 else ""
            if perms[1] != "w" or perms[3] != "p" or name.startswith("[") and name != "[heap]":
                continue
            if anonymous and name not in ("", "[heap]"):
                continue
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            out.append((lo, hi))
    return out


def private_pages(ranges) -> list[tuple[int, int]]:
    """Runs of pages in ``ranges`` that this process holds exclusively (pagemap bit 56)."""
    pages = []
    with open("/proc/self/pagemap", "rb") as f:
        for lo, hi in ranges:
            f.seek(lo // PAGE * 8)
            entries = array("Q")
            entries.frombytes(f.read((hi - lo) // PAGE * 8))
            for i, entry in enumerate(entries):
                if entry >> 63 and (entry >> 56) & 1:
                    pages.append(lo + i * PAGE)
    return merge(pages)


def prefault(ranges) -> None:
    """Copy these pages now (in a spare), so that the task does not fault on them."""
    for start, count in ranges:
        madvise(start, count * PAGE, _MADV_POPULATE_WRITE)


def report_pages(conn: socket.socket, layout) -> None:
    """At exit of a learning task: tell the parent which of its pages this task wrote."""
    try:
        conn.send(json.dumps(private_pages(layout)).encode())
    except OSError:
        pass
