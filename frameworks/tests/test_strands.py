"""Runner contract tests for frameworks/strands (shared tests in conftest.py), plus Strands specifics."""

from conftest import FrameworkContract, run_framework, start_framework, write_module
from live_contract import OpenAIClientContract


class TestStrands(FrameworkContract, OpenAIClientContract):
    framework = "strands"

    def start_live_agent(self, tmp_path, server):
        """An agent on Strands' own OpenAI model provider (the openai client)."""
        app = tmp_path / "app"
        write_module(app, "live_agent", f"""
            from strands import Agent
            from strands.models.openai import OpenAIModel

            model = OpenAIModel(client_args={{"base_url": {server.url!r}, "api_key": "sk-test-not-a-key",
                                              "max_retries": 0}}, model_id="live-model")
            agent = Agent(model=model)
        """)
        return start_framework(self.framework, tmp_path, input={"entrypoint": "live_agent:agent"},
                               env={"AGENTDISPATCH_APP_DIR": str(app)})

    def test_every_step_in_order(self, tmp_path):
        run = run_framework(self.framework, tmp_path)
        assert [p["step"] for _, p in run.steps()] == [
            "model_turn", "tool_call", "tool_result", "model_turn", "final_answer"], run.describe()
        assert run.steps("model_turn")[0][1]["toolCalls"] == ["shout"]
        assert run.steps("final_answer")[0][1] == {
            "step": "final_answer", "text": "Shouted: HELLO WORLD", "stopReason": "end_turn",
            "messageId": run.steps("model_turn")[-1][1]["messageId"]}

    def test_default_printing_callback_handler_never_reaches_the_protocol(self, tmp_path):
        # A user agent that keeps Strands' default PrintingCallbackHandler (prints to stdout).
        app = tmp_path / "app"
        write_module(app, "printing_agent", """
            from strands import Agent
            import example_agent  # the runner's folder is on sys.path (the script directory)
            agent = Agent(model=example_agent.ScriptedModel(), tools=[example_agent.shout])
        """)
        run = run_framework(self.framework, tmp_path, input={"entrypoint": "printing_agent:agent"},
                            env={"AGENTDISPATCH_APP_DIR": str(app)})
        assert run.returncode == 0, run.describe()  # run_framework already checked every stdout line is JSON
        assert run.results[0][1]["output"] == "Shouted: HELLO WORLD"
        assert "Shouted: HELLO WORLD" in run.stderr  # the handler's print went to stderr
