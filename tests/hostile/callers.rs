//! Callers: task ids that are paths, the `Host` header, the allowlist, and how much of what
//! they send is kept.

use super::*;

#[tokio::test]
async fn task_ids_that_are_paths_never_read_outside_the_artifact_directory() {
    let w = WorkerBuilder::new().start().await;
    // A folder beside the artifact directory that looks like a finished task's.
    let r = w
        .run(json!({"taskId":"real-task","prompt":"secret words"}))
        .await;
    assert_eq!(r["ok"], true);
    let outside = w.artifacts.parent().unwrap().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    for f in ["result.json", "manifest.json", "events.ndjson"] {
        std::fs::copy(w.task_dir("real-task").join(f), outside.join(f)).unwrap();
    }
    let absolute = outside.to_str().unwrap().to_string();
    for id in [
        absolute.as_str(),
        "../outside",
        "..",
        "real-task/../../outside",
    ] {
        for method in ["tasks/get", "tasks/cancel"] {
            let r = w
                .rpc(json!({"jsonrpc":"2.0","id":1,"method":method,"params":{"id":id}}))
                .await;
            assert_eq!(r["error"]["code"], -32001, "{method} {id}: {r}");
            assert!(
                !r.to_string().contains("secret words"),
                "{method} {id} read outside: {r}"
            );
        }
        for task_type in ["task.status", "task.cancel"] {
            let (status, r) = w.invoke(&json!({"taskType":task_type,"taskId":id})).await;
            assert_eq!(status, 400, "{task_type} {id}: {r}");
        }
    }
    for path in [
        "/tasks/..",
        "/tasks/../events",
        "/tasks/..%2Foutside",
        "/tasks/%2E%2E/events",
    ] {
        let answer = raw_get(&w, path);
        assert!(
            !answer.contains("secret words"),
            "{path} read outside:\n{answer}"
        );
        let status = answer.lines().next().unwrap_or("");
        assert!(
            status.contains(" 404 ") || status.contains(" 400 "),
            "{path}: {status}"
        );
    }
    // A huge invalid id is not echoed whole.
    let long = "x/".repeat(100_000);
    let r = w
        .rpc(json!({"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"id":long}}))
        .await;
    assert!(
        r.to_string().len() < 2_000,
        "{} bytes echoed",
        r.to_string().len()
    );
    let (status, r) = w
        .invoke(&json!({"taskType":"task.status","taskId":long}))
        .await;
    assert_eq!(status, 400);
    assert!(
        r.to_string().len() < 2_000,
        "{} bytes echoed",
        r.to_string().len()
    );
    assert_eq!(w.ping().await["status"], "Healthy");
}

#[tokio::test]
async fn the_agent_card_url_never_comes_from_the_host_header() {
    let w = WorkerBuilder::new().start().await;
    let card: Value = w
        .client()
        .get(format!("{}/.well-known/agent-card.json", w.url))
        // (A loopback worker answers only loopback Host names: another one of those.)
        .header("host", format!("localhost:{}", w.port))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(card["url"], format!("http://127.0.0.1:{}/", w.port));
    let w = WorkerBuilder::new()
        .env("AGENTCORE_RUNTIME_URL", "https://runtime.example/agent/")
        .start()
        .await;
    let card = w.get("/.well-known/agent-card.json").await.1;
    assert_eq!(card["url"], "https://runtime.example/agent/");
}

#[tokio::test]
async fn the_allowlist_says_what_it_over_grants_and_can_allow_exactly_one_command_line() {
    let w = WorkerBuilder::new()
        .env(
            "AGENTDISPATCH_COMMAND_ALLOWLIST",
            "cat /etc/hostname $, git, 'echo' hi",
        )
        .start()
        .await;
    let run = |c: &str| cmd(c);
    let r = w.run(run("cat /etc/hostname")).await;
    assert_eq!(r["ok"], true, "{r:#}");
    for refused in ["cat /etc/hostname /etc/shadow", "echo bye", "gitx"] {
        let r = w.run(run(refused)).await;
        assert_eq!(r["errorCode"], "command_rejected", "{refused}: {r:#}");
    }
    assert_eq!(w.run(run("echo hi there")).await["output"], "hi there\n");
    let warned = |text: &str| {
        w.log_lines().iter().any(|l| {
            l["level"] == "WARN" && l["message"].as_str().is_some_and(|m| m.contains(text))
        })
    };
    assert!(warned("\"git\" allows any arguments"), "no warning for git");
    assert!(
        !warned("\"cat /etc/hostname\""),
        "an exact entry needs no warning"
    );
    // An entry that cannot mean what it says stops start-up, naming the variable.
    for bad in ["git *", "ls 'oops"] {
        let out = worker_command()
            .env("AGENTDISPATCH_COMMAND_ALLOWLIST", bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("AGENTDISPATCH_COMMAND_ALLOWLIST"));
    }
}

#[tokio::test]
async fn what_callers_send_is_bounded_in_answers_labels_and_retained_tasks() {
    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_MAX_OUTPUT_BYTES", "1000000")
        .env("AGENTDISPATCH_MAX_RETAINED_TASKS", "3")
        .env("AGENTDISPATCH_COMMAND_ALLOWLIST", "true")
        .start()
        .await;
    // A 12 MB prompt and context, echoed: the answer stays near the cap.
    let big = "p".repeat(12_000_000);
    for i in 0..3 {
        let r = w
            .run(json!({"taskId":format!("big-{i}"),"prompt":big,"input":{"context":{"blob":big}}}))
            .await;
        assert_eq!(r["ok"], true);
        let size = r.to_string().len();
        assert!(size < 1_200_000, "an echo answer of {size} bytes");
        assert_eq!(r["result"]["context"]["truncated"], true);
    }
    // A 5 MB refused command is not kept whole as the task's label.
    let long = format!("rm {}", "x".repeat(5_000_000));
    let r = w
        .run(json!({"taskType":"command.run","taskId":"long-label","input":{"command":long}}))
        .await;
    assert_eq!(r["errorCode"], "command_rejected");
    let (_, list) = w.get("/tasks").await;
    assert!(
        list.to_string().len() < 100_000,
        "GET /tasks answered {} bytes",
        list.to_string().len()
    );
    // At most 3 finished tasks in memory; the others answer from their folders.
    for i in 0..6 {
        w.run(json!({"taskId":format!("small-{i}"),"prompt":"x"}))
            .await;
    }
    let listed = w.run(json!({"taskType":"task.list"})).await["tasks"]
        .as_array()
        .unwrap()
        .len();
    assert!(listed <= 3, "{listed} tasks in memory");
    let old = w
        .run(json!({"taskType":"task.status","taskId":"small-0"}))
        .await;
    assert_eq!(old["status"], "succeeded", "{old:#}");
    assert_eq!(old["output"], "Accepted instruction: x");
    let rss = status_kb(w.pid(), "VmRSS").unwrap();
    assert!(
        rss < 200 * 1024,
        "worker RSS {rss} kB after the large requests"
    );
}
