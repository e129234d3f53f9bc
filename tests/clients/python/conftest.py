"""Shared by the a2a-sdk 1.x and 0.3.x suites (stdlib only; each suite runs in its own venv).

`worker` starts the real binary (AGENTDISPATCH_TEST_WORKER) on a port the system picks, with its own
artifact and session folders and the fixture frameworks (tests/fixtures/frameworks: `pyfixture`
runs `sleep N`, `turn`, and fails on any other instruction), and stops it afterwards.

`wire` records every HTTP exchange the SDK makes (request JSON, response content type and
bytes) by wrapping httpx's transport, so that each suite can check every answer against the
SDK's own models while the SDK itself runs with its default configuration.
"""

import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, os.pardir, os.pardir, os.pardir))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "frameworks")


class Worker:
    """A running worker: `url` (with a trailing slash, as on its card), `stop()`."""

    def __init__(self, extra_env=None):
        binary = os.environ.get("AGENTDISPATCH_TEST_WORKER") or os.path.join(
            ROOT, "target", "debug", "agentdispatch-worker"
        )
        if not os.access(binary, os.X_OK):
            raise RuntimeError(f"no worker binary at {binary} (set AGENTDISPATCH_TEST_WORKER)")
        self.tmp = tempfile.TemporaryDirectory(prefix="a2a-client-")
        self.log_path = os.path.join(self.tmp.name, "worker.log")
        env = dict(os.environ)
        env.pop("AGENTDISPATCH_PUBLIC_URL", None)
        env.pop("AGENTCORE_RUNTIME_URL", None)
        env.update({
            # The system picks a free port; the worker's "listening" line says which.
            "PORT": "0",
            "AGENTDISPATCH_HOST": "127.0.0.1",
            "AGENTDISPATCH_ARTIFACT_DIR": os.path.join(self.tmp.name, "artifacts"),
            "AGENTDISPATCH_SESSION_DIR": os.path.join(self.tmp.name, "sessions"),
            "AGENTDISPATCH_FRAMEWORKS_DIR": FIXTURES,
            "AGENTDISPATCH_WARM": "none",
            "AGENTDISPATCH_AGENT_FRAMEWORK": "pyfixture",
            "AGENTDISPATCH_KILL_GRACE_SECONDS": "2",
            "RUST_LOG": "info",
        })
        env.update(extra_env or {})
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([binary], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.port = self._listening_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        with urllib.request.urlopen(self.url + "ping", timeout=10) as r:
            assert r.status == 200

    def _listening_port(self):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for line in self.logs().splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("message") == "listening":
                    return int(entry["address"].rsplit(":", 1)[1])
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"worker did not start; log:\n{self.logs()}")

    def logs(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def rpc(self, method, params, request_id=1):
        """A raw JSON-RPC call (for what no SDK call sends)."""
        body = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        req = urllib.request.Request(self.url, data=body.encode(), headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# The shipped frameworks whose example agent asks before its `refund` tool runs (SPEC §14).
FRAMEWORKS_THAT_ASK = ["langgraph", "langchain", "openai-agents", "pydantic-ai", "strands", "crewai"]
REFUND = "refund 5 for order 42"
REFUNDED = f"refunded ({REFUND})"


def framework_worker(framework):
    """A worker whose default framework is `framework` of the repository's frameworks/, warm
    (its venv made by scripts/setup-frameworks.sh, as scripts/test.sh does first)."""
    venv = os.path.join(ROOT, "frameworks", framework, ".venv", "bin", "python")
    if not os.path.exists(venv):
        pytest.fail(f"{venv} is missing: run scripts/setup-frameworks.sh {framework}")
    return Worker({
        "AGENTDISPATCH_FRAMEWORKS_DIR": os.path.join(ROOT, "frameworks"),
        "AGENTDISPATCH_AGENT_FRAMEWORK": framework,
        "AGENTDISPATCH_WARM": framework,
    })


@pytest.fixture
def worker():
    w = Worker()
    yield w
    w.stop()
    w.tmp.cleanup()


class Exchange:
    def __init__(self, method, url, request):
        self.method = method
        self.url = url
        self.request = request
        self.content_type = ""
        self.body = b""

    def rpc_method(self):
        return (self.request or {}).get("method")

    def messages(self):
        """The JSON of the answer: one object, or each complete `data:` of an event stream."""
        text = self.body.decode("utf-8", "replace")
        if "text/event-stream" not in self.content_type:
            return [json.loads(text)] if text.strip() else []
        out = []
        for block in text.replace("\r\n", "\n").split("\n\n")[:-1]:
            data = "\n".join(l[5:].lstrip(" ") for l in block.split("\n") if l.startswith("data:"))
            if data:
                out.append(json.loads(data))
        return out


@pytest.fixture
def wire(monkeypatch):
    import httpx

    exchanges = []
    original = httpx.AsyncHTTPTransport.handle_async_request

    async def recording(self, request):
        body = request.content if request.method == "POST" else b""
        ex = Exchange(request.method, str(request.url), json.loads(body) if body else None)
        exchanges.append(ex)
        response = await original(self, request)
        ex.content_type = response.headers.get("content-type", "")
        inner = response.stream

        class Tee(httpx.AsyncByteStream):
            async def __aiter__(self):
                async for chunk in inner:
                    ex.body += chunk
                    yield chunk

            async def aclose(self):
                await inner.aclose()

        response.stream = Tee()
        return response

    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", recording)
    return exchanges


def unknown_keys(raw, known, path=""):
    """Paths of keys in `raw` that a model's own dump (`known`) does not have: fields the
    model does not define. Free-form maps (metadata, data) are taken as they are."""
    out = []
    if isinstance(raw, dict) and isinstance(known, dict):
        for k, v in raw.items():
            if k not in known:
                if v not in (None, [], {}, "", False, 0):
                    out.append(f"{path}.{k}")
            elif k not in ("metadata", "data", "params"):
                out += unknown_keys(v, known[k], f"{path}.{k}")
    elif isinstance(raw, list) and isinstance(known, list):
        for i, (a, b) in enumerate(zip(raw, known)):
            out += unknown_keys(a, b, f"{path}[{i}]")
    return out


def talker(folder, pieces):
    """A framework child whose model writes `pieces` of message `m-1` as live text (`task.delta`),
    each after the test created `go<i>` in `folder` (it saw piece i arrive), then the step that
    closes the message and the result. Returns the worker environment that makes it the default
    framework."""
    path = os.path.join(str(folder), "talker.py")
    with open(path, "w") as f:
        f.write(f"""#!/usr/bin/env python3
import json, os, sys, time
def out(o):
    sys.stdout.write(json.dumps(o) + "\\n")
    sys.stdout.flush()
pieces = {json.dumps(pieces)}
for i, p in enumerate(pieces):
    out({{"type": "task.delta", "payload": {{"messageId": "m-1", "text": p}}}})
    while not os.path.exists(os.path.join({json.dumps(str(folder))}, "go%d" % i)):
        time.sleep(0.01)
text = "".join(pieces)
out({{"type": "task.progress", "message": "model_turn", "payload": {{"messageId": "m-1", "text": text}}}})
out({{"type": "task.result", "output": text}})
""")
    os.chmod(path, 0o755)
    return {"AGENTDISPATCH_FRAMEWORK_COMMAND_TALKER": path, "AGENTDISPATCH_AGENT_FRAMEWORK": "talker"}


def go(folder, i):
    """Lets the talker write the piece after piece `i`."""
    open(os.path.join(str(folder), f"go{i}"), "w").close()
