//! The image filesystem for linux/arm64 (issue 14), without Docker: the runtime stage of the
//! `Dockerfile` laid out in a directory from arm64 parts — the cross-compiled worker at the
//! ENTRYPOINT path, Debian's arm64 CPython (unpacked without maintainer scripts, at the base
//! image's `/usr/local/bin/python3`), the default `FRAMEWORKS` with virtualenvs holding the arm64
//! wheels uv installed for `aarch64-unknown-linux-gnu` — then run as the image runs: chrooted
//! into that tree, as the Dockerfile's `USER`, in its `WORKDIR`, with its `ENV` alone, the worker
//! PID 1 of a fresh PID namespace. Every arm64 program in it (the worker, `sh`, `sleep`, Python)
//! runs under `qemu-aarch64`, registered with binfmt_misc in a user namespace of the test's own
//! (Linux 6.7+), so nothing of the host's configuration changes.
//!
//! `scripts/test-arm64.sh` builds the parts, caches them and runs this with `--ignored`; the
//! variables below name them.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal::SIGTERM};
use nix::unistd::Pid;
use serde_json::{json, Value};

mod common;

#[path = "arm64_image/dockerfile.rs"]
mod dockerfile;
#[path = "arm64_image/in_image.rs"]
mod in_image;
#[path = "arm64_image/tree.rs"]
mod tree;

use dockerfile::image;
use in_image::{marked_processes, proc_status, start_in_image};
use tree::{in_root, lay_out};

/// The example agents' answer to "hello world".
const ANSWER: &str = "Shouted: HELLO WORLD";

/// A part built by scripts/test-arm64.sh.
fn part(var: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("{var} is not set: run scripts/test-arm64.sh"));
    assert!(path.exists(), "{var}={} does not exist", path.display());
    path
}

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

async fn post(url: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{url}/invocations"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
#[ignore = "needs the arm64 parts and qemu that scripts/test-arm64.sh builds"]
async fn arm64_image_runs_the_worker_as_pid_1_with_the_default_frameworks_under_qemu() {
    let image = image();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    lay_out(&image, &root);
    println!(
        "arm64 image tree at {}: FRAMEWORKS={:?}, USER {}, WORKDIR {}, ENTRYPOINT+CMD {:?}",
        root.display(),
        image.frameworks,
        image.user,
        image.workdir,
        image.entrypoint
    );

    // The build's `RUN ["/usr/local/bin/agentdispatch-worker", "frameworks"]`, as uid 1000.
    let mut argv = image.entrypoint.clone();
    argv.truncate(1);
    argv.push("frameworks".into());
    let mut listing = start_in_image(&image, &root, &argv, &[]);
    let code = listing.exit_code(Duration::from_secs(120)).await;
    let listed = listing.log();
    assert_eq!(code, Some(0), "`frameworks` in the image:\n{listed}");
    for name in &image.frameworks {
        assert!(
            listed.contains(name.as_str()),
            "{name} not listed:\n{listed}"
        );
    }
    println!("`agentdispatch-worker frameworks` (arm64, uid 1000):\n{listed}");
    drop(listing);

    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let port_text = port.to_string();
    // Run-time settings, as `docker run -e` gives them: a port of this test's, loopback only,
    // and `sleep` allowed so that a task is still running at SIGTERM.
    let run_env = [
        ("PORT", port_text.as_str()),
        ("AGENTDISPATCH_HOST", "127.0.0.1"),
        ("AGENTDISPATCH_COMMAND_ALLOWLIST", "sleep"),
    ];
    let mut w = start_in_image(&image, &root, &image.entrypoint, &run_env);
    let started = Instant::now();
    let first = loop {
        if let Ok(r) = reqwest::get(format!("{url}/ping")).await {
            if let Ok(v) = r.json::<Value>().await {
                break v;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no /ping:\n{}",
            w.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!("first /ping: {first}");
    assert!(
        first["status"] == "Healthy" || first["status"] == "HealthyBusy",
        "{first}"
    );
    let worker = w.pid1();
    let nspid = proc_status(worker, "NSpid:");
    assert_eq!(
        nspid.last().map(String::as_str),
        Some("1"),
        "PID 1: {nspid:?}"
    );
    assert_eq!(proc_status(worker, "Uid:")[0], "1000", "USER 1000");
    let exe = fs::read_link(format!("/proc/{worker}/exe")).unwrap();
    let cmdline = fs::read(format!("/proc/{worker}/cmdline")).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(
        exe.ends_with("qemu-aarch64") && cmdline.contains(&image.entrypoint[0]),
        "the arm64 worker under qemu: {} {cmdline}",
        exe.display()
    );
    println!("PID 1 (host pid {worker}, NSpid {nspid:?}, uid 1000): {cmdline}");

    let echo = post(&url, json!({"input": {"instruction": "hi"}})).await;
    assert_eq!(echo["output"], "Accepted instruction: hi", "{echo}");
    println!("echo: {}", echo["output"]);

    // The LangGraph example agent, streamed: events as they happen, then the result.
    let response = reqwest::Client::new()
        .post(format!("{url}/invocations"))
        .header("accept", "text/event-stream")
        .json(&json!({"framework": "langgraph", "input": {"instruction": "hello world"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let messages = common::read_sse(response, usize::MAX).await;
    let (last, events) = messages.split_last().expect("SSE messages");
    assert_eq!(last.data["output"], ANSWER, "{:#}\n{}", last.data, w.log());
    assert_eq!(last.data["status"], "succeeded");
    let tool_call = events
        .iter()
        .find(|m| m.data["type"] == "task.progress" && m.data["payload"]["step"] == "tool_call");
    let tool_call = tool_call.expect("a tool_call progress event");
    assert_eq!(tool_call.data["payload"]["tool"], "shout");
    assert!(
        tool_call.at < last.at,
        "the steps streamed before the result"
    );
    println!(
        "langgraph over SSE: {} events, then {:?}",
        events.len(),
        last.data["output"]
    );

    // Every other framework of the default set answers its example agent.
    for name in image.frameworks.iter().filter(|n| *n != "langgraph") {
        let payload = json!({"framework": name, "input": {"instruction": "hello world"}});
        let answer = post(&url, payload).await;
        assert_eq!(answer["output"], ANSWER, "{name}: {answer:#}\n{}", w.log());
        println!("{name}: {}", answer["output"]);
    }

    // A task still running at SIGTERM: an arm64 `sleep` of the image.
    let running = post(
        &url,
        json!({"taskType": "command.run", "async": true, "input": {"command": "sleep 60"}}),
    )
    .await;
    assert_eq!(running["status"], "running", "{running}");
    let id = running["taskId"].as_str().unwrap().to_owned();
    let sleeping = common::eventually(Duration::from_secs(30), || {
        !common::task_processes(&id).is_empty()
    });
    assert!(sleeping.await, "the sleep task started:\n{}", w.log());

    // `docker stop`: SIGTERM to PID 1; AgentCore allows about 15 s.
    let stopping = Instant::now();
    kill(Pid::from_raw(worker), SIGTERM).unwrap();
    let code = w.exit_code(Duration::from_secs(15)).await;
    let took = stopping.elapsed();
    assert_eq!(code, Some(0), "exit code after SIGTERM:\n{}", w.log());
    let result = in_root(
        &root,
        &image
            .env
            .iter()
            .find(|(n, _)| n == "AGENTDISPATCH_ARTIFACT_DIR")
            .unwrap()
            .1,
    )
    .join(&id)
    .join("result.json");
    let result: Value = serde_json::from_str(&fs::read_to_string(&result).unwrap()).unwrap();
    assert_eq!(result["status"], "cancelled", "{result}");
    let left = marked_processes(&root);
    assert!(left.is_empty(), "processes left: {left:#?}");
    println!(
        "SIGTERM: exit 0 after {:.1} s, the running task cancelled, no process left",
        took.as_secs_f64()
    );
}
