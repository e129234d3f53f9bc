"""Warm parent of agentdispatch-worker (SPEC §6.3; docs/warm-protocol.md, docs/warm-starts.md).

``agentdispatch.main`` calls ``serve`` when the worker started the runner with
``AGENTDISPATCH_WARM_FD``: the runner has imported its framework, ``serve`` imports the manifest's
entrypoint (and calls the runner's ``warmup``), reports ready on the control socket, and then hands
each task a fresh forked process. ``serve`` returns only in that process, which goes on exactly as
a cold child: it reads the envelope on stdin and writes the protocol on stdout.

The task process is forked ahead of time (a "spare"), so a request costs a message, not a fork.
The parent forks only while it is single-threaded (a fork copies only the calling thread: locks
held by another thread stay locked forever in the child); otherwise it refuses with the reason and
the worker starts the task cold.

Its modules, by concern:

* ``serving``: the parent's life: import, prepare, ready, the request loop;
* ``spare``: making a spare (one clone or two forks) and, in it, taking the task;
* ``messages``: the control messages, typed (``Ready``, ``ForkRequest``, ``Forked``, ``Refused``);
* ``tuning``: which tricks run (``Tuning``, read once; ``AGENTDISPATCH_WARM_TUNING=plain``) and the
  gate that says which this CPython and glibc allow;
* ``native``: the calls into the C library (``Cloner``, ``Holder``, the task id marker);
* ``memory``: immortal objects, pymalloc's gaps plugged, huge pages;
* ``pages``: page learning and copying ahead.
"""

from __future__ import annotations

from .serving import WARM_FD_VAR, serve

__all__ = ["serve", "WARM_FD_VAR"]
