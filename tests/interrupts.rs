//! Interrupts (SPEC §14) through the real binary on the `pyfixture` framework, cold and warm:
//! a task that asks ends `input_required` with its questions; the answer (`input.resume`) runs
//! in a new task, also after a worker restart, and only once; bad answers are refused before
//! any child starts.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn in_session(id: &str, session: &str, instruction: &str, resume: Option<Value>) -> Value {
    let mut body = fixture(id, instruction);
    body["sessionId"] = json!(session);
    if let Some(r) = resume {
        body["input"]["resume"] = r;
    }
    body
}

fn refunds(folder: &Path) -> usize {
    std::fs::read_to_string(folder.join("refunds.log")).map_or(0, |s| s.lines().count())
}

fn worker(kind: Kind, root: &str) -> impl std::future::Future<Output = Worker> {
    fixture_worker(
        kind,
        WorkerBuilder::new().env("AGENTDISPATCH_SESSION_DIR", root),
    )
}

#[tokio::test]
async fn a_question_survives_a_restart_and_its_answer_runs_the_tool_once() {
    for kind in [Kind::Cold, Kind::Warm] {
        let sessions = tempfile::tempdir().unwrap();
        let root = sessions.path().to_str().unwrap().to_string();
        let s = format!("ask-{kind:?}");
        let folder = sessions.path().join(&s);
        let asked_id = format!("{s}-1");
        {
            let w = worker(kind, &root).await;
            let r = w.run(in_session(&asked_id, &s, "ask", None)).await;
            assert_eq!(r["ok"], true, "{kind:?}: {r:#}");
            assert_eq!(r["status"], "input_required", "{r:#}");
            assert_eq!(r["sessionId"], s.as_str(), "{r:#}");
            assert_eq!(r["interrupts"][0]["id"], "refund-1", "{r:#}");
            assert_eq!(r["interrupts"][0]["kind"], "approval", "{r:#}");
            let on_disk: Value = serde_json::from_slice(
                &std::fs::read(w.task_dir(&asked_id).join("result.json")).unwrap(),
            )
            .unwrap();
            assert_eq!(on_disk["status"], "input_required", "{on_disk:#}");
            assert_eq!(on_disk["interrupts"], r["interrupts"]);
            let st = w
                .run(json!({"taskType": "task.status", "taskId": asked_id}))
                .await;
            assert_eq!(st["status"], "input_required", "{st:#}");
            assert_eq!(st["interrupts"], r["interrupts"]);
            // Waiting for a person is not work: the worker is idle.
            assert_eq!(w.ping().await["status"], "Healthy");
        }
        // A new worker process: the question is in the session folder, not in memory, and
        // the session's task.list names it.
        let w = worker(kind, &root).await;
        let list = w
            .run(json!({"taskType": "task.list", "sessionId": s}))
            .await;
        assert_eq!(
            list["openQuestions"]["taskId"],
            asked_id.as_str(),
            "{list:#}"
        );
        assert_eq!(list["openQuestions"]["interrupts"][0]["id"], "refund-1");
        let bad = w
            .run(in_session(
                &format!("{s}-bad"),
                &s,
                "ask",
                Some(json!("yes please")),
            ))
            .await;
        assert_eq!(bad["errorCode"], "invalid_resume", "{bad:#}");
        assert!(
            bad["error"].as_str().unwrap().contains("refund-1"),
            "{bad:#}"
        );
        let other = w
            .run(in_session(
                &format!("{s}-other"),
                &s,
                "ask",
                Some(json!({"refund-9": true})),
            ))
            .await;
        assert_eq!(other["errorCode"], "interrupt_not_open", "{other:#}");
        assert!(
            other["error"].as_str().unwrap().contains("refund-9"),
            "{other:#}"
        );
        assert_eq!(refunds(&folder), 0, "a refused answer starts no child");
        let answer_id = format!("{s}-2");
        let r = w
            .run(in_session(&answer_id, &s, "ask", Some(json!(true))))
            .await;
        assert_eq!(r["status"], "succeeded", "{kind:?}: {r:#}");
        assert_eq!(r["resumes"], asked_id.as_str(), "{r:#}");
        let out: Value = serde_json::from_str(r["output"].as_str().unwrap()).unwrap();
        assert_eq!(out["refunded"], true, "{out:#}");
        assert_eq!(out["resume"]["taskId"], asked_id.as_str());
        assert_eq!(
            out["resume"]["answers"]["refund-1"],
            json!({"approved": true})
        );
        assert_eq!(refunds(&folder), 1);
        let list = w
            .run(json!({"taskType": "task.list", "sessionId": s}))
            .await;
        assert_eq!(list["openQuestions"], Value::Null, "{list:#}");
        // Answering twice: refused, naming the task that answered; the tool does not run again.
        let again = w
            .run(in_session(&format!("{s}-3"), &s, "ask", Some(json!(true))))
            .await;
        assert_eq!(again["errorCode"], "interrupt_not_open", "{again:#}");
        assert!(
            again["error"].as_str().unwrap().contains(&answer_id),
            "{again:#}"
        );
        assert_eq!(refunds(&folder), 1);
    }
}

#[tokio::test]
async fn a_task_without_a_session_gets_one_to_be_answered_in_and_a_rejection_runs_no_tool() {
    let sessions = tempfile::tempdir().unwrap();
    let root = sessions.path().to_str().unwrap().to_string();
    let w = worker(Kind::Warm, &root).await;
    // A task that does not ask leaves no session folder behind.
    let plain = w.run(fixture("plain-1", "state")).await;
    assert_eq!(plain["status"], "succeeded", "{plain:#}");
    assert!(plain.get("sessionId").is_none(), "{plain:#}");
    assert_eq!(std::fs::read_dir(sessions.path()).unwrap().count(), 0);
    // Over SSE: the stream ends with the input_required answer.
    let mut body = fixture("nosession-1", "ask");
    body["stream"] = json!(true);
    let msgs = w.stream(&body).await;
    let r = &msgs.last().unwrap().data;
    assert_eq!(r["status"], "input_required", "{r:#}");
    let session = r["sessionId"]
        .as_str()
        .expect("the worker names a session")
        .to_string();
    // Resuming without the session cannot find the question.
    let mut lost = fixture("nosession-lost", "ask");
    lost["input"]["resume"] = json!(true);
    let lost = w.run(lost).await;
    assert_eq!(lost["errorCode"], "interrupt_not_open", "{lost:#}");
    assert!(
        lost["error"].as_str().unwrap().contains("sessionId"),
        "{lost:#}"
    );
    let r = w
        .run(in_session(
            "nosession-2",
            &session,
            "ask",
            Some(json!({"approved": false, "message": "not this month"})),
        ))
        .await;
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert_eq!(r["resumes"], "nosession-1");
    let out: Value = serde_json::from_str(r["output"].as_str().unwrap()).unwrap();
    assert_eq!(out["refunded"], false, "{out:#}");
    assert_eq!(out["rejection"], "not this month", "{out:#}");
    assert_eq!(refunds(&sessions.path().join(&session)), 0);
}

#[tokio::test]
async fn several_questions_need_answers_by_id_and_a_deleted_session_is_not_started_over() {
    let sessions = tempfile::tempdir().unwrap();
    let root = sessions.path().to_str().unwrap().to_string();
    let w = worker(Kind::Cold, &root).await;
    let two = r#"ask [{"id":"refund-1","kind":"approval"},{"id":"account","kind":"input","value":"which account?"}]"#;
    let r = w.run(in_session("many-1", "many", two, None)).await;
    assert_eq!(r["status"], "input_required", "{r:#}");
    assert_eq!(r["interrupts"].as_array().unwrap().len(), 2);
    let bare = w
        .run(in_session("many-2", "many", two, Some(json!(true))))
        .await;
    assert_eq!(bare["errorCode"], "invalid_resume", "{bare:#}");
    let part = w
        .run(in_session(
            "many-3",
            "many",
            two,
            Some(json!({"refund-1": true})),
        ))
        .await;
    assert_eq!(part["errorCode"], "invalid_resume", "{part:#}");
    assert!(
        part["error"].as_str().unwrap().contains("account"),
        "{part:#}"
    );
    // The session folder deleted between question and answer: a clear error, no new folder.
    std::fs::remove_dir_all(sessions.path().join("many")).unwrap();
    let gone = w
        .run(in_session(
            "many-4",
            "many",
            two,
            Some(json!({"refund-1": true, "account": "savings"})),
        ))
        .await;
    assert_eq!(gone["errorCode"], "interrupt_not_open", "{gone:#}");
    assert!(
        gone["error"].as_str().unwrap().contains("no folder"),
        "{gone:#}"
    );
    assert!(!sessions.path().join("many").exists());
    assert_eq!(w.ping().await["status"], "Healthy");
}

#[tokio::test]
async fn a_bad_question_line_is_a_warning_and_a_child_that_asks_then_fails_keeps_nothing_open() {
    let sessions = tempfile::tempdir().unwrap();
    let root = sessions.path().to_str().unwrap().to_string();
    let w = worker(Kind::Cold, &root).await;
    let bad = r#"sh echo '{"type":"task.interrupt","payload":{"interrupts":[{"id":"a","kind":"maybe"}]}}'"#;
    let r = w.run(in_session("hostile-1", "hostile", bad, None)).await;
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert!(
        events_of(&r, "task.log").iter().any(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.contains("task.interrupt line was refused") && m.contains("kind"))),
        "{r:#}"
    );
    let fails = r#"sh echo '{"type":"task.interrupt","payload":{"interrupts":[{"id":"a","kind":"input"}]}}'; exit 3"#;
    let r = w.run(in_session("hostile-2", "hostile", fails, None)).await;
    assert_eq!(r["status"], "failed", "{r:#}");
    assert!(r.get("interrupts").is_none(), "{r:#}");
    let list = w
        .run(json!({"taskType": "task.list", "sessionId": "hostile"}))
        .await;
    assert_eq!(list["openQuestions"], Value::Null, "{list:#}");
    let resume = w
        .run(in_session("hostile-3", "hostile", "ask", Some(json!("a"))))
        .await;
    assert_eq!(resume["errorCode"], "interrupt_not_open", "{resume:#}");
}

#[tokio::test]
async fn a_question_expires_with_its_session_folder_and_a_session_in_use_is_kept() {
    let sessions = tempfile::tempdir().unwrap();
    let root = sessions.path().to_str().unwrap().to_string();
    let w = fixture_worker(
        Kind::Cold,
        WorkerBuilder::new()
            .env("AGENTDISPATCH_SESSION_DIR", &root)
            .env("AGENTDISPATCH_SESSION_RETENTION_SECONDS", "0.5"),
    )
    .await;
    // A turn that runs past the retention, begun first: its folder is the older one.
    let busy = tokio::spawn({
        let (url, client) = (w.url.clone(), w.client().clone());
        async move {
            let body = in_session("keep-1", "in-use", "sleep 60", None);
            let resp = client.post(format!("{url}/invocations")).json(&body).send();
            resp.await.unwrap().json::<Value>().await.unwrap()
        }
    });
    let running = || async {
        let st = w
            .run(json!({"taskType": "task.status", "taskId": "keep-1"}))
            .await;
        st["status"] == "running"
    };
    assert!(eventually_async(Duration::from_secs(30), running).await);
    let r = w.run(in_session("gone-1", "idle", "ask", None)).await;
    assert_eq!(r["status"], "input_required", "{r:#}");
    let (idle, in_use) = (sessions.path().join("idle"), sessions.path().join("in-use"));
    assert!(idle.is_dir() && in_use.is_dir());
    // The question's folder goes once unchanged for the retention; the one in use stays,
    // though it is older.
    assert!(eventually(Duration::from_secs(30), || !idle.exists()).await);
    assert!(in_use.is_dir(), "a session with a running turn was removed");
    assert!(
        w.logged(|l| l["message"] == "removed session folders past the session retention")
            .await
    );
    // Answering it: the question expired with its folder; nothing is started over.
    let r = w
        .run(in_session("gone-2", "idle", "ask", Some(json!(true))))
        .await;
    assert_eq!(r["errorCode"], "interrupt_not_open", "{r:#}");
    assert!(r["error"].as_str().unwrap().contains("expired"), "{r:#}");
    assert!(!idle.exists(), "the refused answer made no folder");
    // Its turn over, the other session's folder goes too.
    w.run(json!({"taskType": "task.cancel", "taskId": "keep-1"}))
        .await;
    assert_eq!(busy.await.unwrap()["status"], "cancelled");
    assert!(eventually(Duration::from_secs(30), || !in_use.exists()).await);
}

#[tokio::test]
async fn a_new_turn_instead_of_the_answer_gives_the_question_up() {
    let sessions = tempfile::tempdir().unwrap();
    let root = sessions.path().to_str().unwrap().to_string();
    let w = worker(Kind::Warm, &root).await;
    let folder = sessions.path().join("moved-on");
    let r = w.run(in_session("mo-1", "moved-on", "ask", None)).await;
    assert_eq!(r["status"], "input_required", "{r:#}");
    // Not an answer: a new instruction in the same session runs, and the question is given up.
    let r = w.run(in_session("mo-2", "moved-on", "sleep 0", None)).await;
    assert_eq!(r["status"], "succeeded", "{r:#}");
    let list = w
        .run(json!({"taskType": "task.list", "sessionId": "moved-on"}))
        .await;
    assert_eq!(list["openQuestions"], Value::Null, "{list:#}");
    let late = w
        .run(in_session("mo-3", "moved-on", "ask", Some(json!(true))))
        .await;
    assert_eq!(late["errorCode"], "interrupt_not_open", "{late:#}");
    let error = late["error"].as_str().unwrap();
    assert!(
        error.contains("given up") && error.contains("mo-2"),
        "{error}"
    );
    assert_eq!(refunds(&folder), 0, "the late answer started nothing");
}
