"""Runner contract tests for frameworks/langgraph (fixtures and tests in conftest.py)."""

from conftest import ALL_STEPS, FrameworkContract, run_framework, start_framework, write_module
from live_contract import THINKING_MODEL, OpenAIClientContract, check_thinking_run

WRITER_AGENT = """
from langgraph.config import get_stream_writer
from langgraph.graph import START, MessagesState, StateGraph


def node(state: MessagesState):
    get_stream_writer()({"stage": "halfway", "n": 1})
    return {"messages": [{"role": "ai", "content": "done"}]}


builder = StateGraph(MessagesState)
builder.add_node("node", node)
builder.add_edge(START, "node")
agent = builder.compile()
"""


class TestLanggraph(FrameworkContract, OpenAIClientContract):
    framework = "langgraph"
    expected_steps = ALL_STEPS

    def start_live_agent(self, tmp_path, server):
        """A graph whose node calls langchain-openai's ChatOpenAI with invoke (not stream)."""
        app = tmp_path / "app"
        write_module(app, "live_graph", f"""
            from langchain_openai import ChatOpenAI
            from langgraph.graph import START, MessagesState, StateGraph

            model = ChatOpenAI(model="live-model", base_url={server.url!r}, api_key="sk-test-not-a-key",
                               max_retries=0)
            builder = StateGraph(MessagesState)
            builder.add_node("model", lambda state: {{"messages": [model.invoke(state["messages"])]}})
            builder.add_edge(START, "model")
            agent = builder.compile()
        """)
        return start_framework(self.framework, tmp_path, input={"entrypoint": "live_graph:agent"},
                               env={"AGENTDISPATCH_APP_DIR": str(app)})

    def test_custom_stream_data_becomes_progress_only_when_asked(self, tmp_path):
        # AGENTDISPATCH_LANGGRAPH_CUSTOM=1 adds LangGraph's "custom" stream mode: what a node
        # writes with get_stream_writer() arrives as a progress event before the result; without
        # it the same graph runs the same, and no such event is sent.
        app = tmp_path / "app"
        write_module(app, "writer_agent", WRITER_AGENT)
        for asked in (True, False):
            env = {"AGENTDISPATCH_APP_DIR": str(app)}
            if asked:
                env["AGENTDISPATCH_LANGGRAPH_CUSTOM"] = "1"
            run = run_framework(self.framework, tmp_path, input={"entrypoint": "writer_agent:agent"}, env=env)
            assert run.returncode == 0, run.describe()
            assert run.results[0][1]["output"] == "done", run.describe()
            custom = [(i, e) for i, e in enumerate(run.events)
                      if e["type"] == "task.progress" and e.get("message") == "custom"]
            if asked:
                assert [e["payload"] for _, e in custom] == [{"stage": "halfway", "n": 1}], run.describe()
                assert custom[0][0] < run.results[0][0]
            else:
                assert custom == [], run.describe()

    def test_a_models_reasoning_streams_as_reasoning_deltas(self, tmp_path):
        app = tmp_path / "app"
        write_module(app, "thinking_graph", THINKING_MODEL + """
from langgraph.graph import START, MessagesState, StateGraph

builder = StateGraph(MessagesState)
builder.add_node("model", lambda state: {"messages": [ThinkingModel().invoke(state["messages"])]})
builder.add_edge(START, "model")
agent = builder.compile()
""")
        check_thinking_run(run_framework(self.framework, tmp_path, input={"entrypoint": "thinking_graph:agent"},
                                         env={"AGENTDISPATCH_APP_DIR": str(app)}))
