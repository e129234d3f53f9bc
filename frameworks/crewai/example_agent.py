"""Example CrewAI flow and crew on an offline scripted LLM (no network, no key).

Contract shared by every framework example: one tool `shout`; the model first
calls `shout` with the user's instruction, then answers "Shouted: <result>".
An instruction containing "slow" makes the tool sleep 60 s (cancel tests).

`agent` is a Flow (`ShoutFlow`): an instruction that starts with "refund" asks a person first
(SPEC §14), any other runs the shout crew (`crew`, which is also an entrypoint on its own). A
Crew cannot pause for a person without a terminal (`Task(human_input=True)` reads stdin), a
Flow can: `propose_refund` is a `@human_feedback` method, so the flow pauses once it returns
(the runner's provider raises HumanFeedbackPending); the answer resumes it in another process
and `do_refund` runs the refund crew (approved: its model calls `refund`, the tool runs
`example_refund`, "Shouted: refunded (…)") or answers the rejection with the person's message.
Each refund that runs is one line in the file EXAMPLE_REFUND_LOG names, when set (tests count
them). The runner kicks the flow off with inputs {"instruction", "history", "turn"}.
"""

import json
import re

# frameworks/_shared, on sys.path via runner.py
from agentdispatch import earlier_turns_note, example_pieces, example_refund, example_shout, piece_pause, quiet_env

quiet_env()  # CrewAI reads its telemetry switches at import time: set them first

from crewai import Agent, Crew, Task  # noqa: E402
from crewai.events.types.llm_events import LLMCallType  # noqa: E402
from crewai.flow import Flow, HumanFeedbackResult, human_feedback, listen, router, start  # noqa: E402
from crewai.llms.base_llm import BaseLLM, llm_call_context  # noqa: E402
from crewai.tools import tool  # noqa: E402

# Where the scripted model finds the instruction: the crew's task wraps it in markers; a lone
# Agent.kickoff(instruction) gets it on crewai's "Current Task:" line.
_FIND = (re.compile(r"<instruction>(.*?)</instruction>", re.S), re.compile(r"Current Task: (.*)"))


@tool("shout")
def shout(text: str) -> str:
    """Return the text in upper case."""
    return example_shout(text)


@tool("refund")
def refund_tool(text: str) -> str:
    """Refund what the text names (the flow has the person's approval before it runs)."""
    return example_refund(text, True)


class ScriptedLLM(BaseLLM):
    """Turn 1: an OpenAI-style call of `tool` (`shout`) with the instruction. Turn 2: final text.
    Each is handed out in pieces on the event bus first, as a streaming provider does.
    (`agentdispatch-worker init` gives an own agent this model with a tool of its own.)"""

    tool: str = "shout"

    def call(self, messages, tools=None, callbacks=None, available_functions=None,
             from_task=None, from_agent=None, response_model=None):
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        with llm_call_context():  # one call id for the started/completed events
            # Like the real providers, report the call on the event bus (the runner streams it).
            self._emit_call_started_event(messages, tools, from_task=from_task, from_agent=from_agent)
            results = [m.get("content") for m in messages if m.get("role") == "tool"]
            users = "\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "user")
            # Earlier turns of a session: the crew's {history} input, or a lone Agent's messages.
            earlier = users.count("<turn>") or max(0, sum(1 for m in messages if m.get("role") == "user") - 1)
            if results:
                response, kind = f"Shouted: {results[-1]}{earlier_turns_note(earlier)}", LLMCallType.LLM_CALL
            else:
                text = "\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "user")
                found = next((m.group(1) for m in (r.search(text) for r in _FIND) if m), text)
                args = {"text": found}
                response = [{"id": "call_1", "type": "function",
                             "function": {"name": self.tool, "arguments": json.dumps(args)}}]
                kind = LLMCallType.TOOL_CALL
            self._write_in_pieces(response, kind, from_task, from_agent)
            self._emit_call_completed_event(response, kind, from_task, from_agent, messages)
            return response

    def _write_in_pieces(self, response, kind, from_task, from_agent):
        """Like a streaming provider, hand the response out in chunks on the event bus before the
        call completes: the text word by word (``piece_pause`` before each: a slow model when
        AGENTDISPATCH_EXAMPLE_PIECE_* asks for one), or each call's arguments in pieces."""
        if isinstance(response, str):
            for n, piece in enumerate(example_pieces(response)):
                piece_pause(n)
                self._emit_stream_chunk_event(piece, from_task=from_task, from_agent=from_agent, call_type=kind)
            return
        for index, call in enumerate(response):
            so_far = ""
            for piece in example_pieces(call["function"]["arguments"]):
                so_far += piece
                tool_call = {"id": call["id"], "type": "function", "index": index,
                             "function": {"name": call["function"]["name"], "arguments": so_far}}
                self._emit_stream_chunk_event(piece, from_task=from_task, from_agent=from_agent,
                                              tool_call=tool_call, call_type=kind)

    def supports_function_calling(self):
        return True

    def supports_stop_words(self):
        return False

    def get_context_window_size(self):
        return 8192

    def get_input_tokens_count(self, messages, tools=None, response_model=None):
        return 0  # nothing to count for a scripted model (the default logs a warning)


def shout_crew(tool_name: str, tools: list) -> Crew:
    """One agent whose scripted model calls `tool_name` with the instruction, one task."""
    member = Agent(
        role="Shouter",
        goal=f"Carry out the user's text with the {tool_name} tool",
        backstory="Speaks only in capitals.",
        llm=ScriptedLLM(model="scripted", tool=tool_name),
        tools=tools,
        verbose=False,
    )
    task = Task(
        description="Shout this text: <instruction>{instruction}</instruction>\n"
        "The conversation so far:\n{history}",
        expected_output="The shouted text",
        agent=member,
    )
    return Crew(agents=[member], tasks=[task], verbose=False)


crew = shout_crew("shout", [shout])
shouter = crew.agents[0]  # the lone agent (an entrypoint too)
refund_crew = shout_crew("refund", [refund_tool])


class ShoutFlow(Flow):
    """Routes on the instruction: "refund …" asks a person first, anything else is the crew."""

    # A Flow prints its panels whatever `verbose` says (each line a task.log event here): quiet.
    suppress_flow_events: bool = True
    # CrewAI gives every new Flow a Memory (LanceDB: 2.4 s and threads at the first one): this
    # flow remembers nothing. (A knob of CrewAI's own internal flows.)
    _skip_auto_memory: bool = True

    def crew_inputs(self) -> dict:
        return {"instruction": self.state.get("instruction", ""), "history": self.state.get("history", "")}

    @start()
    @router()
    def route(self):
        return "refund" if str(self.state.get("instruction", "")).lower().startswith("refund") else "shout"

    @listen("shout")
    def run_crew(self):
        return crew.kickoff(inputs=self.crew_inputs())

    # The flow pauses after this returns: what it returns is what the person is asked about
    # (the runner reads "kind", "tool" and "args" from it). No `emit=`: outcomes need an LLM to
    # read the answer, rebuilt from its config on resume (offline, it cannot be).
    @listen("refund")
    @human_feedback(message="Approve this refund?")
    def propose_refund(self):
        return {"kind": "approval", "tool": "refund", "args": {"text": self.state.get("instruction", "")}}

    @listen(propose_refund)
    def do_refund(self, answer: HumanFeedbackResult):
        # The runner resumes an approval with "approve", a rejection with the person's message.
        if answer.feedback.strip().lower() == "approve":
            return refund_crew.kickoff(inputs=self.crew_inputs())
        return example_refund(answer.output["args"]["text"], False, answer.feedback)


agent = ShoutFlow
