"""Runner contract tests for frameworks/langchain (fixtures and tests in conftest.py)."""

from conftest import ALL_STEPS, FrameworkContract, run_framework, start_framework, write_module
from live_contract import THINKING_MODEL, OpenAIClientContract, check_thinking_run


class TestLangchain(FrameworkContract, OpenAIClientContract):
    framework = "langchain"
    expected_steps = ALL_STEPS

    def start_live_agent(self, tmp_path, server):
        """An agent on langchain-openai's ChatOpenAI (the openai client), not set to stream."""
        app = tmp_path / "app"
        write_module(app, "live_agent", f"""
            from langchain.agents import create_agent
            from langchain_openai import ChatOpenAI

            model = ChatOpenAI(model="live-model", base_url={server.url!r}, api_key="sk-test-not-a-key",
                               max_retries=0)
            agent = create_agent(model, tools=[])
        """)
        return start_framework(self.framework, tmp_path, input={"entrypoint": "live_agent:agent"},
                               env={"AGENTDISPATCH_APP_DIR": str(app)})

    def test_a_models_reasoning_streams_as_reasoning_deltas(self, tmp_path):
        app = tmp_path / "app"
        write_module(app, "thinking_agent", THINKING_MODEL + """
from langchain.agents import create_agent

agent = create_agent(ThinkingModel(), tools=[])
""")
        check_thinking_run(run_framework(self.framework, tmp_path, input={"entrypoint": "thinking_agent:agent"},
                                         env={"AGENTDISPATCH_APP_DIR": str(app)}))
