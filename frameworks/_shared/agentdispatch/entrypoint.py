"""The user's agent entrypoint: which one a task runs, importing it, and what a runner may call.

An entrypoint is ``module:attr`` (attr may be dotted). It comes from the deployment
(env ``AGENTDISPATCH_ENTRYPOINT``, a manifest's ``env``) or, per task, from the payload's
``input.entrypoint`` — the latter only when the worker allowed it (its
``AGENTDISPATCH_ENTRYPOINT_ALLOWLIST``) and said so in env ``AGENTDISPATCH_PAYLOAD_ENTRYPOINT``.

What a runner does with the object (``resolve``): it runs it when it already is the framework's
agent (``expect``). Otherwise the one other shape it accepts is a **factory**: a plain Python
function (``def``, not async, not a class, not a builtin, not a bound method) defined in your
own code — a file under ``AGENTDISPATCH_APP_DIR`` or the runner's folder, not in the standard
library or an installed package — that needs no arguments (the runner may offer keyword
arguments it documents, e.g. Strands' ``session_manager``, to a factory that names them) and
returns the framework's agent. Any other callable is refused without being called, so that an
entrypoint such as ``cgi:print_environ`` never runs as a "factory".

``module:attr()`` says so explicitly: ``attr`` is called with no arguments (a function or a class
of your own code, e.g. a CrewAI Flow class), and what it returns must be the agent.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import site
import sys
import sysconfig

from .process import reclaim_signals

APPROVED_VAR = "AGENTDISPATCH_PAYLOAD_ENTRYPOINT"


class EntrypointError(Exception):
    """The user's agent entrypoint is missing, malformed, not allowed, or not an agent."""

    code = "invalid_entrypoint"  # the task's errorCode (docs/errors.md)


class AgentImportError(EntrypointError):
    """The entrypoint's module cannot be imported: not found, or its code failed as it loaded."""

    code = "agent_import_failed"


class AgentLoaded(BaseException):
    """Raised by ``load_agent`` in check mode (``frameworks --check``, a warm parent's warm-up)
    once the agent is loaded and built, so that ``run`` stops before it runs anything. A
    BaseException, so that a runner's ``except Exception`` does not take it for a failure."""

    def __init__(self, description: str):
        super().__init__(description)
        self.description = description


def where(exc: BaseException) -> str:
    """Where ``exc`` happened, in the user's code when the traceback passes through it:
    ``my_agent.py:12, in add`` (the path relative to the app dir). Empty when unknown."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{_shown_path(exc.filename)}:{exc.lineno or '?'}"
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    if not frames:
        return ""
    mine = [f for f in frames if _is_users_file(f.tb_frame.f_code.co_filename)]
    last = (mine or frames)[-1]
    code = last.tb_frame.f_code
    return f"{_shown_path(code.co_filename)}:{last.tb_lineno}, in {code.co_name}"


def _shown_path(path: str) -> str:
    real = os.path.realpath(path)
    for root in (app_dir(), os.getcwd()):
        if _under(real, root):
            return os.path.relpath(real, os.path.realpath(root))
    return path


def _is_users_file(path: str) -> bool:
    if path.startswith("<"):
        return False
    real = os.path.realpath(path)
    if any(_under(real, d) for d in _interpreter_dirs()):
        return False
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the shared helper
    return not _under(real, here)


def one_line(exc: BaseException) -> str:
    """``Type: message (file:line, in function)`` on one line, the message clipped."""
    message = " ".join(str(exc).split()) or "(no message)"
    at = where(exc)
    return f"{type(exc).__name__}: {clip(message, 500)}" + (f" ({at})" if at else "")


def clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"


def chosen(inp: dict) -> str | None:
    """The entrypoint a task runs: ``input.entrypoint`` when the worker allowed it, else env
    ``AGENTDISPATCH_ENTRYPOINT``; empty counts as unset."""
    spec = inp.get("entrypoint")
    if spec in (None, ""):
        return os.environ.get("AGENTDISPATCH_ENTRYPOINT") or None
    if not isinstance(spec, str):
        raise EntrypointError(f"input.entrypoint must be a string \"module:attr\", got {spec!r:.200}")
    if spec != os.environ.get(APPROVED_VAR):
        raise EntrypointError(
            f"input.entrypoint {clip(spec)!r} was not allowed by the worker: a payload may choose only "
            "the entrypoints AGENTDISPATCH_ENTRYPOINT_ALLOWLIST lists (set AGENTDISPATCH_ENTRYPOINT to "
            "choose the agent instead)"
        )
    return spec


def app_dir() -> str:
    return os.path.abspath(os.environ.get("AGENTDISPATCH_APP_DIR") or os.getcwd())


def explicit_factory(spec: str) -> bool:
    """Whether ``spec`` is ``module:attr()``: a zero-argument factory to call."""
    return spec.strip().endswith("()")


def import_attr(spec: str):
    """The object ``module:attr`` names (``module:attr()`` too: the same object, not called yet),
    the module imported with the app dir first on sys.path."""
    module_name, sep, attr = spec.strip().removesuffix("()").partition(":")
    if not sep or not module_name or not attr or not all(p.isidentifier() for p in attr.split(".")):
        raise EntrypointError(f"invalid entrypoint {clip(spec)!r}: expected \"module:attr\", e.g. \"my_agent:agent\"")
    app = app_dir()
    if app not in sys.path:
        sys.path.insert(0, app)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing == module_name or module_name.startswith(missing + "."):
            raise AgentImportError(
                f"cannot import {module_name!r} of entrypoint {clip(spec)!r}: no module {missing!r} "
                f"in AGENTDISPATCH_APP_DIR={app}"
            ) from None
        raise AgentImportError(f"importing {module_name!r} failed: {one_line(exc)}") from exc
    except Exception as exc:
        raise AgentImportError(f"importing {module_name!r} failed: {one_line(exc)}") from exc
    reclaim_signals()  # the runner, not the agent module, owns SIGTERM
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise EntrypointError(f"entrypoint module {module_name!r} has no attribute {attr!r}") from None
    return obj


def describe(value) -> str:
    """A few words for a value's kind: "None", "an int", "a builtin function", …"""
    if value is None:
        return "None"
    if inspect.isclass(value):
        return f"the class {value.__module__}.{value.__qualname__}"
    kind = type(value)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    name = name.replace("_", " ") if kind.__module__ == "builtins" else name
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def _under(path: str, root: str) -> bool:
    root = os.path.realpath(root)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


@functools.lru_cache(maxsize=1)
def _interpreter_dirs() -> tuple[str, ...]:
    """Where the interpreter's own and installed code lives: never "your code", even inside the
    app dir (a framework folder holds its .venv). The library folders, not the prefixes: an app
    may well live under /usr/local."""
    dirs = {sys.prefix} if sys.prefix != sys.base_prefix else set()  # a virtualenv, whole
    paths = sysconfig.get_paths()
    dirs.update(p for k in ("stdlib", "platstdlib", "purelib", "platlib") if (p := paths.get(k)))
    try:
        dirs.update(site.getsitepackages())
        dirs.add(site.getusersitepackages())
    except AttributeError:  # site without these (embedded interpreters)
        pass
    return tuple(d for d in dirs if d)


def yours(function) -> bool:
    """Whether ``function`` was defined in the user's code: under the app dir or the runner's
    folder, outside the interpreter's libraries."""
    return _file_is_yours(function.__code__.co_filename)


def _file_is_yours(path: str) -> bool:
    path = os.path.realpath(path)
    if any(_under(path, d) for d in _interpreter_dirs()):
        return False
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    roots = [app_dir()] + ([os.path.dirname(os.path.abspath(main_file))] if main_file else [])
    return any(_under(path, r) for r in roots)


def resolve(obj, spec: str, is_agent, what: str, offered: dict | None = None, named: dict | None = None,
            build=None):
    """``obj`` when ``is_agent(obj)``; else what ``build(obj)`` makes of it (a runner's builder:
    an uncompiled LangGraph StateGraph compiled), when not None; else, when it is a factory
    (module docstring), what it returns, checked the same way. Anything else: EntrypointError
    saying what was expected.

    A factory gets the ``offered`` keyword arguments it names or takes as ``**kwargs``, and the
    ``named`` ones only when it names them (``payload``, ``context``: a ``**kwargs`` factory
    written before they were offered does not get them by surprise)."""
    if explicit_factory(spec):
        return call_explicit(obj, spec, is_agent, what, build)
    if is_agent(obj):
        return obj
    built = build(obj) if build is not None else None
    if built is not None:
        if not is_agent(built):
            raise EntrypointError(f"entrypoint {clip(spec)!r} built {describe(built)}, expected {what}")
        return built
    expected = f"expected {what} or a factory returning one"
    if not inspect.isfunction(obj):
        raise EntrypointError(f"entrypoint {clip(spec)!r} is {describe(obj)}, {expected}")
    name = f"{obj.__module__}.{obj.__qualname__}"
    if not yours(obj):
        raise EntrypointError(
            f"entrypoint {clip(spec)!r} is the function {name} from outside your code, {expected}: a factory "
            "is called only when it is defined under AGENTDISPATCH_APP_DIR or the runner's folder"
        )
    if inspect.iscoroutinefunction(obj) or inspect.isgeneratorfunction(obj) or inspect.isasyncgenfunction(obj):
        raise EntrypointError(f"entrypoint {clip(spec)!r} is an async or generator function, {expected}")
    signature = inspect.signature(obj)
    params = signature.parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in (offered or {}).items() if takes_any or k in params}
    kwargs.update({k: v for k, v in (named or {}).items() if k in params and k not in kwargs})
    try:
        signature.bind(**kwargs)
    except TypeError as exc:
        raise EntrypointError(
            f"entrypoint {clip(spec)!r} is a function with required arguments ({exc}), {expected}"
            + (f" (offered by name: {', '.join(offered)})" if offered else "")
        ) from None
    made = obj(**kwargs)
    if not is_agent(made) and build is not None and (built := build(made)) is not None:
        made = built
    if not is_agent(made):
        raise EntrypointError(f"entrypoint {clip(spec)!r} is a function returning {describe(made)}, {expected}")
    return made


def call_explicit(obj, spec: str, is_agent, what: str, build=None):
    """``module:attr()``: ``obj`` called with no arguments, when it is a function or class of the
    user's code (the same rule as an implicit factory: nothing from an installed package or the
    standard library is called); what it returns must be the agent (or what ``build`` makes one)."""
    if inspect.isclass(obj):
        path = getattr(sys.modules.get(obj.__module__), "__file__", None)
        mine = bool(path) and _file_is_yours(path)
    elif inspect.isfunction(obj):
        mine = yours(obj)
    else:
        raise EntrypointError(f"entrypoint {clip(spec)!r} is {describe(obj)}: \"()\" calls a function or class")
    if not mine:
        raise EntrypointError(
            f"entrypoint {clip(spec)!r} names {obj.__module__}.{obj.__qualname__} from outside your code: "
            "\"()\" calls only what is defined under AGENTDISPATCH_APP_DIR or the runner's folder"
        )
    try:
        inspect.signature(obj).bind()
    except (TypeError, ValueError) as exc:
        raise EntrypointError(f"entrypoint {clip(spec)!r} cannot be called with no arguments ({exc})") from None
    made = obj()
    if not is_agent(made) and build is not None and (built := build(made)) is not None:
        made = built
    if not is_agent(made):
        raise EntrypointError(f"entrypoint {clip(spec)!r} returned {describe(made)}, expected {what}")
    return made


def kind_check(expect):
    """``expect`` as a predicate: a type or tuple of types (isinstance), or a predicate itself."""
    if isinstance(expect, (type, tuple)):
        return lambda obj: isinstance(obj, expect)
    return expect
