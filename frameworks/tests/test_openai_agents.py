"""Runner contract tests for frameworks/openai-agents (shared tests in conftest.py), plus SDK specifics."""

import json
import subprocess

import pytest
from conftest import (AUDIT_SITECUSTOMIZE, FRAMEWORKS, FrameworkContract, framework_command, framework_env,
                      run_framework, start_framework, write_module)
from live_contract import OpenAIClientContract


class TestOpenaiAgents(FrameworkContract, OpenAIClientContract):
    framework = "openai-agents"

    def start_live_agent(self, tmp_path, server):
        """The SDK's own Chat Completions model on the openai client."""
        app = tmp_path / "app"
        write_module(app, "live_agent", f"""
            from agents import Agent, OpenAIChatCompletionsModel
            from openai import AsyncOpenAI

            client = AsyncOpenAI(base_url={server.url!r}, api_key="sk-test-not-a-key", max_retries=0)
            agent = Agent(name="live", model=OpenAIChatCompletionsModel(model="live-model", openai_client=client))
        """)
        return start_framework(self.framework, tmp_path, input={"entrypoint": "live_agent:agent"},
                               env={"AGENTDISPATCH_APP_DIR": str(app)})

    def test_every_step_in_order(self, tmp_path):
        run = run_framework(self.framework, tmp_path)
        assert [p["step"] for _, p in run.steps()] == [
            "model_turn", "tool_call", "tool_result", "model_turn", "final_answer"], run.describe()
        assert run.steps("model_turn")[0][1]["toolCalls"] == ["shout"]
        assert run.steps("final_answer")[0][1]["agent"] == "shouter"

    def test_stays_offline_with_an_api_key_set(self, tmp_path):
        # With a key, the SDK's tracing exports to the OpenAI API. This user agent does not call
        # set_tracing_disabled (the example does): the runner's environment must turn it off.
        app, hook_dir, log = tmp_path / "app", tmp_path / "audit", tmp_path / "audit.log"
        write_module(app, "plain_agent", """
            from agents import Agent, function_tool
            from agents.testing import ScriptedModel, assistant_message, function_call

            @function_tool
            def shout(text: str) -> str:
                return text.upper()

            model = ScriptedModel([[function_call("shout", {"text": "hello world"}, call_id="c1")],
                                   [assistant_message("Shouted: HELLO WORLD")]])
            agent = Agent(name="plain", model=model, tools=[shout])
        """)
        write_module(hook_dir, "sitecustomize", AUDIT_SITECUSTOMIZE)
        run = run_framework(self.framework, tmp_path, input={"entrypoint": "plain_agent:agent"}, env={
            "AGENTDISPATCH_APP_DIR": str(app), "PYTHONPATH": str(hook_dir), "AGENTDISPATCH_AUDIT_LOG": str(log),
            "OPENAI_API_KEY": "sk-test-not-a-key"}, cold=True)  # the hook loads at start-up
        assert run.returncode == 0, run.describe()
        assert run.results[0][1]["output"] == "Shouted: HELLO WORLD", run.describe()
        assert log.read_text().splitlines()[1:] == [], log.read_text()


CONTEXT_AGENT = """
    from agents import Agent, RunContextWrapper, function_tool
    from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call

    @function_tool(needs_approval=True)
    def who(ctx: RunContextWrapper) -> str:
        return str(ctx.context.get("user"))

    def respond(call):
        outputs = [i["output"] for i in call.input if isinstance(i, dict) and i.get("type") == "function_call_output"]
        return [assistant_message("user=" + outputs[-1])] if outputs else [function_call("who", {}, call_id="c1")]

    model = ScriptedModel([ModelStep.respond(respond), ModelStep.respond(respond)])
    agent = Agent(name="ctx", model=model, tools=[who])
"""


def _envelope_run(tmp_path, app, envelope):
    """One cold run of the runner on a whole envelope of the test's own (a session, a resume)."""
    env = framework_env("openai-agents", tmp_path, {"AGENTDISPATCH_APP_DIR": str(app),
                                                    "AGENTDISPATCH_ENTRYPOINT": "ctx_agent:agent"})
    proc = subprocess.run(framework_command("openai-agents"), cwd=FRAMEWORKS / "openai-agents", env=env,
                          input=json.dumps(envelope) + "\n", capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]  # (conftest's parse_lines knows no task.interrupt)
    return [e for e in events if e["type"] in ("task.interrupt", "task.result")]


@pytest.mark.parametrize(("answering", "seen"), [({}, "user=alice"), ({"user": "bob"}, "user=bob")])
def test_a_resumed_run_has_the_answering_context_else_the_asking_one(tmp_path, answering, seen):
    app, folder = tmp_path / "app", tmp_path / "session"
    write_module(app, "ctx_agent", CONTEXT_AGENT)
    folder.mkdir()
    base = {"framework": "openai-agents", "instruction": "who", "sessionId": "s", "sessionDir": str(folder)}
    asked = _envelope_run(tmp_path, app, {**base, "taskId": "t1", "context": {"user": "alice"}})
    assert [e["type"] for e in asked] == ["task.interrupt"], asked
    assert asked[0]["payload"]["interrupts"][0]["id"] == "c1"
    resume = {"taskId": "t1", "interrupts": asked[0]["payload"]["interrupts"], "answers": {"c1": {"approved": True}}}
    done = _envelope_run(tmp_path, app, {**base, "taskId": "t2", "context": answering, "resume": resume})
    assert done[-1]["output"] == seen, done
