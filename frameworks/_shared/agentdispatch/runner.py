"""``Runner``: what a framework's ``run(runner)`` receives: the envelope's fields, events, the
result, the session folder and the user's agent entrypoint."""

from __future__ import annotations

import contextlib
import json
import os
import sys

from . import asking, entrypoint
from .entrypoint import AgentLoaded, EntrypointError, describe
from .live import LiveText
from .protocol import STEPS, Emitter, clip_step_text
from .request import Request, request_context
from .sessions import ResumeStateError
from .text import as_text, jsonable


def model_id_from_env() -> str:
    """The production default agent's model id: env ``AGENTDISPATCH_MODEL_ID``."""
    model_id = os.environ.get("AGENTDISPATCH_MODEL_ID", "").strip()
    if not model_id:
        raise EntrypointError(
            "no agent: set AGENTDISPATCH_ENTRYPOINT (or input.entrypoint) to \"module:attr\", "
            "or AGENTDISPATCH_MODEL_ID for the default agent"
        )
    return model_id


def _not_loaded(_event) -> None:
    raise EntrypointError("the runner wrote events before it loaded its agent with runner.load_agent: "
                          "its agent cannot be checked or warmed up without running it")


def _text(content) -> str:
    """An AG-UI message's content as text: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content if isinstance(p, dict) and p.get("type") == "text"
                         and isinstance(p.get("text"), str))
    return ""


def conversation_before(messages) -> list[dict]:
    """The messages before the last user message (the turn being run) as ``{"role", "content"}``
    text messages: user, assistant (its text; tool calls and results are left out: the
    framework's own tools answered them, or the client's), and system (developer too). The
    worker checked the shapes (AG-UI's ``Message``); anything else is skipped."""
    if not isinstance(messages, list):
        return []
    last_user = max((i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"),
                    default=None)
    out = []
    for m in messages[:last_user] if last_user is not None else []:
        role = m.get("role") if isinstance(m, dict) else None
        role = "system" if role == "developer" else role
        text = _text(m.get("content")) if role in ("user", "assistant", "system") else ""
        if text:
            out.append({"role": role, "content": text})
    return out


class Runner:
    """What ``run(runner)`` receives. Create through ``main``; tests may pass ``emit``."""

    def __init__(self, envelope: dict, framework: str = "", emit=None, check: bool = False):
        if not isinstance(envelope, dict):
            raise ValueError("the envelope must be a JSON object")
        self.envelope = envelope
        # The name the worker runs it under first: a folder of the user's own that copies a
        # shipped runner is its own framework, not "strands".
        self.framework = str(envelope.get("framework") or "") or framework
        # The shipped runner this is (its packages decide how a saved run is read back).
        self.runner_name = framework
        # Check mode (``frameworks --check``, a warm parent's warm-up): ``load_agent`` loads and
        # builds the agent, then stops ``run`` with AgentLoaded before anything runs it.
        self.check = check
        inp = envelope.get("input")
        self.input: dict = inp if isinstance(inp, dict) else {}
        instruction = envelope.get("instruction")
        if instruction is None:
            instruction = self.input.get("instruction", "")
        self.instruction: str = instruction if isinstance(instruction, str) else json.dumps(instruction)
        context = envelope.get("context")
        if context is None:
            context = self.input.get("context")
        self.context: dict = context if isinstance(context, dict) else {}
        self.metadata: dict = envelope.get("metadata") if isinstance(envelope.get("metadata"), dict) else {}
        self.task_id: str | None = envelope.get("taskId") or os.environ.get("AGENTDISPATCH_TASK_ID") or None
        self.task_dir: str | None = envelope.get("taskDir") or os.environ.get("AGENTDISPATCH_TASK_DIR") or None
        self.session_id: str | None = envelope.get("sessionId") or None
        # The session's own folder (SPEC §7.1), where the conversation is kept; None without one.
        self.session_dir: str | None = envelope.get("sessionDir") or None
        # The key a framework's persistence files the conversation under: the folder's name
        # (the session id when it is a safe file name, else its hash).
        self.session_key: str | None = os.path.basename(self.session_dir) if self.session_dir else None
        # The HTTP request the task serves (SPEC §12): headers, identity token, trace context.
        request = envelope.get("request")
        if not isinstance(request, dict):
            request = {"sessionId": self.session_id, "requestId": envelope.get("requestId")}
        self.request = Request(request)
        # The invocation's payload, as AgentCore's ``@app.entrypoint(payload, context)`` gets it.
        self.payload: dict = {
            "instruction": self.instruction,
            "context": self.context,
            "input": self.input,
            "metadata": self.metadata,
        }
        # The answers to an earlier task's questions (SPEC §14), when this run resumes it:
        # {"taskId", "interrupts", "answers": {"<id>": answer}}; approvals as {"approved", "message"?}.
        resume = envelope.get("resume")
        self.resume: dict | None = resume if isinstance(resume, dict) else None
        spare = envelope.get("askSession")
        self._ask_session: dict | None = spare if isinstance(spare, dict) else None
        self._emit = emit or Emitter(sys.stdout.fileno()).write_line
        if check:  # a runner that does not load its agent first would run it: stop at once
            self._emit = _not_loaded
        self.result_emitted = False
        self.asked = False
        self.steps = 0
        # The model's text as it is written (SPEC §4.1): runner.live.text(key, piece), and the
        # closing step's messageId from runner.live.close(key, text).
        self.live = LiveText(self._emit)
        # The conversation the caller sent before this turn (an AG-UI run's messages, SPEC §13).
        self.history: list[dict] = conversation_before(self.input.get("messages"))

    def history_turns(self) -> list[dict]:
        """``history`` as the turns a runner keeps itself: each user message with the
        assistant's answer that follows it, ``{"instruction", "output"}``."""
        turns = []
        for m in self.history:
            if m["role"] == "user":
                turns.append({"instruction": m["content"], "output": ""})
            elif m["role"] == "assistant" and turns and not turns[-1]["output"]:
                turns[-1]["output"] = m["content"]
        return turns

    # -- events ---------------------------------------------------------------------------

    def emit(self, event: dict) -> None:
        """Write one raw event object as a protocol line."""
        self._emit(event)

    def progress(self, message: str, **payload) -> None:
        self._emit({"type": "task.progress", "message": message, "payload": payload})

    def log(self, message: str, **payload) -> None:
        self._emit({"type": "task.log", "message": message, "payload": payload})

    def delta(self, message_id: str, text: str, kind: str = "text", **tool_call) -> None:
        """Write a piece of model output as it is written: ``task.delta`` line(s) of message
        ``message_id`` (``kind`` "text", "reasoning", or "tool_call" with ``tool_call_id=`` and
        ``tool=``, ``text`` then being the arguments' piece). See ``live.LiveText``."""
        self.live.delta(message_id, text, kind=kind, **tool_call)

    def step(self, step: str, **payload) -> None:
        """One agent step as a progress event: payload ``{"step": step, **payload}``.

        tool_call: tool=, args={...}; tool_result: tool=, result=<str>;
        model_turn: text=; final_answer: text=; a step closing a model message also
        messageId= (``live.close``), tool steps toolCallId= (the framework's)."""
        if step not in STEPS:
            raise ValueError(f"unknown step {step!r}; expected one of {', '.join(STEPS)}")
        self.steps += 1
        payload = {k: clip_step_text(v) for k, v in payload.items()}
        message = f"{step} {payload['tool']}" if payload.get("tool") else step
        self.progress(message, step=step, **payload)

    def result(self, output: str, result: dict | None = None, artifacts: list | None = None) -> None:
        """Emit the task.result line (once)."""
        if self.result_emitted:
            raise RuntimeError("task.result was already emitted")
        self.result_emitted = True
        output = output if isinstance(output, str) else json.dumps(output, default=jsonable)
        if result is None:
            result = {"framework": self.framework, "instruction": self.instruction, "steps": self.steps}
        limit = int(os.environ.get("AGENTDISPATCH_MAX_LINE_BYTES") or 1048576)
        if len(output.encode("utf-8")) > limit // 2 and self.task_dir:
            path = os.path.join(self.task_dir, "output.txt")
            with open(path, "w", encoding="utf-8") as f:
                f.write(output)
            cut = limit // 4
            output = output[:cut] + f"\n… [output cut; the whole text is in {path}]"
        event = {"type": "task.result", "output": output, "result": result}
        event["artifacts"] = list(artifacts or [])
        self._emit(event)

    def interrupt(self, interrupts: list) -> None:
        """Ask a person (SPEC §14): write the ``task.interrupt`` line; the task then ends
        ``input_required`` (return from ``run`` without a result). Each question is
        ``{"id", "kind": "approval"|"input", "value"?, "tool"?, "args"?}``. Save what the
        framework needs to continue in ``state_dir()`` first."""
        if self.result_emitted or self.asked:
            raise RuntimeError("this task already answered or asked")
        ids = [q.get("id") if isinstance(q, dict) else None for q in interrupts]
        if not interrupts or any(not isinstance(i, str) or not i for i in ids) or len(set(ids)) != len(ids):
            raise ValueError("interrupts must be a non-empty list of objects with distinct string ids")
        if any(q.get("kind") not in ("approval", "input") for q in interrupts):
            raise ValueError('each interrupt\'s kind must be "approval" or "input"')
        if self.state_dir():
            asking.record(self.session_dir, self.task_id, self.runner_name)
        self.asked = True
        self._emit({"type": "task.interrupt", "payload": {"interrupts": list(interrupts)}})

    def check_resume(self) -> None:
        """When this run answers an earlier task's questions: a ResumeStateError, before anything
        runs, if what that task saved is missing, corrupted or from other versions of the
        framework (``asking.check``). The shipped runner's ``main`` calls it before ``run``."""
        if self.resume is not None:
            asking.check(self.session_dir, self.resume.get("taskId"), self.runner_name)

    def answer(self, interrupt_id: str):
        """The answer to question ``interrupt_id`` of the run this one resumes; None without."""
        return ((self.resume or {}).get("answers") or {}).get(interrupt_id)

    @contextlib.contextmanager
    def saved_state(self, path: str | None = None):
        """Around reading back, in a run that answers a task's questions, what that task saved
        (the framework's checkpoint, serialised run, history): a missing ``path`` or anything
        raised inside becomes a ResumeStateError naming the file (``resume_state_invalid``: the
        question stays open). Outside such a run it does nothing. Use it only before the run
        does anything: the worker then knows no tool ran."""
        if self.resume is None:
            yield
            return
        asked = self.resume.get("taskId")
        name = os.path.basename(path) if path else "the saved run"
        if path is not None and not os.path.exists(path):
            raise ResumeStateError(
                f"what task {asked} saved when it asked is gone: {name} is missing from the session folder ({path}); "
                "start a new run without input.resume"
            )
        try:
            yield
        except ResumeStateError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the framework raises reading it
            detail = " ".join(str(exc).split())[:300]
            raise ResumeStateError(
                f"what task {asked} saved when it asked cannot be read back from {name}"
                f"{f' ({path})' if path else ''}: {type(exc).__name__}: {detail}; "
                "start a new run without input.resume"
            ) from exc

    def state_dir(self) -> str | None:
        """The folder to keep what a run that asks needs to continue: the session folder, or
        for a task sent without a session the one the worker gives it if it asks (made now)."""
        if not self.session_dir and self._ask_session and self._ask_session.get("sessionDir"):
            os.makedirs(self._ask_session["sessionDir"], exist_ok=True)
            self.session_dir = self._ask_session["sessionDir"]
            self.session_id = self._ask_session.get("sessionId")
            self.session_key = os.path.basename(self.session_dir)
        return self.session_dir

    def session_file(self, name: str) -> str | None:
        """Path of ``name`` in the session folder; None without a session."""
        return os.path.join(self.session_dir, name) if self.session_dir else None

    # -- the user's agent -----------------------------------------------------------------

    def entrypoint(self) -> str | None:
        """``input.entrypoint`` when the worker allowed it (env ``AGENTDISPATCH_PAYLOAD_ENTRYPOINT``
        says so), else env ``AGENTDISPATCH_ENTRYPOINT``; empty counts as unset."""
        return entrypoint.chosen(self.input)

    def load_agent(self, default_factory=None, *, expect=None, what: str = "", offered: dict | None = None,
                   build=None):
        """Return the user's agent.

        The entrypoint ``module:attr`` (attr may be dotted; see ``entrypoint``) is imported with
        ``AGENTDISPATCH_APP_DIR`` (default: the working directory) first on ``sys.path``. Without
        ``expect`` the attribute is returned as is (not called: the warm parent's preload).
        With ``expect`` (the framework's agent type, a tuple of types, or a predicate) and
        ``what`` (its name in errors, e.g. "a strands.Agent"), the attribute is returned when
        it is one, or called when it is a factory of the user's own (``entrypoint.resolve``:
        ``offered`` keyword arguments go to a factory that names them) and its result checked;
        anything else is an EntrypointError. A factory that names them also gets ``payload`` (the
        invocation's instruction, context, input, metadata) and ``context`` (``request_context``:
        AWS's ``RequestContext`` when its SDK is installed), as ``@app.entrypoint(payload,
        context)`` gets them. ``build(obj)`` may turn what is not the agent yet into it (None: it
        cannot): LangGraph's runner compiles a StateGraph builder. Without an entrypoint,
        ``default_factory()`` builds the production default agent; without either,
        EntrypointError. In check mode it raises AgentLoaded once the agent is built."""
        spec = self.entrypoint()
        if not spec:
            if default_factory is None:
                raise EntrypointError(
                    "no agent entrypoint: set input.entrypoint or AGENTDISPATCH_ENTRYPOINT to \"module:attr\""
                )
            agent = default_factory()
            spec = "the default agent"
        else:
            agent = entrypoint.import_attr(spec)
            if expect is not None:
                named = {"payload": self.payload, "context": request_context(self.request)}
                agent = entrypoint.resolve(agent, spec, entrypoint.kind_check(expect), what or "the framework's agent",
                                           offered, named, build)
        if self.check:
            raise AgentLoaded(f"{spec}: {describe(agent)}")
        return agent

    def final_answer(self, output, **payload) -> str:
        """Report the agent's answer as the ``final_answer`` step and return it as the task's
        output text (``as_text`` of anything that is not a string)."""
        text = output if isinstance(output, str) else as_text(output)
        message_id = self.live.id_for_answer(text)
        if message_id and "messageId" not in payload:  # the answer is that message's text
            payload["messageId"] = message_id
        self.step("final_answer", text=text, **payload)
        return text
