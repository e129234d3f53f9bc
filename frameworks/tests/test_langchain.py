"""Runner contract tests for frameworks/langchain (fixtures and tests in conftest.py)."""

from conftest import ALL_STEPS, FrameworkContract, run_framework, write_module
from live_contract import THINKING_MODEL, check_thinking_run


class TestLangchain(FrameworkContract):
    framework = "langchain"
    expected_steps = ALL_STEPS

    def test_a_models_reasoning_streams_as_reasoning_deltas(self, tmp_path):
        app = tmp_path / "app"
        write_module(app, "thinking_agent", THINKING_MODEL + """
from langchain.agents import create_agent

agent = create_agent(ThinkingModel(), tools=[])
""")
        check_thinking_run(run_framework(self.framework, tmp_path, input={"entrypoint": "thinking_agent:agent"},
                                         env={"AGENTDISPATCH_APP_DIR": str(app)}))
