//! README.md's "Bring your own framework" examples in other languages, run as frameworks.

use super::listing::{entry, list_frameworks};
use super::*;

/// The files of README.md's "Bring your own framework" section: each fenced block whose info
/// string names a path under `frameworks/`, as (path inside the frameworks dir, text).
pub(crate) fn readme_framework_files() -> Vec<(String, String)> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("\n## Bring your own framework\n")
        .nth(1)
        .expect("README.md has a \"Bring your own framework\" section");
    let section = section.split("\n## ").next().unwrap();
    let mut files = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        let Some(info) = line.strip_prefix("```") else {
            continue;
        };
        let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
        if let Some(path) = info
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.strip_prefix("frameworks/"))
        {
            files.push((path.to_string(), body.join("\n") + "\n"));
        }
    }
    files
}

#[tokio::test]
async fn the_readme_examples_of_other_languages_run_as_frameworks() {
    let files = readme_framework_files();
    let names: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        names,
        [
            "shout-node/framework.json",
            "shout-node/run.js",
            "hello-sh/framework.json",
            "hello-sh/run.sh"
        ]
    );
    assert!(
        agentdispatch_worker::frameworks::program_exists("node"),
        "node is not on PATH: the README's Node.js example needs it (apt-get install nodejs)"
    );
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in &files {
        let (folder, file) = path.split_once('/').unwrap();
        std::fs::create_dir_all(dir.path().join(folder)).unwrap();
        if text.starts_with("#!") {
            script(&dir.path().join(folder), file, text);
        } else {
            std::fs::write(dir.path().join(path), text).unwrap();
        }
    }
    let root = dir.path().to_str().unwrap();

    let (ok, listing, stderr) = list_frameworks(&[("AGENTDISPATCH_FRAMEWORKS_DIR", root)]);
    assert!(ok, "{stderr}");
    assert!(
        !listing.contains("not found") && !listing.contains("warning"),
        "{listing}"
    );
    for name in ["shout-node", "hello-sh"] {
        assert_eq!(entry(&listing, name).len(), 4, "{listing}");
    }

    let w = WorkerBuilder::new()
        .env("AGENTDISPATCH_FRAMEWORKS_DIR", root)
        .start()
        .await;
    let started = Instant::now();
    let msgs = w
        .stream(&json!({"framework":"shout-node","input":{"instruction":"hello world"}}))
        .await;
    check_hello_world_stream("shout-node", started, &msgs);
    let result = &msgs.last().unwrap().data;
    assert_eq!(
        result["result"],
        json!({"framework": "shout-node", "length": 11})
    );

    let id = unique_id("hello-sh");
    let r = w
        .run(json!({"taskId":id,"framework":"hello-sh","input":{"instruction":"hi"}}))
        .await;
    assert_eq!(r["ok"], true, "{r:#}");
    assert_eq!(r["output"], format!("hello from sh, task {id}"));
    let steps: Vec<&str> = events_of(&r, "task.progress")
        .iter()
        .filter_map(|e| step_of(e))
        .collect();
    assert_eq!(steps, ["model_turn"]);
    assert!(events_of(&r, "task.log")
        .iter()
        .any(|e| e["payload"]["stream"] == "stderr"
            && e["message"].as_str().unwrap().starts_with("envelope: {")));
    let artifact = r["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["uri"].as_str().unwrap().ends_with("/envelope.json"))
        .unwrap_or_else(|| panic!("envelope.json not listed: {r:#}"));
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(artifact["uri"].as_str().unwrap()).unwrap())
            .unwrap();
    assert_eq!(written["instruction"], "hi");
    assert_eq!(written["taskId"], id.as_str());

    // The command line's `run`, as the README shows it.
    let out = worker_command()
        .args([
            "run",
            "--framework",
            "shout-node",
            "--instruction",
            "hello world",
        ])
        .env("AGENTDISPATCH_FRAMEWORKS_DIR", root)
        .env("AGENTDISPATCH_ARTIFACT_DIR", dir.path().join("artifacts"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("tool_call shout"), "{stdout}");
    assert!(stdout.contains("Shouted: HELLO WORLD"), "{stdout}");
}
