"""Checks an IAM policy document as far as the AWS CLI's service models allow.

IAM has no model of its own actions in the CLI, but an IAM action is, with few exceptions, an API
operation named under its service's prefix: `ecr:BatchGetImage` is ECR's `BatchGetImage`,
`bedrock:InvokeModel` is the operation of `bedrock-runtime`, whose signing name is `bedrock`. So an
action is accepted when some service model whose name, signing name or endpoint prefix is the
action's prefix has an operation of that name. Not checked (no model has them): condition keys,
the resource types an action allows, and IAM-only actions that are no API operation (this project
uses none).
"""

from __future__ import annotations

import fnmatch
import json
import re
from functools import lru_cache

from awscli.botocore.session import get_session

# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
OPERATORS = {
    f"{base}{suffix}"
    for base in ("StringEquals", "StringNotEquals", "StringEqualsIgnoreCase",
                 "StringNotEqualsIgnoreCase", "StringLike", "StringNotLike", "NumericEquals",
                 "NumericNotEquals", "NumericLessThan", "NumericLessThanEquals",
                 "NumericGreaterThan", "NumericGreaterThanEquals", "DateEquals", "DateNotEquals",
                 "DateLessThan", "DateLessThanEquals", "DateGreaterThan", "DateGreaterThanEquals",
                 "Bool", "BinaryEquals", "IpAddress", "NotIpAddress", "ArnEquals", "ArnLike",
                 "ArnNotEquals", "ArnNotLike")
    for suffix in ("", "IfExists")
} | {"Null"}
OPERATORS |= {f"{q}:{op}" for q in ("ForAllValues", "ForAnyValue") for op in set(OPERATORS)}

# Non-whitespace characters at most (IAM and CloudWatch Logs quotas).
LIMITS = {"identity": 10240, "trust": 2048, "logs-resource": 5120}
STATEMENT_KEYS = {"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction",
                  "Resource", "NotResource", "Condition"}


@lru_cache(maxsize=None)
def operations_by_prefix() -> dict[str, frozenset[str]]:
    session = get_session()
    index: dict[str, set[str]] = {}
    for name in session.get_available_services():
        model = session.get_service_model(name)
        prefixes = {name, model.metadata.get("signingName"), model.metadata.get("endpointPrefix")}
        for prefix in prefixes - {None}:
            index.setdefault(prefix, set()).update(model.operation_names)
    return {k: frozenset(v) for k, v in index.items()}


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def check_policy(text: str, kind: str) -> list[str]:
    """Errors in the policy `text`; kind is identity, trust or logs-resource."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        return [f"not JSON: {e}"]
    errors = []
    size = len(re.sub(r"\s", "", text))
    if size > LIMITS[kind]:
        errors.append(f"{size} characters without whitespace, the {kind} limit is {LIMITS[kind]}")
    if not isinstance(doc, dict) or doc.get("Version") != "2012-10-17":
        errors.append('"Version" must be "2012-10-17"')
        if not isinstance(doc, dict):
            return errors
    statements = as_list(doc.get("Statement"))
    if not statements or statements == [None]:
        return errors + ['no "Statement"']
    sids = [s.get("Sid") for s in statements if isinstance(s, dict) and "Sid" in s]
    if len(sids) != len(set(sids)):
        errors.append(f"Sids repeat: {sids}")
    index = operations_by_prefix()
    for n, st in enumerate(statements):
        where = f"Statement[{n}]" + (f" ({st.get('Sid')})" if isinstance(st, dict) else "")
        if not isinstance(st, dict):
            errors.append(f"{where}: not an object")
            continue
        for key in set(st) - STATEMENT_KEYS:
            errors.append(f"{where}: unknown element {key!r}")
        if "Sid" in st and not re.fullmatch(r"[A-Za-z0-9]*", str(st["Sid"])):
            errors.append(f"{where}: a Sid is letters and digits only")
        if st.get("Effect") not in ("Allow", "Deny"):
            errors.append(f"{where}: Effect must be Allow or Deny")
        wants_principal = kind in ("trust", "logs-resource")
        if wants_principal != ("Principal" in st or "NotPrincipal" in st):
            errors.append(f"{where}: a {kind} policy {'needs' if wants_principal else 'has no'} Principal")
        wants_resource = kind != "trust"
        if wants_resource != ("Resource" in st or "NotResource" in st):
            errors.append(f"{where}: a {kind} policy {'needs' if wants_resource else 'has no'} Resource")
        actions = as_list(st.get("Action", st.get("NotAction")))
        prefixes = set()
        for action in actions:
            if not isinstance(action, str) or action.count(":") != 1:
                errors.append(f"{where}: action {action!r} is not SERVICE:Operation")
                continue
            prefix, op = action.split(":")
            prefixes.add(prefix)
            ops = index.get(prefix)
            if ops is None:
                errors.append(f"{where}: {action}: no service with the prefix {prefix!r}")
            elif not fnmatch.filter(ops, op):
                errors.append(f"{where}: {action}: {prefix} has no operation {op!r}")
        for principal in as_list((st.get("Principal") or {}).get("Service", [])):
            label = principal.split(".")[0]
            if not principal.endswith(".amazonaws.com") or label not in index:
                errors.append(f"{where}: service principal {principal!r} names no known service")
        for arn in as_list(st.get("Resource", st.get("NotResource", []))):
            if arn == "*":
                continue
            parts = str(arn).split(":", 5)
            if len(parts) != 6 or parts[0] != "arn" or not parts[1].startswith("aws"):
                errors.append(f"{where}: resource {arn!r} is not an ARN")
            elif parts[2] not in prefixes:
                errors.append(f"{where}: resource {arn!r} is of {parts[2]}, not of {sorted(prefixes)}")
        for operator, keys in (st.get("Condition") or {}).items():
            if operator not in OPERATORS:
                errors.append(f"{where}: unknown condition operator {operator!r}")
            if not isinstance(keys, dict) or not keys:
                errors.append(f"{where}: condition {operator} has no keys")
    return errors
