"""The warm parent's parts that need no process of their own: the control messages against the
fixture the worker's tests read too (tests/fixtures/warm-messages.json), the tuning read from the
environment, and the gate's answer for each CPython (3.11 and 3.14 included, which the warm
tests do not run on: the gate is asked about them here, and a real 3.11 where there is one)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace

import pytest
from agentdispatch.warm import messages
from agentdispatch.warm.tuning import TRICK_VARS, TRICKS, TUNING_VAR, Runtime, Tuning, gate

from conftest import REPO, SHARED

FIXTURE = json.loads((REPO / "tests" / "fixtures" / "warm-messages.json").read_text())
READERS = {
    "ready": messages.Ready.from_json,
    "fork": messages.ForkRequest.from_json,
    "reply": messages.reply_from_json,
}


@pytest.mark.parametrize("kind", sorted(READERS))
def test_every_message_of_the_fixture_reads_as_its_type_and_back(kind):
    assert FIXTURE[kind], kind
    for msg in FIXTURE[kind]:
        typed = READERS[kind](json.dumps(msg).encode())
        # Every field of the example is one the type knows: it comes back unchanged.
        assert typed.to_json() == msg
        assert json.loads(messages.encode(typed)) == msg
    for msg in FIXTURE["invalid"][kind]:
        with pytest.raises(messages.MessageError):
            READERS[kind](json.dumps(msg).encode())


def test_a_refusal_without_a_reason_and_a_ready_with_only_its_pid_read_with_defaults():
    assert messages.reply_from_json(b'{"ok": false}') == messages.Refused("no reason given")
    ready = messages.Ready.from_json(b'{"type": "ready", "pid": 7}')
    assert (ready.threads, ready.fork, ready.tuning) == (1, "double", "full")
    with pytest.raises(messages.MessageError, match="pid is missing"):
        messages.reply_from_json(b'{"ok": true}')
    with pytest.raises(messages.MessageError, match="not JSON"):
        messages.ForkRequest.from_json(b"{")


CPYTHON_312 = Runtime(version=(3, 12, 1))


def test_the_gate_allows_every_trick_on_cpython_312_and_313_with_glibc():
    assert gate(CPYTHON_312) == {}
    assert gate(replace(CPYTHON_312, version=(3, 13, 0), machine="aarch64")) == {}
    assert CPYTHON_312.describe() == "CPython 3.12.1, glibc 2.36, Linux x86_64"


def test_the_gate_says_what_311_and_314_get():
    # 3.11: no immortal objects at all; everything else as on 3.12.
    assert gate(replace(CPYTHON_312, version=(3, 11, 7))) == {
        "immortal": "cpython 3.11 has no immortal objects (CPython 3.12+)"}
    # 3.14 lays immortality and the allocator out otherwise: neither trick that writes into
    # CPython's objects; the fork and memory tricks, which go through the C library, stay.
    assert gate(replace(CPYTHON_312, version=(3, 14, 0))) == {
        "immortal": "CPython 3.14: immortal objects are made only on 3.12 and 3.13",
        "plugs": "cpython 3.14: pymalloc's gaps are plugged only on CPython 3.11 to 3.13"}


def test_the_gate_refuses_the_glibc_tricks_without_glibc_and_the_cpython_ones_on_odd_builds():
    musl = gate(replace(CPYTHON_312, libc=("", "")))
    assert set(musl) == {"clone", "holder"} and musl["clone"] == "this C library is not glibc"
    assert set(gate(replace(CPYTHON_312, machine="riscv64"))) == {"clone", "holder"}
    assert set(gate(replace(CPYTHON_312, free_threaded=True))) == {"immortal", "plugs"}
    assert set(gate(replace(CPYTHON_312, trace_refs=True))) == {"immortal"}
    assert set(gate(replace(CPYTHON_312, refcount_first=False))) == {"immortal"}
    assert set(gate(replace(CPYTHON_312, implementation="pypy"))) == {"immortal", "plugs"}


def test_plain_turns_every_trick_off_and_each_variable_turns_one_off_or_back_on():
    full = Tuning.from_env({}, CPYTHON_312)
    assert (full.mode, full.tricks(), full.tricks_off()) == ("full", list(TRICKS), {})
    plain = Tuning.from_env({TUNING_VAR: "plain"}, CPYTHON_312)
    assert plain.tricks() == [] and plain.tricks_off() == {t: f"{TUNING_VAR}=plain" for t in TRICKS}
    for trick, var in TRICK_VARS.items():
        one_off = Tuning.from_env({var: "0"}, CPYTHON_312)
        assert one_off.tricks_off() == {trick: f"{var}=0"}
        back_on = Tuning.from_env({TUNING_VAR: "plain", var: "1"}, CPYTHON_312)
        assert back_on.tricks() == [trick]
    # The gate has the last word: immortal objects on 3.11 are off, asked for or not.
    py311 = replace(CPYTHON_312, version=(3, 11, 7))
    assert not Tuning.from_env({"AGENTDISPATCH_WARM_IMMORTAL": "1"}, py311).on("immortal")


def test_an_unknown_tuning_serves_plain_and_says_so():
    tuning = Tuning.from_env({TUNING_VAR: "fast"}, CPYTHON_312)
    assert tuning.mode == "plain" and tuning.tricks() == []
    assert tuning.warnings == [f"{TUNING_VAR}='fast' is neither 'full' nor 'plain': serving plain"]


def python_311() -> str | None:
    for candidate in [shutil.which("python3.11"), shutil.which("python3")]:
        if candidate is None:
            continue
        out = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 11))"],
                             capture_output=True, text=True)
        if out.stdout.strip() == "True":
            return candidate
    return None


def test_a_real_cpython_311_gets_every_trick_but_immortal_objects():
    python = python_311()
    if python is None:
        pytest.skip("no CPython 3.11 here (the gate's answer for it is tested above)")
    script = ("import json; from agentdispatch.warm.tuning import Tuning; t = Tuning.from_env({}); "
              "print(json.dumps([t.runtime, t.tricks(), t.tricks_off()]))")
    out = subprocess.run([python, "-c", script], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(SHARED)})
    runtime, tricks, off = json.loads(out.stdout)
    assert runtime.startswith("CPython 3.11."), runtime
    assert tricks == ["clone", "holder", "plugs", "huge", "learn"], (runtime, off)
    assert off == {"immortal": "cpython 3.11 has no immortal objects (CPython 3.12+)"}


def test_reading_glibcs_thread_record_stops_where_its_mapping_ends():
    # The warm parent looks for its thread id in the first 4 KB of its struct pthread, which may
    # lie near the end of its mapping: a read past it killed the parent with SIGSEGV at start-up.
    # Here a readable page followed by one that is not, and a read from 8 bytes before the end.
    script = """
import ctypes, mmap, sys
sys.path.insert(0, sys.argv[1])
from agentdispatch.warm.native import LIBC, PAGE, mapped_bytes
LIBC.mmap.restype = ctypes.c_void_p
LIBC.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
LIBC.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
base = LIBC.mmap(None, 2 * PAGE, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
assert LIBC.mprotect(base + PAGE, PAGE, 0) == 0  # PROT_NONE
ctypes.memmove(base + PAGE - 8, b"12345678", 8)
print(mapped_bytes(base + PAGE - 8, 4096).decode())
"""
    out = subprocess.run([sys.executable, "-c", script, str(SHARED)], capture_output=True, text=True)
    assert (out.returncode, out.stdout.strip()) == (0, "12345678"), out
