//! The `frameworks` command: each framework with its source.

use super::failures::broken_frameworks;
use super::*;

/// Runs `agentdispatch-worker frameworks` with only the given variables set.
pub(crate) fn list_frameworks(vars: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = worker_command();
    cmd.arg("frameworks")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run agentdispatch-worker frameworks");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The entry of `name` in the listing: its first line and the lines indented under it.
pub(crate) fn entry<'a>(listing: &'a str, name: &str) -> Vec<&'a str> {
    let mut lines = listing
        .lines()
        .skip_while(|l| l.split_whitespace().next() != Some(name) || l.starts_with(' '));
    let mut out: Vec<&str> = lines.next().into_iter().collect();
    out.extend(lines.take_while(|l| l.starts_with(' ')));
    out
}

#[tokio::test]
async fn the_frameworks_command_lists_each_framework_with_its_source() {
    // The shipped frameworks, with their virtualenvs in place.
    let dir = frameworks_dir();
    let (ok, listing, stderr) =
        list_frameworks(&[("AGENTDISPATCH_FRAMEWORKS_DIR", dir.to_str().unwrap())]);
    assert!(ok, "{stderr}");
    let echo = entry(&listing, "echo");
    assert!(
        echo.len() >= 2 && echo[1].trim() == "from built-in",
        "{listing}"
    );
    for name in [
        "langchain",
        "langgraph",
        "crewai",
        "strands",
        "openai-agents",
        "pydantic-ai",
    ] {
        require_venv(name);
        let e = entry(&listing, name);
        let folder = dir.join(name);
        assert!(e.len() >= 2, "{name} missing from the listing:\n{listing}");
        assert!(
            e[0].ends_with(&format!(
                "{} runner.py",
                folder.join(".venv/bin/python").display()
            )),
            "{name}: {e:?}"
        );
        assert_eq!(
            e[1].trim(),
            format!("from {}", folder.join("framework.json").display()),
            "{name}"
        );
        assert!(
            e.len() >= 3 && !e[2].trim().is_empty(),
            "{name}: no description"
        );
    }
    assert!(!listing.contains("[program not found]"), "{listing}");
    assert!(!listing.contains("warning:"), "{listing}");

    // A directory with broken ones, and an environment definition overriding a folder.
    let broken = broken_frameworks();
    let root = broken.path().canonicalize().unwrap();
    let (ok, listing, stderr) = list_frameworks(&[
        ("AGENTDISPATCH_FRAMEWORKS_DIR", root.to_str().unwrap()),
        ("AGENTDISPATCH_FRAMEWORK_COMMAND_SHADOWED", "true"),
    ]);
    assert!(ok, "a broken manifest must not fail the listing: {stderr}");
    let killed = entry(&listing, "killed");
    assert_eq!(
        killed[0].split_whitespace().collect::<Vec<_>>(),
        ["killed", root.join("killed/./run.sh").to_str().unwrap()],
        "{listing}"
    );
    assert_eq!(
        killed[1].trim(),
        format!("from {}", root.join("killed/framework.json").display())
    );
    let novenv = entry(&listing, "novenv");
    assert!(
        novenv[0].ends_with("runner.py  [program not found]"),
        "{listing}"
    );
    let shadowed = entry(&listing, "shadowed");
    assert!(
        !shadowed[0].contains("not found") && shadowed[0].contains("true"),
        "{listing}"
    );
    assert_eq!(
        shadowed[1].trim(),
        "from env AGENTDISPATCH_FRAMEWORK_COMMAND_SHADOWED"
    );
    for name in ["badjson", "nocommand", "_shared"] {
        assert!(
            entry(&listing, name).is_empty(),
            "{name} listed:\n{listing}"
        );
    }
    let warning = |file: &str| {
        let path = root.join(file);
        listing
            .lines()
            .any(|l| l.starts_with("warning: ") && l.contains(&*path.to_string_lossy()))
    };
    assert!(warning("badjson/framework.json"), "{listing}");
    assert!(warning("nocommand/framework.json"), "{listing}");
}
