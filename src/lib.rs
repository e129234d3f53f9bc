//! `agentdispatch-worker`: a sidecar-supervisor that runs agent work inside an AWS Bedrock
//! AgentCore Runtime container. It takes invocations over HTTP, runs each task as a supervised
//! child process speaking newline-delimited JSON over stdio, turns its lines into task events,
//! emits heartbeats, and kills runaway process groups.
//!
//! # Layout
//!
//! One task flows in a straight line:
//! HTTP request → payload → task → supervisor → events → artifacts → result → reply.
//!
//! - [`config`]: every `AGENTDISPATCH_*` variable, parsed once with errors naming the variable.
//! - [`wire`]: the wire types (payload, result, event, artifact) in the reference worker's shape.
//! - [`agui`]: AG-UI: a `RunAgentInput` as a payload, a task as AG-UI events (any transport).
//! - [`http`]: warp routes (`/ping`, `/invocations`, `/tasks`, A2A), JSON errors, SSE.
//! - [`task`]: the task registry (busy state, capacity, idempotent ids, status, cancel, list)
//!   and the runner that turns a payload into a supervised run and a result.
//! - [`child`]: a task's child process: what to run, its pipes, spawned (without a shell, in
//!   its own process group) or adopted from a warm parent, waited for.
//! - [`supervisor`]: one child in its own process group, read top to bottom as one loop over
//!   its `Phase` (running, stopping, exited, settling): both pipes as one line stream,
//!   heartbeats, deadline and cancel (one stop: TERM → grace → KILL), stragglers and escapees
//!   killed and reaped.
//! - [`protocol`]: a child's stdout line → event or final result.
//! - [`childlog`]: a framework child's own lines (print, logging) on the worker's log,
//!   clipped and rate-limited.
//! - [`events`]: the one event sink (buffer, live subscribers, `events.ndjson`).
//! - [`live`]: live text (`task.delta`): never recorded, fanned out through merging queues.
//! - [`frameworks`]: built-in `echo`, the frameworks directory, env-defined commands.
//! - [`command`]: `command.run` argv splitting and the allowlist.
//! - [`entrypoints`]: which agent entrypoints a payload may choose.
//! - [`init`]: `init`, a framework folder for the user's own agent on a shipped runner.
//! - [`interrupts`]: a task that asks (SPEC §14): questions checked, kept open in the session
//!   folder, answers matched by `input.resume`.
//! - [`artifacts`]: the task folder, atomic files, artifact metadata.
//! - [`sessions`]: session folders and one `agent.run` turn at a time per session.
//! - [`cgroup`]: a cgroup v2 per task where the hierarchy is writable: the worker's own tree,
//!   a task's cgroup killed whole and removed, earlier workers' trees cleaned at start-up
//!   (`mount`: where the hierarchy is; `dir`: one cgroup directory's files). Which cgroup a
//!   task's child runs in is decided in one place, the runner's `in_its_cgroup`.
//! - [`memory`]: freed memory handed back to the system after tasks leave memory.
//! - [`retention`]: finished task folders deleted past `AGENTDISPATCH_ARTIFACT_RETENTION_SECONDS`.
//! - [`seal`]: the worker's environment, memory and inherited descriptors kept from its children.
//! - [`procfs`]: the `/proc` readers (state, children, environment, cgroup of a process) that
//!   the supervisor, the reaper, the warm channel and the cgroups share.
//! - [`reaper`]: PID-1 duties: subreaper, reaping orphans without stealing tokio's children;
//!   every child is spawned here, with the parent-death signal set.
//! - [`warm`]: warm parents: one pre-imported process per framework that forks each task's
//!   child, handed to the supervisor like a spawned one.
//! - [`trace`]: one trace: a request's W3C (or X-Ray) context continued with a span for the
//!   request and one per task, exported over OTLP/HTTP when `OTEL_*` ask for it; the task's
//!   child gets `TRACEPARENT` naming its span.
//! - [`cli`]: the `run` and `frameworks` subcommands.

pub mod agui;
pub mod artifacts;
pub mod cgroup;
pub mod check;
pub mod child;
pub mod childlog;
pub mod cli;
pub mod command;
pub mod config;
pub mod dev;
pub mod entrypoints;
pub mod events;
pub mod frameworks;
pub mod http;
pub mod init;
pub mod interrupts;
pub mod live;
pub mod mcp;
pub mod memory;
pub mod procfs;
pub mod protocol;
pub mod reaper;
pub mod request_context;
pub mod retention;
pub mod seal;
pub mod sessions;
pub mod supervisor;
pub mod task;
pub mod trace;
pub mod warm;
pub mod wire;
