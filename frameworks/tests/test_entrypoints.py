"""The helper's entrypoint rules with plain python3: which entrypoint a task runs (a payload's only
when the worker allowed it) and what a runner calls (the framework's agent, or a factory of the
user's own: agentdispatch/entrypoint.py)."""

import sys

import pytest

import agentdispatch as adr
from conftest import write_module


class Agent:
    """Stands for a framework's agent type (its modules in the ``app`` fixture's folder import it
    as ``from test_entrypoints import Agent``)."""


WHAT = "a test.Agent"


def load(spec, monkeypatch, offered=None):
    monkeypatch.setenv("AGENTDISPATCH_PAYLOAD_ENTRYPOINT", spec)
    runner = adr.Runner({"input": {"entrypoint": spec}}, "test", emit=lambda _e: None)
    return runner.load_agent(expect=Agent, what=WHAT, offered=offered)


def test_a_payload_entrypoint_needs_the_workers_approval(app, monkeypatch, tmp_path):
    marker = tmp_path / "imported"
    write_module(app, "ep_unapproved", f"open({str(marker)!r}, 'w').close()\nagent = 1\n")
    for approved in (None, "", "ep_unapproved:other"):
        if approved is None:
            monkeypatch.delenv("AGENTDISPATCH_PAYLOAD_ENTRYPOINT", raising=False)
        else:
            monkeypatch.setenv("AGENTDISPATCH_PAYLOAD_ENTRYPOINT", approved)
        runner = adr.Runner({"input": {"entrypoint": "ep_unapproved:agent"}}, "test", emit=lambda _e: None)
        with pytest.raises(adr.EntrypointError, match="was not allowed by the worker.*ALLOWLIST"):
            runner.load_agent()
    assert not marker.exists(), "an unapproved entrypoint was imported"
    # The deployment's own entrypoint needs no approval.
    monkeypatch.setenv("AGENTDISPATCH_ENTRYPOINT", "ep_unapproved:agent")
    assert adr.Runner({}, "test", emit=lambda _e: None).load_agent() == 1


def test_an_agent_is_returned_and_a_factory_of_your_own_is_called(app, monkeypatch):
    write_module(app, "ep_own", """
        from test_entrypoints import Agent
        agent = Agent()
        def build():
            return agent
        def with_session(session_manager=None):
            return Agent() if session_manager == "m" else None
        def anything(**kwargs):
            return Agent() if kwargs == {"session_manager": "m"} else None
    """)
    assert isinstance(load("ep_own:agent", monkeypatch), Agent)
    assert load("ep_own:build", monkeypatch) is sys.modules["ep_own"].agent
    # Offered keyword arguments go to a factory that names them (or takes **kwargs) …
    assert isinstance(load("ep_own:with_session", monkeypatch, {"session_manager": "m"}), Agent)
    assert isinstance(load("ep_own:anything", monkeypatch, {"session_manager": "m"}), Agent)
    # … and not to one that does not.
    assert load("ep_own:build", monkeypatch, {"session_manager": "m"}) is sys.modules["ep_own"].agent


def test_a_factory_returning_something_else_says_what(app, monkeypatch):
    write_module(app, "ep_wrong", "def build():\n    return 42\ndef nothing():\n    pass\n")
    with pytest.raises(adr.EntrypointError) as exc:
        load("ep_wrong:build", monkeypatch)
    assert str(exc.value) == ("entrypoint 'ep_wrong:build' is a function returning an int, "
                              "expected a test.Agent or a factory returning one")
    with pytest.raises(adr.EntrypointError, match="is a function returning None, expected a test.Agent"):
        load("ep_wrong:nothing", monkeypatch)


def test_a_function_from_outside_your_code_is_not_called(app, monkeypatch, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    marker = tmp_path / "called"
    write_module(elsewhere, "ep_library", f"def build():\n    open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(elsewhere))
    with pytest.raises(adr.EntrypointError, match="is the function ep_library.build from outside your code"):
        load("ep_library:build", monkeypatch)
    assert not marker.exists(), "the function was called"
    # Re-exported from your own module, it is still the library's function.
    write_module(app, "ep_reexport", "from ep_library import build\n")
    with pytest.raises(adr.EntrypointError, match="from outside your code"):
        load("ep_reexport:build", monkeypatch)
    assert not marker.exists(), "the function was called"


def test_standard_library_callables_are_never_called(app, monkeypatch, capfd):
    # Pure-Python functions of the standard library, a builtin, a class.
    for spec, words in [("getpass:getuser", "is the function getpass.getuser from outside your code"),
                        ("os:getcwd", "is a builtin function or method, expected a test.Agent"),
                        ("collections:OrderedDict", "is the class collections.OrderedDict, expected")]:
        with pytest.raises(adr.EntrypointError, match=words):
            load(spec, monkeypatch)
    if sys.version_info < (3, 13):  # cgi is gone from 3.13
        with pytest.warns(DeprecationWarning):
            with pytest.raises(adr.EntrypointError, match="cgi.print_environ from outside your code"):
                load("cgi:print_environ", monkeypatch)
    out, err = capfd.readouterr()
    assert "PATH" not in out + err, "print_environ ran"


def test_factories_with_required_arguments_or_async_are_refused(app, monkeypatch):
    write_module(app, "ep_shapes", """
        def needs(model):
            raise AssertionError("called")
        async def later():
            raise AssertionError("called")
    """)
    with pytest.raises(adr.EntrypointError, match="a function with required arguments"):
        load("ep_shapes:needs", monkeypatch, {"session_manager": "m"})
    with pytest.raises(adr.EntrypointError, match="an async or generator function"):
        load("ep_shapes:later", monkeypatch)


def test_an_explicit_factory_is_called_with_no_arguments(app, monkeypatch, tmp_path):
    # `module:attr()` (SPEC §6): the deployment says "call it"; a class of your own counts too.
    write_module(app, "ep_explicit", """
        from test_entrypoints import Agent
        class MyAgent(Agent):
            pass
        def make():
            return MyAgent()
        def needs(model):
            raise AssertionError("called")
        def wrong():
            return 42
        made = MyAgent()
    """)
    assert type(load("ep_explicit:make()", monkeypatch)).__name__ == "MyAgent"
    assert type(load("ep_explicit:MyAgent()", monkeypatch)).__name__ == "MyAgent"
    with pytest.raises(adr.EntrypointError, match="cannot be called with no arguments"):
        load("ep_explicit:needs()", monkeypatch)
    with pytest.raises(adr.EntrypointError, match=r"'ep_explicit:wrong\(\)' returned an int, expected a test.Agent"):
        load("ep_explicit:wrong()", monkeypatch)
    with pytest.raises(adr.EntrypointError, match="calls a function or class"):
        load("ep_explicit:made()", monkeypatch)
    # Still never anything from outside your code, a class of the standard library included.
    elsewhere = tmp_path / "elsewhere"
    marker = tmp_path / "called"
    write_module(elsewhere, "ep_lib2", f"def build():\n    open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(elsewhere))
    for spec in ("ep_lib2:build()", "collections:OrderedDict()", "getpass:getuser()"):
        with pytest.raises(adr.EntrypointError, match="from outside your code"):
            load(spec, monkeypatch)
    assert not marker.exists(), "the function was called"


def test_final_answer_is_the_last_step_and_the_output():
    events = []
    runner = adr.Runner({}, "test", emit=events.append)
    assert runner.final_answer("done", stopReason="end") == "done"
    assert runner.final_answer({"text": "from a dict"}) == "from a dict"
    assert [e["payload"] for e in events] == [
        {"step": "final_answer", "text": "done", "stopReason": "end"},
        {"step": "final_answer", "text": "from a dict"},
    ]
