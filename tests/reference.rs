//! The TypeScript reference worker's own test cases (`agent-dispatch/worker-agentcore`,
//! `test/worker.test.ts` and `test/server.test.ts`), translated by their assertions into tests
//! through the real binary. The reference calls `runAgentDispatchWorkerTask` in-process with
//! options (`artifactDir`, `commandAllowlist`, `frameworkAdapters`); here each becomes the
//! worker's configuration and a `POST /invocations`. Where an assertion conflicts with SPEC.md,
//! SPEC wins and a comment says so.

mod common;

use common::*;
use serde_json::{json, Value};

/// The reference's `toMatchObject`: every key of `expected` is in `actual` with a matching
/// value (objects recursively), arrays match element by element and have the same length.
#[track_caller]
fn assert_matches(actual: &Value, expected: &Value) {
    fn matches(actual: &Value, expected: &Value) -> bool {
        match (actual, expected) {
            (Value::Object(a), Value::Object(e)) => e
                .iter()
                .all(|(k, v)| a.get(k).is_some_and(|av| matches(av, v))),
            (Value::Array(a), Value::Array(e)) => {
                a.len() == e.len() && a.iter().zip(e).all(|(av, ev)| matches(av, ev))
            }
            (a, e) => a == e,
        }
    }
    assert!(
        matches(actual, expected),
        "{actual:#}\ndoes not match\n{expected:#}"
    );
}

fn events(r: &Value) -> &Vec<Value> {
    r["events"].as_array().expect("events")
}

/// `events.at(-1)`.
fn last_event(r: &Value) -> &Value {
    events(r).last().expect("at least one event")
}

fn has_message(r: &Value, message: &str) -> bool {
    events(r).iter().any(|e| e["message"] == message)
}

/// A child in Python that does what the reference's Node.js scripts do (`body` after reading
/// the envelope from stdin into `request`).
fn child(dir: &std::path::Path, name: &str, body: &str) -> String {
    let text = format!(
        "import json, os, sys\nrequest = json.loads(sys.stdin.read())\n{}",
        body.trim_start()
    );
    let path = script(dir, name, &text);
    format!("python3 {}", path.display())
}

// --- test/worker.test.ts -----------------------------------------------------------------

#[tokio::test]
async fn worker_accepts_agent_run_payloads() {
    let w = WorkerBuilder::new().start().await;
    let r = w
        .run(json!({"taskType":"agent.run","input":{"instruction":"work"}}))
        .await;
    assert_eq!(r["ok"], true);
    assert_matches(&events(&r)[0], &json!({"payload":{"framework":"echo"}}));
    assert_eq!(events(&r)[0]["type"], "task.progress");
    assert!(events(&r).iter().any(|e| e["type"] == "task.heartbeat"));
    assert_matches(
        &r["artifacts"][0],
        &json!({"kind":"json","contentType":"application/json"}),
    );
    let uri = r["artifacts"][0]["uri"].as_str().unwrap();
    let manifest = std::path::Path::new(uri).with_file_name("manifest.json");
    assert!(std::fs::read_to_string(manifest)
        .unwrap()
        .contains("result.json"));
    // SPEC §3 on top: accepted, the one heartbeat, then task.result whose payload is the
    // echo's result value (the same object as the answer's `result`), status as its message.
    let kinds: Vec<&str> = events(&r)
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["task.progress", "task.heartbeat", "task.result"]);
    assert_eq!(events(&r)[1]["payload"]["status"], "running");
    assert_eq!(last_event(&r)["payload"], r["result"]);
    assert_eq!(last_event(&r)["message"], "succeeded");
    assert_matches(
        &last_event(&r)["payload"],
        &json!({"framework":"echo","instruction":"work","context":{}}),
    );
    assert!(last_event(&r)["payload"]["completedAt"].is_string());
}

#[tokio::test]
async fn worker_writes_per_invocation_artifact_paths_without_collisions() {
    let w = WorkerBuilder::new().start().await;
    let first = w
        .run(json!({"taskType":"agent.run","input":{"instruction":"first"}}))
        .await;
    let second = w
        .run(json!({"taskType":"agent.run","input":{"instruction":"second"}}))
        .await;
    let (a, b) = (
        first["artifacts"][0]["uri"].as_str().unwrap(),
        second["artifacts"][0]["uri"].as_str().unwrap(),
    );
    assert_ne!(a, b);
    assert!(std::fs::read_to_string(a).unwrap().contains("first"));
    assert!(std::fs::read_to_string(b).unwrap().contains("second"));
    for uri in [a, b] {
        let manifest = std::path::Path::new(uri).with_file_name("manifest.json");
        assert!(std::fs::read_to_string(manifest).unwrap().contains(uri));
    }
}

#[tokio::test]
async fn worker_runs_explicit_framework_adapters_selected_by_input() {
    // The reference passes an in-process adapter; here a framework is a program, so the
    // adapter is a command-backed framework of the same name answering the same way.
    let dir = tempfile::tempdir().unwrap();
    let strands = child(
        dir.path(),
        "strands.py",
        r#"
print(json.dumps({
    "output": "strands:" + request["instruction"],
    "result": {"framework": "strands", "answer": request["instruction"]},
    "events": [{"type": "task.progress", "message": "strands started"}],
}))
"#,
    );
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_FRAMEWORK_COMMAND_STRANDS", &strands)
        .start()
        .await;
    let r = w
        .run(json!({"taskType":"agent.run","input":{"instruction":"deep research","framework":"strands"}}))
        .await;
    assert_eq!(r["ok"], true, "{r:#}");
    assert_eq!(r["output"], "strands:deep research");
    assert!(has_message(&r, "strands started"));
    assert_matches(
        &last_event(&r)["payload"],
        &json!({"framework":"strands","answer":"deep research"}),
    );
}

#[tokio::test]
async fn worker_runs_command_backed_framework_adapters_from_environment() {
    let dir = tempfile::tempdir().unwrap();
    let openclaw = child(
        dir.path(),
        "openclaw.py",
        r#"
print("openclaw stderr", file=sys.stderr)
print(json.dumps({
    "output": "openclaw:" + request["instruction"],
    "result": {"framework": request["framework"], "repo": request["context"]["repo"]},
    "events": [{"type": "task.progress", "message": "openclaw started"}],
}))
"#,
    );
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_FRAMEWORK_COMMAND_OPENCLAW", &openclaw)
        .start()
        .await;
    let r = w
        .run(json!({"taskType":"agent.run","input":{
            "instruction":"deep research","framework":"openclaw","context":{"repo":"agent-dispatch"}}}))
        .await;
    assert_eq!(r["ok"], true, "{r:#}");
    assert_eq!(r["output"], "openclaw:deep research");
    assert!(has_message(&r, "openclaw started"));
    assert!(has_message(&r, "openclaw stderr"));
    assert_matches(
        &last_event(&r)["payload"],
        &json!({"framework":"openclaw","repo":"agent-dispatch"}),
    );
}

#[tokio::test]
async fn worker_runs_json_configured_command_backed_framework_adapters() {
    let dir = tempfile::tempdir().unwrap();
    let hermes = child(
        dir.path(),
        "hermes.py",
        r#"
print(json.dumps({"output": os.environ["HERMES_MODE"] + ":" + request["instruction"]}))
"#,
    );
    let commands = json!({"hermes": {"command": hermes, "env": {"HERMES_MODE": "subagent"}, "timeoutSeconds": 2}});
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_FRAMEWORK_COMMANDS", &commands.to_string())
        .start()
        .await;
    let r = w
        .run(json!({"taskType":"agent.run","input":{"instruction":"plan migration","framework":"hermes"}}))
        .await;
    assert_eq!(r["ok"], true, "{r:#}");
    assert_eq!(r["output"], "subagent:plan migration");
    // The child gave no result object: the result (and so the task.result payload) is the
    // reference's default, naming the framework.
    assert_matches(&last_event(&r)["payload"], &json!({"framework":"hermes"}));
    assert_eq!(last_event(&r)["payload"], r["result"]);
}

#[tokio::test]
async fn worker_reports_unsupported_framework_selections_clearly() {
    let w = WorkerBuilder::new().start().await;
    let r = w
        .run(json!({"taskType":"agent.run","framework":"langchain","input":{"instruction":"work"}}))
        .await;
    assert_eq!(r["ok"], false);
    assert!(r["error"]
        .as_str()
        .unwrap()
        .contains("Unsupported agent framework: langchain"));
}

#[tokio::test]
async fn worker_accepts_agentcore_prompt_aliases_for_starter_toolkit_entrypoints() {
    let w = WorkerBuilder::new().start().await;
    let r = w
        .run(json!({"taskType":"agent.run","prompt":"work from prompt","input":{}}))
        .await;
    assert_eq!(r["ok"], true);
    assert!(r["output"].as_str().unwrap().contains("work from prompt"));
}

#[tokio::test]
async fn worker_rejects_commands_outside_the_allowlist() {
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_COMMAND_ALLOWLIST", "echo")
        .start()
        .await;
    let r = w
        .run(json!({"taskType":"command.run","input":{"command":"rm -rf /tmp/nope"}}))
        .await;
    assert_eq!(r["ok"], false);
    assert!(r["error"].as_str().unwrap().contains("ALLOWLIST"));
}

#[tokio::test]
async fn worker_does_not_execute_shell_metacharacters_through_allowed_commands() {
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_COMMAND_ALLOWLIST", "echo")
        .start()
        .await;
    let r = w
        .run(json!({"taskType":"command.run","input":{"command":"echo ok; uname -a","timeoutSeconds":2}}))
        .await;
    assert_eq!(r["ok"], true);
    assert_eq!(r["output"], "ok; uname -a\n");
}

#[tokio::test]
async fn worker_supports_quoted_command_arguments_without_shell_execution() {
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_COMMAND_ALLOWLIST", "echo")
        .start()
        .await;
    let r = w
        .run(json!({"taskType":"command.run","input":{"command":"echo \"hello world\"","timeoutSeconds":2}}))
        .await;
    assert_eq!(r["ok"], true);
    assert_eq!(r["output"], "hello world\n");
}

#[tokio::test]
async fn worker_runs_allowed_commands_and_writes_artifacts() {
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_COMMAND_ALLOWLIST", "echo")
        .start()
        .await;
    let r = w
        .run(json!({"taskType":"command.run","input":{"command":"echo hello","timeoutSeconds":2}}))
        .await;
    assert_eq!(r["ok"], true);
    assert!(r["output"].as_str().unwrap().contains("hello"));
    assert!(events(&r).iter().any(|e| e["type"] == "task.heartbeat"));
    assert_eq!(r["artifacts"].as_array().unwrap().len(), 1);
    // The reference's command.run task.result payload.
    assert_eq!(last_event(&r)["payload"], json!({"exitCode": 0}));
}

#[tokio::test]
async fn worker_reports_command_failures() {
    // The reference runs `node -e "process.exit(7)"`; any program exiting 7 does.
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_COMMAND_ALLOWLIST", "sh")
        .start()
        .await;
    let r = w
        .run(json!({"taskType":"command.run","input":{"command":"sh -c 'exit 7'","timeoutSeconds":2}}))
        .await;
    assert_eq!(r["ok"], false);
    // The reference asserts `events[0]` is a `task.log`: SPEC §3 wins, the first event is
    // always `task.progress` "accepted". The reference's failure event is still there: a
    // `task.log` {stream:"stderr", exitCode}, here with the error as its message because the
    // command printed nothing on stderr.
    assert_matches(
        &events(&r)[0],
        &json!({"type":"task.progress","message":"accepted"}),
    );
    let failure: Vec<&Value> = events(&r)
        .iter()
        .filter(|e| e["type"] == "task.log" && e["payload"]["exitCode"] == 7)
        .collect();
    assert_eq!(failure.len(), 1, "{r:#}");
    assert_eq!(
        failure[0]["payload"],
        json!({"stream":"stderr","exitCode":7})
    );
    assert_eq!(failure[0]["message"], "Command exited with code 7.");
    assert_eq!(last_event(&r)["payload"], json!({"exitCode": 7}));
    assert_eq!(last_event(&r)["message"], "failed");
}

// --- test/server.test.ts -----------------------------------------------------------------

#[tokio::test]
async fn server_returns_agentcore_compatible_ping_health() {
    let w = WorkerBuilder::new().start().await;
    for path in ["/ping", "/health"] {
        let (status, v) = w.get(path).await;
        assert_eq!(status, 200);
        // The reference expects exactly {status:"Healthy"}: SPEC §2 wins, the body also carries
        // `time_of_last_update` (an integer), which AgentCore needs to keep a busy session.
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["status", "time_of_last_update"], "{path}: {v}");
        assert_eq!(v["status"], "Healthy");
        assert!(v["time_of_last_update"].is_u64());
    }
}

#[tokio::test]
async fn server_accepts_invocation_requests_on_invocations() {
    let w = WorkerBuilder::new().start().await;
    let r = w
        .run(json!({"taskType":"agent.run","input":{"instruction":"work"}}))
        .await;
    assert_matches(
        &r,
        &json!({"ok":true,"output":"Accepted instruction: work"}),
    );
}

#[tokio::test]
async fn server_returns_structured_application_failures_with_http_200() {
    let w = WorkerBuilder::new().start().await;
    let (status, r) = w
        .invoke(&json!({"taskType":"agent.run","input":{"instruction":"work","framework":"missing-framework"}}))
        .await;
    assert_eq!(status, 200);
    assert_matches(
        &r,
        &json!({"ok":false,"error":"Unsupported agent framework: missing-framework"}),
    );
}

#[tokio::test]
async fn server_serves_an_a2a_agent_card() {
    let w = WorkerBuilder::new().start().await;
    let (status, card) = w.get("/.well-known/agent-card.json").await;
    assert_eq!(status, 200);
    assert_eq!(card["name"], "AgentDispatch Worker");
    // The reference's card says `capabilities.streaming: false` (it has no message/stream):
    // SPEC §9 wins, this worker streams and says `true`.
    assert_eq!(card["capabilities"]["streaming"], true);
    assert!(card["skills"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["id"] == "agentdispatch.agent.run"));
}

#[tokio::test]
async fn server_accepts_a2a_message_send_requests_on_root_path() {
    let w = WorkerBuilder::new().start().await;
    let r = w
        .rpc(json!({"jsonrpc":"2.0","id":"req-1","method":"message/send","params":{
            "message":{"role":"user","parts":[{"kind":"text","text":"work through A2A"}],"messageId":"msg-1"}}}))
        .await;
    assert_matches(
        &r,
        &json!({"jsonrpc":"2.0","id":"req-1","result":{
            "kind":"message","role":"agent",
            "parts":[{"kind":"text","text":"Accepted instruction: work through A2A"}]}}),
    );
}

#[tokio::test]
async fn server_passes_a2a_framework_metadata_to_command_backed_adapters() {
    let dir = tempfile::tempdir().unwrap();
    let openclaw = child(
        dir.path(),
        "openclaw-a2a.py",
        r#"
print(json.dumps({"output": request["framework"] + ":" + request["instruction"] + ":" + request["context"]["repo"]}))
"#,
    );
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_FRAMEWORK_COMMAND_OPENCLAW", &openclaw)
        .start()
        .await;
    let r = w
        .rpc(json!({"jsonrpc":"2.0","id":"req-2","method":"message/send","params":{
            "message":{"role":"user","parts":[{"kind":"text","text":"work through OpenClaw"}],"messageId":"msg-2"},
            "metadata":{"framework":"openclaw","context":{"repo":"agent-dispatch"}}}}))
        .await;
    assert_matches(
        &r,
        &json!({"result":{"parts":[{"kind":"text","text":"openclaw:work through OpenClaw:agent-dispatch"}]}}),
    );
}

#[tokio::test]
async fn server_rejects_unsupported_post_paths() {
    let w = WorkerBuilder::new().start().await;
    let resp = w
        .client()
        .post(format!("{}/wrong", w.url))
        .header("content-type", "application/json")
        .body(json!({"taskType":"agent.run","input":{"instruction":"work"}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_matches(&resp.json::<Value>().await.unwrap(), &json!({"ok":false}));
}

// --- SPEC §3/§6 shapes the reference's tests read -------------------------------------------

#[tokio::test]
async fn a_child_task_result_line_may_carry_its_result_as_payload() {
    let dir = tempfile::tempdir().unwrap();
    let cmd = child(
        dir.path(),
        "payload.py",
        r#"
print(json.dumps({"type": "task.progress", "message": "step", "payload": {"n": 1}}), flush=True)
print(json.dumps({"type": "task.result", "output": "done",
                  "payload": {"framework": request["framework"], "output": "a key named like the answer's"}}))
"#,
    );
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_FRAMEWORK_COMMAND_VIA_PAYLOAD", &cmd)
        .start()
        .await;
    let body = json!({"framework":"via-payload","input":{"instruction":"x"}});
    let r = w.run(body.clone()).await;
    assert_eq!(r["ok"], true, "{r:#}");
    assert_eq!(r["output"], "done");
    let want = json!({"framework":"via-payload","output":"a key named like the answer's"});
    assert_eq!(r["result"], want);
    assert_eq!(last_event(&r)["payload"], want);
    // The same through SSE: the last message is the whole answer, whose last event carries it.
    let msgs = w.stream(&body).await;
    let end = &msgs.last().unwrap().data;
    assert_eq!(end["result"], want);
    assert_eq!(last_event(end)["payload"], want);
    assert_eq!(last_event(end)["seq"], msgs.last().unwrap().id.unwrap());
    // A non-zero exit of a framework child adds the reference's failure event too, its
    // message the last stderr lines.
    let failing = child(
        dir.path(),
        "fail.py",
        "print('it broke', file=sys.stderr)\nsys.exit(3)\n",
    );
    drop(w);
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_FRAMEWORK_COMMAND_BROKEN", &failing)
        .start()
        .await;
    let r = w.run(json!({"framework":"broken"})).await;
    assert_eq!(r["ok"], false);
    assert_eq!(r["error"], "it broke");
    let failure = events(&r)
        .iter()
        .find(|e| e["payload"] == json!({"stream":"stderr","exitCode":3}))
        .unwrap_or_else(|| panic!("no failure event: {r:#}"));
    assert_eq!(failure["message"], "it broke");
    // No result object from a failed child: the task.result event has no payload.
    assert!(last_event(&r).get("payload").is_none(), "{r:#}");
    assert_eq!(last_event(&r)["message"], "failed");
}
