//! The MCP door's cost (SPEC §15): the same warm task through `POST /mcp` (`tools/call`) and
//! through `POST /invocations`, on one worker, one keep-alive connection, requests interleaved
//! one for one so that a slower spell of the machine lands on both.
//!
//! Tasks: the built-in `echo` (no child: the doors' own cost stands alone) and the shipped
//! LangGraph example agent from a warm parent ("hello world"). Doors: `/invocations` JSON (the
//! floor), MCP 2026-07-28 JSON (`_meta` version, `Accept: application/json`), and MCP over SSE
//! with a `progressToken` (progress notifications, then the response: what an SDK client with
//! a progress callback gets).
//!
//! ```sh
//! scripts/setup-frameworks.sh langgraph
//! cargo bench --bench mcp                      # 300 echo and 100 LangGraph rounds
//! cargo bench --bench mcp -- --runs 200        # LangGraph rounds (echo: 3×)
//! ```

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod common;
use common::{percentile, repo, Log, Server};

/// Target: an MCP round trip within this of the `/invocations` one, at the median.
const TARGET: Duration = Duration::from_millis(2);
const WARM_UP: usize = 5;
const ANSWER: &str = "Shouted: HELLO WORLD";

#[derive(Clone, Copy, PartialEq)]
enum Door {
    Http,
    McpJson,
    McpSse,
}

impl Door {
    fn label(self) -> &'static str {
        match self {
            Door::Http => "`/invocations`, JSON (floor)",
            Door::McpJson => "`/mcp` `tools/call`, JSON",
            Door::McpSse => "`/mcp` `tools/call`, SSE + progress",
        }
    }
}

/// One round trip through `door`; its wall time and the answer text.
async fn once(
    http: &reqwest::Client,
    url: &str,
    door: Door,
    framework: &str,
) -> (Duration, String) {
    let started = Instant::now();
    let text = match door {
        Door::Http => {
            let body = json!({"prompt": "hello world", "framework": framework});
            let (_, v) = common::post_json(http, url, &body)
                .await
                .expect("POST /invocations");
            assert_eq!(v["ok"], true, "{v}");
            v["output"].as_str().unwrap_or_default().to_string()
        }
        Door::McpJson | Door::McpSse => {
            let mut meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                                  "io.modelcontextprotocol/clientCapabilities": {}});
            let accept = if door == Door::McpSse {
                meta["progressToken"] = json!(1);
                "application/json, text/event-stream"
            } else {
                "application/json"
            };
            let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
                "name": format!("run_{framework}"), "arguments": {"instruction": "hello world"},
                "_meta": meta}});
            let resp = http
                .post(format!("{url}/mcp"))
                .header("accept", accept)
                .header("mcp-protocol-version", "2026-07-28")
                .json(&body)
                .send()
                .await
                .expect("POST /mcp");
            let mut last = Value::Null;
            if door == Door::McpSse {
                common::read_sse(resp, |_, v| last = v)
                    .await
                    .expect("SSE body");
            } else {
                last = resp.json().await.expect("JSON answer");
            }
            assert_eq!(last["result"]["isError"], false, "{last}");
            last["result"]["content"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        }
    };
    (started.elapsed(), text)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (runs, _) = common::runs_and_names(100, 10);
    common::venv_python("langgraph");
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = common::worker_command();
    cmd.env("AGENTDISPATCH_FRAMEWORKS_DIR", repo().join("frameworks"))
        .env("AGENTDISPATCH_ARTIFACT_DIR", tmp.path())
        .env("AGENTDISPATCH_WARM", "langgraph")
        .env("RUST_LOG", "info")
        .stderr(Stdio::null());
    let server = Server::start(cmd, Log::Keep)
        .await
        .expect("start the worker");
    server.warm_ready(1).await;
    let http = reqwest::Client::new();
    let doors = [Door::Http, Door::McpJson, Door::McpSse];
    println!(
        "\nThe same task through each door, interleaved one for one, one keep-alive connection\n"
    );
    println!("| task | door | runs | p50 | p90 | median of (run − floor's run) | target | met |");
    println!("|---|---|---|---|---|---|---|---|");
    for (framework, n, expect) in [
        ("echo", runs * 3, "Accepted instruction: hello world"),
        ("langgraph", runs, ANSWER),
    ] {
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); doors.len()];
        for i in 0..WARM_UP + n {
            // Each round starts at another door: no door always follows the same one.
            for k in 0..doors.len() {
                let d = (i + k) % doors.len();
                let door = &doors[d];
                let (t, text) = once(&http, &server.url, *door, framework).await;
                assert_eq!(text, expect, "{framework} through {}", door.label());
                if i >= WARM_UP {
                    times[d].push(t);
                }
            }
        }
        for (d, door) in doors.iter().enumerate() {
            let p50 = percentile(&times[d], 50.0);
            let (over, target, met) = if *door == Door::Http {
                ("–".to_string(), "–".to_string(), "")
            } else {
                // The median of the round-by-round differences: each MCP run beside the
                // floor's run of the same round (a busy spell of the machine hits both).
                let mut diffs: Vec<f64> = times[d]
                    .iter()
                    .zip(&times[0])
                    .map(|(m, h)| m.as_secs_f64() - h.as_secs_f64())
                    .collect();
                diffs.sort_by(f64::total_cmp);
                let over = diffs[diffs.len() / 2];
                let met = if over <= TARGET.as_secs_f64() {
                    "yes"
                } else {
                    "no"
                };
                (
                    format!("{:+.2} ms", over * 1000.0),
                    format!("≤ {}", ms(TARGET)),
                    met,
                )
            };
            println!(
                "| {framework} | {} | {n} | {} | {} | {over} | {target} | {met} |",
                door.label(),
                ms(p50),
                ms(percentile(&times[d], 90.0)),
            );
        }
    }
}
