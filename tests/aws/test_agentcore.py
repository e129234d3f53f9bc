"""docs/agentcore.md and scripts/agentcore-deploy.sh against the AWS CLI's own model.

No AWS account is reachable here, so `aws` is the real AWS CLI stopped before the wire
(fake_aws.py: its parser, its botocore client and ParamValidator, plus the model's max, enum and
pattern checks), and invoke-agent-runtime is answered by a real worker. What this proves and what
only an account can: docs/agentcore.md, "How this page is tested".
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from iam_check import check_policy

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, os.pardir, os.pardir))
DOC = os.path.join(ROOT, "docs", "agentcore.md")
SCRIPT = os.path.join(ROOT, "scripts", "agentcore-deploy.sh")
REGION = "us-west-2"
IMAGE = "123456789012.dkr.ecr.us-west-2.amazonaws.com/agentdispatch-worker-agentcore:v0.1.0"
ROLE = "arn:aws:iam::123456789012:role/AgentCoreRuntime-agentdispatch"
RUNTIME_ID = "agentdispatch_worker-AbCdE12345"


def cli_name(operation: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"-\1", operation).lower().replace("j-w-t", "jwt")


class Aws:
    """A scratch folder with the checked `aws` first on PATH, and its call log."""

    def __init__(self, tmp_path, worker_url=None, runtimes=None):
        self.dir = tmp_path
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        aws = bin_dir / "aws"
        aws.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} '
                       f'{shlex.quote(os.path.join(HERE, "fake_aws.py"))} "$@"\n')
        aws.chmod(0o755)
        self.log = tmp_path / "calls.ndjson"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AWS_", "IMAGE_URI", "ROLE_ARN", "AGENTCORE_", "FAKE_AWS_"))}
        env.update({
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "FAKE_AWS_LOG": str(self.log),
            "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "FAKE_AWS_RUNTIMES": json.dumps(runtimes or {}),
        })
        if worker_url:
            env["FAKE_AWS_WORKER_URL"] = worker_url
        self.env = env

    def calls(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def run(self, args, env=None, **kw):
        return subprocess.run(args, cwd=self.dir, env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=300, **kw)

    def bash(self, script, env=None):
        return self.run(["bash", "-euo", "pipefail", "-c", script], env=env)


def sh_blocks(path: str) -> list[str]:
    text = open(path, encoding="utf-8").read()
    return re.findall(r"^```sh\n(.*?)^```", text, flags=re.M | re.S)


def written_commands(blocks: list[str]) -> set[tuple[str, str]]:
    """Every `aws SERVICE COMMAND` the blocks spell out."""
    joined = "\n".join(blocks).replace("\\\n", " ")
    return set(re.findall(r"(?:^|[\s(])aws ([a-z0-9-]+) ([a-z0-9-]+)", joined, flags=re.M))


@pytest.fixture(scope="module")
def doc_run(tmp_path_factory, worker):
    """docs/agentcore.md's sh blocks, run in order in one bash (once: three tests read it)."""
    tmp_path = tmp_path_factory.mktemp("doc")
    aws = Aws(tmp_path, worker_url=worker, runtimes={"agentdispatch_worker": RUNTIME_ID})
    os.symlink(os.path.join(ROOT, "scripts"), tmp_path / "scripts")
    blocks = sh_blocks(DOC)
    result = aws.bash("\n".join(blocks))
    assert result.returncode == 0, f"docs/agentcore.md failed:\n{result.stderr}\n{result.stdout}"
    return aws, blocks, result


def test_every_documented_command_runs_and_passes_the_model(doc_run):
    aws, blocks, _ = doc_run
    calls = aws.calls()
    ran = {(c["service"], cli_name(c["operation"])) for c in calls}
    written = written_commands(blocks)
    assert len(written) >= 12, written  # the page's commands were found at all
    assert written - ran == set(), f"written on the page but never run and checked: {written - ran}"
    by_op = {}
    for call in calls:
        by_op.setdefault(call["operation"], []).append(call)
        assert call["region"] == ("aws-global" if call["service"] == "iam" else REGION), call
    # Both ways of creating the runtime (the command and the script) sent the same request.
    created = [c["params"] for c in by_op["CreateAgentRuntime"]]
    assert len(created) == 2
    for params in created:
        params.pop("clientToken")
        params.pop("description")
    assert created[0] == created[1]
    assert created[0]["agentRuntimeArtifact"]["containerConfiguration"]["containerUri"] == IMAGE
    assert created[0]["roleArn"] == ROLE
    assert created[0]["environmentVariables"]["AGENTDISPATCH_SESSION_DIR"] == \
        created[0]["filesystemConfigurations"][0]["sessionStorage"]["mountPath"]
    # The update by name found the runtime the page created.
    updated = by_op["UpdateAgentRuntime"]
    assert {c["params"]["agentRuntimeId"] for c in updated} == {RUNTIME_ID}


def test_the_policies_are_iam_json_with_real_actions(doc_run):
    aws, _, _ = doc_run
    calls = {c["operation"]: c["params"] for c in aws.calls()}
    trust = calls["CreateRole"]["AssumeRolePolicyDocument"]
    permissions = calls["PutRolePolicy"]["PolicyDocument"]
    logs_policy = calls["PutResourcePolicy"]["policyDocument"]
    assert check_policy(trust, "trust") == []
    assert check_policy(permissions, "identity") == []
    assert check_policy(logs_policy, "logs-resource") == []
    # The placeholders were filled in, and the workload identity is the runtime's.
    assert "$" not in permissions + trust + logs_policy
    actions = {a for st in json.loads(permissions)["Statement"]
               for a in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]])}
    for needed in ("ecr:BatchGetImage", "logs:PutLogEvents", "xray:PutTraceSegments",
                   "bedrock:InvokeModel", "bedrock-agentcore:GetWorkloadAccessToken"):
        assert needed in actions
    assert "workload-identity/agentdispatch_worker-*" in permissions


def test_invocations_are_answered_by_the_worker(doc_run):
    aws, _, _ = doc_run
    answer = json.loads((aws.dir / "answer.json").read_text())
    assert answer["ok"] is True and answer["status"] == "succeeded", answer
    assert answer["output"] == "Shouted: ADD 2 AND 40"
    data = [line[len("data: "):] for line in (aws.dir / "events.sse").read_text().splitlines()
            if line.startswith("data: ")]
    assert len(data) >= 2
    last = json.loads(data[-1])
    # The second turn saw the first: AgentCore's session header became the worker's session.
    assert last["ok"] is True and last["output"] == "Shouted: AND NOW TIMES 3 (earlier turns: 1)", last
    a2a = json.loads((aws.dir / "a2a-answer.json").read_text())
    first, second = (a["events"][0]["payload"].get("sessionId") for a in (answer, last))
    assert first is not None and first == second, (first, second)
    # The A2A request went to POST / and ran in the same session, which is its contextId.
    result = a2a["result"]
    assert result["kind"] == "message" and result["contextId"] == first, a2a
    assert result["parts"][0]["text"].startswith("Shouted: HELLO"), a2a


@pytest.mark.parametrize("mistake, args, named", [
    ("a hyphen in the runtime name", ["--agent-runtime-name", "agentdispatch-worker"],
     "agentRuntimeName"),
    ("a protocol AgentCore does not know", ["--protocol-configuration", "serverProtocol=GRPC"],
     "serverProtocol"),
    ("session storage two levels under /mnt", ["--filesystem-configurations",
     '[{"sessionStorage": {"mountPath": "/mnt/data/sessions"}}]'], "mountPath"),
    ("a lifetime over 8 hours", ["--lifecycle-configuration", "maxLifetime=28801"], "maxLifetime"),
    ("an environment value over 5000 characters",
     ["--environment-variables", "A=" + "x" * 5001], "environmentVariables"),
    ("an unknown member", ["--network-configuration", "networkMode=PUBLIC,subnet=x"], "subnet"),
    ("a Docker Hub image", ["--agent-runtime-artifact",
     "containerConfiguration={containerUri=docker.io/library/python:3.12}"], "containerUri"),
])
def test_the_checks_refuse_what_the_service_would(tmp_path, mistake, args, named):
    aws = Aws(tmp_path)
    base = {"--agent-runtime-name": "agentdispatch_worker",
            "--agent-runtime-artifact": f"containerConfiguration={{containerUri={IMAGE}}}",
            "--role-arn": ROLE, "--network-configuration": "networkMode=PUBLIC"}
    base.update(dict(zip(args[::2], args[1::2])))
    argv = ["aws", "bedrock-agentcore-control", "create-agent-runtime", "--region", REGION]
    for key, value in base.items():
        argv += [key, value]
    result = aws.run(argv)
    assert result.returncode != 0, f"{mistake} was accepted"
    assert named in result.stderr, result.stderr
    assert aws.calls() == []


def test_a_short_session_id_and_a_missing_outfile_are_refused(tmp_path):
    aws = Aws(tmp_path)
    arn = f"arn:aws:bedrock-agentcore:{REGION}:123456789012:runtime/{RUNTIME_ID}"
    short = aws.run(["aws", "bedrock-agentcore", "invoke-agent-runtime", "--region", REGION,
                     "--agent-runtime-arn", arn, "--runtime-session-id", "s1",
                     "--payload", "{}", "out.json"])
    assert short.returncode != 0 and "runtimeSessionId" in short.stderr, short.stderr
    no_file = aws.run(["aws", "bedrock-agentcore", "invoke-agent-runtime", "--region", REGION,
                       "--agent-runtime-arn", arn, "--payload", "{}"])
    assert no_file.returncode != 0 and "outfile" in no_file.stderr, no_file.stderr


@pytest.mark.parametrize("policy, named", [
    ({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "bedrock:InvokeModels",
                                              "Resource": "*"}]}, "InvokeModels"),
    ({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecr:BatchGetImage",
      "Resource": "arn:aws:s3:::bucket"}]}, "of s3"),
    ({"Statement": [{"Effect": "Allow", "Action": "ecr:BatchGetImage", "Resource": "*"}]}, "Version"),
    ({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecr:BatchGetImage"}]},
     "needs Resource"),
    ({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "nosuch:Thing",
                                              "Resource": "*"}]}, "nosuch"),
])
def test_the_policy_check_refuses_bad_policies(policy, named):
    errors = check_policy(json.dumps(policy), "identity")
    assert any(named in e for e in errors), errors


def script_env(**extra):
    return {"IMAGE_URI": IMAGE, "ROLE_ARN": ROLE, "AWS_REGION": REGION, **extra}


@pytest.mark.parametrize("action, settings, extra_args", [
    ("create", {}, []),
    ("create", {"AGENTCORE_PROTOCOL": "a2a", "AGENTCORE_SESSION_STORAGE": "none"},
     ["--env", "AGENTDISPATCH_MODEL_ID=us.anthropic.claude-sonnet-4-5-20250929-v1:0"]),
    ("create", {"AGENTCORE_PROTOCOL": "mcp"}, []),
    ("create", {"AGENTCORE_PROTOCOL": "AGUI"}, []),
    ("update", {"AGENTCORE_RUNTIME_ID": RUNTIME_ID, "AGENTCORE_SUBNETS": "subnet-0a1b2c3d,subnet-4e5f6a7b",
                "AGENTCORE_SECURITY_GROUPS": "sg-0a1b2c3d", "AGENTCORE_IDLE_TIMEOUT_SECONDS": "60"},
     ["--env", "NOTE=it's \"quoted\" \\ and\ttabbed", "--wait"]),
])
def test_the_script_dry_run_prints_what_a_real_run_sends(tmp_path, action, settings, extra_args):
    aws = Aws(tmp_path)
    env = script_env(**settings)
    dry = aws.run([SCRIPT, "--dry-run", action, *extra_args], env=env)
    assert dry.returncode == 0, dry.stderr
    assert aws.calls() == [], "a dry run called aws"
    # The printed commands run as printed, through the checked aws.
    printed = aws.bash(dry.stdout)
    assert printed.returncode == 0, f"{dry.stdout}\n{printed.stderr}"
    from_dry = aws.calls()
    aws.log.unlink()
    real = aws.run([SCRIPT, action, *extra_args], env=env)
    assert real.returncode == 0, real.stderr
    from_real = aws.calls()
    strip = lambda calls: [(c["operation"], {k: v for k, v in c["params"].items()
                                             if k != "clientToken"}) for c in calls]
    assert strip(from_dry) == strip(from_real)
    op, params = strip(from_real)[0]
    assert op == ("CreateAgentRuntime" if action == "create" else "UpdateAgentRuntime")
    variables = params["environmentVariables"]
    protocol = settings.get("AGENTCORE_PROTOCOL", "http").upper()
    assert params["protocolConfiguration"] == {"serverProtocol": protocol}
    assert variables.get("AGENTDISPATCH_WORKER_PROTOCOL") == (None if protocol == "HTTP" else protocol.lower())
    if settings.get("AGENTCORE_SESSION_STORAGE") == "none":
        assert "filesystemConfigurations" not in params and "AGENTDISPATCH_SESSION_DIR" not in variables
    else:
        assert params["filesystemConfigurations"] == [{"sessionStorage": {"mountPath": "/mnt/data"}}]
        assert variables["AGENTDISPATCH_SESSION_DIR"] == "/mnt/data"
    if "AGENTCORE_SUBNETS" in settings:
        assert params["networkConfiguration"] == {"networkMode": "VPC", "networkModeConfig": {
            "subnets": ["subnet-0a1b2c3d", "subnet-4e5f6a7b"], "securityGroups": ["sg-0a1b2c3d"]}}
        assert variables["NOTE"] == "it's \"quoted\" \\ and\ttabbed"
        assert [c["operation"] for c in from_real] == ["UpdateAgentRuntime", "GetAgentRuntime"]
    arn_line = real.stdout.strip()
    assert re.fullmatch(r"arn:aws:bedrock-agentcore:us-west-2:123456789012:runtime/\S+", arn_line)


def test_the_script_updates_the_runtime_it_finds_by_name(tmp_path):
    aws = Aws(tmp_path, runtimes={"other": "other-0123456789", "agentdispatch_worker": RUNTIME_ID})
    result = aws.run([SCRIPT, "update"], env=script_env())
    assert result.returncode == 0, result.stderr
    calls = aws.calls()
    assert [c["operation"] for c in calls] == ["ListAgentRuntimes", "UpdateAgentRuntime"]
    assert calls[1]["params"]["agentRuntimeId"] == RUNTIME_ID
    assert result.stdout.strip().endswith(f"runtime/{RUNTIME_ID}")
    (tmp_path / "none").mkdir()
    missing = Aws(tmp_path / "none")
    result = missing.run([SCRIPT, "update"], env=script_env())
    assert result.returncode == 1
    assert "no runtime named agentdispatch_worker in us-west-2" in result.stderr


@pytest.mark.parametrize("change, named", [
    ({"IMAGE_URI": ""}, "IMAGE_URI is not set"),
    ({"IMAGE_URI": "python:3.12"}, "IMAGE_URI 'python:3.12' is not an ECR image URI"),
    ({"ROLE_ARN": ""}, "ROLE_ARN is not set"),
    ({"ROLE_ARN": "AgentCoreRuntime"}, "ROLE_ARN 'AgentCoreRuntime' is not an IAM role ARN"),
    ({"AWS_REGION": ""}, "no AWS region"),
    ({"AGENTCORE_RUNTIME_NAME": "my-agent"}, "AGENTCORE_RUNTIME_NAME 'my-agent'"),
    ({"AGENTCORE_PROTOCOL": "grpc"}, "AGENTCORE_PROTOCOL 'GRPC': the worker serves HTTP, A2A, MCP or AGUI"),
    ({"AGENTCORE_SESSION_STORAGE": "/mnt/a/b"}, "AGENTCORE_SESSION_STORAGE '/mnt/a/b'"),
    ({"AGENTCORE_IDLE_TIMEOUT_SECONDS": "30"}, "AGENTCORE_IDLE_TIMEOUT_SECONDS '30'"),
    ({"AGENTCORE_MAX_LIFETIME_SECONDS": "8h"}, "AGENTCORE_MAX_LIFETIME_SECONDS '8h'"),
    ({"AGENTCORE_SUBNETS": "subnet-0a1b2c3d"}, "needs both AGENTCORE_SUBNETS and AGENTCORE_SECURITY_GROUPS"),
])
def test_the_script_names_a_bad_setting(tmp_path, change, named):
    aws = Aws(tmp_path)
    result = aws.run([SCRIPT, "create"], env=script_env(**change))
    assert result.returncode == 1 and named in result.stderr, result.stderr
    assert aws.calls() == []


@pytest.mark.parametrize("args, named", [
    ([], "say what to do: create or update"),
    (["create", "update"], "one action at a time"),
    (["deploy"], "unknown argument 'deploy'"),
    (["create", "--env", "1X=y"], "--env '1X=y'"),
    (["create", "--env"], "--env needs NAME=VALUE"),
    (["--dry-run", "update"], "--dry-run update needs AGENTCORE_RUNTIME_ID"),
])
def test_the_script_names_a_bad_argument(tmp_path, args, named):
    aws = Aws(tmp_path)
    result = aws.run([SCRIPT, *args], env=script_env())
    assert result.returncode == 1 and named in result.stderr, result.stderr
    assert aws.calls() == []
