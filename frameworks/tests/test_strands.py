"""Runner contract tests for frameworks/strands (shared tests in conftest.py), plus Strands specifics."""

import json
import subprocess

from conftest import (FRAMEWORKS, FrameworkContract, framework_command, framework_env, run_framework, start_framework,
                      write_module)
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


def run_envelope(tmp_path, body: dict, env: dict) -> list[dict]:
    """The strands runner, cold, on one envelope of the worker's (with its session or spare session
    and its resume): its protocol events."""
    task_dir = tmp_path / f"task-{body['taskId']}"
    task_dir.mkdir()
    body = {"taskType": "agent.run", "framework": "strands", "taskDir": str(task_dir), **body}
    proc = subprocess.run(framework_command("strands"), cwd=FRAMEWORKS / "strands", input=json.dumps(body) + "\n",
                          env=framework_env("strands", task_dir, env), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    # Not conftest.parse_lines: its event types do not know task.interrupt yet.
    return [e for e in map(json.loads, proc.stdout.splitlines()) if e["type"] != "task.delta"]


def test_a_tool_that_asks_for_input_without_a_session_is_answered_in_the_session_it_was_given(tmp_path):
    """Not the example's hook: a `@tool(context=True)` that calls `tool_context.interrupt`, with a
    reason naming an input question, on an agent with its own agent_id, asked without a session."""
    app = tmp_path / "app"
    write_module(app, "picker", """
        from strands import Agent, ToolContext, tool
        import example_agent

        @tool(context=True)
        def pick(text: str, tool_context: ToolContext) -> str:
            \"\"\"Asks which account.\"\"\"
            account = tool_context.interrupt("which-account", reason={"kind": "input", "question": "which account?"})
            return f"picked {account} for {text}"

        agent = Agent(model=example_agent.ScriptedModel(tool="pick"), tools=[pick], agent_id="picker",
                      callback_handler=None)
    """)
    env = {"AGENTDISPATCH_APP_DIR": str(app), "AGENTDISPATCH_ENTRYPOINT": "picker:agent"}
    folder = tmp_path / "sessions" / "spare"  # the worker's spare session: made only when the task asks
    events = run_envelope(tmp_path, {"taskId": "t1", "instruction": "order 7",
                                     "askSession": {"sessionId": "spare", "sessionDir": str(folder)}}, env)
    asked = [e for e in events if e["type"] == "task.interrupt"]
    assert not [e for e in events if e["type"] == "task.result"], events
    [question] = asked[0]["payload"]["interrupts"]
    assert question["id"].startswith("v1:tool_call:"), question  # Strands' own id
    assert question["kind"] == "input" and question["value"]["question"] == "which account?", question
    assert (question["tool"], question["args"]) == ("pick", {"text": "order 7"}), question
    saved = json.loads((folder / "session_spare/agents/agent_picker/agent.json").read_text())
    assert saved["_internal_state"]["interrupt_state"]["activated"] is True

    events = run_envelope(tmp_path, {"taskId": "t2", "instruction": "order 7", "sessionId": "spare",
                                     "sessionDir": str(folder),
                                     "resume": {"taskId": "t1", "interrupts": [question],
                                                "answers": {question["id"]: "savings"}}}, env)
    [result] = [e for e in events if e["type"] == "task.result"]
    assert result["output"] == "Shouted: picked savings for order 7", events
    # The resumed run streamed no toolUse message of its own: the tool's name came from the saved one.
    [(_, step)] = [(e, e["payload"]) for e in events if e.get("payload", {}).get("step") == "tool_result"]
    assert step["tool"] == "pick", events
