//! pydantic-ai's deferred tools beyond the example's approval (SPEC §14; the shared cases are in
//! interrupts.rs): an own agent that lacks `DeferredToolRequests` in its output types, a call
//! deferred as a question, and the session's conversation after a resumed turn.

use super::interrupts::{asking_worker, refund, refunds, REFUNDED};
use super::*;

/// Pydantic-ai agents of the user's own whose output types lack `DeferredToolRequests` (as
/// `Agent(model)` has): a deferred tool call would end their run with pydantic-ai's UserError, so
/// the runner adds the type at run time. `agent`'s `refund` asks for approval, which runs it;
/// `asker`'s `pick_colour` defers its call as a question (`CallDeferred`), whose answer is the
/// call's result.
const OWN_PYDANTIC_AGENT: &str = r#"from pydantic_ai import Agent, CallDeferred

from agentdispatch import example_refund
from example_agent import scripted_model

agent = Agent(scripted_model(asking="refund"), name="own-asking")


@agent.tool_plain(requires_approval=True)
def refund(text: str) -> str:
    return example_refund(text, True)


asker = Agent(scripted_model(tool="pick_colour"), name="own-asker")


@asker.tool_plain
def pick_colour(text: str) -> str:
    raise CallDeferred({"question": "which colour?"}, kind="question")
"#;

/// A cold worker running `entrypoint` of an app folder holding `OWN_PYDANTIC_AGENT`.
async fn own_pydantic_worker(app: &Path, sessions: &Path, log: &Path, entrypoint: &str) -> Worker {
    require_venv("pydantic-ai");
    std::fs::write(app.join("own_asking.py"), OWN_PYDANTIC_AGENT).unwrap();
    WorkerBuilder::new()
        .env(
            "AGENTDISPATCH_FRAMEWORKS_DIR",
            frameworks_dir().to_str().unwrap(),
        )
        .env("AGENTDISPATCH_SESSION_DIR", sessions.to_str().unwrap())
        .env("AGENTDISPATCH_WARM", "none")
        .env("AGENTDISPATCH_APP_DIR", app.to_str().unwrap())
        .env("AGENTDISPATCH_AGENT_FRAMEWORK", "pydantic-ai")
        .env("AGENTDISPATCH_ENTRYPOINT", entrypoint)
        .env("EXAMPLE_REFUND_LOG", log.to_str().unwrap())
        .start()
        .await
}

#[tokio::test]
async fn pydantic_ai_an_own_agent_without_deferred_tool_requests_in_its_output_types_asks() {
    let sessions = tempfile::tempdir().unwrap();
    let log = sessions.path().join("refunds.log");
    let app = tempfile::tempdir().unwrap();
    let w = own_pydantic_worker(app.path(), sessions.path(), &log, "own_asking:agent").await;
    let r = w
        .run(refund("pydantic-ai", &unique_id("own-ask"), None, None))
        .await;
    assert_eq!(r["status"], "input_required", "{r:#}");
    assert_eq!(r["interrupts"][0]["tool"], "refund", "{r:#}");
    let session = r["sessionId"].as_str().unwrap();
    let r = w
        .run(refund(
            "pydantic-ai",
            &unique_id("own-answer"),
            Some(session),
            Some(json!(true)),
        ))
        .await;
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert!(r["output"].as_str().unwrap().contains(REFUNDED), "{r:#}");
    assert_eq!(refunds(&log), vec!["refund 5 for order 42"]);
}

/// The session's conversation after an answered question: the turn that asked is in it once
/// the answer's run finished it (the example counts the earlier turns it is given), the turn
/// before the question too, and what the question kept in the session folder is spent.
#[tokio::test]
async fn pydantic_ai_a_resumed_turn_joins_the_sessions_conversation() {
    let sessions = tempfile::tempdir().unwrap();
    let log = sessions.path().join("refunds.log");
    let w = asking_worker("pydantic-ai", false, sessions.path(), &log).await;
    let session = unique_id("pyd-conv");
    let turn = |id: &str, text: &str| {
        json!({"taskId": unique_id(id), "framework": "pydantic-ai", "sessionId": session,
               "input": {"instruction": text}})
    };
    let r = w.run(turn("conv-1", "hello")).await;
    assert_eq!(r["output"], "Shouted: HELLO", "{r:#}");
    let r = w
        .run(refund(
            "pydantic-ai",
            &unique_id("conv-2"),
            Some(&session),
            None,
        ))
        .await;
    assert_eq!(r["status"], "input_required", "{r:#}");
    let folder = sessions.path().join(&session);
    let kept = [
        "pydantic-ai-paused-messages.json",
        "pydantic-ai-deferred-requests.json",
    ];
    for name in kept {
        assert!(folder.join(name).exists(), "no {name}");
    }
    let r = w
        .run(refund(
            "pydantic-ai",
            &unique_id("conv-3"),
            Some(&session),
            Some(json!(true)),
        ))
        .await;
    assert_eq!(
        r["output"],
        format!("Shouted: {REFUNDED} (earlier turns: 1)"),
        "{r:#}"
    );
    for name in kept {
        assert!(!folder.join(name).exists(), "{name} outlived its answer");
    }
    let r = w.run(turn("conv-4", "again")).await;
    assert_eq!(r["output"], "Shouted: AGAIN (earlier turns: 2)", "{r:#}");
}

/// A call deferred as a question (`CallDeferred`) is an input question whose answer becomes the
/// call's result: the model's answer carries it.
#[tokio::test]
async fn pydantic_ai_a_deferred_call_is_an_input_question_whose_answer_is_its_result() {
    let sessions = tempfile::tempdir().unwrap();
    let log = sessions.path().join("refunds.log");
    let app = tempfile::tempdir().unwrap();
    let w = own_pydantic_worker(app.path(), sessions.path(), &log, "own_asking:asker").await;
    let ask = json!({"taskId": unique_id("colour-1"), "framework": "pydantic-ai",
                     "input": {"instruction": "paint the door"}});
    let r = w.run(ask).await;
    assert_eq!(r["status"], "input_required", "{r:#}");
    let q = &r["interrupts"][0];
    assert_eq!(q["kind"], "input", "{r:#}");
    assert_eq!(q["tool"], "pick_colour", "{r:#}");
    assert_eq!(q["args"]["text"], "paint the door", "{r:#}");
    assert_eq!(q["value"]["question"], "which colour?", "{r:#}");
    let answer = json!({"taskId": unique_id("colour-2"), "framework": "pydantic-ai",
                        "sessionId": r["sessionId"],
                        "input": {"instruction": "paint the door", "resume": "sea blue"}});
    let r = w.run(answer).await;
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert_eq!(r["output"], "Shouted: sea blue", "{r:#}");
}
