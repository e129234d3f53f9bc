"""Example CrewAI crew on an offline scripted LLM (no network, no key).

Contract shared by every framework example: one tool `shout`; the model first
calls `shout` with the user's instruction, then answers "Shouted: <result>".
An instruction containing "slow" makes the tool sleep 60 s (cancel tests).
The runner kicks the crew off with inputs {"instruction": ...}.
"""

import json
import re

# frameworks/_shared, on sys.path via runner.py
from agentdispatch import earlier_turns_note, example_pieces, example_shout, piece_pause, quiet_env

quiet_env()  # CrewAI reads its telemetry switches at import time: set them first

from crewai import Agent, Crew, Task  # noqa: E402
from crewai.events.types.llm_events import LLMCallType  # noqa: E402
from crewai.llms.base_llm import BaseLLM, llm_call_context  # noqa: E402
from crewai.tools import tool  # noqa: E402

# Where the scripted model finds the instruction: the crew's task wraps it in markers; a lone
# Agent.kickoff(instruction) gets it on crewai's "Current Task:" line.
_FIND = (re.compile(r"<instruction>(.*?)</instruction>", re.S), re.compile(r"Current Task: (.*)"))


@tool("shout")
def shout(text: str) -> str:
    """Return the text in upper case."""
    return example_shout(text)


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


shouter = Agent(
    role="Shouter",
    goal="Shout the user's text with the shout tool",
    backstory="Speaks only in capitals.",
    llm=ScriptedLLM(model="scripted"),
    tools=[shout],
    verbose=False,
)

agent = Crew(
    agents=[shouter],
    tasks=[
        Task(
            description="Shout this text: <instruction>{instruction}</instruction>\n"
            "The conversation so far:\n{history}",
            expected_output="The shouted text",
            agent=shouter,
        )
    ],
    verbose=False,
)
