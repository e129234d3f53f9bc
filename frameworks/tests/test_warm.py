"""The warm-parent protocol of the shared helper (README "The warm-parent protocol"), driven from
Python as a worker in another language would drive it: a SOCK_SEQPACKET socket as fd 3, a ready
message, fork requests with three descriptors (and the next task's cgroup.procs as a fourth), a refusal when the parent is not single-threaded,
exit at the end of the channel. The test process is a child subreaper, as the worker is, so the
forked task processes are re-parented to it."""

from __future__ import annotations

import ctypes
import json
import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "frameworks" / "pyfixture"
PR_GET_CHILD_SUBREAPER = 37


@pytest.fixture(scope="module", autouse=True)
def subreaper():
    # conftest.py makes this process a child subreaper for the whole session (the framework tests'
    # warm parents need it too).
    libc = ctypes.CDLL(None, use_errno=True)
    flag = ctypes.c_int(0)
    assert libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0) == 0 and flag.value == 1


def python_with_immortal_objects() -> str | None:
    """A CPython that can make objects immortal (3.12 or 3.13, 64-bit, with the GIL) to run the
    fixture's warm parent on: this one, or a framework venv's
    (scripts/setup-frameworks.sh makes them with 3.12 where the machine has it)."""
    candidates = [sys.executable] + sorted(str(p) for p in (REPO / "frameworks").glob("*/.venv/bin/python"))
    check = "from agentdispatch.warm import memory; print(memory.immortal_why_not() is None)"
    for python in candidates:
        try:
            out = subprocess.run([python, "-c", check], capture_output=True, text=True,
                                 env={**os.environ, "PYTHONPATH": str(REPO / "frameworks" / "_shared")})
        except OSError:  # a venv whose interpreter is gone
            continue
        if out.stdout.strip() == "True":
            return python
    return None


class Parent:
    def __init__(self, extra_env: dict | None = None, python: str | None = None):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTDISPATCH_")}
        fd = theirs.fileno()  # the variable names the descriptor (the worker's is 3)
        env.update({"AGENTDISPATCH_WARM_FD": str(fd), "AGENTDISPATCH_TASK_ID": "_" * 128, "PYTHONUNBUFFERED": "1"})
        env.update(extra_env or {})
        self.proc = subprocess.Popen(
            [python or sys.executable, "runner.py"],
            cwd=FIXTURE,
            env=env,
            stdin=subprocess.DEVNULL,
            pass_fds=(fd,),
        )
        theirs.close()
        self.sock = ours
        self.sock.settimeout(30)
        self.ready = json.loads(self.sock.recv(65536))

    def fork(self, task_id: str, instruction: str, cgroup: int | None = None):
        """Ask for a task process (with ``cgroup`` as the fourth descriptor: the next task's
        cgroup.procs); returns (reply, stdout reader)."""
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        request = {"op": "fork", "taskId": task_id, "env": {"AGENTDISPATCH_TASK_ID": task_id}, "cwd": str(FIXTURE)}
        fds = [in_r, out_w, err_w] + ([cgroup] if cgroup is not None else [])
        socket.send_fds(self.sock, [json.dumps(request).encode()], fds)
        for f in (in_r, out_w, err_w):
            os.close(f)
        reply = json.loads(self.sock.recv(65536))
        if reply.get("ok"):
            envelope = {"taskType": "agent.run", "taskId": task_id, "instruction": instruction, "input": {}}
            os.write(in_w, (json.dumps(envelope) + "\n").encode())
        os.close(in_w)
        os.close(err_r)
        return reply, os.fdopen(out_r)

    def close(self):
        self.sock.close()
        return self.proc.wait(timeout=10)


def result_of(stdout) -> dict:
    lines = [json.loads(line) for line in stdout if line.strip()]
    return next(line for line in lines if line.get("type") == "task.result")


def test_ready_then_a_forked_task_process_of_the_callers_own():
    parent = Parent()
    assert parent.ready["type"] == "ready"
    assert parent.ready["pid"] == parent.proc.pid
    assert parent.ready["threads"] == 1
    assert parent.ready["plugged"] > 0, parent.ready
    seen = set()
    for i in range(3):
        reply, out = parent.fork(f"py-{i}", "state")
        assert reply["ok"] is True, reply
        state = json.loads(result_of(out)["output"])
        pid, status = os.waitpid(reply["pid"], 0)  # our child: re-parented to the subreaper
        assert os.waitstatus_to_exitcode(status) == 0
        assert state["pid"] == reply["pid"] and state["pid"] not in seen
        seen.add(state["pid"])
        assert state["ppid"] == os.getpid()
        assert state["sid"] == state["pid"] == state["pgid"]
        assert state["runs"] == 1 and state["taskIdEnv"] == f"py-{i}"
    assert parent.close() == 0  # the end of the channel ends the parent


def test_the_task_id_is_written_over_the_environment_block():
    parent = Parent()
    reply, out = parent.fork("py-marker", "sleep 1")
    assert reply["ok"] is True, reply
    deadline = time.monotonic() + 5
    entries: list[bytes] = []
    while time.monotonic() < deadline:
        entries = Path(f"/proc/{reply['pid']}/environ").read_bytes().split(b"\0")
        if b"AGENTDISPATCH_TASK_ID=py-marker" in entries:
            break
        time.sleep(0.01)
    assert b"AGENTDISPATCH_TASK_ID=py-marker" in entries
    assert result_of(out)["output"] == "slept"
    os.waitpid(reply["pid"], 0)
    parent.close()


def test_a_bad_request_and_a_threaded_parent_are_refused_with_a_reason():
    parent = Parent()
    socket.send_fds(parent.sock, [b'{"op":"dance"}'], [])
    reply = json.loads(parent.sock.recv(65536))
    assert reply == {"ok": False, "reason": "bad request: op 'dance' with 0 descriptors"}
    parent.close()
    threaded = Parent({"FIXTURE_THREAD_AT_IMPORT": "1"})
    assert threaded.ready["threads"] == 2
    reply, out = threaded.fork("py-threaded", "state")
    assert reply["ok"] is False
    assert "fixture-bg" in reply["reason"] and "fork is unsafe" in reply["reason"], reply
    out.close()
    threaded.close()


def test_spares_copy_ahead_the_pages_most_learners_wrote():
    sys.path.insert(0, str(REPO / "frameworks" / "_shared"))
    from agentdispatch.warm import pages

    page = pages.PAGE
    learning = pages.Learning()
    # Reports name pages of the parent's own writable memory (here: this process's, from malloc:
    # an mmap of Python's own may carry a name, which such a range does not have).
    ours = ctypes.create_string_buffer(17 * page)
    base = ctypes.addressof(ours) + page - ctypes.addressof(ours) % page
    reports = [
        [[base, 4]],  # pages 0-3
        [[base + page, 4]],  # pages 1-4
        [[base + 2 * page, 1], [base + 9 * page, 1], ["bogus", 1]],  # pages 2 and 9
    ]
    ends = []
    for report in reports:
        assert learning.wants_more()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        learning.pending.append(ours)
        theirs.send(json.dumps(report).encode())
        ends.append(theirs)
    assert not learning.wants_more()
    learning.collect()
    assert learning.reports == 3 and not learning.pending
    # Written by at least two of the three: pages 1-3 (0, 4 and 9 by one only).
    assert learning.ranges == [(base + page, 3)]


def test_a_learners_report_counts_only_pages_the_parent_has():
    # A task's report once made the parent count 1.36 GB of page addresses: whatever it says,
    # only pages inside the parent's writable mappings count, each once.
    sys.path.insert(0, str(REPO / "frameworks" / "_shared"))
    from agentdispatch.warm import pages as warm

    page = warm.PAGE
    layout = [(1 << 30, (1 << 30) + 8 * page), (1 << 32, (1 << 32) + 2 * page)]
    hostile = [[0, 1 << 60], [1 << 30, 10**30], [(1 << 30) + 3, 2], [(1 << 32) - page, 2], [5, -7], [True, 1]]
    hostile += [[1 << 40, 1 << 20]] * 100_000
    pages = warm.pages_of_ours(hostile, layout)
    assert pages == {(1 << 30) + i * page for i in range(8)} | {1 << 32, (1 << 32) + page}


def test_both_fork_modes_give_the_callers_own_child_and_name_a_holder():
    for clone, mode in (("1", "clone"), ("0", "double")):
        parent = Parent({"AGENTDISPATCH_WARM_CLONE": clone})
        assert parent.ready["fork"] == mode, parent.ready
        reply, out = parent.fork(f"py-{mode}", "state")
        assert reply["ok"] is True, reply
        state = json.loads(result_of(out)["output"])
        assert state["ppid"] == os.getpid() and state["mainThreadReachable"] is True
        os.waitpid(reply["pid"], 0)
        holder = reply.get("holder")
        if mode == "clone":
            # It shares the task's memory and ends with it: it is our child now (subreaper).
            assert isinstance(holder, int), reply
            os.waitpid(holder, 0)
        else:
            assert holder is None, reply  # no holder beside the intermediate's report pipe
        parent.close()


def test_the_next_spare_is_moved_through_the_fourth_descriptor_and_nothing_keeps_it():
    # With task cgroups the worker sends the next task's cgroup.procs along with a request; the
    # parent writes the pid of the spare forked after it there before it reads the next request.
    # A pipe stands in for cgroup.procs: the next task's pid arrives, and the end of the pipe
    # comes once the parent and the spare closed it (that task, still running, holds no copy).
    parent = Parent()
    r, w = os.pipe()
    reply, out = parent.fork("py-cg-1", "state", cgroup=w)
    os.close(w)
    assert reply["ok"] is True, reply
    assert result_of(out)["type"] == "task.result"
    os.waitpid(reply["pid"], 0)
    reply2, out2 = parent.fork("py-cg-2", "sleep 2")
    assert reply2["ok"] is True, reply2
    got, ended, deadline = b"", False, time.monotonic() + 10
    while not ended and time.monotonic() < deadline:
        if select.select([r], [], [], 0.1)[0]:
            chunk = os.read(r, 64)
            ended = not chunk  # the end of the pipe: every copy of its write end is closed
            got += chunk
    assert ended, f"the pipe did not end (read {got!r}): a process keeps the descriptor"
    os.close(r)
    assert got == str(reply2["pid"]).encode()
    assert Path(f"/proc/{reply2['pid']}").exists(), "the task ended before the pipe did"
    assert result_of(out2)["output"] == "slept"
    os.waitpid(reply2["pid"], 0)
    parent.close()


def test_the_parents_objects_are_immortal_so_a_task_that_reads_them_copies_none_of_them():
    python = python_with_immortal_objects()
    assert python, "no CPython 3.12 or 3.13 here: run scripts/setup-frameworks.sh"
    n = 200_000  # ~20 MB of small objects in the parent
    seen = {}
    for immortal in ("1", "0"):
        parent = Parent({"FIXTURE_OBJECTS": str(n), "AGENTDISPATCH_WARM_IMMORTAL": immortal}, python=python)
        if immortal == "1":
            assert parent.ready["immortal"] > 2 * n, parent.ready
            assert "immortalWhy" not in parent.ready, parent.ready
        else:
            assert parent.ready["immortal"] == 0 and "AGENTDISPATCH_WARM_IMMORTAL=0" in parent.ready["immortalWhy"], parent.ready
        reply, out = parent.fork(f"py-immortal-{immortal}", "touch")
        assert reply["ok"] is True, reply
        seen[immortal] = json.loads(result_of(out)["output"])
        os.waitpid(reply["pid"], 0)
        assert seen[immortal]["total"] == sum(len(str(i)) for i in range(n))
        assert parent.close() == 0
    # Reading every object writes its reference count, so without immortality the task copies
    # (nearly) every page that holds one; with it, their counts stay as the parent left them.
    assert seen["1"]["refcount"] >= 0xFFFFFFFF and seen["0"]["refcount"] < 100, seen
    assert seen["0"]["privateDirtyKb"] > 10_000, seen
    assert seen["1"]["privateDirtyKb"] * 3 < seen["0"]["privateDirtyKb"], seen


def test_the_warm_up_prompt_runs_three_times_by_default_and_as_often_as_asked():
    # The fixture's "state" counts the runs its process has seen: the parent's warm-up runs
    # (inherited) and the task's own.
    for runs, seen in ((None, 3), ("1", 1), ("5", 5)):
        env = {"AGENTDISPATCH_WARMUP_PROMPT": "state"}
        if runs is not None:
            env["AGENTDISPATCH_WARMUP_RUNS"] = runs
        parent = Parent(env)
        reply, out = parent.fork(f"py-warmup-{runs}", "state")
        assert reply["ok"] is True, reply
        assert json.loads(result_of(out)["output"])["runs"] == seen + 1, (runs, seen)
        os.waitpid(reply["pid"], 0)
        assert parent.close() == 0


def test_pymallocs_gaps_are_plugged_so_new_objects_go_to_fresh_pools():
    # A heap with a gap in every other block (as imports and a collection leave it); after the
    # plugs, the free blocks left in used pools are those of the pools opened since.
    script = """
import json, sys
sys.path.insert(0, sys.argv[1])
from agentdispatch.warm import memory as warm
keep = [str(i) * 3 for i in range(100_000)]
del keep[::2]
before = sum(warm.pymalloc_free()[0].values())
plugged = warm.plug_free_blocks()
after = sum(warm.pymalloc_free()[0].values())
print(json.dumps({"before": before, "after": after, "plugged": plugged}))
"""
    out = subprocess.run([sys.executable, "-c", script, str(REPO / "frameworks" / "_shared")],
                         capture_output=True, text=True, check=True)
    got = json.loads(out.stdout)
    assert got["before"] > 40_000, got
    # Every free block found is plugged (a few may be taken meanwhile by the stats themselves).
    assert got["plugged"] > got["before"] * 0.9, got
    assert got["after"] * 10 < got["before"], got


def test_a_plain_parent_forks_twice_and_does_none_of_the_tricks():
    # AGENTDISPATCH_WARM_TUNING=plain: spares through an intermediate, no holder, no object made
    # immortal, no plug, no huge page, nothing learnt or copied ahead; tasks as before.
    parent = Parent({"AGENTDISPATCH_WARM_TUNING": "plain"})
    ready = parent.ready
    assert ready["tuning"] == "plain" and ready["tricks"] == [], ready
    assert set(ready["tricksOff"]) == {"clone", "holder", "immortal", "plugs", "huge", "learn"}, ready
    assert (ready["fork"], ready["immortal"], ready["plugged"], ready["hugeMB"]) == ("double", 0, 0, 0), ready
    for i in range(4):  # past the three tasks that would learn
        reply, out = parent.fork(f"py-plain-{i}", "state")
        assert reply["ok"] is True and reply["pagesAhead"] == 0 and "holder" not in reply, reply
        state = json.loads(result_of(out)["output"])
        assert state["ppid"] == os.getpid() and state["runs"] == 1, state
        os.waitpid(reply["pid"], 0)
    assert parent.close() == 0
