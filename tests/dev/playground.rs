//! The playground page: off outside dev mode; in dev mode, in a real headless Chromium, a prompt
//! typed streams its answer piece by piece, shows the tool call, keeps the session, and cancels.

use super::browser::{self, Browser};
use super::*;
use crate::common::gate::Gate;

#[tokio::test]
async fn the_playground_is_off_outside_dev_mode_and_on_in_it() {
    let plain = WorkerBuilder::new().start().await;
    for path in ["/", "/dev/frameworks"] {
        let (status, body) = plain.get(path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["ok"], false, "{path}: {body}");
    }
    let dev = WorkerBuilder::new().args(&["serve", "--dev"]).start().await;
    let page = dev.client().get(&dev.url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert!(page.text().await.unwrap().contains("/invocations"));
    let (status, list) = dev.get("/dev/frameworks").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["default"], "echo", "{list}");
    assert_eq!(list["frameworks"][0]["name"], "echo", "{list}");
    // A2A stays where it was.
    let (status, _) = dev.invoke_raw(b"{}".to_vec(), &[]).await;
    assert_eq!(status, 200);
}

/// The answer's text on the page so far, and whether the turn's result is shown.
const ANSWERS: &str =
    "return [...document.querySelectorAll('#chat .answer')].map(e => e.textContent)";
const RESULTS: &str = "return [...document.querySelectorAll('#chat .event')].map(e => e.textContent).filter(t => / \\(\\d+ ms\\)$/.test(t))";
const TOOLS: &str = "return [...document.querySelectorAll('#chat .tool')].map(e => e.textContent)";

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn the_playground_streams_an_answer_shows_its_tool_call_keeps_the_session_and_cancels_in_chromium(
) {
    if !browser::installed() {
        return;
    }
    let dir = langgraph_copy(str::to_string);
    let mut gate = Gate::new();
    let w = dev_worker(
        dir.path(),
        WorkerBuilder::new().env(
            "AGENTDISPATCH_EXAMPLE_PIECE_GATE",
            gate.path().to_str().unwrap(),
        ),
    )
    .await;
    let b = Browser::start().await;
    b.open(&format!("{}/", w.url)).await;
    b.until(
        "the framework list",
        "return document.getElementById('framework').value",
        |v| v == "langgraph",
    )
    .await;

    // Each piece but the first waits until the page showed the one before: a page (or a
    // worker) that showed the text only at the end would stall here.
    gate.shut();
    b.type_into("#prompt", "hello world").await;
    b.click("#send").await;
    b.until("the tool call", TOOLS, |v| {
        strings(v)
            .iter()
            .any(|t| t.contains("shout") && t.contains("hello world"))
    })
    .await;
    for (i, text) in ["Shouted: ", "Shouted: HELLO ", "Shouted: HELLO WORLD"]
        .into_iter()
        .enumerate()
    {
        b.until(text, ANSWERS, |v| strings(v) == [text]).await;
        let results = strings(&b.eval(RESULTS).await);
        if i < 2 {
            assert!(
                results.is_empty(),
                "finished before its last piece: {results:?}"
            );
            gate.release();
        }
    }
    b.until("the result", RESULTS, |v| {
        strings(v).iter().any(|t| t.starts_with("succeeded"))
    })
    .await;
    gate.open();

    // The same session: the agent sees the earlier turn.
    b.type_into("#prompt", "again\n").await;
    b.until("the second answer", ANSWERS, |v| {
        strings(v)
            .get(1)
            .is_some_and(|t| t.ends_with("(earlier turns: 1)"))
    })
    .await;

    // A task whose tool takes a minute ("slow"): cancel stops it.
    b.until(
        "the send button back",
        "return document.getElementById('send').disabled",
        |v| v == false,
    )
    .await;
    b.type_into("#prompt", "slow one\n").await;
    b.until("the slow tool call", TOOLS, |v| {
        strings(v).iter().any(|t| t.contains("slow one"))
    })
    .await;
    b.click("#cancel").await;
    b.until("the cancelled result", RESULTS, |v| {
        strings(v).iter().any(|t| t.starts_with("cancelled"))
    })
    .await;
}
