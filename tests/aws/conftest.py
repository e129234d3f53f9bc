"""The worker that answers invoke-agent-runtime in these tests: the real binary
(AGENTDISPATCH_TEST_WORKER, else target/debug/agentdispatch-worker) with the repository's
frameworks and langgraph as the default framework, as docs/agentcore.md configures the runtime."""

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, os.pardir, os.pardir))
sys.path.insert(0, HERE)


@pytest.fixture(scope="session")
def worker():
    binary = os.environ.get("AGENTDISPATCH_TEST_WORKER") or os.path.join(
        ROOT, "target", "debug", "agentdispatch-worker")
    if not os.access(binary, os.X_OK):
        pytest.fail(f"no worker binary at {binary}: run cargo build (or set AGENTDISPATCH_TEST_WORKER)")
    if not os.path.isdir(os.path.join(ROOT, "frameworks", "langgraph", ".venv")):
        pytest.fail("frameworks/langgraph/.venv is missing: run scripts/setup-frameworks.sh langgraph")
    with tempfile.TemporaryDirectory(prefix="aws-worker-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTDISPATCH_")}
        env.update({
            "PORT": "0",
            "AGENTDISPATCH_HOST": "127.0.0.1",
            "AGENTDISPATCH_ARTIFACT_DIR": os.path.join(tmp, "artifacts"),
            "AGENTDISPATCH_SESSION_DIR": os.path.join(tmp, "sessions"),
            "AGENTDISPATCH_FRAMEWORKS_DIR": os.path.join(ROOT, "frameworks"),
            "AGENTDISPATCH_AGENT_FRAMEWORK": "langgraph",
            "AGENTDISPATCH_WARM": "none",
        })
        log_path = os.path.join(tmp, "worker.log")
        with open(log_path, "ab") as log:
            proc = subprocess.Popen([binary], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            port = None
            deadline = time.monotonic() + 30
            while port is None and time.monotonic() < deadline and proc.poll() is None:
                for line in open(log_path, encoding="utf-8", errors="replace"):
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue
                    if entry.get("message") == "listening":
                        port = int(entry["address"].rsplit(":", 1)[1])
                if port is None:
                    time.sleep(0.05)
            if port is None:
                pytest.fail("the worker did not start:\n" + open(log_path, errors="replace").read())
            url = f"http://127.0.0.1:{port}"
            with urllib.request.urlopen(url + "/ping", timeout=10) as r:
                assert r.status == 200
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=20)
