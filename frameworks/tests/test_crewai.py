"""Runner contract tests for frameworks/crewai (shared tests in conftest.py), plus CrewAI specifics."""

import json
import signal
import time

from conftest import FrameworkContract, group_members, is_step, kill_group, parse_events, run_framework, \
    start_framework, write_module
from live_contract import OpenAIClientContract


class TestCrewai(FrameworkContract, OpenAIClientContract):
    framework = "crewai"

    def start_live_agent(self, tmp_path, server):
        """A crew on CrewAI's own OpenAI provider (LLM("openai/…"), the openai client). Its LLM is
        not set to stream: the runner turns streaming on, as Crew(stream=True) does."""
        app = tmp_path / "app"
        write_module(app, "live_crew", f"""
            from crewai import LLM, Agent, Crew, Task

            llm = LLM(model="openai/live-model", base_url={server.url!r}, api_key="sk-test-not-a-key")
            writer = Agent(role="Writer", goal="Answer", backstory="Brief.", llm=llm)
            agent = Crew(agents=[writer], tasks=[Task(description="{{instruction}}", expected_output="text",
                                                      agent=writer)])
        """)
        return start_framework(self.framework, tmp_path, input={"entrypoint": "live_crew:agent"},
                               env={"AGENTDISPATCH_APP_DIR": str(app)})

    def test_every_step_in_order(self, tmp_path):
        run = run_framework(self.framework, tmp_path)
        assert [p["step"] for _, p in run.steps()] == [
            "model_turn", "tool_call", "tool_result", "model_turn", "final_answer"], run.describe()
        assert run.steps("model_turn")[0][1]["toolCalls"] == ["shout"]

    def test_a_lone_agent_entrypoint_runs_on_the_instruction(self, tmp_path):
        run = run_framework(self.framework, tmp_path, input={"entrypoint": "example_agent:shouter"})
        assert run.returncode == 0, run.describe()
        assert run.results[0][1]["output"] == "Shouted: HELLO WORLD", run.describe()

    def check_cold_run(self, run, tmp_path, home):
        # It writes under the task folder, not $HOME. Cold: crewai makes its storage folder as it
        # is imported (from CREWAI_STORAGE_DIR, which the runner sets first), and a warm parent has
        # imported it before any task.
        assert list(home.iterdir()) == [], "crewai wrote into $HOME"
        assert (tmp_path / "task" / "crewai" / "storage").is_dir(), run.describe()

    def test_import_time_storage_paths_are_the_tasks_own(self, tmp_path):
        # CrewAI computes its RAG stores' paths once, at import: forked from a warm parent, a task
        # would find the parent's $HOME in them (one store for every task, outside its folder).
        app = tmp_path / "app"
        write_module(app, "storage_probe", """
            import json, os, sys
            from example_agent import agent

            names = ("crewai.rag.chromadb.constants", "crewai.rag.chromadb.config")
            paths = {n: getattr(sys.modules.get(n), "DEFAULT_STORAGE_PATH", None) for n in names}
            with open(os.path.join(os.environ["AGENTDISPATCH_TASK_DIR"], "paths.json"), "w") as f:
                json.dump(paths, f)
        """)
        run = run_framework(self.framework, tmp_path, input={"entrypoint": "storage_probe:agent"},
                            env={"AGENTDISPATCH_APP_DIR": str(app)})
        assert run.returncode == 0, run.describe()
        paths = json.loads((tmp_path / "task" / "paths.json").read_text())
        for name, path in paths.items():
            assert path and path.startswith(str(tmp_path / "task" / "crewai")), (name, paths)

    def test_killed_run_never_reports_success(self, tmp_path):
        # CrewAI's telemetry installs SIGTERM handlers that raise SystemExit(0) once the tool
        # returns. This agent installs the same kind of handler at import (offline, without
        # turning telemetry on): the runner must keep its own, exit 143 at once, no result.
        app = tmp_path / "app"
        write_module(app, "exit_zero_agent", """
            import signal, sys
            from example_agent import agent

            def _exit_zero(signum, frame):
                sys.exit(0)

            signal.signal(signal.SIGTERM, _exit_zero)
        """)
        proc = start_framework(self.framework, tmp_path, "please be slow",
                               input={"entrypoint": "exit_zero_agent:agent"}, env={"AGENTDISPATCH_APP_DIR": str(app)})
        try:
            deadline, line = time.monotonic() + 120, ""
            while not is_step(line, "tool_call") and time.monotonic() < deadline:
                line = proc.stdout.readline()
                assert line, f"ended before the tool call: {proc.stderr.read()[-2000:]}"
            time.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
            events = parse_events(proc.stdout.read())
            assert proc.returncode == 143, proc.returncode
            assert not [e for e in events if e["type"] == "task.result"], events
            assert group_members(proc.pid) == []
        finally:
            kill_group(proc.pid)
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def crewai_runner_module():
    """frameworks/crewai/runner.py as a module (it imports crewai only inside its functions)."""
    import importlib.util

    from conftest import FRAMEWORKS

    spec = importlib.util.spec_from_file_location("crewai_runner", FRAMEWORKS / "crewai" / "runner.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_answer_reaches_a_flow_as_feedback_text_and_a_rejection_never_reads_as_approval():
    runner = crewai_runner_module()
    approval = {"id": "f-1", "kind": "approval"}
    assert runner.feedback_text(approval, {"approved": True}) == "approve"
    assert runner.feedback_text(approval, {"approved": False, "message": "over the limit"}) == "over the limit"
    assert runner.feedback_text(approval, {"approved": False}) == "reject"
    # A flow approves on the word "approve": a person's rejection that says it stays a rejection.
    assert runner.feedback_text(approval, {"approved": False, "message": " Approve "}) == "rejected: Approve"
    question = {"id": "f-1", "kind": "input"}
    assert runner.feedback_text(question, "shorter, please") == "shorter, please"
    assert runner.feedback_text(question, {"tone": "dry"}) == '{"tone": "dry"}'


def test_a_paused_flow_is_asked_under_its_flow_id_with_what_its_method_proposed():
    runner = crewai_runner_module()

    class Context:  # the fields of crewai's PendingFeedbackContext the runner reads
        flow_id, message, method_name = "f-1", "Approve this refund?", "propose_refund"

        def __init__(self, output):
            self.output = output

        def to_dict(self):
            return {"method_output": self.output}

    proposal = {"kind": "approval", "tool": "refund", "args": {"text": "refund 5"}}
    assert runner.question(Context(proposal)) == {
        "id": "f-1", "kind": "approval", "tool": "refund", "args": {"text": "refund 5"},
        "value": {"message": "Approve this refund?", "method": "propose_refund", "output": proposal}}
    asked = runner.question(Context("a draft to review"))
    assert asked["kind"] == "input" and "tool" not in asked and asked["value"]["output"] == "a draft to review"
