"""What a task that asks (SPEC §14) leaves beside its framework's own saved state, and what the run
that answers checks before it does anything: that the state is there, is the asking task's, and
was written by the framework's versions installed now. A framework's saved run (a checkpoint, a
serialised RunState, a message history) is read back by that framework's code; another version
may read it differently, or not at all, and a run that starts over would run the tool again."""

from __future__ import annotations

import json
import os

from .sessions import ResumeStateError

# The session folder's record of the asking task (a dot file: the worker's helper's, not the agent's).
STATE_FILE = ".agentdispatch-asked.json"

# The distributions whose version decides how each shipped framework's saved state is read.
PACKAGES = {
    "langgraph": ["langgraph", "langgraph-checkpoint-sqlite"],
    "langchain": ["langchain", "langgraph", "langgraph-checkpoint-sqlite"],
    "openai-agents": ["openai-agents"],
    "strands": ["strands-agents"],
    "pydantic-ai": ["pydantic-ai-slim"],
    "crewai": ["crewai"],
}


def versions(framework: str) -> dict:
    """The installed versions of ``framework``'s packages (``PACKAGES``); a package that is not
    installed is None. A framework of the user's own has none."""
    from importlib import metadata

    out = {}
    for name in PACKAGES.get(framework, []):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def record(state_dir: str, task_id: str | None, framework: str) -> None:
    """Written as the task asks: which task asked, on which framework and versions."""
    path = os.path.join(state_dir, STATE_FILE)
    data = {"taskId": task_id, "framework": framework, "versions": versions(framework)}
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def check(state_dir: str | None, asked: str | None, framework: str) -> None:
    """Before a run that answers task ``asked``'s questions does anything: a ResumeStateError
    saying what is wrong and what to do when the record is missing, unreadable, another task's,
    or written under other versions of the framework's packages."""
    restart = "or start a new run without input.resume"
    if not state_dir:
        raise ResumeStateError(f"the run answers task {asked}'s questions and has no session folder; {restart}")
    path = os.path.join(state_dir, STATE_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise ResumeStateError(
            f"what task {asked} saved when it asked is gone from the session folder ({path} is missing); {restart}"
        ) from None
    except (OSError, ValueError) as exc:
        raise ResumeStateError(f"{path} cannot be read ({type(exc).__name__}: {exc}); {restart}") from None
    if not isinstance(data, dict) or not isinstance(data.get("versions"), dict):
        raise ResumeStateError(f"{path} is corrupted (not the record of a task that asked); {restart}")
    if data.get("taskId") != asked:
        raise ResumeStateError(
            f"{path} belongs to task {data.get('taskId')}, not to task {asked} whose questions this run answers; {restart}"
        )
    now = versions(framework)
    changed = [(name, was, now.get(name)) for name, was in sorted(data["versions"].items()) if now.get(name) != was]
    if changed:
        said = ", ".join(f"{name} {was} when task {asked} asked, {is_ or 'not installed'} now" for name, was, is_ in changed)
        pins = " ".join(f"{name}=={was}" for name, was, _ in changed if was)
        raise ResumeStateError(
            f"the framework changed since the question was asked ({said}): its saved run may not be read the same; "
            f"install {pins} to answer it, {restart}"
        )
