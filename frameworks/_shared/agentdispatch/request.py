"""The HTTP request a task serves (SPEC §12): ``Request``, from the envelope's ``request``.

The worker writes it into the child's stdin envelope only (never its environment or a file):
the caller's ``Authorization``, the invocation's workload access token, forwarded headers, the
trace context. ``install`` makes it where agent code and AWS's libraries look for it:

* ``runner.request`` and ``agentdispatch.current_request()`` (for code with no runner, a tool);
* when ``bedrock_agentcore`` is importable, its ``BedrockAgentCoreContext``, set as AWS's own
  server (``BedrockAgentCoreApp``) sets it per request, so that ``@requires_access_token``,
  ``@requires_api_key`` and ``@requires_wat`` work in a child unchanged.

A warm child runs this after its fork: the warm parent never holds a request's secrets.
"""

from __future__ import annotations

import importlib.util
import sys
from contextvars import ContextVar

# The SDK's own rule for which headers its server puts in the request headers, when the SDK is
# too old to have ``is_forwardable_header``: Authorization and AgentCore's custom headers.
_CUSTOM_PREFIX = "x-amzn-bedrock-agentcore-runtime-custom-"

_current: "Request | None" = None


def _text(value) -> str | None:
    return value if isinstance(value, str) and value else None


class Request:
    """What a task knows of the HTTP request that started it. Every field may be None (a task
    started by ``agentdispatch-worker run`` has ids and no headers)."""

    def __init__(self, data: dict | None = None):
        data = data if isinstance(data, dict) else {}
        self.session_id: str | None = _text(data.get("sessionId"))
        self.request_id: str | None = _text(data.get("requestId"))
        self.user_id: str | None = _text(data.get("userId"))
        headers = data.get("headers")
        # Names lower-cased by the worker; values strings.
        self.headers: dict[str, str] = (
            {str(k).lower(): v for k, v in headers.items() if isinstance(v, str)} if isinstance(headers, dict) else {}
        )
        self.workload_access_token: str | None = _text(data.get("workloadAccessToken"))
        self.oauth2_callback_url: str | None = _text(data.get("oauth2CallbackUrl"))
        self.traceparent: str | None = _text(data.get("traceparent"))
        self.tracestate: str | None = _text(data.get("tracestate"))
        self.baggage: str | None = _text(data.get("baggage"))

    def header(self, name: str, default: str | None = None) -> str | None:
        """The header ``name`` (any case), or ``default``."""
        return self.headers.get(name.lower(), default)

    @property
    def request_headers(self) -> dict[str, str]:
        """The headers as AWS's ``RequestContext.request_headers`` holds them: ``Authorization``
        and the headers its runtime forwards (``X-Amzn-Bedrock-AgentCore-Runtime-Custom-*``, …)."""
        return sdk_headers(self.headers)

    def __repr__(self) -> str:
        # Names only: values may be secrets, and a repr ends up in logs and tracebacks.
        return (
            f"Request(session_id={self.session_id!r}, request_id={self.request_id!r}, user_id={self.user_id!r}, "
            f"headers={sorted(self.headers)!r}, workload_access_token={'<set>' if self.workload_access_token else None})"
        )


def current_request() -> Request | None:
    """The request this process's task serves (None before ``main`` read the envelope)."""
    return _current


def _forwardable():
    """The SDK's ``is_forwardable_header`` when it has one, else its older rule."""
    try:
        from bedrock_agentcore.runtime.models import is_forwardable_header

        return is_forwardable_header
    except Exception:  # noqa: BLE001 - no SDK, or one without the function
        return lambda name: name.lower().startswith(_CUSTOM_PREFIX)


def sdk_headers(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` filtered as the SDK's server filters a request's: ``Authorization`` under its
    canonical name, and the headers the SDK deems forwardable."""
    forwardable = _forwardable()
    out: dict[str, str] = {}
    for name, value in headers.items():
        if name == "authorization":
            out["Authorization"] = value
        elif forwardable(name):
            out[name] = value
    return out


def sdk_available() -> bool:
    """Whether ``bedrock_agentcore`` is imported or importable here."""
    if "bedrock_agentcore" in sys.modules:
        return True
    try:
        return importlib.util.find_spec("bedrock_agentcore") is not None
    except (ImportError, ValueError):
        return False


def preload_sdk() -> None:
    """Imports the SDK's context module when the SDK is importable (a warm parent, so that its
    forked children do not each import it); a broken SDK is left for the child to meet."""
    if sdk_available():
        try:
            import bedrock_agentcore.runtime.context  # noqa: F401
        except Exception:  # noqa: BLE001
            pass


# The SDK's request-scoped variables. A child serves exactly one request, so each becomes the
# process-wide default too: a thread the framework starts without copying the context (a tool
# run in a plain ``threading.Thread``) sees the request as the main thread does.
_SDK_VARS = ("_workload_access_token", "_oauth2_callback_url", "_request_id", "_session_id", "_request_headers")


def _set_agentcore(request: Request) -> bool:
    """Sets ``BedrockAgentCoreContext`` as ``BedrockAgentCoreApp._build_request_context`` does;
    False when the SDK cannot be imported."""
    try:
        from bedrock_agentcore.runtime.context import BedrockAgentCoreContext as ctx
    except Exception:  # noqa: BLE001 - not installed, or broken: the child runs without it
        return False
    headers = request.request_headers
    values = {
        "_workload_access_token": request.workload_access_token,
        "_oauth2_callback_url": request.oauth2_callback_url,
        "_request_id": request.request_id,
        "_session_id": request.session_id,
        "_request_headers": headers or None,
    }
    for name in _SDK_VARS:
        var = getattr(ctx, name, None)
        if isinstance(var, ContextVar) and values[name] is not None:
            setattr(ctx, name, ContextVar(var.name, default=values[name]))
    # Then the SDK's own setters, in the order and under the conditions its server uses.
    ctx.set_request_context(request.request_id, request.session_id)
    if request.workload_access_token:
        ctx.set_workload_access_token(request.workload_access_token)
    if request.oauth2_callback_url:
        ctx.set_oauth2_callback_url(request.oauth2_callback_url)
    if headers:
        ctx.set_request_headers(headers)
    return True


def install(request: Request) -> None:
    """Makes ``request`` this process's: ``current_request()`` and, when the SDK is importable,
    ``BedrockAgentCoreContext``."""
    global _current
    _current = request
    if sdk_available():
        _set_agentcore(request)


def request_context(request: Request):
    """What ``@app.entrypoint(payload, context)`` gets as ``context``: the SDK's own
    ``RequestContext`` (``session_id``, ``request_headers``) when it is importable, else
    ``request`` itself, which has the same two attributes (and the rest of the request)."""
    if sdk_available():
        try:
            from bedrock_agentcore.runtime.context import RequestContext

            return RequestContext(session_id=request.session_id, request_headers=request.request_headers or None)
        except Exception:  # noqa: BLE001 - an SDK without it: ours has the same attributes
            pass
    return request
