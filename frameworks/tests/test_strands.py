"""Runner contract tests for frameworks/strands (shared tests in conftest.py), plus Strands specifics."""

from conftest import FrameworkContract, run_framework, write_module


class TestStrands(FrameworkContract):
    framework = "strands"

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
