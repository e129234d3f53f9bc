//! A conversation per session (`contextId`), for each framework that keeps one.

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

/// A conversation with `name`'s example agent through the real binary (warm): turn 2 sees turn
/// 1, another session sees nothing, the session holds across a worker restart, two concurrent
/// turns run one after the other in order, and a corrupt session file fails naming the file.
pub(crate) async fn conversation(name: &str) {
    require_venv(name);
    let sessions = tempfile::tempdir().unwrap();
    let start = || {
        WorkerBuilder::new()
            .env(
                "AGENTDISPATCH_FRAMEWORKS_DIR",
                frameworks_dir().to_str().unwrap(),
            )
            .env(
                "AGENTDISPATCH_SESSION_DIR",
                sessions.path().to_str().unwrap(),
            )
            .env("AGENTDISPATCH_WARM", name)
            .start()
    };
    let say = |session: &str, id: String| {
        json!({"taskId": id, "framework": name, "sessionId": session,
               "input": {"instruction": "hello world"}})
    };
    let answer = |earlier: usize| match earlier {
        0 => ANSWER.to_string(),
        n => format!("{ANSWER} (earlier turns: {n})"),
    };
    let a = format!("conv-{name}-{}", std::process::id());
    {
        let w = start().await;
        w.warm_ready(name, 1).await;
        for earlier in 0..2 {
            let r = w.run(say(&a, unique_id(&format!("{name}-turn")))).await;
            assert_eq!(
                r["output"],
                answer(earlier),
                "{name} turn {}: {r:#}",
                earlier + 1
            );
        }
        let r = w
            .run(say("someone-else", unique_id(&format!("{name}-other"))))
            .await;
        assert_eq!(r["output"], ANSWER, "{name}: another session: {r:#}");
    }
    // A new worker (the microVM resumed): the conversation is on disk.
    let w = start().await;
    w.warm_ready(name, 1).await;
    let r = w
        .run(say(&a, unique_id(&format!("{name}-after-restart"))))
        .await;
    assert_eq!(r["output"], answer(2), "{name} after a restart: {r:#}");
    // Two at once in one session: one after the other, in the order they came.
    let ids = [
        unique_id(&format!("{name}-c1")),
        unique_id(&format!("{name}-c2")),
    ];
    for id in &ids {
        let mut body = say(&a, id.clone());
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
    let file = sessions
        .path()
        .join(&broken)
        .join(session_file(name, &broken));
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "this is not what the framework wrote").unwrap();
    let r = w
        .run(say(&broken, unique_id(&format!("{name}-broken"))))
        .await;
    assert_eq!(r["ok"], false, "{name}: {r:#}");
    let error = r["error"].as_str().unwrap();
    assert!(
        error.contains(&broken) && error.contains("session"),
        "{name}: the error does not name the session file: {error}"
    );
    assert_still_serving(&w).await;
}

#[tokio::test]
async fn langgraph_keeps_a_conversation_per_session() {
    conversation("langgraph").await;
}

#[tokio::test]
async fn langchain_keeps_a_conversation_per_session() {
    conversation("langchain").await;
}

#[tokio::test]
async fn strands_keeps_a_conversation_per_session() {
    conversation("strands").await;
}

#[tokio::test]
async fn openai_agents_keeps_a_conversation_per_session() {
    conversation("openai-agents").await;
}

#[tokio::test]
async fn pydantic_ai_keeps_a_conversation_per_session() {
    conversation("pydantic-ai").await;
}

#[tokio::test]
async fn crewai_keeps_a_conversation_per_session() {
    conversation("crewai").await;
}
