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
