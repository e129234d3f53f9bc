//! A model server that hangs mid-answer (SPEC §4.1, issue 22): the framework's own OpenAI
//! client streams from a local chat-completions server that sends a few pieces and then nothing,
//! never ending the stream. The task must end at its deadline, `timed_out`, with its process
//! group killed and the server's connection closed; the pieces sent before the stall reach the
//! caller as deltas; the worker answers the whole time; the task folder says what happened.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use super::*;

/// What the stalled server sends before it hangs.
const PIECES: [&str; 3] = ["Thinking ", "about ", "it"];

/// The task's deadline, in seconds (`input.timeoutSeconds`): it counts from the task's start,
/// so it holds the imports of the user's module (and, cold, of the framework), several seconds
/// on a loaded machine, before the model call stalls.
fn deadline_s(kind: Kind) -> u64 {
    match kind {
        Kind::Cold => 30,
        Kind::Warm => 15,
    }
}

/// frameworks/tests/chat_stream_server.py run with `--stall`: the same server the runners'
/// OpenAI-client tests use, in a process of its own.
struct StalledServer {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    url: String,
}

impl StalledServer {
    /// Started with `python` (stdlib only); waits for the line carrying its URL.
    fn start(python: &Path) -> StalledServer {
        let script = frameworks_dir().join("tests/chat_stream_server.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg("--stall")
            .args(PIECES)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start chat_stream_server.py");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().expect("the server's URL line").unwrap();
        let url = serde_json::from_str::<Value>(&first).unwrap()["url"]
            .as_str()
            .expect("a url")
            .to_owned();
        StalledServer { child, lines, url }
    }

    /// Blocks until the server says a client closed its connection (its next line).
    fn saw_hang_up(&mut self) -> bool {
        matches!(self.lines.next(), Some(Ok(l)) if l == "hung up")
    }
}

impl Drop for StalledServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The user's agent module for `framework`, on its usual OpenAI client pointed at `url`.
fn agent_module(framework: &str, url: &str) -> String {
    match framework {
        // A graph node calling langchain-openai's ChatOpenAI (the runner streams its messages).
        "langgraph" => format!(
            "from langchain_openai import ChatOpenAI\n\
             from langgraph.graph import START, MessagesState, StateGraph\n\
             model = ChatOpenAI(model='stalled', base_url={url:?}, api_key='sk-test-not-a-key', max_retries=0)\n\
             builder = StateGraph(MessagesState)\n\
             builder.add_node('model', lambda state: {{'messages': [model.invoke(state['messages'])]}})\n\
             builder.add_edge(START, 'model')\n\
             agent = builder.compile()\n"
        ),
        // Strands' own OpenAI model provider.
        "strands" => format!(
            "from strands import Agent\n\
             from strands.models.openai import OpenAIModel\n\
             agent = Agent(model=OpenAIModel(client_args={{'base_url': {url:?}, 'api_key': 'sk-test-not-a-key', \
             'max_retries': 0}}, model_id='stalled'))\n"
        ),
        other => panic!("no stalled agent for {other}"),
    }
}

/// Pids of live processes in process group `pgid`, from `/proc/*/stat`.
fn group_members(pgid: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some(close) = stat.rfind(')') else {
                return false;
            };
            // After the name: state, ppid, pgrp.
            let f: Vec<&str> = stat[close + 2..].split(' ').collect();
            f.first() != Some(&"Z") && f.get(2).and_then(|g| g.parse().ok()) == Some(pgid)
        })
        .collect()
}

/// The pid in the worker's note "deadline of …ms passed: SIGTERM to process group <pid>…".
fn stopped_group(events: &[Value]) -> Option<i32> {
    events.iter().find_map(|e| {
        let m = e["message"].as_str()?;
        let rest = m.split_once("passed: SIGTERM to process group ")?.1;
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    })
}

async fn stalled_model_times_out(name: &str, kind: Kind) {
    require_venv(name);
    let python = frameworks_dir().join(name).join(".venv/bin/python");
    let mut server = StalledServer::start(&python);
    let app = tempfile::tempdir().unwrap();
    std::fs::write(
        app.path().join("stalled.py"),
        agent_module(name, &server.url),
    )
    .unwrap();
    let w = with_app(app.path(), &format!("{name}=stalled:agent"))
        .env(
            "AGENTDISPATCH_WARM",
            if kind == Kind::Warm { name } else { "none" },
        )
        .start()
        .await;
    if kind == Kind::Warm {
        w.warm_ready(name, 1).await;
    }

    let deadline = deadline_s(kind);
    let id = unique_id(&format!("{name}-stalled"));
    let asked = Instant::now();
    let mut sse = SseReader::open(
        &w,
        &json!({"taskId": id, "framework": name,
                "input": {"instruction": "hello", "entrypoint": "stalled:agent",
                          "timeoutSeconds": deadline}}),
    )
    .await;
    // The pieces sent before the stall, as deltas, while the task runs.
    let want: String = PIECES.concat();
    let mut got = Vec::new();
    let mut text = String::new();
    let streamed = tokio::time::timeout(Duration::from_secs(180), async {
        while text != want {
            let m = sse.next_message().await?;
            assert!(
                m.data.get("ok").is_none(),
                "{name}: ended before the stall ({text:?} streamed; the imports outlasted the \
                 deadline?): {:#}",
                m.data
            );
            if m.data["type"] == "task.delta" {
                assert!(m.id.is_none(), "{name}: a delta with an SSE id: {}", m.data);
                text.push_str(m.data["payload"]["text"].as_str().unwrap_or_default());
            }
            got.push(m.data);
        }
        Some(())
    })
    .await;
    assert!(
        matches!(streamed, Ok(Some(()))),
        "{name}: the pieces before the stall did not all arrive as deltas ({text:?}): {got:#?}"
    );
    // The model server now hangs: the task still runs, its processes alive, and the worker
    // answers meanwhile (a ping, another task).
    assert!(
        !task_processes(&id).is_empty(),
        "{name}: no process of the task while the model stalls"
    );
    // The child's process group (its pid, from the first heartbeat), alive now.
    let group = got
        .iter()
        .find_map(|e| (e["type"] == "task.heartbeat").then(|| e["payload"]["pid"].as_i64())?)
        .unwrap_or_else(|| panic!("{name}: no heartbeat with a pid: {got:#?}"));
    let group = i32::try_from(group).unwrap();
    assert!(
        !group_members(group).is_empty(),
        "{name}: process group {group} is empty while the task runs"
    );
    assert_still_serving(&w).await;
    let s = w.run(json!({"taskType":"task.status","taskId":id})).await;
    assert_eq!(s["status"], "running", "{name}: {s:#}");

    // The deadline ends it: the answer on the same stream.
    let result = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(m) = sse.next_message().await {
            if m.data.get("ok").is_some() {
                return m.data;
            }
            assert_ne!(
                m.data["type"], "task.delta",
                "{name}: a delta after the stall: {}",
                m.data
            );
        }
        panic!("{name}: the stream ended with no result");
    })
    .await
    .unwrap_or_else(|_| panic!("{name}: no result 60 s after the pieces"));
    let took = asked.elapsed();
    assert_eq!(result["status"], "timed_out", "{name}: {result:#}");
    assert_eq!(result["errorCode"], "timed_out", "{name}");
    assert_eq!(
        result["error"],
        format!("Command timed out after {}ms.", deadline * 1000)
    );
    assert_eq!(forked_from(&result).is_some(), kind == Kind::Warm, "{name}");
    // Not before its deadline (the stall itself ends nothing).
    assert!(
        took >= Duration::from_secs(deadline),
        "{name}: ended after {took:?}, before its {deadline} s deadline"
    );

    // Nothing of the task left: its process group is gone, and the server saw the model
    // call's connection closed.
    assert_no_process_left(&id, Duration::from_secs(2)).await;
    let events = w.folder_events(&id);
    assert_eq!(
        stopped_group(&events),
        Some(group),
        "{name}: no deadline note naming process group {group} in events.ndjson: {events:#?}"
    );
    assert!(
        eventually(Duration::from_secs(2), || group_members(group).is_empty()).await,
        "{name}: process group {group} still has {:?}",
        group_members(group)
    );
    let hung_up = tokio::task::spawn_blocking(move || server.saw_hang_up());
    assert!(
        tokio::time::timeout(Duration::from_secs(10), hung_up)
            .await
            .is_ok_and(|r| r.unwrap()),
        "{name}: the model server's connection stayed open after the task ended"
    );

    // The folder: the answer in result.json, the deadline in events.ndjson, no delta there.
    let saved: Value = serde_json::from_slice(
        &std::fs::read(w.task_dir(&id).join("result.json")).expect("result.json"),
    )
    .unwrap();
    assert_eq!(
        (&saved["status"], &saved["errorCode"]),
        (&result["status"], &result["errorCode"]),
        "{name}: result.json {saved:#}"
    );
    assert!(
        events.iter().all(|e| e["type"] != "task.delta"),
        "{name}: a delta in events.ndjson"
    );
    assert_still_serving(&w).await;
}

#[tokio::test]
async fn langgraph_cold_stalled_model_server_ends_at_the_deadline_after_its_pieces() {
    stalled_model_times_out("langgraph", Kind::Cold).await;
}

#[tokio::test]
async fn langgraph_warm_stalled_model_server_ends_at_the_deadline_after_its_pieces() {
    stalled_model_times_out("langgraph", Kind::Warm).await;
}

#[tokio::test]
async fn strands_cold_stalled_model_server_ends_at_the_deadline_after_its_pieces() {
    stalled_model_times_out("strands", Kind::Cold).await;
}

#[tokio::test]
async fn strands_warm_stalled_model_server_ends_at_the_deadline_after_its_pieces() {
    stalled_model_times_out("strands", Kind::Warm).await;
}
