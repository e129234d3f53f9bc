"""CrewAI runner: streams the crewai event bus (LLM calls, tool usage) as agentdispatch steps, and
the model's text as it is written (LLMStreamChunkEvent, LLMThinkingChunkEvent) as task.delta lines.

CrewAI (1.15) hands out chunks only from an LLM whose `stream` is true: the runner turns it on
for the agents of a Crew and for a lone Agent, as `Crew(stream=True)` does. It cannot reach the
agents a Flow builds inside its methods: give those LLMs `stream=True` yourself.

A Flow (or a Flow class: one instance per run) may ask a person (SPEC §14) with a
`@human_feedback` method: the flow pauses, is kept in the session folder (CrewAI's SQLite flow
persistence) and the answer's run resumes it (`start_flow`, `keep_asked`, `resume_flow`). A Crew
cannot pause: its human input reads stdin (docs/interrupts.md, "CrewAI")."""

import json
import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "_shared"))
from agentdispatch import (  # noqa: E402
    SessionError, as_text, check_sqlite, main, model_id_from_env, read_session_json, write_session_file,
)
from agentdispatch.entrypoint import describe  # noqa: E402


def default_agent():
    """Production default: one agent on the model AGENTDISPATCH_MODEL_ID (a crewai LLM string), one task."""
    from crewai import Agent, Crew, Task

    model = model_id_from_env()
    assistant = Agent(role="Assistant", goal="Carry out the user's instruction",
                      backstory=os.environ.get("AGENTDISPATCH_SYSTEM_PROMPT") or "A helpful assistant.", llm=model)
    task = Task(description="{instruction}", expected_output="The answer", agent=assistant)
    return Crew(agents=[assistant], tasks=[task])


def private_home(runner):
    """CrewAI writes keys and databases under $HOME and CREWAI_STORAGE_DIR: keep them in the task folder."""
    if not runner.task_dir or os.environ.get("AGENTDISPATCH_KEEP_HOME"):
        return
    base = os.path.join(runner.task_dir, "crewai")
    os.environ.setdefault("CREWAI_STORAGE_DIR", os.path.join(base, "storage"))
    os.environ["HOME"] = os.path.join(base, "home")
    os.makedirs(os.environ["HOME"], exist_ok=True)
    repoint_storage()


# CrewAI modules that compute a storage path once, at import, from $HOME and CREWAI_STORAGE_DIR.
# Forked from a warm parent, a task finds them computed for the parent's environment: a RAG
# store there would be shared by every task and live outside the task folder. (module, subfolder)
IMPORT_TIME_PATHS = (
    ("crewai.rag.chromadb.constants", ""),
    ("crewai.rag.chromadb.config", ""),
    ("crewai.rag.qdrant.constants", "qdrant"),
    ("crewai.rag.qdrant.config", "qdrant"),
)


def repoint_storage():
    """Recompute the import-time storage paths of the CrewAI modules already loaded."""
    loaded = [(sys.modules.get(name), sub) for name, sub in IMPORT_TIME_PATHS]
    loaded = [(m, sub) for m, sub in loaded if m is not None and hasattr(m, "DEFAULT_STORAGE_PATH")]
    if not loaded:
        return
    from crewai_core.paths import db_storage_path

    base = db_storage_path()
    for module, sub in loaded:
        module.DEFAULT_STORAGE_PATH = os.path.join(base, sub) if sub else base


def watch(runner, bus):
    """Async handlers: the bus runs them in emission order on its own loop (sync ones run on a pool)."""
    from crewai.events import (LLMCallCompletedEvent, ToolUsageErrorEvent, ToolUsageFinishedEvent,
                               ToolUsageStartedEvent)
    from crewai.events.types.llm_events import LLMStreamChunkEvent, LLMThinkingChunkEvent

    # CrewAI's tool events carry no call id: the model's latest call of that tool name is the one.
    call_ids = {}

    def tool_call_id(event):
        return call_ids.get(event.tool_name)

    # Each LLM call is one message, keyed by its call id (chunks and completion carry the same).
    @bus.on(LLMStreamChunkEvent)
    async def chunk(_source, event):
        call = event.tool_call
        if call is None:
            runner.live.text(event.call_id, event.chunk)
        else:  # `chunk` is the arguments' new piece (`function.arguments` is all of them so far)
            runner.live.tool_args(event.call_id, event.chunk, index=call.index, tool_call_id=call.id,
                                  tool=call.function.name)

    @bus.on(LLMThinkingChunkEvent)
    async def thinking(_source, event):
        runner.live.text(event.call_id, event.chunk, kind="reasoning")

    @bus.on(LLMCallCompletedEvent)
    async def model_turn(_source, event):
        calls = [c for c in event.response if isinstance(c, dict)] if isinstance(event.response, list) else []
        names = [(c.get("function") or c).get("name") for c in calls]
        call_ids.update((name, c.get("id")) for name, c in zip(names, calls) if c.get("id"))
        text = as_text(event.response)
        runner.step("model_turn", text=text, toolCalls=names, messageId=runner.live.close(event.call_id, text))

    @bus.on(ToolUsageStartedEvent)
    async def tool_call(_source, event):
        runner.step("tool_call", tool=event.tool_name, args=event.tool_args, toolCallId=tool_call_id(event))

    @bus.on(ToolUsageFinishedEvent)
    async def tool_result(_source, event):
        runner.step("tool_result", tool=event.tool_name, result=str(event.output), toolCallId=tool_call_id(event))

    @bus.on(ToolUsageErrorEvent)
    async def tool_error(_source, event):
        runner.step("tool_result", tool=event.tool_name, result=str(event.error), status="error",
                    toolCallId=tool_call_id(event))


def stream_llms(agent):
    """Turn streaming on for the LLMs the runner can reach (what Crew(stream=True) does)."""
    from crewai.llms.base_llm import BaseLLM

    for member in getattr(agent, "agents", None) or [agent]:
        if isinstance(getattr(member, "llm", None), BaseLLM):
            member.llm.stream = True


def kicks_off(obj) -> bool:
    """A Crew, Flow or Agent instance (not a class): what has a kickoff method."""
    return not isinstance(obj, type) and callable(getattr(obj, "kickoff", None))


def flow_class(obj) -> bool:
    """A Flow subclass: the runner makes one instance per run (``start_flow``), in the task's
    process; a warm parent never builds it (CrewAI gives every new Flow a Memory whose LanceDB
    threads would keep the parent from forking)."""
    from crewai import Flow

    return isinstance(obj, type) and issubclass(obj, Flow)


def runnable(obj) -> bool:
    return kicks_off(obj) or flow_class(obj)


def run(runner):
    private_home(runner)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    from crewai import Crew, Flow
    from crewai.events import crewai_event_bus
    from crewai.telemetry import Telemetry

    agent = runner.load_agent(default_factory=default_agent, expect=runnable,
                              what="a crewai Crew, Flow (or Flow class) or Agent")
    # CrewAI's telemetry (when on) installs SIGTERM/SIGINT handlers: a telemetry flush, then SystemExit(0)
    # when no handler was there. Create its singleton now, then put the helper's back (report, exit 143
    # at once), so that a killed run never looks successful.
    Telemetry()
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
    watch(runner, crewai_event_bus)
    stream_llms(agent)  # a Crew's or lone Agent's (a Flow builds its agents in its methods)
    path, earlier = transcript(runner)
    earlier = earlier or runner.history_turns()  # no saved conversation: the caller's (SPEC §13)
    instruction = runner.instruction
    if runner.resume is not None:
        agent, output = resume_flow(runner, agent)
        # The turn is the asking run's instruction (the answering run's may be just "yes").
        instruction = str(agent.state.get("instruction", instruction)) if isinstance(agent.state, dict) else instruction
    elif isinstance(agent, (Crew, Flow)) or flow_class(agent):
        if not isinstance(agent, Crew):
            agent = start_flow(runner, agent)
        scalars = {k: v for k, v in runner.context.items() if isinstance(v, (str, int, float, bool))}
        history = "".join(f"<turn>user: {t['instruction']}\nassistant: {t['output']}</turn>\n" for t in earlier)
        inputs = {**scalars, "instruction": runner.instruction, "history": history, "turn": len(earlier) + 1}
        output = agent.kickoff(inputs=inputs)
    elif earlier:  # a single crewai Agent: the earlier turns as messages
        messages = [m for t in earlier for m in ({"role": "user", "content": t["instruction"]},
                                                 {"role": "assistant", "content": t["output"]})]
        output = agent.kickoff([*messages, {"role": "user", "content": runner.instruction}])
    else:
        output = agent.kickoff(runner.instruction)
    crewai_event_bus.flush()
    if paused(output):
        keep_asked(runner, agent, output)
        runner.interrupt([question(output.context)])
        return None
    text = getattr(output, "raw", output)
    text = runner.final_answer(text if isinstance(text, str) else str(text))
    if path:
        turns = [*earlier, {"instruction": instruction, "output": text}]
        write_session_file(path, json.dumps(turns, ensure_ascii=False).encode())
    return text


# A paused Flow (SPEC §14), kept in the session folder: CrewAI's own SQLite persistence of flows.
FLOW_FILE = "crewai-flows.sqlite"
# What a Flow's @human_feedback method gets as the person's feedback when an approval is approved;
# a rejection gets the person's message (never this word), "reject" without one.
APPROVE = "approve"


def headless_feedback():
    """CrewAI's default feedback provider reads the console (`input()`: EOF fails the run here).
    Unless the deployment set one, the runner's: it pauses the flow instead (CrewAI then returns
    HumanFeedbackPending from kickoff and saves the flow in its persistence)."""
    from crewai.flow import HumanFeedbackPending, flow_config

    class AskLater:
        def request_feedback(self, context, flow):
            raise HumanFeedbackPending(context=context)

    if flow_config.hitl_provider is None:
        flow_config.hitl_provider = AskLater()


def session_flows(runner):
    """CrewAI's SQLite flow persistence in the session folder; a task without a session gets
    the one the worker gives it if it asks, made only now (CrewAI asks for it when a flow
    pauses, or for a ``@persist`` method)."""
    from crewai.flow.persistence import SQLiteFlowPersistence

    folder = runner.state_dir()
    return SQLiteFlowPersistence(os.path.join(folder, FLOW_FILE)) if folder else SQLiteFlowPersistence()


def start_flow(runner, flow):
    """The run's Flow instance (a Flow class named as the entrypoint: a new one), set to pause
    headless, its pauses saved in the session folder unless it has a persistence of its own
    or the deployment registered a default one (``keep_asked`` then copies the pause there)."""
    from crewai.flow.persistence import factory

    headless_feedback()
    # CrewAI's documented process-wide default, read back from its module: a factory the
    # user's code registered wins.
    if factory._factory is None:
        factory.set_flow_persistence_factory(lambda: session_flows(runner))
    return flow() if isinstance(flow, type) else flow


def paused(output) -> bool:
    from crewai.flow import HumanFeedbackPending

    return isinstance(output, HumanFeedbackPending)


def keep_asked(runner, flow, pending):
    """The paused flow (its state and what it asks) in the session folder's SQLite persistence,
    where the answer's run finds it by flow id: CrewAI saved it there, or in the flow's own
    persistence, from which it is moved."""
    from crewai.flow.persistence import SQLiteFlowPersistence

    if not runner.state_dir():
        raise RuntimeError("the flow paused for feedback, and this run has no session folder to keep it in")
    target = runner.session_file(FLOW_FILE)
    own = flow.persistence
    if isinstance(own, SQLiteFlowPersistence) and os.path.realpath(own.db_path) == os.path.realpath(target):
        return
    flow_id = pending.context.flow_id
    saved = own.load_pending_feedback(flow_id) if own is not None else None
    if saved is None:
        raise RuntimeError(f"the flow paused for feedback and its persistence has no pending feedback for {flow_id}")
    state, context = saved
    SQLiteFlowPersistence(target).save_pending_feedback(flow_uuid=flow_id, context=context, state_data=state)
    own.clear_pending_feedback(flow_id)  # one pause, one place: the answer resumes it from the session


def question(context) -> dict:
    """A paused flow as the worker's question: id = the flow id (CrewAI's key of the pause);
    kind ("approval" or "input", else "input"), tool and args from the method's output when it
    is a dict naming them; value = the feedback message, the method and its output."""
    output = context.to_dict()["method_output"]  # as CrewAI saved it (JSON-safe)
    named = output if isinstance(output, dict) else {}
    kind = named.get("kind") if named.get("kind") in ("approval", "input") else "input"
    q = {"id": context.flow_id, "kind": kind,
         "value": {"message": context.message, "method": context.method_name, "output": output}}
    for key in ("tool", "args"):
        if key in named:
            q[key] = named[key]
    return q


def feedback_text(asked: dict, answer) -> str:
    """The person's answer as the feedback text a @human_feedback method gets: an approval
    ``APPROVE``, a rejection its message (or "reject"); an input answer as is, or as JSON."""
    if asked.get("kind") == "approval" and isinstance(answer, dict):
        if answer.get("approved") is True:
            return APPROVE
        message = str(answer.get("message") or "").strip() or "reject"
        return f"rejected: {message}" if message.lower() == APPROVE else message
    return answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)


def resume_flow(runner, agent):
    """The paused flow of the asking run, read back from the session folder (nothing has run
    yet: any failure is ``resume_state_invalid`` and the question stays open), resumed with the
    answer: CrewAI runs the listeners of the method that asked; that method does not run again."""
    from crewai import Flow
    from crewai.flow.persistence import SQLiteFlowPersistence

    asked = (runner.resume.get("interrupts") or [{}])[0]
    flow_id = asked.get("id")
    path = runner.session_file(FLOW_FILE)
    with runner.saved_state(path):
        if not (isinstance(agent, Flow) or flow_class(agent)):
            raise ValueError(f"the entrypoint is {describe(agent)} now, not the Flow that asked")
        check_sqlite(path)
        cls = agent if flow_class(agent) else type(agent)
        flow = cls.from_pending(flow_id, SQLiteFlowPersistence(path))
        # Another Flow class would run listeners of its own after a method of the asking one.
        paused_in = flow.pending_feedback.flow_class
        if paused_in != f"{cls.__module__}.{cls.__name__}":
            raise ValueError(f"the flow that asked is {paused_in}, the entrypoint is {cls.__module__}.{cls.__name__} now")
    headless_feedback()  # a flow that asks again pauses again (saved in the same file)
    return flow, flow.resume(feedback_text(asked, runner.answer(flow_id)))


def transcript(runner):
    """CrewAI has no conversation object of its own: in a session, the runner keeps the turns
    (instruction and final answer each) in the session folder and offers them to the crew as the
    `history` and `turn` inputs (a lone Agent gets them as earlier messages)."""
    path = runner.session_file("crewai-conversation.json")
    if not path:
        return None, []
    turns = read_session_json(path, json.loads) or []
    if not isinstance(turns, list) or not all(
        isinstance(t, dict) and isinstance(t.get("instruction"), str) and isinstance(t.get("output"), str)
        for t in turns
    ):
        raise SessionError(f"the session file {path} is corrupt: expected a list of {{instruction, output}} turns")
    return path, turns


if __name__ == "__main__":
    main("crewai", run)
