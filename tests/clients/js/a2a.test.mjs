// The worker through @a2a-js/sdk 1.x with its default ClientFactory (the card's A2A 1.0
// JSON-RPC interface): send, stream, get, list, cancel, resubscribe (SubscribeToTask), errors,
// failed runs, non-blocking send, one contextId throughout. Every answer on the wire is also
// read with the SDK's own models (fromJSON, then toJSON): no field they lack, every value kept.
//
// Run by scripts/test-clients.sh from a copy next to the cached node_modules, with
// AGENTDISPATCH_TEST_WORKER (the binary) and AGENTDISPATCH_FIXTURE_FRAMEWORKS set.

import { test, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, openSync, closeSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";

import { ClientFactory } from "@a2a-js/sdk/client";
import {
  AgentCard,
  ListTasksRequest,
  ListTasksResponse,
  SendMessageRequest,
  SendMessageResponse,
  StreamResponse,
  Task,
  TaskState,
} from "@a2a-js/sdk";
import {
  TaskNotCancelableError,
  TaskNotFoundError,
  UnsupportedOperationError,
} from "@a2a-js/sdk/errors";

const BIN = process.env.AGENTDISPATCH_TEST_WORKER;
const FIXTURES = process.env.AGENTDISPATCH_FIXTURE_FRAMEWORKS;
assert.ok(BIN && FIXTURES, "AGENTDISPATCH_TEST_WORKER and AGENTDISPATCH_FIXTURE_FRAMEWORKS must be set");

const RESULT_MODEL = {
  SendMessage: SendMessageResponse,
  SendStreamingMessage: StreamResponse,
  SubscribeToTask: StreamResponse,
  GetTask: Task,
  CancelTask: Task,
  ListTasks: ListTasksResponse,
};
// The hybrid card's A2A 0.3 fields, beside the 1.0 ones.
const CARD_03_FIELDS = ["url", "preferredTransport", "protocolVersion"];

async function startWorker() {
  const dir = mkdtempSync(join(tmpdir(), "a2a-js-client-"));
  const logPath = join(dir, "worker.log");
  const log = openSync(logPath, "a");
  const env = { ...process.env };
  delete env.AGENTDISPATCH_PUBLIC_URL;
  delete env.AGENTCORE_RUNTIME_URL;
  Object.assign(env, {
    // The system picks a free port; the worker's "listening" line says which.
    PORT: "0",
    AGENTDISPATCH_HOST: "127.0.0.1",
    AGENTDISPATCH_ARTIFACT_DIR: join(dir, "artifacts"),
    AGENTDISPATCH_SESSION_DIR: join(dir, "sessions"),
    AGENTDISPATCH_FRAMEWORKS_DIR: FIXTURES,
    AGENTDISPATCH_WARM: "none",
    AGENTDISPATCH_AGENT_FRAMEWORK: "pyfixture",
    AGENTDISPATCH_KILL_GRACE_SECONDS: "2",
    RUST_LOG: "info",
  });
  const proc = spawn(BIN, [], { env, stdio: ["ignore", log, log] });
  closeSync(log);
  let exited = false;
  proc.on("exit", () => (exited = true));
  const deadline = Date.now() + 20000;
  while (!exited && Date.now() < deadline) {
    const listening = readFileSync(logPath, "utf8")
      .split("\n")
      .map((l) => {
        try {
          return JSON.parse(l);
        } catch {
          return null;
        }
      })
      .find((e) => e?.message === "listening");
    if (listening) {
      const url = `http://127.0.0.1:${listening.address.split(":").at(-1)}/`;
      assert.ok((await originalFetch(url + "ping")).ok);
      return { url, proc, dir };
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  proc.kill("SIGKILL");
  throw new Error("worker did not start: " + readFileSync(logPath, "utf8"));
}

async function stopWorker(w) {
  if (w.proc.exitCode === null) {
    const exited = new Promise((r) => w.proc.on("exit", r));
    w.proc.kill("SIGTERM");
    await exited;
  }
  rmSync(w.dir, { recursive: true, force: true });
}

// Every exchange the SDK makes, recorded by wrapping fetch (the SDK's default).
const originalFetch = globalThis.fetch;
let exchanges = [];
globalThis.fetch = async (input, init) => {
  const response = await originalFetch(input, init);
  const request = init?.body ? JSON.parse(init.body) : null;
  exchanges.push({
    method: init?.method ?? "GET",
    request,
    contentType: response.headers.get("content-type") ?? "",
    text: response.clone().text(),
  });
  return response;
};

function messagesOf(ex, text) {
  if (!ex.contentType.includes("text/event-stream")) return text.trim() ? [JSON.parse(text)] : [];
  return text
    .replace(/\r\n/g, "\n")
    .split("\n\n")
    .slice(0, -1)
    .map((block) =>
      block
        .split("\n")
        .filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).replace(/^ /, ""))
        .join("\n"),
    )
    .filter((d) => d)
    .map((d) => JSON.parse(d));
}

const FREE_FORM = new Set(["metadata", "data", "params"]);
const DEFAULTS = [null, "", 0, false];
// Where `raw` and the model's own JSON of it differ: fields the model lacks, values it changed.
function differences(raw, known, path = "") {
  if (Array.isArray(raw)) {
    if (!Array.isArray(known)) return raw.length ? [path] : [];
    return raw.flatMap((v, i) => differences(v, known[i], `${path}[${i}]`));
  }
  if (raw && typeof raw === "object") {
    if (!known || typeof known !== "object") return Object.keys(raw).length ? [path] : [];
    return Object.entries(raw).flatMap(([k, v]) => {
      if (!(k in known)) {
        const empty = DEFAULTS.includes(v) || (Array.isArray(v) && !v.length);
        return empty ? [] : [`${path}.${k}`];
      }
      return FREE_FORM.has(k) ? [] : differences(v, known[k], `${path}.${k}`);
    });
  }
  return raw === known ? [] : [`${path}: ${JSON.stringify(raw)} became ${JSON.stringify(known)}`];
}

async function checkEveryAnswer() {
  let checked = 0;
  for (const ex of exchanges) {
    for (const msg of messagesOf(ex, await ex.text)) {
      if (ex.method === "GET") {
        if (!("skills" in msg)) continue; // /ping
        const card = { ...msg };
        for (const k of CARD_03_FIELDS) delete card[k];
        assert.deepEqual(differences(card, AgentCard.toJSON(AgentCard.fromJSON(card))), []);
      } else {
        assert.equal(msg.jsonrpc, "2.0");
        assert.equal(msg.id, ex.request.id);
        if (msg.error) {
          assert.equal(typeof msg.error.code, "number");
          assert.equal(typeof msg.error.message, "string");
        } else {
          const Model = RESULT_MODEL[ex.request.method];
          assert.ok(Model, ex.request.method);
          const back = Model.toJSON(Model.fromJSON(msg.result));
          assert.deepEqual(differences(msg.result, back), [], JSON.stringify(msg.result));
        }
      }
      checked += 1;
    }
  }
  assert.ok(checked > 0);
}

let worker;
beforeEach(async () => {
  exchanges = [];
  worker = await startWorker();
});
afterEach(async () => {
  await stopWorker(worker);
  await checkEveryAnswer();
});

const client = () => new ClientFactory().createFromUrl(worker.url);

function request(text, extra = {}) {
  return SendMessageRequest.fromJSON({
    message: { messageId: randomUUID(), role: "ROLE_USER", parts: [{ text }], ...extra.message },
    ...(extra.configuration ? { configuration: extra.configuration } : {}),
  });
}

async function collect(stream) {
  const out = [];
  for await (const e of stream) out.push(structuredClone(e));
  return out;
}

const kind = (e) => e.payload?.$case;
const textOf = (parts) => parts.map((p) => p.content?.value).join("\n");

// The SDK's error classes (its client bundle's own copies answer instanceof too).
function isSdkError(err, cls) {
  return err instanceof cls;
}

test("the default client picks the 1.0 interface of the hybrid card", async () => {
  const c = await client();
  assert.equal(c.protocolVersion, "1.0");
  const card = await c.getAgentCard();
  assert.deepEqual(card.supportedInterfaces.map((i) => i.protocolVersion).sort(), ["0.3", "1.0"]);
  assert.ok(card.supportedInterfaces.every((i) => i.url === worker.url));
  assert.equal(card.capabilities.streaming, true);
  assert.equal(card.skills[0].id, "agentdispatch.agent.run");
});

test("a stream sends the task first, then updates, then the terminal state, and closes", async () => {
  const c = await client();
  const events = await collect(c.sendMessageStream(request("sleep 0.2")));
  assert.equal(kind(events[0]), "task");
  const task = events[0].payload.value;
  assert.equal(task.status.state, TaskState.TASK_STATE_WORKING);
  const kinds = events.map(kind);
  assert.ok(kinds.slice(1, -1).includes("statusUpdate"));
  assert.deepEqual(kinds.slice(-2), ["artifactUpdate", "statusUpdate"]);
  assert.equal(textOf(events.at(-2).payload.value.artifact.parts), "slept");
  assert.equal(events.at(-1).payload.value.status.state, TaskState.TASK_STATE_COMPLETED);
  for (const e of events.slice(1)) {
    assert.equal(e.payload.value.taskId, task.id);
    assert.equal(e.payload.value.contextId, task.contextId);
  }
});

test("a send blocks until the task is completed, and get agrees", async () => {
  const c = await client();
  const task = await c.sendMessage(request("sleep 0.1"));
  assert.equal(task.status.state, TaskState.TASK_STATE_COMPLETED);
  assert.equal(textOf(task.artifacts[0].parts), "slept");
  assert.equal(textOf(task.status.message.parts), "slept");
  const got = await c.getTask({ tenant: "", id: task.id });
  assert.equal(got.status.state, TaskState.TASK_STATE_COMPLETED);
  assert.equal(got.contextId, task.contextId);
  assert.ok(got.history.length >= 1);
  const none = await c.getTask({ tenant: "", id: task.id, historyLength: 0 });
  assert.equal(none.history.length, 0);
});

test("cancel stops a running task, and a finished one is not cancelable", async () => {
  const c = await client();
  const stream = c.sendMessageStream(request("sleep 30"));
  const first = (await stream.next()).value;
  const id = first.payload.value.id;
  const canceled = await c.cancelTask({ tenant: "", id });
  assert.equal(canceled.status.state, TaskState.TASK_STATE_CANCELED);
  const rest = await collect(stream);
  assert.equal(rest.at(-1).payload.value.status.state, TaskState.TASK_STATE_CANCELED);
  await assert.rejects(c.cancelTask({ tenant: "", id }), (err) => isSdkError(err, TaskNotCancelableError));
});

test("resubscribe joins a running task, task first, until its end", async () => {
  const c = await client();
  const stream = c.sendMessageStream(request("sleep 30"));
  const first = (await stream.next()).value.payload.value;
  const other = await client();
  const joined = other.resubscribeTask({ tenant: "", id: first.id });
  const now = (await joined.next()).value;
  assert.equal(kind(now), "task");
  assert.equal(now.payload.value.id, first.id);
  assert.equal(now.payload.value.status.state, TaskState.TASK_STATE_WORKING);
  assert.equal(now.payload.value.contextId, first.contextId);
  await c.cancelTask({ tenant: "", id: first.id });
  const rest = await collect(joined);
  assert.equal(rest.at(-1).payload.value.status.state, TaskState.TASK_STATE_CANCELED);
  for (const e of rest) assert.equal(e.payload.value.contextId, first.contextId);
  await collect(stream);
  await assert.rejects(collect(other.resubscribeTask({ tenant: "", id: first.id })), (err) =>
    isSdkError(err, UnsupportedOperationError),
  );
});

test("an unknown task id is the SDK's not-found error", async () => {
  const c = await client();
  const notFound = (err) => isSdkError(err, TaskNotFoundError);
  await assert.rejects(c.getTask({ tenant: "", id: "no-such-task" }), notFound);
  await assert.rejects(c.cancelTask({ tenant: "", id: "no-such-task" }), notFound);
  await assert.rejects(collect(c.resubscribeTask({ tenant: "", id: "no-such-task" })), notFound);
});

test("a failed run reads as failed, with the error", async () => {
  const c = await client();
  const events = await collect(c.sendMessageStream(request("explode")));
  const last = events.at(-1).payload.value;
  assert.equal(last.status.state, TaskState.TASK_STATE_FAILED);
  assert.match(textOf(last.status.message.parts), /explode/);
  const got = await c.getTask({ tenant: "", id: last.taskId });
  assert.equal(got.status.state, TaskState.TASK_STATE_FAILED);
  const blocking = await c.sendMessage(request("explode again"));
  assert.equal(blocking.status.state, TaskState.TASK_STATE_FAILED);
  assert.match(textOf(blocking.status.message.parts), /explode again/);
});

test("a non-blocking send answers at once with the working task", async () => {
  const c = await client();
  // Blocking, this would wait the whole 30 s.
  const task = await c.sendMessage(request("sleep 30", { configuration: { returnImmediately: true } }));
  assert.equal(task.status.state, TaskState.TASK_STATE_WORKING);
  const got = await c.getTask({ tenant: "", id: task.id });
  assert.equal(got.status.state, TaskState.TASK_STATE_WORKING);
  assert.equal(got.contextId, task.contextId);
  const canceled = await c.cancelTask({ tenant: "", id: task.id });
  assert.equal(canceled.status.state, TaskState.TASK_STATE_CANCELED);
});

test("one contextId throughout, and a follow-up continues the session", async () => {
  const c = await client();
  const first = await collect(c.sendMessageStream(request("turn")));
  const task = first[0].payload.value;
  const context = task.contextId;
  assert.ok(context);
  for (const e of first) assert.equal(e.payload.value.contextId, context);
  const got = await c.getTask({ tenant: "", id: task.id });
  assert.equal(got.contextId, context);
  const second = await c.sendMessage(request("turn", { message: { contextId: context } }));
  assert.equal(second.contextId, context);
  assert.notEqual(second.id, task.id);
  const turn = JSON.parse(textOf(second.artifacts[0].parts));
  assert.equal(turn.session, context);
  assert.deepEqual(turn.earlier, [task.id]);
  const listed = await c.listTasks(ListTasksRequest.fromJSON({ contextId: context }));
  assert.deepEqual(listed.tasks.map((t) => t.id).sort(), [task.id, second.id].sort());
  assert.equal(listed.totalSize, 2);
  assert.equal(listed.nextPageToken, "");
});
