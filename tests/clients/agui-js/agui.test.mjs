// AG-UI on POST /invocations through @ag-ui/client's HttpAgent with its default settings: the
// client parses the SSE stream, checks every event against @ag-ui/core's schemas and the order
// its verifier demands, and applies them to its messages — for two frameworks' example agents
// (each calls its `shout` tool) and for a failed run, two runs in one thread.
//
// Run by scripts/test-clients.sh agui-js from a copy next to the cached node_modules, with
// AGENTDISPATCH_TEST_WORKER (the binary) and AGENTDISPATCH_FRAMEWORKS (the repository's
// frameworks/, whose venvs scripts/setup-frameworks.sh makes) set.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, openSync, closeSync, readFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";

import { HttpAgent } from "@ag-ui/client";

const BIN = process.env.AGENTDISPATCH_TEST_WORKER;
const FRAMEWORKS = process.env.AGENTDISPATCH_FRAMEWORKS;
assert.ok(BIN && FRAMEWORKS, "AGENTDISPATCH_TEST_WORKER and AGENTDISPATCH_FRAMEWORKS must be set");
const TWO = ["langgraph", "strands"];

let worker;

async function startWorker() {
  const dir = mkdtempSync(join(tmpdir(), "agui-js-client-"));
  const logPath = join(dir, "worker.log");
  const log = openSync(logPath, "a");
  const env = {
    ...process.env,
    // The system picks a free port; the worker's "listening" line says which.
    PORT: "0",
    AGENTDISPATCH_HOST: "127.0.0.1",
    AGENTDISPATCH_ARTIFACT_DIR: join(dir, "artifacts"),
    AGENTDISPATCH_SESSION_DIR: join(dir, "sessions"),
    AGENTDISPATCH_FRAMEWORKS_DIR: FRAMEWORKS,
    AGENTDISPATCH_AGENT_FRAMEWORK: "echo",
    AGENTDISPATCH_WARM: TWO.join(","),
    RUST_LOG: "info",
  };
  const proc = spawn(BIN, [], { env, stdio: ["ignore", log, log] });
  const lines = () => readFileSync(logPath, "utf8").split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
  const deadline = Date.now() + 180_000;
  // Ready when listening and both warm parents are up (the runs are then forked warm).
  for (;;) {
    const seen = lines();
    const listening = seen.find((l) => l.message === "listening");
    const ready = new Set(seen.filter((l) => l.message === "warm parent ready").map((l) => l.framework));
    if (listening && TWO.every((f) => ready.has(f))) {
      const port = Number(listening.address.split(":").pop());
      return { proc, dir, log, url: `http://127.0.0.1:${port}/invocations` };
    }
    assert.ok(Date.now() < deadline && proc.exitCode === null, `worker not ready:\n${readFileSync(logPath, "utf8")}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

before(async () => {
  for (const f of TWO) {
    assert.ok(existsSync(join(FRAMEWORKS, f, ".venv", "bin", "python")), `run scripts/setup-frameworks.sh ${f}`);
  }
  worker = await startWorker();
});

after(() => {
  worker.proc.kill("SIGTERM");
  closeSync(worker.log);
  rmSync(worker.dir, { recursive: true, force: true });
});

/** One run through HttpAgent (default settings); every event the client accepted, in order. */
async function run(agent, params) {
  const events = [];
  const outcome = await agent.runAgent(params, { onEvent: ({ event }) => void events.push(event) });
  return { events, outcome };
}

for (const framework of TWO) {
  test(`${framework}: HttpAgent runs the example agent, its tool call and answer applied`, async () => {
    const agent = new HttpAgent({
      url: worker.url,
      initialMessages: [{ id: randomUUID(), role: "user", content: "hello world" }],
      initialState: { units: "metric" },
    });
    const { events, outcome } = await run(agent, { forwardedProps: { framework } });
    const types = events.map((e) => e.type);
    assert.equal(types[0], "RUN_STARTED");
    assert.equal(types.at(-1), "RUN_FINISHED");
    assert.equal(outcome.result.output, "Shouted: HELLO WORLD");
    // The client's own messages now hold the tool call (on an assistant message), its result
    // and the answer.
    const calls = agent.messages.flatMap((m) => (m.role === "assistant" ? m.toolCalls ?? [] : []));
    assert.deepEqual(calls.map((c) => c.function.name), ["shout"]);
    assert.match(JSON.parse(calls[0].function.arguments).text ?? calls[0].function.arguments, /hello world/i);
    const tool = agent.messages.find((m) => m.role === "tool");
    assert.equal(tool.toolCallId, calls[0].id);
    assert.match(tool.content, /HELLO WORLD/);
    assert.ok(
      agent.messages.some((m) => m.role === "assistant" && m.content === "Shouted: HELLO WORLD"),
      JSON.stringify(agent.messages),
    );
    assert.ok(outcome.newMessages.length >= 3, JSON.stringify(outcome.newMessages));
  });
}

test("a run that fails ends with RUN_ERROR, and the thread runs on", async () => {
  const agent = new HttpAgent({
    url: worker.url,
    initialMessages: [{ id: randomUUID(), role: "user", content: "hi" }],
  });
  const failed = [];
  // HttpAgent 1.0 resolves a run that ended with RUN_ERROR (its subscribers hear of it).
  await agent
    .runAgent({ forwardedProps: { framework: "no-such-framework" } }, {
      onRunErrorEvent: ({ event }) => void failed.push(event),
    })
    .catch(() => {});
  assert.equal(failed.length, 1);
  assert.equal(failed[0].code, "unknown_framework");
  assert.match(failed[0].message, /no-such-framework/);
  // The same thread (session), the default framework (echo): a second run answers.
  agent.addMessage({ id: randomUUID(), role: "user", content: "again" });
  const { outcome } = await run(agent, {});
  assert.equal(outcome.result.output, "Accepted instruction: again");
  assert.equal(agent.messages.at(-1).content, "Accepted instruction: again");
});
