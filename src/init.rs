//! `agentdispatch-worker init <name> --framework <fw>`: a framework folder for the user's own
//! agent, next to the shipped ones, that runs at once (warm), and goes into the image as it is.
//!
//! The folder holds a manifest, a `runner.py` that runs the shipped runner of `<fw>` (so the
//! events, live text, sessions and warm starts are the worker's own, updated with it), the
//! shipped framework's pinned `requirements.in`/`.txt` (the same packages as its venv), an agent
//! file with one tool on the framework's offline test model, and a test of it. The templates are
//! in `src/init/`; what differs between frameworks is the agent file and how its test asks the
//! agent for an answer.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// What `init` is given.
#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// The new framework's name: the folder's name and the payload's `framework`.
    pub name: String,
    /// The shipped framework whose runner runs the agent.
    #[arg(long)]
    pub framework: String,
    /// The frameworks directory to write into (holding `_shared` and the shipped `<framework>`
    /// folder). Default: `AGENTDISPATCH_FRAMEWORKS_DIR`, else `./frameworks`.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// A framework `init` can scaffold: its agent file and the body of the test's `answer`.
struct Template {
    framework: &'static str,
    agent: &'static str,
    answer: &'static str,
}

/// LangChain's and LangGraph's agents are both graphs answering with their last message.
const GRAPH_ANSWER: &str =
    "    return agent.invoke({\"messages\": [(\"user\", text)]})[\"messages\"][-1].content";

const TEMPLATES: [Template; 6] = [
    Template {
        framework: "langchain",
        agent: include_str!("init/langchain_agent.py"),
        answer: GRAPH_ANSWER,
    },
    Template {
        framework: "langgraph",
        agent: include_str!("init/langgraph_agent.py"),
        answer: GRAPH_ANSWER,
    },
    Template {
        framework: "strands",
        agent: include_str!("init/strands_agent.py"),
        answer: "    return str(agent(text)).strip()",
    },
    Template {
        framework: "pydantic-ai",
        agent: include_str!("init/pydantic_ai_agent.py"),
        answer: "    return agent.run_sync(text).output",
    },
    Template {
        framework: "openai-agents",
        agent: include_str!("init/openai_agents_agent.py"),
        answer:
            "    from agents import Runner\n\n    return Runner.run_sync(agent, text).final_output",
    },
    Template {
        framework: "crewai",
        agent: include_str!("init/crewai_agent.py"),
        // The inputs the runner gives a crew outside a session.
        answer: "    return agent.kickoff(inputs={\"instruction\": text, \"history\": \"\", \"turn\": 1}).raw.strip()",
    },
];

const RUNNER: &str = include_str!("init/runner.py");
const TEST: &str = include_str!("init/test_agent.py");

/// The module the manifest names (`my_agent:agent`).
const AGENT_MODULE: &str = "my_agent";

/// A framework name a folder may take: what a payload's `framework` and the environment's
/// `AGENTDISPATCH_FRAMEWORK_COMMAND_<NAME>` can both spell.
fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        bail!("the name {name:?} cannot name a framework: use lower-case letters, digits, '-' and '_' (at most 64, starting with a letter or digit)");
    }
    if TEMPLATES.iter().any(|t| t.framework == name) || name == "echo" {
        bail!("the name {name:?} is a shipped framework's: pick a name of your own");
    }
    Ok(())
}

/// Where `init` writes: `--dir`, else the worker's frameworks directory.
fn frameworks_dir(args: &InitArgs) -> PathBuf {
    args.dir.clone().unwrap_or_else(|| {
        std::env::var_os("AGENTDISPATCH_FRAMEWORKS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("frameworks"))
    })
}

/// The files of the new folder, by name.
fn files(name: &str, t: &Template, shipped: &Path) -> anyhow::Result<Vec<(&'static str, String)>> {
    let fill = |text: &str| {
        text.replace("{{NAME}}", name)
            .replace("{{FRAMEWORK}}", t.framework)
            .replace("{{ANSWER}}", t.answer)
    };
    // Written by hand, not by serde_json: the keys in the order a person reads them.
    let quoted = |v: String| serde_json::Value::String(v).to_string();
    let manifest = format!(
        "{{\n  \"name\": {},\n  \"description\": {},\n  \"command\": [\".venv/bin/python\", \"runner.py\"],\n  \"env\": {{\"AGENTDISPATCH_ENTRYPOINT\": \"{AGENT_MODULE}:agent\"}},\n  \"timeoutSeconds\": 900,\n  \"warm\": true\n}}\n",
        quoted(name.to_string()),
        quoted(format!(
            "{name}: your own agent, run by the shipped {} runner (made by agentdispatch-worker init)",
            t.framework
        )),
    );
    // The shipped framework's pins: the folder's venv gets the packages its runner is tested with.
    let pins = |file: &str| {
        let path = shipped.join(file);
        std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
    };
    Ok(vec![
        ("framework.json", manifest),
        ("runner.py", fill(RUNNER)),
        ("my_agent.py", fill(t.agent)),
        ("test_my_agent.py", fill(TEST)),
        ("requirements.in", pins("requirements.in")?),
        ("requirements.txt", pins("requirements.txt")?),
    ])
}

/// Writes the folder; returns what to tell the user.
pub fn init(args: &InitArgs) -> anyhow::Result<String> {
    check_name(&args.name)?;
    let Some(t) = TEMPLATES.iter().find(|t| t.framework == args.framework) else {
        let known: Vec<&str> = TEMPLATES.iter().map(|t| t.framework).collect();
        bail!(
            "init cannot scaffold an agent on {:?}: it knows {} (for another framework, start from a copy of its shipped folder)",
            args.framework,
            known.join(", ")
        );
    };
    let dir = frameworks_dir(args);
    let shipped = dir.join(t.framework);
    if !shipped.join("runner.py").is_file() || !dir.join("_shared").is_dir() {
        bail!(
            "{} is not a frameworks directory with the shipped {} runner ({} and {} are needed): pass --dir <the worker's frameworks directory>",
            dir.display(),
            t.framework,
            shipped.join("runner.py").display(),
            dir.join("_shared").display()
        );
    }
    let folder = dir.join(&args.name);
    if folder.exists() {
        bail!(
            "{} exists already: init writes a new folder only",
            folder.display()
        );
    }
    let files = files(&args.name, t, &shipped)?;
    std::fs::create_dir(&folder).with_context(|| format!("cannot create {}", folder.display()))?;
    for (file, text) in &files {
        let path = folder.join(file);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let listed: Vec<&str> = files.iter().map(|(f, _)| *f).collect();
    Ok(format!(
        "wrote {} ({})\n\
         next:\n  \
         scripts/setup-frameworks.sh {name}       # its venv, from requirements.txt\n  \
         (cd {folder} && .venv/bin/python -m unittest test_my_agent)\n  \
         agentdispatch-worker run --framework {name} --instruction 'hello world'\n\
         The agent is {module}.py's `agent`; the Dockerfile installs this folder's requirements.txt and keeps the folder.\n",
        folder.display(),
        listed.join(", "),
        name = args.name,
        folder = folder.display(),
        module = AGENT_MODULE,
    ))
}
