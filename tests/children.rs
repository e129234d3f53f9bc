//! command.run and env-defined framework children through the real binary: argv splitting,
//! the allowlist, the child protocol, exit codes, output caps, artifacts, capacity.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test]
async fn command_run_splits_quotes_and_never_uses_a_shell() {
    let w = WorkerBuilder::new().start().await;
    let r = w
        .run(json!({"taskType":"command.run","input":{"command":"echo ok; uname -a"}}))
        .await;
    assert_eq!(r["ok"], true);
    assert_eq!(r["output"], "ok; uname -a\n");
    assert_eq!(r["result"]["exitCode"], 0);
    assert_eq!(r["exitCode"], 0);
    let r = w.run(json!({"taskType":"command.run","input":{"command":"printf '%s|' 'a b' \"c \\\"d\\\"\" e\\ f"}})).await;
    assert_eq!(r["output"], "a b|c \"d\"|e f|");
    let r = w
        .run(json!({"taskType":"command.run","input":{"command":"echo 'oops"}}))
        .await;
    assert_eq!(r["ok"], false);
    assert_eq!(
        r["error"],
        "command.run input.command contains an unterminated quote."
    );
    let r = w.run(json!({"taskType":"command.run","input":{}})).await;
    assert_eq!(r["error"], "command.run requires input.command.");
    let r = w
        .run(json!({"taskType":"command.run","input":{"command":"sh -c 'exit 3'"}}))
        .await;
    assert_eq!(r["ok"], false);
    assert_eq!(r["error"], "Command exited with code 3.");
    assert_eq!(r["exitCode"], 3);
    let r = w
        .run(json!({"taskType":"command.run","input":{"command":"/no/such/program --flag"}}))
        .await;
    assert_eq!(r["ok"], false);
    assert_eq!(r["errorCode"], "spawn_failed");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("No such file or directory"),
        "{r}"
    );
    assert_eq!(w.ping().await["status"], "Healthy");
}

#[tokio::test]
async fn the_allowlist_matches_token_prefixes_and_an_empty_list_refuses_all() {
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_COMMAND_ALLOWLIST", "echo hello, true")
        .start()
        .await;
    let run = |cmd: &str| json!({"taskType":"command.run","input":{"command":cmd}});
    assert_eq!(w.run(run("echo hello world")).await["ok"], true);
    assert_eq!(w.run(run("true")).await["ok"], true);
    let r = w.run(run("echo bye")).await;
    assert_eq!(r["ok"], false);
    assert_eq!(
        r["error"],
        "Command rejected by AGENTDISPATCH_COMMAND_ALLOWLIST."
    );
    assert_eq!(r["errorCode"], "command_rejected");
    let refused = events_of(&r, "task.log");
    assert_eq!(refused[0]["payload"]["executable"], "echo");
    assert_eq!(w.run(run("truex")).await["ok"], false);
    // The refusal is on disk too.
    let dir = w.task_dir(r["taskId"].as_str().unwrap());
    assert!(std::fs::read_to_string(dir.join("events.ndjson"))
        .unwrap()
        .contains("\"refused\":true"));
    drop(w);

    let w = WorkerBuilder::new()
        .env_remove("AGENTDISPATCH_COMMAND_ALLOWLIST")
        .start()
        .await;
    let r = w.run(run("true")).await;
    assert_eq!(r["errorCode"], "command_rejected");
}

const CHILD: &str = r#"#!/usr/bin/env python3
import json, sys, time
env = json.loads(sys.stdin.readline())
print(json.dumps({"type": "task.progress", "message": "thinking", "payload": {"step": 1}}), flush=True)
print("plain text line", flush=True)
print(json.dumps({"level": "debug"}), flush=True)
sys.stderr.write("a warning\n"); sys.stderr.flush()
mode = env["input"].get("mode")
if mode == "fail":
    sys.stderr.write("Traceback: boom\n")
    sys.exit(4)
if mode == "plain":
    sys.exit(0)
if mode == "reference":
    print(json.dumps({"output": "ref form", "events": [{"type": "task.progress", "message": "inner"}]}))
    sys.exit(0)
print(json.dumps({"type": "task.result", "output": env["instruction"].upper(),
                  "result": {"framework": env["framework"], "ctx": env["context"], "meta": env["metadata"],
                             "taskId": env["taskId"], "taskDir": env["taskDir"], "envKey": __import__("os").environ.get("FW_KEY")}}))
"#;

#[tokio::test]
async fn env_frameworks_speak_the_child_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let child = script(dir.path(), "child.py", CHILD);
    let commands = json!({
        "mapped": {"command": [child.to_str().unwrap()], "env": {"FW_KEY": "from-map"}, "timeoutSeconds": 30},
        "plainstr": format!("{}", child.display()),
    });
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_FRAMEWORK_COMMAND", child.to_str().unwrap())
        .env("AGENTDISPATCH_FRAMEWORK_COMMANDS", &commands.to_string())
        .env(
            "AGENTDISPATCH_FRAMEWORK_COMMAND_MY_AGENT",
            child.to_str().unwrap(),
        )
        .start()
        .await;
    let r = w
        .run(json!({"framework":"mapped","prompt":"hi there","input":{"context":{"c":1}},"metadata":{"m":2}}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["output"], "HI THERE");
    assert_eq!(r["result"]["framework"], "mapped");
    assert_eq!(r["result"]["ctx"]["c"], 1);
    assert_eq!(r["result"]["meta"]["m"], 2);
    assert_eq!(r["result"]["envKey"], "from-map");
    assert_eq!(r["result"]["taskId"], r["taskId"]);
    let progress = events_of(&r, "task.progress");
    assert_eq!(progress[1]["message"], "thinking");
    assert_eq!(progress[1]["payload"]["step"], 1);
    let logs = events_of(&r, "task.log");
    let texts: Vec<_> = logs
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(texts.contains(&"plain text line"));
    assert!(texts.contains(&r#"{"level": "debug"}"#));
    let warning = logs.iter().find(|e| e["message"] == "a warning").unwrap();
    assert_eq!(warning["payload"]["stream"], "stderr");
    assert_eq!(
        events_of(&r, "task.heartbeat")[0]["payload"]["status"],
        "running"
    );

    // Named via AGENTDISPATCH_FRAMEWORK_COMMAND (default name "command") and _<NAME>.
    for fw in ["command", "my-agent", "plainstr"] {
        let r = w.run(json!({"framework":fw,"prompt":"x"})).await;
        assert_eq!(r["output"], "X", "{fw}: {r}");
    }
    // Plain text becomes output when no result object comes.
    let r = w
        .run(json!({"framework":"mapped","input":{"mode":"plain"}}))
        .await;
    assert_eq!(r["ok"], true);
    assert_eq!(r["output"], "plain text line\n");
    // The reference worker's final form, with events added in order.
    let r = w
        .run(json!({"framework":"mapped","input":{"mode":"reference"}}))
        .await;
    assert_eq!(r["output"], "ref form");
    assert!(events_of(&r, "task.progress")
        .iter()
        .any(|e| e["message"] == "inner"));
    // Non-zero exit: the last stderr lines are the error.
    let r = w
        .run(json!({"framework":"mapped","input":{"mode":"fail"}}))
        .await;
    assert_eq!(r["ok"], false);
    assert_eq!(r["exitCode"], 4);
    assert_eq!(r["error"], "a warning\nTraceback: boom");
}

#[tokio::test]
async fn timeouts_come_from_payload_then_framework_then_default_and_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let slow = script(dir.path(), "slow.sh", "#!/bin/sh\nexec sleep 30\n");
    let w = WorkerBuilder::new()
        .env(
            "AGENTDISPATCH_FRAMEWORK_COMMANDS",
            &json!({"slow": {"command": slow.to_str().unwrap(), "timeoutSeconds": 0.5}})
                .to_string(),
        )
        .env("AGENTDISPATCH_MAX_TIMEOUT_SECONDS", "0.7")
        .env("AGENTDISPATCH_KILL_GRACE_SECONDS", "0.2")
        .start()
        .await;
    let r = w.run(json!({"framework":"slow"})).await;
    assert_eq!(r["status"], "timed_out");
    assert_eq!(r["error"], "Command timed out after 500ms.");
    let r = w
        .run(json!({"framework":"slow","input":{"timeoutSeconds":0.3}}))
        .await;
    assert_eq!(r["error"], "Command timed out after 300ms.");
    let r = w
        .run(json!({"taskType":"command.run","input":{"command":"sleep 30","timeoutSeconds":100}}))
        .await;
    assert_eq!(r["error"], "Command timed out after 700ms.");
    assert_eq!(r["errorCode"], "timed_out");
}

#[tokio::test]
async fn output_and_events_are_capped_in_the_answer_and_whole_on_disk() {
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_MAX_OUTPUT_BYTES", "20000")
        .start()
        .await;
    let r = w
        .run(json!({"taskType":"command.run","input":{"command":"seq 1 20000"}}))
        .await;
    assert_eq!(r["ok"], true);
    let out = r["output"].as_str().unwrap();
    assert!(out.len() < 20200, "{}", out.len());
    assert!(out.starts_with("1\n2\n3\n"));
    // Cut at the output cap, or shorter in the answer so that its events fit the same cap.
    assert!(out.contains("[output truncated"), "{out}");
    assert_eq!(r["eventsTruncated"], true);
    let events = r["events"].as_array().unwrap();
    assert!(serde_json::to_string(events).unwrap().len() <= 20000 + 1000);
    let id = r["taskId"].as_str().unwrap();
    let log = std::fs::read_to_string(w.task_dir(id).join("events.ndjson")).unwrap();
    let lines: Vec<_> = log.lines().collect();
    // accepted + heartbeat + 20000 lines + result
    assert!(lines.len() >= 20003, "{}", lines.len());
    assert!(lines.iter().any(|l| l.contains(r#""message":"20000""#)));
    // Paging with task.status afterSeq reaches the end.
    let mut after = 0;
    let mut seen = 0;
    loop {
        let s = w
            .run(json!({"taskType":"task.status","taskId":id,"afterSeq":after}))
            .await;
        let page = s["events"].as_array().unwrap();
        if page.is_empty() {
            break;
        }
        for e in page {
            assert_eq!(e["seq"].as_u64().unwrap(), after + 1);
            after += 1;
            seen += 1;
        }
    }
    assert_eq!(seen, lines.len());
}

#[tokio::test]
async fn artifacts_list_result_json_then_written_files_then_declared_and_refuse_outside_paths() {
    let dir = tempfile::tempdir().unwrap();
    let child = script(
        dir.path(),
        "writer.sh",
        r#"#!/bin/sh
echo "report" > "$AGENTDISPATCH_TASK_DIR/report.md"
echo '{"type":"task.result","output":"done","artifacts":[{"uri":"/etc/hostname"},{"uri":"s3://bucket/key.json"},"report.md"]}'
"#,
    );
    let w = WorkerBuilder::new()
        .env(
            "AGENTDISPATCH_FRAMEWORK_COMMAND_WRITER",
            child.to_str().unwrap(),
        )
        .start()
        .await;
    let r = w.run(json!({"framework":"writer"})).await;
    assert_eq!(r["ok"], true, "{r}");
    let arts = r["artifacts"].as_array().unwrap();
    let uris: Vec<_> = arts.iter().map(|a| a["uri"].as_str().unwrap()).collect();
    assert_eq!(uris.len(), 3, "{uris:?}");
    assert!(uris[0].ends_with("/result.json"));
    assert!(uris[1].ends_with("/report.md"));
    assert_eq!(uris[2], "s3://bucket/key.json");
    assert_eq!(arts[1]["sizeBytes"], 7);
    assert!(events_of(&r, "task.log").iter().any(|e| e["message"]
        .as_str()
        .unwrap()
        .contains("outside the task folder")));
    let id = r["taskId"].as_str().unwrap();
    let folder = w.task_dir(id);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["artifacts"], r["artifacts"]);
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("result.json")).unwrap())
            .unwrap();
    assert_eq!(result["output"], "done");
    assert_eq!(result["taskId"], id);
    use sha2::Digest;
    let digest = format!(
        "{:x}",
        sha2::Sha256::digest(std::fs::read(folder.join("result.json")).unwrap())
    );
    assert_eq!(arts[0]["sha256"], digest);
}

#[tokio::test]
async fn more_running_tasks_than_the_maximum_are_refused_at_capacity() {
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_MAX_CONCURRENT_TASKS", "2")
        .start()
        .await;
    let sleep = json!({"taskType":"command.run","async":true,"input":{"command":"sleep 3"}});
    let a = w.run(sleep.clone()).await;
    let b = w.run(sleep.clone()).await;
    assert_eq!(
        (a["status"].clone(), b["status"].clone()),
        (json!("running"), json!("running"))
    );
    let c = w
        .run(json!({"taskType":"command.run","taskId":"third","input":{"command":"true"}}))
        .await;
    assert_eq!(c["ok"], false);
    assert_eq!(c["errorCode"], "at_capacity");
    assert!(!w.task_dir("third").exists(), "nothing started");
    for t in [&a, &b] {
        w.run(json!({"taskType":"task.cancel","taskId":t["taskId"]}))
            .await;
    }
    let d = w
        .run(json!({"taskType":"command.run","input":{"command":"true"}}))
        .await;
    assert_eq!(d["ok"], true);
    tokio::time::sleep(Duration::from_millis(10)).await;
}
