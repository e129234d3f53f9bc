//! The request reaches the agent (SPEC §12), through the real binary and AWS's real
//! `bedrock-agentcore` SDK (the venv of `scripts/setup-clients.sh agentcore`): an entrypoint
//! whose tools use AWS's `@requires_api_key` and `@requires_access_token` gets the invocation's
//! workload access token at a local stub of the token vault, cold and warm; custom headers and
//! the OAuth2 callback URL arrive; the secrets sent in `Authorization` and `WorkloadAccessToken`
//! are found nowhere else (task folder, the worker's log, every answer, `/proc/<pid>/environ`
//! and `cmdline` of the child and the warm parent). Outside `scripts/test.sh` a missing venv
//! skips these tests, saying so.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::fixtures::forked_from;
use common::{events_of, Worker, WorkerBuilder};
use serde_json::{json, Value};

const AUTH: &str = "Bearer authsecret-7f3a9c51e2";
const WAT: &str = "watsecret-0b8d4e6a19c2";

/// The AgentCore SDK venv's Python, or `None` (said on stderr) outside `scripts/test.sh`.
fn agentcore_python() -> Option<PathBuf> {
    common::client_python("agentcore", "AgentCore SDK")
}

/// A stub of AgentCore Identity's token vault: answers `GetResourceApiKey` and
/// `GetResourceOauth2Token` and records the `workloadIdentityToken` of every call.
fn token_vault() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().map_while(Result::ok) {
            let mut reader = BufReader::new(conn);
            let mut length = 0usize;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                line.clear();
            }
            let mut body = vec![0u8; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let token = req["workloadIdentityToken"]
                .as_str()
                .unwrap_or("")
                .to_string();
            record.lock().unwrap().push(token);
            let answer = if req.get("oauth2Flow").is_some() {
                json!({"accessToken": "stub-access-token"})
            } else {
                json!({"apiKey": "stub-api-key"})
            }
            .to_string();
            let mut conn = reader.into_inner();
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (url, seen)
}

/// A frameworks folder with one framework, `agentcore` (tests/fixtures/agentcore) on the venv.
fn frameworks_dir(python: &Path, vault: &str) -> tempfile::TempDir {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/agentcore")
        .canonicalize()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fw = dir.path().join("agentcore");
    std::fs::create_dir(&fw).unwrap();
    let manifest = json!({
        "name": "agentcore",
        "command": [python, fixture.join("runner.py")],
        "warm": true,
        "env": {
            "AGENTDISPATCH_ENTRYPOINT": "agent_app:invoke",
            "AGENTDISPATCH_APP_DIR": fixture,
            "BEDROCK_AGENTCORE_DP_ENDPOINT": vault,
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "test-key-id",
            "AWS_SECRET_ACCESS_KEY": "test-secret",
            // As in an AgentCore container: without the request's token the SDK refuses
            // (it does not fall back to setting up a local workload identity).
            "DOCKER_CONTAINER": "1",
        },
    });
    std::fs::write(fw.join("framework.json"), manifest.to_string()).unwrap();
    dir
}

/// A worker whose default framework is `agentcore` on a new token vault stub (cold, or warm
/// and ready), and what the vault saw; `None` when the venv is missing (see above).
struct Agentcore {
    w: Worker,
    seen: Arc<Mutex<Vec<String>>>,
    /// Holds the framework folder (the child's working directory) while the worker runs.
    _frameworks: tempfile::TempDir,
}

async fn agentcore_worker(warm: bool) -> Option<Agentcore> {
    let python = agentcore_python()?;
    let (vault, seen) = token_vault();
    let frameworks = frameworks_dir(&python, &vault);
    let w = WorkerBuilder::new()
        .env(
            "AGENTDISPATCH_FRAMEWORKS_DIR",
            frameworks.path().to_str().unwrap(),
        )
        .env("AGENTDISPATCH_AGENT_FRAMEWORK", "agentcore")
        .env(
            "AGENTDISPATCH_WARM",
            if warm { "agentcore" } else { "none" },
        )
        .start()
        .await;
    if warm {
        w.warm_ready("agentcore", 1).await;
    }
    Some(Agentcore {
        w,
        seen,
        _frameworks: frameworks,
    })
}

const HEADERS: &[(&str, &str)] = &[
    ("Authorization", AUTH),
    ("WorkloadAccessToken", WAT),
    ("OAuth2CallbackUrl", "https://callback.example/oauth2"),
    ("X-Amzn-Bedrock-AgentCore-Runtime-User-Id", "user-5"),
    (
        "X-Amzn-Bedrock-AgentCore-Runtime-Custom-Tenant",
        "tenant-42",
    ),
    (
        "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id",
        "session-reqctx-0001",
    ),
    ("Cookie", "sid=cookiesecret-91"),
    ("Content-Type", "application/json"),
];

/// Every secret sent, as it could be found in a file or an answer.
const SECRETS: &[&str] = &[
    "authsecret-7f3a9c51e2",
    "watsecret-0b8d4e6a19c2",
    "cookiesecret-91",
];

#[track_caller]
fn assert_no_secret(what: &str, text: &[u8]) {
    let text = String::from_utf8_lossy(text);
    for s in SECRETS {
        assert!(
            !text.contains(s),
            "{what} holds the secret {s}:\n{text:.2000}"
        );
    }
}

fn grep_tree(dir: &Path) -> usize {
    let mut files = 0;
    for entry in std::fs::read_dir(dir).unwrap().map_while(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            files += grep_tree(&path);
        } else if let Ok(bytes) = std::fs::read(&path) {
            assert_no_secret(&path.display().to_string(), &bytes);
            files += 1;
        }
    }
    files
}

/// `/proc/<pid>/environ` and `cmdline` hold no secret.
fn assert_proc_clean(pid: u64, who: &str) {
    for file in ["environ", "cmdline"] {
        let bytes = std::fs::read(format!("/proc/{pid}/{file}"))
            .unwrap_or_else(|e| panic!("read /proc/{pid}/{file} of the {who}: {e}"));
        assert!(
            !bytes.is_empty(),
            "/proc/{pid}/{file} of the {who} is empty"
        );
        assert_no_secret(&format!("/proc/{pid}/{file} of the {who}"), &bytes);
    }
}

/// One invocation with the secrets, held while its child's and parent's /proc are read.
async fn identity_round(warm: bool) {
    let Some(ac) = agentcore_worker(warm).await else {
        return;
    };
    let (w, seen) = (&ac.w, &ac.seen);
    let hold = tempfile::tempdir().unwrap();
    let hold_file = hold.path().join("go");
    let body = json!({
        "taskType": "agent.run", "framework": "agentcore", "async": true,
        "input": {"instruction": "use the tools",
                  "context": {"holdFile": hold_file, "note": "from the payload"}},
    });
    let mut answers = Vec::new();
    let (code, started) = w.invoke_raw(body.to_string().into_bytes(), HEADERS).await;
    assert_eq!(code, 200, "{started}");
    let id = started["taskId"].as_str().unwrap().to_string();
    answers.push(started.to_string());

    // The child holds: its pid (and a warm child's parent) from its events.
    let status = json!({"taskType": "task.status", "taskId": id});
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let running = loop {
        let (_, now) = w.invoke(&status).await;
        let held = events_of(&now, "task.progress")
            .iter()
            .any(|e| e["message"] == "holding");
        if held {
            break now;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the child never held: {now:#}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    answers.push(running.to_string());
    let holding = events_of(&running, "task.progress")
        .into_iter()
        .find(|e| e["message"] == "holding")
        .cloned()
        .unwrap();
    let pid = holding["payload"]["pid"].as_u64().unwrap();
    assert_proc_clean(pid, "task's child");
    if warm {
        let parent = forked_from(&running).expect("forked from a warm parent");
        assert_proc_clean(parent, "warm parent");
    } else {
        assert!(forked_from(&running).is_none(), "{running:#}");
    }
    std::fs::write(&hold_file, b"").unwrap();

    let r = w.wait_done(&id).await;
    answers.push(r.to_string());
    assert_eq!(r["status"], "succeeded", "{r:#}");
    let out: Value = serde_json::from_str(r["output"].as_str().unwrap()).unwrap();
    assert_eq!(out["apiKey"], "stub-api-key", "{out:#}");
    assert_eq!(out["accessToken"], "stub-access-token", "{out:#}");
    assert_eq!(
        out["threadApiKey"], "stub-api-key",
        "a plain thread: {out:#}"
    );
    assert_eq!(out["tenant"], "tenant-42", "{out:#}");
    assert_eq!(out["hasAuthorization"], true, "{out:#}");
    assert_eq!(
        out["callbackUrl"], "https://callback.example/oauth2",
        "{out:#}"
    );
    assert_eq!(out["sessionId"], "session-reqctx-0001", "{out:#}");
    assert_eq!(out["payloadContext"], "from the payload", "{out:#}");
    assert!(
        out["requestId"].as_str().is_some_and(|s| !s.is_empty()),
        "{out:#}"
    );
    // The vault saw the invocation's token, on every call (thread, sync, async).
    assert_eq!(*seen.lock().unwrap(), vec![WAT.to_string(); 3]);

    let (_, list) = w.invoke(&json!({"taskType": "task.list"})).await;
    answers.push(list.to_string());
    let (_, again) = w.invoke(&status).await;
    answers.push(again.to_string());
    for (i, a) in answers.iter().enumerate() {
        assert_no_secret(&format!("answer {i}"), a.as_bytes());
    }
    assert!(
        grep_tree(&w.artifacts) >= 3,
        "the task folder was not written"
    );
    let log = w.logs.lock().unwrap().join("\n");
    assert!(log.contains(&id), "the worker's log names no task");
    assert_no_secret("the worker's log", log.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_decorators_get_the_invocations_token_cold() {
    identity_round(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_decorators_get_the_invocations_token_warm() {
    identity_round(true).await;
}

/// Without a workload access token the SDK's own refusal is the task's error: it is the
/// request's token that the decorators used above, not one from anywhere else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_header_the_sdk_refuses() {
    let Some(ac) = agentcore_worker(false).await else {
        return;
    };
    let (w, seen) = (&ac.w, &ac.seen);
    let body =
        json!({"taskType": "agent.run", "framework": "agentcore", "input": {"instruction": "x"}});
    let (_, r) = w
        .invoke_raw(body.to_string().into_bytes(), &[("Authorization", AUTH)])
        .await;
    assert_eq!(r["status"], "failed", "{r:#}");
    let error = r["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("Workload access token has not been set"),
        "{r:#}"
    );
    assert!(seen.lock().unwrap().is_empty());
    assert_no_secret("the answer", r.to_string().as_bytes());
}

/// A2A (both versions) hands the same request to the child, and its answers and task metadata
/// hold none of the secrets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a2a_requests_carry_the_same_context() {
    let Some(ac) = agentcore_worker(false).await else {
        return;
    };
    let (w, seen) = (&ac.w, &ac.seen);
    for (n, method) in ["message/send", "SendMessage"].into_iter().enumerate() {
        let message = if method == "SendMessage" {
            json!({"messageId": format!("m{n}"), "role": "ROLE_USER", "parts": [{"text": "go"}]})
        } else {
            json!({"messageId": format!("m{n}"), "role": "user", "kind": "message",
                   "parts": [{"kind": "text", "text": "go"}]})
        };
        let body = json!({"jsonrpc": "2.0", "id": n, "method": method,
                          "params": {"message": message, "metadata": {"framework": "agentcore"}}});
        let answer = w.rpc_with(body, HEADERS).await;
        let text = answer.to_string();
        assert!(text.contains("stub-api-key"), "{method}: {answer:#}");
        assert!(text.contains("tenant-42"), "{method}: {answer:#}");
        assert_no_secret(method, text.as_bytes());
    }
    assert_eq!(*seen.lock().unwrap(), vec![WAT.to_string(); 6]);
    grep_tree(&w.artifacts);
    assert_no_secret(
        "the worker's log",
        w.logs.lock().unwrap().join("\n").as_bytes(),
    );
}

/// Headers past a bound of the request's context are a 400 naming the bound (and the header,
/// never its value), on `/invocations` and A2A alike; nothing starts and the worker serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_are_a_clear_400() {
    let w = WorkerBuilder::new().start().await;
    let secret = format!("Bearer {}", "authsecret-7f3a9c51e2".repeat(1000));
    let body = json!({"taskType": "agent.run", "framework": "echo", "input": {"instruction": "x"}});
    let (code, r) = w
        .invoke_raw(body.to_string().into_bytes(), &[("Authorization", &secret)])
        .await;
    assert_eq!(code, 400, "{r:#}");
    assert_eq!(r["errorCode"], "invalid_header", "{r:#}");
    let error = r["error"].as_str().unwrap();
    assert!(
        error.contains("authorization") && error.contains("16384-byte limit"),
        "{error}"
    );
    assert_no_secret("the 400", r.to_string().as_bytes());

    let many: Vec<(String, String)> = (0..70).map(|i| (format!("x-h{i}"), "v".into())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (code, r) = w.invoke_raw(body.to_string().into_bytes(), &many).await;
    assert_eq!(code, 400, "{r:#}");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("more than 64 headers"),
        "{r:#}"
    );

    let rpc = json!({"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"message":
        {"messageId": "m", "role": "user", "kind": "message", "parts": [{"kind": "text", "text": "x"}]}}});
    let resp = w
        .client()
        .post(format!("{}/", w.url))
        .header("WorkloadAccessToken", &secret)
        .json(&rpc)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let r: Value = resp.json().await.unwrap();
    assert!(
        r["error"].as_str().unwrap().contains("workloadaccesstoken"),
        "{r:#}"
    );
    assert_no_secret("the A2A 400", r.to_string().as_bytes());
    assert_no_secret(
        "the worker's log",
        w.logs.lock().unwrap().join("\n").as_bytes(),
    );
    // Nothing started, and a request within the bounds runs.
    let (_, list) = w.invoke(&json!({"taskType": "task.list"})).await;
    assert_eq!(list["tasks"], json!([]), "{list:#}");
    let ok = w.run(body).await;
    assert_eq!(ok["status"], "succeeded", "{ok:#}");
}
