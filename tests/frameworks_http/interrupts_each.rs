//! Each framework's example agent asks (SPEC §14), through the real binary: the shared cases of
//! interrupts.rs for LangChain, OpenAI Agents, pydantic-ai, Strands and CrewAI, and what is
//! particular to one of them.

use super::interrupts::{
    approval_after_a_restart_runs_the_tool_once, asking_worker, refund, refunds,
    rejection_takes_the_rejection_path, unusable_saved_state_is_named_and_keeps_the_question_open,
    REFUNDED, REJECTED,
};
use super::*;

#[tokio::test]
async fn langchain_asks_for_approval_and_the_answer_after_a_restart_runs_the_tool_once() {
    approval_after_a_restart_runs_the_tool_once("langchain").await;
}

#[tokio::test]
async fn langchain_rejection_takes_the_agents_rejection_path_in_a_session() {
    rejection_takes_the_rejection_path("langchain").await;
}

#[tokio::test]
async fn langchain_unusable_saved_state_is_named_and_keeps_the_question_open() {
    unusable_saved_state_is_named_and_keeps_the_question_open("langchain", "langchain.sqlite")
        .await;
}

/// An own `create_agent` agent with `HumanInTheLoopMiddleware` in its default "batched" mode
/// (one interrupt per model turn, answered `{"decisions": [...]}`): its model always calls
/// `refund` (the shared example body) with the instruction.
const BATCHED_AGENT: &str = r#"from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.tools import tool

from agentdispatch import example_refund
from agentdispatch.scripted_chat_model import ScriptedShoutModel


@tool
def refund(text: str) -> str:
    """Refund what the text names."""
    return example_refund(text, True)


agent = create_agent(ScriptedShoutModel(tool="refund"), tools=[refund],
                     middleware=[HumanInTheLoopMiddleware(interrupt_on={"refund": True})])
"#;

/// The langchain runner answers the middleware's batched request too: one approval question
/// under its interrupt id naming the tool, approved → the tool runs once; rejected with a
/// message → no refund, and the model's answer carries the message.
#[tokio::test]
async fn langchain_an_own_agent_in_batched_mode_asks_one_approval_and_takes_its_answer() {
    require_venv("langchain");
    let app = tempfile::tempdir().unwrap();
    std::fs::write(app.path().join("batched_agent.py"), BATCHED_AGENT).unwrap();
    let sessions = tempfile::tempdir().unwrap();
    let log = sessions.path().join("refunds.log");
    let w = WorkerBuilder::new()
        .env(
            "AGENTDISPATCH_FRAMEWORKS_DIR",
            frameworks_dir().to_str().unwrap(),
        )
        .env(
            "AGENTDISPATCH_SESSION_DIR",
            sessions.path().to_str().unwrap(),
        )
        .env("AGENTDISPATCH_WARM", "none")
        .env("AGENTDISPATCH_APP_DIR", app.path().to_str().unwrap())
        .env("AGENTDISPATCH_AGENT_FRAMEWORK", "langchain") // the entrypoint is the default framework's
        .env("AGENTDISPATCH_ENTRYPOINT", "batched_agent:agent")
        .env("EXAMPLE_REFUND_LOG", log.to_str().unwrap())
        .start()
        .await;
    let session = unique_id("lc-batched");
    for (answer, expected) in [
        (json!(true), REFUNDED),
        (json!({"approved": false, "message": REJECTED}), REJECTED),
    ] {
        let asked = unique_id("lc-batched-ask");
        let r = w
            .run(refund("langchain", &asked, Some(&session), None))
            .await;
        assert_eq!(r["status"], "input_required", "{r:#}");
        let q = &r["interrupts"][0];
        assert_eq!(q["kind"], "approval", "{r:#}");
        assert_eq!(q["tool"], "refund", "{r:#}");
        assert_eq!(q["args"]["text"], "refund 5 for order 42", "{r:#}");
        assert!(q["value"]["action_requests"].is_array(), "{q}");
        let r = w
            .run(refund(
                "langchain",
                &unique_id("lc-batched-answer"),
                Some(&session),
                Some(answer),
            ))
            .await;
        assert_eq!(r["status"], "succeeded", "{r:#}");
        assert_eq!(r["resumes"], asked.as_str());
        assert!(r["output"].as_str().unwrap().contains(expected), "{r:#}");
        assert_eq!(
            refunds(&log),
            vec!["refund 5 for order 42"],
            "approved once, then rejected"
        );
    }
}

#[tokio::test]
async fn pydantic_ai_asks_for_approval_and_the_answer_after_a_restart_runs_the_tool_once() {
    approval_after_a_restart_runs_the_tool_once("pydantic-ai").await;
}

#[tokio::test]
async fn pydantic_ai_rejection_takes_the_agents_rejection_path_in_a_session() {
    rejection_takes_the_rejection_path("pydantic-ai").await;
}

#[tokio::test]
async fn pydantic_ai_unusable_saved_state_is_named_and_keeps_the_question_open() {
    // The runner reads the paused run's messages first, then its deferred tool requests.
    unusable_saved_state_is_named_and_keeps_the_question_open(
        "pydantic-ai",
        "pydantic-ai-paused-messages.json",
    )
    .await;
}

#[tokio::test]
async fn openai_agents_asks_for_approval_and_the_answer_after_a_restart_runs_the_tool_once() {
    approval_after_a_restart_runs_the_tool_once("openai-agents").await;
}

#[tokio::test]
async fn openai_agents_rejection_takes_the_agents_rejection_path_in_a_session() {
    rejection_takes_the_rejection_path("openai-agents").await;
}

#[tokio::test]
async fn openai_agents_unusable_saved_state_is_named_and_keeps_the_question_open() {
    unusable_saved_state_is_named_and_keeps_the_question_open(
        "openai-agents",
        "openai-agents-runstate.json",
    )
    .await;
}

/// A stateless task that asks leaves its conversation so far in the session the worker names
/// (the SDK keeps it in a SQLiteSession only in a session): once answered there, the next turn
/// of that session sees the refund turn as an earlier one.
#[tokio::test]
async fn openai_agents_a_stateless_question_leaves_its_turn_in_the_session_it_names() {
    let fw = "openai-agents";
    let sessions = tempfile::tempdir().unwrap();
    let log = sessions.path().join("refunds.log");
    let w = asking_worker(fw, true, sessions.path(), &log).await;
    let r = w.run(refund(fw, &unique_id("oa-sl-1"), None, None)).await;
    assert_eq!(r["status"], "input_required", "{r:#}");
    let session = r["sessionId"].as_str().unwrap().to_string();
    let r = w
        .run(refund(
            fw,
            &unique_id("oa-sl-2"),
            Some(&session),
            Some(json!(true)),
        ))
        .await;
    assert_eq!(r["output"], format!("Shouted: {REFUNDED}"), "{r:#}");
    let next = json!({"taskId": unique_id("oa-sl-3"), "framework": fw, "sessionId": session,
                      "input": {"instruction": "hello"}});
    let r = w.run(next).await;
    assert_eq!(r["output"], "Shouted: HELLO (earlier turns: 1)", "{r:#}");
    assert_eq!(refunds(&log).len(), 1);
}

#[tokio::test]
async fn strands_asks_for_approval_and_the_answer_after_a_restart_runs_the_tool_once() {
    approval_after_a_restart_runs_the_tool_once("strands").await;
}

#[tokio::test]
async fn strands_rejection_takes_the_agents_rejection_path_in_a_session() {
    rejection_takes_the_rejection_path("strands").await;
}

#[tokio::test]
async fn strands_unusable_saved_state_is_named_and_keeps_the_question_open() {
    // FileSessionManager files the agent (its pending interrupt in `_internal_state`) under the
    // session key, the session folder's name.
    unusable_saved_state_is_named_and_keeps_the_question_open(
        "strands",
        "session_{session}/agents/agent_default/agent.json",
    )
    .await;
}

/// A new instruction where a Strands agent waits for answers (Strands itself would refuse it with
/// a TypeError, and a session whose answering run failed would be stuck): the wait is given up,
/// the held-back refund never runs, the instruction is answered, and a late answer finds nothing
/// to resume.
#[tokio::test]
async fn strands_a_new_instruction_instead_of_the_answer_gives_up_the_question() {
    let sessions = tempfile::tempdir().unwrap();
    let log = sessions.path().join("refunds.log");
    let w = asking_worker("strands", true, sessions.path(), &log).await;
    let session = unique_id("strands-moved-on");
    let r = w
        .run(refund("strands", &unique_id("mo-1"), Some(&session), None))
        .await;
    assert_eq!(r["status"], "input_required", "{r:#}");
    let r = w
        .run(
            json!({"taskId": unique_id("mo-2"), "framework": "strands", "sessionId": session,
                    "input": {"instruction": "hello world"}}),
        )
        .await;
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert!(
        r["output"].as_str().unwrap().contains("HELLO WORLD"),
        "{r:#}"
    );
    let r = w
        .run(refund(
            "strands",
            &unique_id("mo-3"),
            Some(&session),
            Some(json!(true)),
        ))
        .await;
    // The worker gave the question up when the new turn began: the late answer is refused
    // before any child starts.
    assert_eq!(r["errorCode"], "interrupt_not_open", "{r:#}");
    assert!(r["error"].as_str().unwrap().contains("given up"), "{r:#}");
    assert!(refunds(&log).is_empty(), "the given-up refund never runs");
}

// CrewAI: the example's entrypoint is a Flow; "refund …" proposes the refund in a
// `@human_feedback` method, the flow pauses (HumanFeedbackPending) and is kept in CrewAI's
// SQLite flow persistence in the session folder; the answer resumes it there.
#[tokio::test]
async fn crewai_asks_for_approval_and_the_answer_after_a_restart_runs_the_tool_once() {
    approval_after_a_restart_runs_the_tool_once("crewai").await;
}

#[tokio::test]
async fn crewai_rejection_takes_the_agents_rejection_path_in_a_session() {
    rejection_takes_the_rejection_path("crewai").await;
}

#[tokio::test]
async fn crewai_unusable_saved_state_is_named_and_keeps_the_question_open() {
    unusable_saved_state_is_named_and_keeps_the_question_open("crewai", "crewai-flows.sqlite")
        .await;
}
