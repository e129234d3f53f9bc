//! Each framework, cold and warm: the hello-world answer's text and steps streamed over SSE as
//! they happen (live_text.rs), a cancel and a deadline leaving no process behind, no network or
//! process start; warm, also a conversation per session (sessions.rs) on the same worker and then
//! on a restarted one, so that a framework's imports are paid by one cold task per test and one
//! warm parent per worker.

use super::*;

/// What a framework's test does besides the hello-world run, the cancel and the audit.
#[derive(Clone, Copy, Default)]
pub(crate) struct Also {
    /// A 1-second deadline on the slow run.
    pub(crate) deadline: bool,
    /// A slow run followed over SSE: the tool call shows on the open stream while the tool
    /// sleeps, a cancel from another request ends the stream with `cancelled`.
    pub(crate) sse_cancel: bool,
}

/// Everything about one framework, on one worker whose Python children carry the audit hook:
/// the streamed hello-world run, a cancel during the slow tool, what `also` asks, warm the
/// first turns of a conversation, and then the audit log; warm, the conversation then goes on
/// on a restarted worker (audited too).
pub(crate) async fn framework_end_to_end(name: &str, kind: Kind, also: Also) {
    require_venv(name);
    let warm = match kind {
        Kind::Cold => "none",
        Kind::Warm => name,
    };
    // Every task of this worker starts as `kind`.
    let check_kind = |what: &str, r: &Value| match kind {
        Kind::Warm => assert!(
            forked_from(r).is_some(),
            "{name} {what}: not forked warm: {r:#}"
        ),
        Kind::Cold => assert!(
            forked_from(r).is_none(),
            "{name} {what}: forked warm: {r:#}"
        ),
    };
    let audit = tempfile::tempdir().unwrap();
    std::fs::write(
        audit.path().join("sitecustomize.py"),
        AUDIT_SITECUSTOMIZE.trim_start(),
    )
    .unwrap();
    let session_dir = tempfile::tempdir().unwrap();
    let mut gate = crate::common::gate::Gate::new();
    let start = |log: &Path| {
        WorkerBuilder::new()
            .env(
                "AGENTDISPATCH_FRAMEWORKS_DIR",
                frameworks_dir().to_str().unwrap(),
            )
            .env(
                "AGENTDISPATCH_SESSION_DIR",
                session_dir.path().to_str().unwrap(),
            )
            .env("PYTHONPATH", audit.path().to_str().unwrap())
            .env("AGENTDISPATCH_AUDIT_LOG", log.to_str().unwrap())
            .env("AGENTDISPATCH_WARM", warm)
            .env(
                "AGENTDISPATCH_EXAMPLE_PIECE_GATE",
                gate.path().to_str().unwrap(),
            )
            .start()
    };
    let log = audit.path().join("audit.log");
    let w = start(&log).await;
    if kind == Kind::Warm {
        w.warm_ready(name, 1).await;
    }
    let mut pythons = 0;

    // 1. Hello world over SSE: the answer's text live, piece by piece, also to a subscriber
    // joining mid-answer, and never in the record (live_text.rs); steps in order, live, then the
    // example agent's answer.
    let id = unique_id(&format!("{name}-hello"));
    let started = Instant::now();
    let msgs = live_text::hello_world_live(&w, name, &mut gate, &id).await;
    let timing = check_hello_world_stream(name, started, &msgs);
    check_kind("hello", &msgs.last().unwrap().data);
    eprintln!("{kind:?} {timing}");
    pythons += 1;
    assert_no_process_left(&id, Duration::from_secs(2)).await;

    // 2. Cancel while the slow tool sleeps: cancelled, TERM honoured, nothing left.
    let id = unique_id(&format!("{name}-cancel"));
    let r = w
        .run(json!({"taskId":id,"async":true,"framework":name,
                    "input":{"instruction":"please be slow"}}))
        .await;
    assert_eq!(r["status"], "running", "{r}");
    let seen = wait_for_step(&w, &id, "tool_call", Duration::from_secs(180)).await;
    pythons += 1;
    assert!(
        !seen.iter().any(|e| step_of(e) == Some("tool_result")),
        "{name}: the slow tool returned at once: {seen:#?}"
    );
    // Paces the client: the cancel is to land while the slow tool sleeps, not as it starts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !task_processes(&id).is_empty(),
        "{name}: no process carries the task id while it runs"
    );
    let asked = Instant::now();
    let r = w.run(json!({"taskType":"task.cancel","taskId":id})).await;
    let took = asked.elapsed();
    assert_eq!(r["status"], "cancelled", "{name}: {r:#}");
    check_kind("cancel", &r);
    assert_eq!(r["ok"], false);
    assert_eq!(r["errorCode"], "cancelled");
    assert_eq!(r["error"], "Task cancelled.");
    assert!(
        !events_of(&r, "task.progress")
            .iter()
            .any(|e| step_of(e) == Some("tool_result")),
        "{name}: tool_result after cancel"
    );
    assert!(
        events_of(&r, "task.log")
            .iter()
            .any(|e| e["message"] == "cancelled by SIGTERM"),
        "{name}: the runner did not report SIGTERM (killed only after the grace?): {r:#}"
    );
    assert!(
        took < Duration::from_secs(5),
        "{name}: cancel took {took:?}: SIGTERM not honoured within the kill grace"
    );
    assert_no_process_left(&id, Duration::from_secs(2)).await;
    eprintln!("{name}: cancel answered in {} ms", took.as_millis());
    let s = w.run(json!({"taskType":"task.status","taskId":id})).await;
    assert_eq!(s["status"], "cancelled");

    // 3. A slow run followed live over SSE and cancelled from another request.
    if also.sse_cancel {
        let id = unique_id(&format!("{name}-sse-cancel"));
        let mut sse = SseReader::open(
            &w,
            &json!({"taskId":id,"framework":name,"input":{"instruction":"please be slow"}}),
        )
        .await;
        let mut seen = Vec::new();
        let first_call = tokio::time::timeout(Duration::from_secs(180), async {
            while let Some(m) = sse.next().await {
                assert!(
                    m.get("ok").is_none(),
                    "{name}: ended before tool_call: {m:#}"
                );
                seen.push(m);
                if step_of(seen.last().unwrap()) == Some("tool_call") {
                    return;
                }
            }
            panic!("{name}: stream ended without tool_call: {seen:#?}");
        })
        .await;
        assert!(first_call.is_ok(), "{name}: no tool_call within 180 s");
        pythons += 1;
        assert_eq!(w.ping().await["status"], "HealthyBusy");
        let r = w.run(json!({"taskType":"task.cancel","taskId":id})).await;
        assert_eq!(r["status"], "cancelled", "{name}: {r:#}");
        let mut rest = Vec::new();
        while let Some(m) = sse.next().await {
            rest.push(m);
        }
        let last = rest.last().expect("the stream ends with the result");
        assert_eq!(last["status"], "cancelled", "{name}: {last:#}");
        check_kind("sse cancel", last);
        assert_eq!(last["errorCode"], "cancelled");
        assert!(
            !rest.iter().any(|m| step_of(m) == Some("tool_result")),
            "{name}: tool_result after cancel"
        );
        assert_no_process_left(&id, Duration::from_secs(2)).await;
    }

    // 4. A 1-second deadline on the slow run: timed out, nothing left.
    if also.deadline {
        let id = unique_id(&format!("{name}-deadline"));
        let asked = Instant::now();
        let r = w
            .run(json!({"taskId":id,"framework":name,
                        "input":{"instruction":"please be slow","timeoutSeconds":1}}))
            .await;
        let took = asked.elapsed();
        assert_eq!(r["status"], "timed_out", "{name}: {r:#}");
        check_kind("deadline", &r);
        assert_eq!(r["ok"], false);
        assert_eq!(r["errorCode"], "timed_out");
        assert_eq!(r["error"], "Command timed out after 1000ms.");
        assert!(
            took < Duration::from_secs(7),
            "{name}: deadline took {took:?}"
        );
        assert_no_process_left(&id, Duration::from_secs(2)).await;
        let reached = events_of(&r, "task.progress")
            .iter()
            .any(|e| step_of(e) == Some("tool_call"));
        eprintln!(
            "{name}: 1 s deadline answered after {} ms (tool reached: {reached})",
            took.as_millis()
        );
    }

    // 5. Warm: a conversation per session, on this worker (sessions.rs). Every turn is a fresh
    // process forked from a parent that never ran one, so a turn sees the earlier ones only
    // through the session folder, as after a restart (a worker restart itself, with its warm
    // parent made anew, is tests/sessions.rs's; here it cost six more framework imports).
    if kind == Kind::Warm {
        sessions::conversation_before_restart(&w, name).await;
        sessions::conversation_after_restart(&w, name, session_dir.path()).await;
    }

    // 6. Offline: the hook ran in every interpreter (warm: the parent, whose forks inherit it)
    // and saw no network or process start.
    if kind == Kind::Warm {
        pythons = 1;
    }
    assert_offline(name, &log, pythons);
    assert_still_serving(&w).await;
}

/// The audit log shows the hook loaded in at least `pythons` interpreters and no network or
/// process call.
#[track_caller]
fn assert_offline(name: &str, log: &Path, pythons: usize) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let loaded = text
        .lines()
        .filter(|l| l.starts_with("# audit hook loaded"))
        .count();
    assert!(
        loaded >= pythons,
        "{name}: audit hook loaded {loaded} times for {pythons} runs:\n{text}"
    );
    let calls: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(
        calls.is_empty(),
        "{name}: network or process calls during the runs:\n{}",
        calls.join("\n")
    );
}

#[tokio::test]
async fn langchain_cold_streams_live_text_and_steps_cancels_cleanly_and_stays_offline() {
    framework_end_to_end("langchain", Kind::Cold, Also::default()).await;
}

#[tokio::test]
async fn langchain_warm_streams_live_text_and_steps_cancels_cleanly_stays_offline_and_keeps_a_conversation_per_session(
) {
    framework_end_to_end("langchain", Kind::Warm, Also::default()).await;
}

#[tokio::test]
async fn langgraph_cold_streams_live_text_and_steps_cancels_cleanly_times_out_and_stays_offline() {
    framework_end_to_end(
        "langgraph",
        Kind::Cold,
        Also {
            deadline: true,
            sse_cancel: false,
        },
    )
    .await;
}

#[tokio::test]
async fn langgraph_warm_streams_live_text_and_steps_cancels_cleanly_times_out_stays_offline_and_keeps_a_conversation_per_session(
) {
    framework_end_to_end(
        "langgraph",
        Kind::Warm,
        Also {
            deadline: true,
            sse_cancel: false,
        },
    )
    .await;
}

#[tokio::test]
async fn crewai_cold_streams_live_text_and_steps_cancels_cleanly_and_stays_offline() {
    framework_end_to_end("crewai", Kind::Cold, Also::default()).await;
}

#[tokio::test]
async fn crewai_warm_streams_live_text_and_steps_cancels_cleanly_stays_offline_and_keeps_a_conversation_per_session(
) {
    framework_end_to_end("crewai", Kind::Warm, Also::default()).await;
}

#[tokio::test]
async fn strands_cold_streams_live_text_and_steps_cancels_cleanly_also_over_sse_and_stays_offline()
{
    framework_end_to_end(
        "strands",
        Kind::Cold,
        Also {
            deadline: false,
            sse_cancel: true,
        },
    )
    .await;
}

#[tokio::test]
async fn strands_warm_streams_live_text_and_steps_cancels_cleanly_also_over_sse_stays_offline_and_keeps_a_conversation_per_session(
) {
    framework_end_to_end(
        "strands",
        Kind::Warm,
        Also {
            deadline: false,
            sse_cancel: true,
        },
    )
    .await;
}

#[tokio::test]
async fn openai_agents_cold_streams_live_text_and_steps_cancels_cleanly_and_stays_offline() {
    framework_end_to_end("openai-agents", Kind::Cold, Also::default()).await;
}

#[tokio::test]
async fn openai_agents_warm_streams_live_text_and_steps_cancels_cleanly_stays_offline_and_keeps_a_conversation_per_session(
) {
    framework_end_to_end("openai-agents", Kind::Warm, Also::default()).await;
}

#[tokio::test]
async fn pydantic_ai_cold_streams_live_text_and_steps_cancels_cleanly_also_over_sse_and_stays_offline(
) {
    framework_end_to_end(
        "pydantic-ai",
        Kind::Cold,
        Also {
            deadline: false,
            sse_cancel: true,
        },
    )
    .await;
}

#[tokio::test]
async fn pydantic_ai_warm_streams_live_text_and_steps_cancels_cleanly_also_over_sse_stays_offline_and_keeps_a_conversation_per_session(
) {
    framework_end_to_end(
        "pydantic-ai",
        Kind::Warm,
        Also {
            deadline: false,
            sse_cancel: true,
        },
    )
    .await;
}
