"""Runner contract tests for frameworks/pydantic-ai (fixtures and tests in conftest.py)."""

from conftest import ALL_STEPS, FrameworkContract, start_framework, write_module
from live_contract import OpenAIClientContract


class TestPydanticAi(FrameworkContract, OpenAIClientContract):
    framework = "pydantic-ai"
    expected_steps = ALL_STEPS

    def start_live_agent(self, tmp_path, server):
        """An agent on Pydantic AI's own OpenAI chat model and provider (the openai client)."""
        app = tmp_path / "app"
        write_module(app, "live_agent", f"""
            from openai import AsyncOpenAI
            from pydantic_ai import Agent
            from pydantic_ai.models.openai import OpenAIChatModel
            from pydantic_ai.providers.openai import OpenAIProvider

            client = AsyncOpenAI(base_url={server.url!r}, api_key="sk-test-not-a-key", max_retries=0)
            agent = Agent(OpenAIChatModel("live-model", provider=OpenAIProvider(openai_client=client)))
        """)
        return start_framework(self.framework, tmp_path, input={"entrypoint": "live_agent:agent"},
                               env={"AGENTDISPATCH_APP_DIR": str(app)})
