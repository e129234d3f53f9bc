"""The request a task serves (agentdispatch/request.py, SPEC §12): ``runner.request``,
``current_request()``, the factory's ``payload`` and ``context``, and AWS's
``BedrockAgentCoreContext`` set as its own server sets it (with the real SDK, from the venv of
``scripts/setup-clients.sh agentcore``)."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import agentdispatch as adr
from agentdispatch import request as req
from conftest import SHARED, parse_events, run_plain_runner, write_module

ENVELOPE_REQUEST = {
    "sessionId": "s-1",
    "requestId": "r-1",
    "userId": "u-1",
    "headers": {
        "authorization": "Bearer authsecret",
        "workloadaccesstoken": "watsecret",
        "x-amzn-bedrock-agentcore-runtime-custom-tenant": "t-1",
        "x-amzn-trace-id": "Root=1-abc",
        "user-agent": "curl/8",
    },
    "workloadAccessToken": "watsecret",
    "oauth2CallbackUrl": "https://cb.example/x",
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "baggage": "aws.tenant.id=t-1",
}


def runner_for(request=None, **envelope):
    envelope.setdefault("instruction", "hi")
    if request is not None:
        envelope["request"] = request
    return adr.Runner(envelope, "test", emit=lambda _e: None)


def test_runner_request_holds_the_envelopes_request():
    r = runner_for(ENVELOPE_REQUEST).request
    assert (r.session_id, r.request_id, r.user_id) == ("s-1", "r-1", "u-1")
    assert r.workload_access_token == "watsecret"
    assert r.oauth2_callback_url == "https://cb.example/x"
    assert r.traceparent.startswith("00-0af7") and r.tracestate is None and r.baggage == "aws.tenant.id=t-1"
    assert r.header("X-Amzn-Bedrock-AgentCore-Runtime-Custom-Tenant") == "t-1"
    assert r.header("missing", "d") == "d"


def test_without_a_request_the_ids_come_from_the_envelope():
    r = runner_for(None, sessionId="s-9", requestId="r-9").request
    assert (r.session_id, r.request_id, r.headers, r.workload_access_token) == ("s-9", "r-9", {}, None)
    # Malformed values are dropped, not trusted.
    r = runner_for({"headers": ["x"], "workloadAccessToken": 5, "sessionId": ""}).request
    assert (r.headers, r.workload_access_token, r.session_id) == ({}, None, None)


def test_repr_names_no_secret():
    shown = repr(runner_for(ENVELOPE_REQUEST).request)
    assert "authsecret" not in shown and "watsecret" not in shown
    assert "authorization" in shown and "<set>" in shown


def test_request_headers_are_filtered_as_aws_server_filters_them():
    headers = runner_for(ENVELOPE_REQUEST).request.request_headers
    assert headers["Authorization"] == "Bearer authsecret"
    assert headers["x-amzn-bedrock-agentcore-runtime-custom-tenant"] == "t-1"
    assert "x-amzn-trace-id" not in headers  # AgentCore's own x-amzn- headers are not forwarded


def test_install_makes_it_the_current_request(monkeypatch):
    monkeypatch.setattr(req, "_current", None)
    assert adr.current_request() is None
    r = runner_for(ENVELOPE_REQUEST).request
    req.install(r)
    assert adr.current_request() is r


def test_a_factory_gets_payload_and_context_when_it_names_them(app, monkeypatch):
    write_module(app, "ep_ctx", """
        seen = {}
        class Agent:
            pass
        def named(payload, context):
            seen["named"] = (payload, context)
            return Agent()
        def kw(**kwargs):
            seen["kw"] = kwargs
            return Agent()
    """)
    for spec in ("ep_ctx:named", "ep_ctx:kw"):
        monkeypatch.setenv("AGENTDISPATCH_ENTRYPOINT", spec)
        r = runner_for(ENVELOPE_REQUEST, context={"note": "n"}, metadata={"m": 1})
        r.load_agent(expect=lambda o: type(o).__name__ == "Agent", what="an Agent", offered={"session_manager": "m"})
    seen = sys.modules["ep_ctx"].seen
    payload, context = seen["named"]
    assert payload == {"instruction": "hi", "context": {"note": "n"}, "input": {}, "metadata": {"m": 1}}
    assert context.session_id == "s-1" and context.request_headers["Authorization"] == "Bearer authsecret"
    # A **kwargs factory gets what it got before: the runner's offered arguments only.
    assert seen["kw"] == {"session_manager": "m"}


def test_a_child_reads_it_from_stdin_and_keeps_it_out_of_its_environment(tmp_path):
    envelope = {"instruction": "hi", "requestId": "r-1", "request": ENVELOPE_REQUEST}
    run = run_plain_runner(tmp_path, """
        import json, os
        import agentdispatch
        def run(runner):
            r = agentdispatch.current_request()
            assert r is runner.request
            return json.dumps({"tenant": r.header("x-amzn-bedrock-agentcore-runtime-custom-tenant"),
                               "inEnv": any("watsecret" in v for v in os.environ.values())})
    """, stdin=json.dumps(envelope))
    assert run.returncode == 0, run.stderr
    out = json.loads(run.events[-1]["output"])
    assert out == {"tenant": "t-1", "inEnv": False}


def agentcore_python() -> Path | None:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    python = cache / "agentdispatch-worker/clients/agentcore/bin/python"
    if python.exists():
        return python
    if os.environ.get("AGENTDISPATCH_TEST_SH") or os.environ.get("CI"):
        pytest.fail(f"{python} is missing: run scripts/setup-clients.sh agentcore")
    pytest.skip("no AgentCore SDK venv (run scripts/setup-clients.sh agentcore)")


def test_bedrock_agentcore_context_is_set_as_aws_server_sets_it(tmp_path):
    python = agentcore_python()
    script = write_module(tmp_path, "check_sdk", f"""
        import json, sys, threading
        sys.path.insert(0, {str(SHARED)!r})
        from agentdispatch.request import Request, install, request_context
        from bedrock_agentcore.runtime.context import BedrockAgentCoreContext as C, RequestContext
        install(Request(json.loads(sys.argv[1])))
        def seen():
            return [C.get_workload_access_token(), C.get_oauth2_callback_url(), C.get_request_id(),
                    C.get_session_id(), C.get_request_headers()]
        box = []
        t = threading.Thread(target=lambda: box.append(seen()))
        t.start(); t.join()
        ctx = request_context(Request(json.loads(sys.argv[1])))
        print(json.dumps({{"main": seen(), "thread": box[0], "isSdk": isinstance(ctx, RequestContext),
                          "ctx": [ctx.session_id, ctx.request_headers]}}))
    """)
    proc = subprocess.run([str(python), str(script), json.dumps(ENVELOPE_REQUEST)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    # The SDK's own rule (bedrock-agentcore 1.25): Authorization under its canonical name, the
    # token's header and the custom ones; not user-agent, nor AgentCore's own x-amzn- ones.
    headers = {"Authorization": "Bearer authsecret", "workloadaccesstoken": "watsecret",
               "x-amzn-bedrock-agentcore-runtime-custom-tenant": "t-1"}
    assert out["main"] == ["watsecret", "https://cb.example/x", "r-1", "s-1", headers]
    assert out["thread"] == out["main"], "a plain thread sees the request too"
    assert out["isSdk"] and out["ctx"] == ["s-1", headers]


def test_a_warm_parent_imports_the_sdk_before_it_forks(tmp_path):
    python = agentcore_python()
    script = write_module(tmp_path, "check_preload", f"""
        import sys, threading
        sys.path.insert(0, {str(SHARED)!r})
        from agentdispatch.warm.serving import _preload
        before = "bedrock_agentcore.runtime.context" in sys.modules
        _preload("x", None, None)  # no entrypoint: nothing of the user's imports the SDK
        print(before, "bedrock_agentcore.runtime.context" in sys.modules, threading.active_count())
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTDISPATCH_")}
    proc = subprocess.run([str(python), str(script)], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    # Loaded, and the parent still has one thread: it can fork.
    assert proc.stdout.split() == ["False", "True", "1"]
