"""Shared helper for the Python framework runners of agentdispatch-worker.

A runner is a short script that the worker starts as a child process (see SPEC §6). The worker
writes one JSON envelope line on the child's stdin and reads NDJSON events from its stdout.
This package does everything that is the same for every framework:

* ``quiet_env()``  turns telemetry/tracing of all shipped frameworks off (unless the user set the
  variables); ``main`` calls it before anything imports the framework.
* ``main(framework, run)`` reads the envelope, keeps the protocol stream clean (the original
  stdout is kept for NDJSON events only; ``sys.stdout`` and fd 1 go to stderr, so framework
  chatter and subprocess output can never corrupt the protocol), reports failures as a clear
  last line on stderr with exit status 1, and turns SIGTERM into a ``task.log`` line plus exit 143.
* ``Runner`` is what ``run(runner)`` receives: the envelope fields, ``progress``/``log``/``step``
  events, ``live`` (the model's text as it is written: ``task.delta`` lines), ``result``
  (once), ``final_answer`` (the last step, returned as the output) and
  ``load_agent`` for the user's ``module:attr`` entrypoint: the framework's agent, or a factory
  of the user's own returning one (``entrypoint``'s docstring says exactly which functions count).

Its modules, by concern:

* ``protocol``: the stdin envelope and the NDJSON lines on the protocol fd (``STEPS``);
* ``runner``: ``Runner``, ``model_id_from_env``;
* ``request``: the HTTP request the task serves (``runner.request``, ``current_request()``),
  handed to AWS's ``BedrockAgentCoreContext`` when ``bedrock_agentcore`` is importable;
* ``live``: the model's text as it is written, ``task.delta`` lines (``runner.live``, ``LiveText``);
* ``entrypoint``: which entrypoint a task runs (a payload's only where the worker allowed it),
  importing it, and what a runner may call (``EntrypointError``);
* ``child``: ``main``, the life of one runner process (failures, exit status, signals);
* ``process``: ``quiet_env``, the protocol fd kept apart from stdout, the quick exit,
  ``reclaim_signals``;
* ``sessions``: the session folder's files (``SessionError``, ``check_sqlite``, …);
* ``text``: ``as_text`` and the JSON fallback for framework objects;
* ``examples``: what the shipped example agents share (``example_shout``, ``example_refund``, ``earlier_turns_note``,
  ``example_pieces`` and ``piece_pause``: their models write answers piece by piece);
* ``warm``: the warm parent (``main`` hands over to it under ``AGENTDISPATCH_WARM_FD``);
* ``otel``: OpenTelemetry in a task: export when the deployment asked for traces, and the
  worker's task span (``TRACEPARENT``/``TRACESTATE``/``BAGGAGE``) as the current context, set
  up after a warm task's fork;
* ``langchain_live``: the live text of a LangChain message chunk (langchain and langgraph runners);
* ``scripted_chat_model``: the offline LangChain chat model of the langchain and langgraph
  examples (needs ``langchain-core``; not imported here).

A runner looks like::

    import os, sys
    # The one line a runner cannot leave to the helper: it is how the runner finds it.
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "_shared"))
    from agentdispatch import main

    def run(runner):
        import some_framework                      # imported after stdout is protected
        agent = runner.load_agent(default_factory=build_default_agent,
                                  expect=some_framework.Agent, what="a some_framework.Agent")
        for ev in agent.stream(runner.instruction):
            if ev.kind == "text_delta":                # a piece of the reply, as it is written
                runner.live.text(ev.message_id, ev.text)
            elif ev.kind == "message_done":            # closes it: the same messageId
                runner.step("model_turn", text=ev.text, messageId=runner.live.close(ev.message_id, ev.text))
            elif ev.kind == "tool_call":
                runner.step("tool_call", tool=ev.name, args=ev.args, toolCallId=ev.call_id)
        return runner.final_answer(final_text)     # the last step; becomes the task.result output

    if __name__ == "__main__":
        main("some-framework", run)

For manual use, ``python runner.py some instruction`` runs without a stdin envelope.
"""

from __future__ import annotations

from .child import main
from .examples import apiece_pause, earlier_turns_note, example_pieces, example_refund, example_shout, piece_pause
from .live import LiveText
from .process import quiet_env, reclaim_signals
from .protocol import STEPS, EnvelopeError
from .request import Request, current_request
from .runner import EntrypointError, Runner, model_id_from_env
from .sessions import ResumeStateError, SessionError, check_sqlite, read_session_json, write_session_file
from .text import as_text

__all__ = [
    "Runner",
    "Request",
    "current_request",
    "EntrypointError",
    "SessionError",
    "ResumeStateError",
    "earlier_turns_note",
    "check_sqlite",
    "read_session_json",
    "write_session_file",
    "EnvelopeError",
    "main",
    "quiet_env",
    "reclaim_signals",
    "example_shout",
    "example_refund",
    "example_pieces",
    "piece_pause",
    "apiece_pause",
    "LiveText",
    "as_text",
    "model_id_from_env",
    "STEPS",
]
