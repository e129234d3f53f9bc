"""OpenTelemetry in a runner: the task's trace, so that the framework's own spans (Strands',
ADOT's instrumentations) are children of the worker's task span (SPEC §12, tracing).

The worker hands each task ``TRACEPARENT``/``TRACESTATE``/``BAGGAGE`` (OpenTelemetry's
environment carrier) naming its task span. In the task process, ``start()`` sets up export when
the deployment asked for it, then makes that context the current one.

Export is asked for by the standard variables: ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, or AgentCore's ``AGENT_OBSERVABILITY_ENABLED=true`` (ADOT).
Without them the helper keeps OpenTelemetry off (``process.QUIET_ENV``) and sets nothing up.
With them: an installed distro (``aws-opentelemetry-distro``, ``opentelemetry-distro``) is
initialised as ``opentelemetry-instrument`` would; otherwise the SDK with the OTLP/HTTP exporter
(``opentelemetry-exporter-otlp-proto-http``) when both are installed. Agent code that already
set a tracer provider keeps it.

Warm starts: the SDK's batch span processor runs a thread, and a warm parent with a thread
cannot fork. So a warm parent only imports (``preload``), and each forked task sets up its own
processor after its fork, in ``start()``.
"""

from __future__ import annotations

import os
import sys
import time

CARRIER = ("TRACEPARENT", "TRACESTATE", "BAGGAGE")
ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
# How long a failing task waits for its spans to leave (its exit waits on it).
FLUSH_MILLIS = 2000

# What start() did, for the task's log: the set-up's milliseconds and how it exported.
setup_ms: float | None = None
exporting: str | None = None


def wanted() -> bool:
    """Whether the deployment asked for traces: an OTLP endpoint, or AgentCore's ADOT switch,
    and the SDK not disabled by the user."""
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("AGENT_OBSERVABILITY_ENABLED", "").strip().lower() == "true":
        return True
    return any(env.get(name, "").strip() for name in ENDPOINT_VARS)


# What preload() found in a warm parent, inherited by its forked tasks: whether a distro is
# installed, and the SDK's Resource (both read the installed packages' entry points: 10-30 ms).
_prepared: dict = {}


def _distro_installed() -> bool:
    if "distro" not in _prepared:
        from importlib.metadata import entry_points

        _prepared["distro"] = bool(entry_points(group="opentelemetry_distro"))
    return _prepared["distro"]


def _resource():
    if "resource" not in _prepared:
        from opentelemetry.sdk.resources import Resource

        _prepared["resource"] = Resource.create()
    return _prepared["resource"]


def preload() -> None:
    """In a warm parent: import what ``start()`` will need and read the installed packages
    once, starting nothing (no thread, no connection), so that a forked task pays only for
    making its exporter and processor."""
    if not wanted():
        return
    try:
        import opentelemetry.context  # noqa: F401
    except ImportError:
        _prepared["api"] = False  # a failed import is not cached: no task tries again
        return
    # The exporter imports its HTTP transport (requests) only when made: 90-130 ms here.
    for module in ("opentelemetry.propagate", "opentelemetry.sdk.trace", "opentelemetry.sdk.trace.export",
                   "opentelemetry.exporter.otlp.proto.http.trace_exporter", "requests",
                   "opentelemetry.exporter.http.transport._requests",
                   "opentelemetry.instrumentation.auto_instrumentation"):
        try:
            __import__(module)
        except Exception:  # noqa: BLE001 - not installed: start() says what it could do
            pass
    try:
        if not _distro_installed():
            _resource()
    except Exception:  # noqa: BLE001 - no SDK: start() says so
        pass


def _set_up() -> str | None:
    """Export the task's spans; returns how ("distro", "sdk", "existing"), or None."""
    from opentelemetry import trace

    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return "existing"  # agent code (or a wrapper such as opentelemetry-instrument) set one
    try:
        if _distro_installed():
            from opentelemetry.instrumentation.auto_instrumentation import initialize

            initialize()
            return "distro"
    except ImportError:
        pass
    if not any(os.environ.get(name, "").strip() for name in ENDPOINT_VARS):
        # AGENT_OBSERVABILITY_ENABLED alone: ADOT knows where AgentCore's spans go; the plain
        # exporter would try localhost:4318.
        sys.stderr.write("agentdispatch: AGENT_OBSERVABILITY_ENABLED=true, but aws-opentelemetry-distro is not "
                         "installed: add it to the framework's requirements\n")
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        sys.stderr.write(f"agentdispatch: traces asked for, but {exc.name or exc} is not installed: "
                         "add opentelemetry-exporter-otlp-proto-http (or aws-opentelemetry-distro) "
                         "to the framework's requirements\n")
        return None
    provider = TracerProvider(resource=_resource())
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return "sdk"


def start() -> None:
    """In the task process, before the agent runs: export when asked (see the module's text),
    then make the worker's task span the current context. Never fails the task: a tracing
    problem is said on stderr."""
    global setup_ms, exporting
    carrier = {name.lower(): os.environ[name] for name in CARRIER if os.environ.get(name)}
    want = wanted()
    if (not carrier and not want) or _prepared.get("api") is False:
        return
    began = time.perf_counter()
    try:
        from opentelemetry import context, propagate
    except ImportError:
        return  # no OpenTelemetry: nothing to nest
    try:
        if want:
            exporting = _set_up()
        if carrier:
            context.attach(propagate.extract(carrier))
    except Exception as exc:  # noqa: BLE001 - tracing must not fail the task
        sys.stderr.write(f"agentdispatch: tracing not set up: {type(exc).__name__}: {exc}\n")
    if want:  # said in the task's log (child.main) only when traces were asked for
        setup_ms = round((time.perf_counter() - began) * 1000, 2)


def flush() -> None:
    """Send the spans still buffered (a task that fails exits at once, without atexit)."""
    if exporting is None:
        return
    try:
        from opentelemetry import trace

        provider = trace.get_tracer_provider()
        if hasattr(provider, "force_flush"):
            provider.force_flush(FLUSH_MILLIS)
    except Exception:  # noqa: BLE001
        pass
