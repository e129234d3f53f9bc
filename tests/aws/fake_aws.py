"""An `aws` that is the real AWS CLI up to the wire, and no further.

The command line goes through the AWS CLI's own driver (awscli 1.x, pinned in requirements.txt):
its argument parser, shorthand syntax, `file://`/`fileb://` loading, `--cli-input-json` and
its botocore client, whose ParamValidator checks member names, required members and types
against the service model. On top of that, `check_params` checks what ParamValidator leaves to
the service (maximum lengths and values, enums, patterns), from the same model. A call that
passes is recorded (one JSON line in $FAKE_AWS_LOG) and answered from `CANNED` before anything is
signed or sent, so no credentials and no network are needed; a call that fails exits non-zero
with the CLI's or the checker's message, as the real CLI would before sending.

Two translations, where AWS CLI v2 (what the docs ask for) differs from the v1 parser used here:
`--cli-binary-format raw-in-base64-out` is dropped, because v1 has no such option and always
takes blob arguments raw, which is what that v2 option means (any other value is refused); and
AWS_REGION is the region, as in v2 (v1 reads only AWS_DEFAULT_REGION; AWS_REGION wins in v2).

Environment: FAKE_AWS_LOG (required), FAKE_AWS_RUNTIMES (JSON object name -> runtime id of the
runtimes that ListAgentRuntimes finds; default none), FAKE_AWS_WORKER_URL (a running worker
that answers InvokeAgentRuntime, see `forward`; unset: `{"ok":true}`).
"""

from __future__ import annotations

import base64
import datetime
import io
import json
import os
import re
import sys
import urllib.request
import uuid

from awscli.botocore.awsrequest import AWSResponse
from awscli.botocore.response import StreamingBody
from awscli.botocore.validate import ParamValidator
from awscli.clidriver import create_clidriver

ACCOUNT = "123456789012"
NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


def check_params(params, shape, name="params"):
    """What botocore's ParamValidator does not check: max, enum and pattern (matched whole, as
    the services enforce them). Returns a list of error strings."""
    errors: list[str] = []
    meta = shape.metadata
    kind = shape.type_name
    if kind == "structure" and isinstance(params, dict):
        for key, value in params.items():
            if key in shape.members:
                errors += check_params(value, shape.members[key], f"{name}.{key}")
    elif kind == "list" and isinstance(params, list):
        if "max" in meta and len(params) > meta["max"]:
            errors.append(f"{name}: {len(params)} items, at most {meta['max']} allowed")
        for i, item in enumerate(params):
            errors += check_params(item, shape.member, f"{name}[{i}]")
    elif kind == "map" and isinstance(params, dict):
        if "max" in meta and len(params) > meta["max"]:
            errors.append(f"{name}: {len(params)} entries, at most {meta['max']} allowed")
        for key, value in params.items():
            errors += check_params(key, shape.key, f"{name} (key {key!r})")
            errors += check_params(value, shape.value, f"{name}.{key}")
    elif kind == "string" and isinstance(params, str):
        if "max" in meta and len(params) > meta["max"]:
            errors.append(f"{name}: {len(params)} characters, at most {meta['max']} allowed")
        if shape.enum and params not in shape.enum:
            errors.append(f"{name}: {params!r} is not one of {', '.join(shape.enum)}")
        if "pattern" in meta:
            try:
                pattern = re.compile(meta["pattern"])
            except re.error:
                pattern = None  # a Java-only construct: the service checks it, not this
            if pattern is not None and not pattern.fullmatch(params):
                errors.append(f"{name}: {params!r} does not match the pattern {meta['pattern']}")
    elif kind in ("integer", "long", "float", "double") and isinstance(params, (int, float)):
        if "max" in meta and params > meta["max"]:
            errors.append(f"{name}: {params} is above the maximum {meta['max']}")
    return errors


def runtime_arn(region: str, runtime_id: str) -> str:
    return f"arn:aws:bedrock-agentcore:{region}:{ACCOUNT}:runtime/{runtime_id}"


def canned(service: str, op: str, params: dict, region: str) -> dict:
    """A plausible answer for the calls the docs and the script make; their values match the
    output shapes' patterns, so a value passed on to a later command is checked as real."""
    runtimes = json.loads(os.environ.get("FAKE_AWS_RUNTIMES") or "{}")
    new_id = f"{params.get('agentRuntimeName', 'x')}-AbCdE12345"
    runtime_id = params.get("agentRuntimeId", new_id)
    if (service, op) == ("sts", "GetCallerIdentity"):
        return {"Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/me", "UserId": "AIDAEXAMPLE"}
    if (service, op) in (("iam", "CreateRole"), ("iam", "GetRole")):
        name = params["RoleName"]
        return {"Role": {"RoleName": name, "RoleId": "AROAEXAMPLEEXAMPLE1", "Path": "/",
                         "Arn": f"arn:aws:iam::{ACCOUNT}:role/{name}", "CreateDate": NOW}}
    if service == "bedrock-agentcore-control" and op in ("CreateAgentRuntime", "UpdateAgentRuntime"):
        return {"agentRuntimeArn": runtime_arn(region, runtime_id), "agentRuntimeId": runtime_id,
                "agentRuntimeVersion": "2" if op.startswith("Update") else "1",
                "createdAt": NOW, "status": "CREATING" if op.startswith("Create") else "UPDATING"}
    if (service, op) == ("bedrock-agentcore-control", "GetAgentRuntime"):
        return {"agentRuntimeArn": runtime_arn(region, runtime_id), "agentRuntimeId": runtime_id,
                "agentRuntimeName": runtime_id.rsplit("-", 1)[0], "agentRuntimeVersion": "1",
                "status": "READY", "createdAt": NOW, "lastUpdatedAt": NOW}
    if (service, op) == ("bedrock-agentcore-control", "ListAgentRuntimes"):
        return {"agentRuntimes": [
            {"agentRuntimeArn": runtime_arn(region, rid), "agentRuntimeId": rid,
             "agentRuntimeName": name, "agentRuntimeVersion": "1", "description": name,
             "lastUpdatedAt": NOW, "status": "READY"} for name, rid in runtimes.items()]}
    if (service, op) == ("bedrock-agentcore", "InvokeAgentRuntime"):
        body = forward(params) if os.environ.get("FAKE_AWS_WORKER_URL") else b'{"ok":true}'
        return {"contentType": params.get("accept") or "application/json", "statusCode": 200,
                "runtimeSessionId": params.get("runtimeSessionId", "none"),
                "response": StreamingBody(io.BytesIO(body), len(body))}
    return {}


def forward(params: dict) -> bytes:
    """Post the payload to a real worker as AgentCore Runtime does: an A2A JSON-RPC request to
    `/`, anything else to `/invocations`, with the session id, a request id, Content-Type and
    Accept as headers. Returns the worker's answer, which becomes the CLI's output file."""
    payload = params["payload"]
    payload = payload if isinstance(payload, bytes) else payload.encode()
    try:
        is_a2a = json.loads(payload).get("jsonrpc") == "2.0"
    except (ValueError, AttributeError):
        is_a2a = False
    url = os.environ["FAKE_AWS_WORKER_URL"].rstrip("/") + ("/" if is_a2a else "/invocations")
    headers = {"Content-Type": params.get("contentType", "application/json"),
               "Accept": params.get("accept", "application/json"),
               "X-Amzn-Bedrock-AgentCore-Runtime-Request-Id": str(uuid.uuid4())}
    if "runtimeSessionId" in params:
        headers["X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"] = params["runtimeSessionId"]
    request = urllib.request.Request(url, data=payload, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.read()


def jsonable(value):
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(value).decode()
    if isinstance(value, (io.IOBase,)):
        return "<stream>"
    return value


def main(argv: list[str]) -> int:
    log_path = os.environ["FAKE_AWS_LOG"]
    args = list(argv)
    if "--cli-binary-format" in args:
        i = args.index("--cli-binary-format")
        if args[i + 1 : i + 2] != ["raw-in-base64-out"]:
            print("fake aws: --cli-binary-format takes raw-in-base64-out here", file=sys.stderr)
            return 252
        del args[i : i + 2]
    driver = create_clidriver()
    session = driver.session
    calls: list[dict] = []

    def before_build(params, model, **_):
        service = model.service_model.service_name
        errors = []
        report = ParamValidator().validate(params, model.input_shape)
        if report.has_errors():
            errors.append(report.generate_report())
        errors += check_params(params, model.input_shape)
        if errors:
            print(f"fake aws: {service} {model.name}: " + "\n".join(errors), file=sys.stderr)
            sys.exit(254)
        calls.append({"service": service, "operation": model.name, "params": jsonable(params)})

    def before_call(model, context, **_):
        call = calls[-1]
        call["region"] = context.get("client_region")
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(json.dumps({**call, "argv": argv}) + "\n")
        http = AWSResponse("https://fake.invalid/", 200, {}, None)
        return http, canned(call["service"], call["operation"], call["params"], call["region"])

    session.register("before-parameter-build", before_build)
    session.register("before-call", before_call)
    return driver.main(args)


if __name__ == "__main__":
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "fake")
    if os.environ.get("AWS_REGION"):
        os.environ["AWS_DEFAULT_REGION"] = os.environ["AWS_REGION"]
    sys.exit(main(sys.argv[1:]))
