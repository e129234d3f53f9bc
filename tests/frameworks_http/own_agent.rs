//! A user's own agent beside the shipped frameworks (issue 23): the deployment's environment
//! wins over a manifest's example agent (serve and `run`), the worker says at start-up which
//! agent each framework runs and where that came from, a warm parent loads and builds an own
//! agent without calling it, `frameworks --check` names an agent that cannot load, and a default
//! framework whose agent cannot load is an ERROR that `/ping` says.

use super::*;

/// An own LangGraph agent with no model: a one-node graph that answers "own agent: <text>",
/// appends a line to `$OWN_AGENT_CALLS` each time it runs, and raises on "fail" (line 12).
/// `builder` is the uncompiled StateGraph, `graph` the compiled one, `make_graph` a factory
/// returning the builder, `make_compiled` one returning the graph; `number` is not an agent.
pub(crate) const MY_GRAPH: &str = r#"import os

from langchain_core.messages import AIMessage
from langgraph.graph import START, MessagesState, StateGraph


def answer(state: MessagesState):
    with open(os.environ["OWN_AGENT_CALLS"], "a") as f:
        f.write("call\n")
    text = state["messages"][-1].content
    if text == "fail":
        raise ValueError("the tool broke")
    return {"messages": [AIMessage(content=f"own agent: {text}")]}


builder = StateGraph(MessagesState)
builder.add_node("answer", answer)
builder.add_edge(START, "answer")
graph = builder.compile()
number = 42


def make_graph():
    return builder


def make_compiled():
    return graph
"#;

/// An app folder with `my_graph.py`, `broken_agent.py` (raises as it is imported, line 2) and
/// `syntax_agent.py` (a syntax error, line 1); and the file the agent counts its calls in.
pub(crate) fn own_app() -> (tempfile::TempDir, PathBuf) {
    let app = tempfile::tempdir().unwrap();
    std::fs::write(app.path().join("my_graph.py"), MY_GRAPH).unwrap();
    std::fs::write(
        app.path().join("broken_agent.py"),
        "import os\nraise RuntimeError(\"agent construction failed: 42\")\n",
    )
    .unwrap();
    std::fs::write(
        app.path().join("syntax_agent.py"),
        "def agent(:\n    pass\n",
    )
    .unwrap();
    let calls = app.path().join("calls.txt");
    (app, calls)
}

fn calls(file: &Path) -> usize {
    std::fs::read_to_string(file).map_or(0, |s| s.lines().count())
}

/// The worker's environment for an own LangGraph agent as the default framework.
fn own_env(app: &Path, calls: &Path, entrypoint: &str) -> Vec<(String, String)> {
    [
        (
            "AGENTDISPATCH_FRAMEWORKS_DIR",
            frameworks_dir().to_str().unwrap(),
        ),
        ("AGENTDISPATCH_APP_DIR", app.to_str().unwrap()),
        ("AGENTDISPATCH_AGENT_FRAMEWORK", "langgraph"),
        ("AGENTDISPATCH_ENTRYPOINT", entrypoint),
        ("OWN_AGENT_CALLS", calls.to_str().unwrap()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn with_env(mut b: WorkerBuilder, env: &[(String, String)]) -> WorkerBuilder {
    for (k, v) in env {
        b = b.env(k, v);
    }
    b
}

/// The start-up line saying which entrypoint `framework` runs: (entrypoint, from).
fn entrypoint_line(w: &Worker, framework: &str) -> Option<(String, String)> {
    w.log_lines()
        .into_iter()
        .find(|l| l["framework"] == framework && l.get("from").is_some())
        .map(|l| {
            (
                l["entrypoint"].as_str().unwrap_or("?").to_string(),
                l["from"].as_str().unwrap_or("?").to_string(),
            )
        })
}

#[tokio::test]
async fn an_own_agent_in_the_environment_beats_the_manifest_example_warm_cold_and_in_run() {
    require_venv("langgraph");
    let (app, calls_file) = own_app();
    let env = own_env(app.path(), &calls_file, "my_graph:graph");
    // AGENTDISPATCH_WARM unset: the default framework is warmed at start-up, and the langgraph
    // manifest's warm-up prompt is its example's, not this agent's.
    let w = with_env(WorkerBuilder::new(), &env).start().await;
    w.warm_ready("langgraph", 1).await;
    let (entrypoint, from) =
        entrypoint_line(&w, "langgraph").expect("a start-up line for langgraph");
    assert_eq!(entrypoint, "my_graph:graph");
    assert_eq!(
        from,
        "env AGENTDISPATCH_ENTRYPOINT, for the default framework"
    );
    let (entrypoint, from) = entrypoint_line(&w, "strands").expect("a start-up line for strands");
    assert_eq!(
        entrypoint, "example_agent:agent",
        "another framework keeps its own"
    );
    assert_eq!(
        from,
        format!(
            "manifest {}",
            frameworks_dir().join("strands/framework.json").display()
        )
    );
    let ready = w
        .log_lines()
        .into_iter()
        .find(|l| l["message"] == "warm parent ready" && l["framework"] == "langgraph")
        .unwrap();
    assert_eq!(ready["entrypoint"], "my_graph:graph", "{ready}");
    // Loaded and built, never run: an own agent's warm-up calls no model.
    assert_eq!(calls(&calls_file), 0, "the warm-up ran the agent");

    let r = w.run(json!({"prompt": "add 2 40"})).await;
    assert_eq!(r["ok"], true, "{r:#}");
    assert_eq!(r["output"], "own agent: add 2 40", "{r:#}");
    assert_eq!(r["result"]["framework"], "langgraph", "{r:#}");
    assert!(forked_from(&r).is_some(), "not forked warm: {r:#}");
    assert_eq!(calls(&calls_file), 1);
    assert!(w.ping().await.get("agentError").is_none());

    // Cold, through `run`: the same agent.
    let tmp = tempfile::tempdir().unwrap();
    let out = worker_command()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("AGENTDISPATCH_ARTIFACT_DIR", tmp.path())
        .args(["run", "--instruction", "add 2 40"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("output:\nown agent: add 2 40"), "{stdout}");
    assert!(
        !stdout.contains("Shouted"),
        "the example answered: {stdout}"
    );

    // The framework's own variable is stronger still; the deployment's warm-up prompt is an
    // explicit ask, and runs the agent (AGENTDISPATCH_WARMUP_RUNS times).
    let before = calls(&calls_file);
    let w = with_env(WorkerBuilder::new(), &env)
        .env("AGENTDISPATCH_ENTRYPOINT_LANGGRAPH", "my_graph:builder")
        .env("AGENTDISPATCH_WARMUP_PROMPT", "warm me")
        .env("AGENTDISPATCH_WARMUP_RUNS", "2")
        .start()
        .await;
    w.warm_ready("langgraph", 1).await;
    assert_eq!(
        entrypoint_line(&w, "langgraph"),
        Some((
            "my_graph:builder".into(),
            "env AGENTDISPATCH_ENTRYPOINT_LANGGRAPH".into()
        ))
    );
    assert_eq!(calls(&calls_file) - before, 2, "the asked-for warm-up runs");
}

#[tokio::test]
async fn each_agent_failure_has_its_code_and_a_first_line_naming_what_and_where() {
    require_venv("langgraph");
    let (app, calls_file) = own_app();
    let w = with_env(
        WorkerBuilder::new(),
        &own_env(app.path(), &calls_file, "my_graph:graph"),
    )
    .env("AGENTDISPATCH_ENTRYPOINT_ALLOWLIST", "langgraph=*")
    .env("AGENTDISPATCH_WARM", "langgraph")
    .start()
    .await;
    w.warm_ready("langgraph", 1).await;
    let run = |entrypoint: &str, instruction: &str| {
        w.run(json!({"framework": "langgraph",
                     "input": {"instruction": instruction, "entrypoint": entrypoint}}))
    };
    for (entrypoint, instruction, code, words) in [
        ("nosuch:agent", "hi", "agent_import_failed", vec!["no module 'nosuch'", "AGENTDISPATCH_APP_DIR="]),
        (
            "broken_agent:agent",
            "hi",
            "agent_import_failed",
            vec!["importing 'broken_agent' failed: RuntimeError: agent construction failed: 42 (broken_agent.py:2, in <module>)"],
        ),
        ("syntax_agent:agent", "hi", "agent_import_failed", vec!["SyntaxError", "(syntax_agent.py:1)"]),
        ("my_graph:nope", "hi", "invalid_entrypoint", vec!["module 'my_graph' has no attribute 'nope'"]),
        (
            "my_graph:number",
            "hi",
            "invalid_entrypoint",
            vec!["'my_graph:number' is an int, expected a compiled LangGraph graph or its StateGraph or a factory returning one"],
        ),
        (
            "my_graph:graph",
            "fail",
            "agent_failed",
            vec!["the agent failed: ValueError: the tool broke (my_graph.py:12, in answer)"],
        ),
    ] {
        let r = run(entrypoint, instruction).await;
        assert_eq!(r["ok"], false, "{entrypoint}: {r:#}");
        assert_eq!(r["errorCode"], code, "{entrypoint}: {r:#}");
        assert_eq!(r["exitCode"], 1, "{entrypoint}: the exit status beside the code");
        let line = super::failures::first_line(&r);
        for w in &words {
            assert!(line.contains(w), "{entrypoint}: {w:?} not in the first line {line:?}");
        }
        // No traceback in the events or the answer's error; one in the task folder, when the
        // user's code raised.
        let shown = r["events"].to_string() + r["error"].as_str().unwrap_or("");
        assert!(!shown.contains("Traceback"), "{entrypoint}: {r:#}");
        let traceback = w.task_dir(r["taskId"].as_str().unwrap()).join("traceback.txt");
        if code != "invalid_entrypoint" && entrypoint != "nosuch:agent" {
            let text = std::fs::read_to_string(&traceback).unwrap_or_default();
            assert!(text.starts_with("Traceback"), "{entrypoint}: {text:?}");
            assert!(r["error"].as_str().unwrap().contains("traceback.txt"), "{r:#}");
        }
    }
    // The traceback is in the worker's log, beside the task's ids.
    assert!(
        w.logged(|l| l["message"] == "agent failed"
            && l["traceback"]
                .as_str()
                .is_some_and(|t| t.contains("ValueError: the tool broke")))
            .await,
        "no traceback in the worker's log"
    );
    // What the user meant: a StateGraph builder is compiled, a zero-argument factory called
    // (also when `()` says so).
    for entrypoint in [
        "my_graph:builder",
        "my_graph:make_graph",
        "my_graph:make_compiled",
        "my_graph:make_graph()",
        "my_graph:make_compiled()",
    ] {
        let r = run(entrypoint, "hello").await;
        assert_eq!(r["ok"], true, "{entrypoint}: {r:#}");
        assert_eq!(r["output"], "own agent: hello", "{entrypoint}");
    }
    // Payload entrypoints that fail say nothing of the deployment's own agent, which serves on.
    assert!(w.ping().await.get("agentError").is_none());
    let r = w.run(json!({"prompt": "still serving"})).await;
    assert_eq!(r["output"], "own agent: still serving", "{r:#}");
}

#[tokio::test]
async fn frameworks_check_loads_each_agent_and_names_the_broken_one() {
    require_venv("langgraph");
    require_venv("pydantic-ai");
    let (app, calls_file) = own_app();
    let check = |entrypoint: &str| {
        let out = worker_command()
            .envs(own_env(app.path(), &calls_file, entrypoint))
            .args(["frameworks", "--check", "langgraph", "pydantic-ai"])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = check("broken_agent:agent");
    assert_eq!(code, Some(1), "{out}");
    let langgraph = line_of(&out, "langgraph");
    assert!(
        langgraph.starts_with("FAILED")
            && langgraph.contains("agent_import_failed")
            && langgraph.contains("RuntimeError: agent construction failed: 42 (broken_agent.py:2"),
        "{out}"
    );
    let pydantic = line_of(&out, "pydantic-ai");
    assert!(
        pydantic.starts_with("ok") && pydantic.contains("example_agent:agent"),
        "{out}"
    );
    assert!(out.contains("1 of 2 failed: langgraph"), "{out}");

    // A builder loads (compiled), and nothing runs it.
    let (code, out) = check("my_graph:builder");
    assert_eq!(code, Some(0), "{out}");
    assert!(
        line_of(&out, "langgraph").contains("my_graph:builder"),
        "{out}"
    );
    assert_eq!(calls(&calls_file), 0, "the check ran the agent");
}

/// The `frameworks --check` line of `name` (after its ok/FAILED mark).
fn line_of<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(name))
        .unwrap_or("")
}

#[tokio::test]
async fn a_default_framework_whose_agent_cannot_load_is_an_error_and_ping_says_it() {
    require_venv("langgraph");
    let (app, calls_file) = own_app();
    let env = own_env(app.path(), &calls_file, "broken_agent:agent");
    let said = |ping: &Value| {
        assert_eq!(
            ping["status"], "Healthy",
            "AgentCore's status values: {ping}"
        );
        let e = ping["agentError"].as_str().unwrap_or("");
        assert!(
            e.contains("langgraph") && e.contains("agent construction failed: 42"),
            "{ping}"
        );
    };
    let error_line = |l: &Value| {
        l["level"] == "ERROR"
            && l["framework"] == "langgraph"
            && l["error"]
                .as_str()
                .is_some_and(|e| e.contains("broken_agent"))
    };
    // Warm (the default): the parent's load fails at start-up.
    let w = with_env(WorkerBuilder::new(), &env).start().await;
    w.warm_ready("langgraph", 1).await;
    assert!(
        w.logged(error_line).await,
        "no ERROR line:\n{:#?}",
        w.log_lines()
    );
    said(&w.ping().await);
    let r = w.run(json!({"prompt": "hi"})).await;
    assert_eq!(r["errorCode"], "agent_import_failed", "{r:#}");

    // Cold: its first task tells.
    let w = with_env(WorkerBuilder::new(), &env)
        .env("AGENTDISPATCH_WARM", "none")
        .start()
        .await;
    assert!(w.ping().await.get("agentError").is_none());
    let r = w.run(json!({"prompt": "hi"})).await;
    assert_eq!(r["errorCode"], "agent_import_failed", "{r:#}");
    assert!(w.logged(error_line).await, "no ERROR line");
    said(&w.ping().await);
}
