//! A conversation per session (`contextId`), for each framework that keeps one: run by each
//! framework's warm end-to-end test (end_to_end.rs), on its worker: every turn a fresh process.

use super::*;

/// The file (under the session folder) where `name`'s runner keeps a conversation.
pub(crate) fn session_file(name: &str, key: &str) -> PathBuf {
    PathBuf::from(match name {
        "langgraph" => "langgraph.sqlite".to_string(),
        "langchain" => "langchain.sqlite".to_string(),
        "openai-agents" => "openai-agents.sqlite".to_string(),
        "pydantic-ai" => "pydantic-ai.json".to_string(),
        "crewai" => "crewai-conversation.json".to_string(),
        "strands" => format!("session_{key}/session.json"),
        other => panic!("no session file known for {other}"),
    })
}

/// What `name`'s example agent answers in a session with `earlier` turns before this one.
fn answer(earlier: usize) -> String {
    match earlier {
        0 => ANSWER.to_string(),
        n => format!("{ANSWER} (earlier turns: {n})"),
    }
}

fn say(name: &str, session: &str, id: String) -> Value {
    json!({"taskId": id, "framework": name, "sessionId": session,
           "input": {"instruction": "hello world"}})
}

/// The session of a conversation that [`conversation_before_restart`] begins and
/// [`conversation_after_restart`] goes on with.
pub(crate) fn conversation_id(name: &str) -> String {
    format!("conv-{name}-{}", std::process::id())
}

/// A conversation with `name`'s example agent through the real binary, on a worker with a
/// session folder: turn 2 sees turn 1, another session sees nothing.
pub(crate) async fn conversation_before_restart(w: &Worker, name: &str) {
    let a = conversation_id(name);
    for earlier in 0..2 {
        let r = w
            .run(say(name, &a, unique_id(&format!("{name}-turn"))))
            .await;
        assert_eq!(
            r["output"],
            answer(earlier),
            "{name} turn {}: {r:#}",
            earlier + 1
        );
    }
    let r = w
        .run(say(
            name,
            "someone-else",
            unique_id(&format!("{name}-other")),
        ))
        .await;
    assert_eq!(r["output"], ANSWER, "{name}: another session: {r:#}");
}

/// The same conversation goes on (in a new process, as every turn): the conversation is on
/// disk, two concurrent turns run one after the other in order, and a corrupt session file
/// fails naming the file.
pub(crate) async fn conversation_after_restart(w: &Worker, name: &str, sessions: &Path) {
    let a = conversation_id(name);
    let r = w
        .run(say(name, &a, unique_id(&format!("{name}-after-restart"))))
        .await;
    assert_eq!(r["output"], answer(2), "{name} after a restart: {r:#}");
    // Two at once in one session: one after the other, in the order they came.
    let ids = [
        unique_id(&format!("{name}-c1")),
        unique_id(&format!("{name}-c2")),
    ];
    for id in &ids {
        let mut body = say(name, &a, id.clone());
        body["async"] = json!(true);
        assert_eq!(w.run(body).await["status"], "running");
    }
    for (i, id) in ids.iter().enumerate() {
        w.wait_done(id).await;
        let r = w.run(json!({"taskType":"task.status","taskId":id})).await;
        assert_eq!(
            r["output"],
            answer(3 + i),
            "{name} concurrent turn {i}: {r:#}"
        );
    }
    // A corrupt session file: a clear error naming it, and the worker serves on.
    let broken = format!("broken-{name}");
    let file = sessions.join(&broken).join(session_file(name, &broken));
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "this is not what the framework wrote").unwrap();
    let r = w
        .run(say(name, &broken, unique_id(&format!("{name}-broken"))))
        .await;
    assert_eq!(r["ok"], false, "{name}: {r:#}");
    let error = r["error"].as_str().unwrap();
    assert!(
        error.contains(&broken) && error.contains("session"),
        "{name}: the error does not name the session file: {error}"
    );
    assert_still_serving(w).await;
}
