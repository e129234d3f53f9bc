//! A framework whose files change is reloaded: its next task runs the new code, warm; a task
//! running on the old parent finishes on the old code; caches and editor files change nothing.

use super::*;

/// The example agent's tool with `tag` before its answer; with "hold" in its text it first
/// waits until someone writes to the FIFO `$DEV_TEST_HOLD` (a task held on the old code).
fn tool_tagged(text: &str, tag: &str) -> String {
    let tagged = text.replace(
        "    return example_shout(text)",
        &format!(
            "    if \"hold\" in text:\n        import os\n        with open(os.environ[\"DEV_TEST_HOLD\"]) as f:\n            f.read()\n    return \"{tag}:\" + example_shout(text)"
        ),
    );
    assert_ne!(tagged, text, "the example agent's tool is not where it was");
    tagged
}

/// The "framework reloaded" log lines of `framework` so far.
fn reloads(w: &Worker, framework: &str) -> Vec<Value> {
    w.log_lines()
        .into_iter()
        .filter(|l| {
            l["framework"] == framework
                && l["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("framework reloaded"))
        })
        .collect()
}

/// Waits for the `n`-th reload of langgraph; its log line.
async fn reloaded(w: &Worker, n: usize) -> Value {
    assert!(
        eventually(Duration::from_secs(120), || reloads(w, "langgraph").len()
            >= n)
        .await,
        "no reload #{n}; log:\n{}",
        w.logs.lock().unwrap().join("\n")
    );
    reloads(w, "langgraph").swap_remove(n - 1)
}

async fn answer(w: &Worker, id: &str, instruction: &str) -> Value {
    let r = w
        .run(json!({"taskId": id, "input": {"instruction": instruction}}))
        .await;
    assert_eq!(r["ok"], true, "{r:#}");
    r
}

#[tokio::test]
async fn an_edited_agent_answers_with_the_new_code_on_its_next_task_warm_and_a_running_task_keeps_the_old(
) {
    let dir = langgraph_copy(|t| tool_tagged(t, "A"));
    let hold = dir.path().join("hold");
    nix::unistd::mkfifo(&hold, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let w = dev_worker(
        dir.path(),
        WorkerBuilder::new().env("DEV_TEST_HOLD", hold.to_str().unwrap()),
    )
    .await;
    let first = w.warm_ready("langgraph", 1).await;
    let r = answer(&w, "dev-a", "hello world").await;
    assert_eq!(r["output"], "Shouted: A:HELLO WORLD", "{r:#}");
    assert_eq!(forked_from(&r), Some(first));

    // A task on the old code, held in its tool call.
    let (_, started) = w
        .invoke(&json!({"taskId": "dev-held", "async": true, "input": {"instruction": "hold on"}}))
        .await;
    assert_eq!(started["status"], "running", "{started:#}");
    let in_tool = eventually_async(Duration::from_secs(60), || async {
        let s = w
            .run(json!({"taskType": "task.status", "taskId": "dev-held"}))
            .await;
        events_of(&s, "task.progress")
            .iter()
            .any(|e| e["payload"]["step"] == "tool_call")
    })
    .await;
    assert!(in_tool, "the held task never called its tool");

    let agent = dir.path().join("langgraph/example_agent.py");
    let text = std::fs::read_to_string(&agent).unwrap();
    std::fs::write(&agent, text.replace("\"A:\"", "\"B:\"")).unwrap();
    let line = reloaded(&w, 1).await;
    assert_eq!(line["files"], "langgraph/example_agent.py", "{line}");
    assert_eq!(line["warm"], true, "{line}");
    let second = w.warm_ready("langgraph", 2).await;
    assert_ne!(second, first);
    assert_eq!(line["pid"], second);

    let r = answer(&w, "dev-b", "hello world").await;
    assert_eq!(r["output"], "Shouted: B:HELLO WORLD", "{r:#}");
    assert_eq!(
        forked_from(&r),
        Some(second),
        "not forked by the new parent: {r:#}"
    );

    // The held task was forked by the old parent: it goes on, on the old code (it still
    // waits on the FIFO: opening it without waiting fails when no reader is left).
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(&hold)
        .expect("the held task is still reading the FIFO");
    let held = w.wait_done("dev-held").await;
    assert_eq!(held["status"], "succeeded", "{held:#}");
    assert_eq!(held["output"], "Shouted: A:HOLD ON", "{held:#}");

    // Caches, hidden files and editor files are not code: no reload. The change after them is
    // the next reload, and names only itself.
    let folder = dir.path().join("langgraph");
    std::fs::create_dir_all(folder.join("__pycache__")).unwrap();
    std::fs::write(folder.join("__pycache__/x.cpython-312.pyc"), b"x").unwrap();
    std::fs::write(folder.join("example_agent.py~"), b"x").unwrap();
    std::fs::write(folder.join(".example_agent.py.swp"), b"x").unwrap();
    std::fs::write(folder.join("tools.py"), b"# a new module\n").unwrap();
    let line = reloaded(&w, 2).await;
    assert_eq!(line["files"], "langgraph/tools.py", "{line}");
    assert_eq!(reloads(&w, "langgraph").len(), 2);

    // A save that breaks the agent: the reload is logged (done, or failed at WARN when the new
    // parent cannot start), and the next task fails naming the error. Saving the fix reloads at
    // once (not after a failed parent's restart backoff), and the next task is warm again.
    let good = std::fs::read_to_string(&agent).unwrap();
    std::fs::write(&agent, format!("{good}\ndef broken(:\n")).unwrap();
    let said = || {
        w.log_lines()
            .iter()
            .filter(|l| {
                l["framework"] == "langgraph"
                    && l["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("framework reload"))
            })
            .count()
    };
    assert!(
        eventually(Duration::from_secs(120), || said() >= 3).await,
        "a broken save was not reported; log:\n{}",
        w.logs.lock().unwrap().join("\n")
    );
    let r = w
        .run(json!({"taskId": "dev-broken", "input": {"instruction": "hello world"}}))
        .await;
    assert_eq!(r["ok"], false, "{r:#}");
    assert!(r.to_string().contains("SyntaxError"), "{r:#}");
    let before = reloads(&w, "langgraph").len();
    std::fs::write(&agent, good.replace("\"B:\"", "\"C:\"")).unwrap();
    let line = reloaded(&w, before + 1).await;
    assert_eq!(line["warm"], true, "{line}");
    let r = answer(&w, "dev-c", "hello world").await;
    assert_eq!(r["output"], "Shouted: C:HELLO WORLD", "{r:#}");
    assert_eq!(forked_from(&r), line["pid"].as_u64(), "{r:#}");
}
