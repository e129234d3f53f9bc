// The worker's MCP door (POST /mcp) through @modelcontextprotocol/sdk's own Client and
// StreamableHTTPClientTransport with their defaults (initialize, then 2025-11-25): tools
// listed, run_langgraph and run_strands cold then warm on the offline example agents, progress
// notifications carrying the model's text while it writes it, cancelling with an AbortSignal
// (the SDK sends notifications/cancelled), a failing tool.
//
// Run by scripts/test-clients.sh from a copy next to the cached node_modules, with
// AGENTDISPATCH_TEST_WORKER (the binary) and AGENTDISPATCH_ROOT (the repository) set.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, openSync, closeSync, readFileSync, writeFileSync, writeSync, renameSync, existsSync, constants } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";

const BIN = process.env.AGENTDISPATCH_TEST_WORKER;
const ROOT = process.env.AGENTDISPATCH_ROOT;
assert.ok(BIN && ROOT, "AGENTDISPATCH_TEST_WORKER and AGENTDISPATCH_ROOT must be set");
const FRAMEWORKS = join(ROOT, "frameworks");
const ANSWER = "Shouted: HELLO WORLD";

function logLines(w) {
  return readFileSync(w.logPath, "utf8")
    .split("\n")
    .map((l) => {
      try {
        return JSON.parse(l);
      } catch {
        return null;
      }
    })
    .filter(Boolean);
}

async function until(what, fn, ms = 180000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// The example models' piece gate: an empty file (no wait) until shut, then a FIFO from which
// each piece but a message's first waits for one line.
class Gate {
  constructor(dir) {
    this.path = join(dir, "gate");
    writeFileSync(this.path, "");
    this.fd = null;
  }
  shut() {
    const tmp = this.path + ".fifo";
    execFileSync("mkfifo", ["-m", "600", tmp]);
    this.fd = openSync(tmp, constants.O_RDWR);
    renameSync(tmp, this.path);
  }
  release() {
    writeSync(this.fd, "\n");
  }
  open() {
    const tmp = this.path + ".file";
    writeFileSync(tmp, "");
    renameSync(tmp, this.path);
    closeSync(this.fd);
    this.fd = null;
  }
}

let w;

before(async () => {
  for (const fw of ["langgraph", "strands"]) {
    assert.ok(existsSync(join(FRAMEWORKS, fw, ".venv", "bin", "python")), `frameworks/${fw}/.venv is missing: run scripts/setup-frameworks.sh`);
  }
  const dir = mkdtempSync(join(tmpdir(), "mcp-js-client-"));
  const logPath = join(dir, "worker.log");
  const gate = new Gate(dir);
  const log = openSync(logPath, "a");
  const env = { ...process.env };
  Object.assign(env, {
    PORT: "0",
    AGENTDISPATCH_HOST: "127.0.0.1",
    AGENTDISPATCH_ARTIFACT_DIR: join(dir, "artifacts"),
    AGENTDISPATCH_SESSION_DIR: join(dir, "sessions"),
    AGENTDISPATCH_FRAMEWORKS_DIR: FRAMEWORKS,
    // auto: a framework's warm parent starts after its first (cold) task.
    AGENTDISPATCH_WARM: "auto",
    AGENTDISPATCH_AGENT_FRAMEWORK: "echo",
    AGENTDISPATCH_FRAMEWORK_COMMAND_BROKEN: "sh -c 'echo boom >&2; exit 3'",
    AGENTDISPATCH_EXAMPLE_PIECE_GATE: gate.path,
    AGENTDISPATCH_KILL_GRACE_SECONDS: "2",
    RUST_LOG: "info",
  });
  const proc = spawn(BIN, [], { env, stdio: ["ignore", log, log] });
  closeSync(log);
  w = { proc, dir, logPath, gate };
  const listening = await until("the worker to listen", () => logLines(w).find((e) => e.message === "listening"), 20000);
  w.url = new URL(`http://127.0.0.1:${listening.address.split(":").at(-1)}/mcp`);
});

after(async () => {
  if (w?.proc.exitCode === null) {
    const exited = new Promise((r) => w.proc.on("exit", r));
    w.proc.kill("SIGTERM");
    await exited;
  }
  if (w) rmSync(w.dir, { recursive: true, force: true });
});

async function connect() {
  const client = new Client({ name: "agentdispatch-test", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(w.url);
  await client.connect(transport);
  return { client, transport };
}

async function statusOf(client, taskId) {
  const r = await client.callTool({ name: "task_status", arguments: { taskId } });
  assert.equal(r.isError, false, JSON.stringify(r));
  return r.structuredContent;
}

function startedWarm(status) {
  const line = status.events.find((e) => e.type === "task.log" && e.payload && "warm" in e.payload);
  return line ? line.payload.warm : false;
}

function taskOf(notes) {
  assert.match(notes[0].message, /^accepted: task /);
  return notes[0].message.slice("accepted: task ".length);
}

test("tools follow the frameworks; the session is the handshake's, none issued", async () => {
  const { client, transport } = await connect();
  assert.equal(transport.protocolVersion, "2025-11-25");
  assert.equal(transport.sessionId, undefined);
  assert.equal(client.getServerVersion().name, "agentdispatch-worker");
  const names = (await client.listTools()).tools.map((t) => t.name);
  for (const n of ["run_echo", "run_langgraph", "run_strands", "run_broken", "task_status", "task_cancel"]) {
    assert.ok(names.includes(n), names.join(","));
  }
  assert.ok(!names.includes("command_run"));
  await client.close();
});

for (const fw of ["langgraph", "strands"]) {
  test(`run_${fw} cold, then warm`, async () => {
    const { client } = await connect();
    for (const kind of ["cold", "warm"]) {
      if (kind === "warm") {
        await until(`${fw}'s warm parent`, () => logLines(w).some((e) => e.message === "warm parent ready" && e.framework === fw));
      }
      const notes = [];
      const r = await client.callTool({ name: `run_${fw}`, arguments: { instruction: "hello world" } }, undefined, {
        onprogress: (p) => notes.push(p),
      });
      assert.equal(r.isError, false, JSON.stringify(r));
      assert.equal(r.content[0].text, ANSWER);
      assert.equal(taskOf(notes), r.structuredContent.taskId);
      assert.ok(notes.some((n) => n.message === "tool_call shout"), JSON.stringify(notes));
      assert.ok(notes.map((n) => n.message).join("").includes(ANSWER), JSON.stringify(notes));
      assert.deepEqual(notes.map((n) => n.progress), notes.map((_, i) => i + 1));
      assert.equal(startedWarm(await statusOf(client, r.structuredContent.taskId)), kind === "warm", kind);
    }
    await client.close();
  });
}

test("progress carries each piece of the answer before the model writes the next", async () => {
  const { client } = await connect();
  const pieces = ["Shouted: ", "HELLO ", "WORLD"];
  const seen = [];
  let wake = () => {};
  w.gate.shut();
  try {
    let done = false;
    const call = client
      .callTool({ name: "run_langgraph", arguments: { instruction: "hello world" } }, undefined, {
        onprogress: (p) => {
          seen.push(p.message);
          wake();
        },
      })
      .finally(() => (done = true));
    for (let i = 0; i < pieces.length; i++) {
      while (!seen.includes(pieces[i])) await new Promise((r) => (wake = r));
      assert.equal(done, false);
      if (i + 1 < pieces.length) {
        assert.ok(!seen.includes(pieces[i + 1]));
        w.gate.release();
      }
    }
    assert.equal((await call).content[0].text, ANSWER);
  } finally {
    w.gate.open();
  }
  await client.close();
});

test("an aborted call cancels its task (notifications/cancelled)", async () => {
  const { client } = await connect();
  const notes = [];
  const abort = new AbortController();
  const call = client.callTool({ name: "run_langgraph", arguments: { instruction: "please be slow" } }, undefined, {
    signal: abort.signal,
    onprogress: (p) => {
      notes.push(p);
      if (p.message === "tool_call shout") abort.abort("the user gave up");
    },
  });
  await assert.rejects(call);
  const taskId = taskOf(notes);
  const s = await until("the task to stop", async () => {
    const s = await statusOf(client, taskId);
    return s.status !== "running" && s;
  }, 30000);
  assert.equal(s.status, "cancelled");
  assert.equal(s.errorCode, "cancelled");
  await client.close();
});

test("a failing task is a tool result with isError naming the error code", async () => {
  const { client } = await connect();
  const r = await client.callTool({ name: "run_broken", arguments: { instruction: "anything" } });
  assert.equal(r.isError, true);
  assert.match(r.content[0].text, /^exit_nonzero: /);
  assert.equal(r.structuredContent.exitCode, 3);
  await assert.rejects(client.callTool({ name: "run_nothing", arguments: { instruction: "x" } }), (e) => e instanceof McpError && e.code === -32602);
  await client.close();
});
