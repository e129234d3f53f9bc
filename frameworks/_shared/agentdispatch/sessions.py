"""The conversation kept in the session folder (SPEC §7.1): reading, checking and replacing its
files, with every failure a ``SessionError`` that names the file."""

from __future__ import annotations

import os


class SessionError(Exception):
    """The conversation kept in the session folder cannot be read or written (names the file)."""


class ResumeStateError(Exception):
    """A run that resumes a task that asked (SPEC §14) cannot use what that task saved: missing,
    corrupted, or written by another version of the framework. Raised before the run does
    anything (no tool runs); the worker keeps the question open (``resume_state_invalid``).
    The message names the file or the versions, and what to do."""


def check_sqlite(path: str) -> None:
    """Fail with a SessionError naming ``path`` when it exists and is not a readable SQLite
    database (a framework would otherwise fail later, deep in its run, without the name)."""
    if not os.path.exists(path):
        return
    import sqlite3

    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        raise SessionError(f"the session file {path} cannot be read: {exc}") from None


def read_session_json(path: str, parse):
    """``parse(bytes)`` of the session file at ``path``, None when it does not exist yet; any
    failure is a SessionError naming the file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SessionError(f"the session file {path} cannot be read: {exc}") from None
    try:
        return parse(data)
    except Exception as exc:  # noqa: BLE001 - whatever the framework's parser raises
        raise SessionError(f"the session file {path} is corrupt: {type(exc).__name__}: {exc}") from None


def write_session_file(path: str, data: bytes) -> None:
    """Replace the session file at ``path`` atomically."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        raise SessionError(f"the session file {path} cannot be written: {exc}") from None
