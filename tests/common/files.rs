//! Files a test makes or needs: executable scripts, and the cached client venvs
//! (`scripts/setup-clients.sh`).

use std::path::{Path, PathBuf};

/// Writes an executable script into `dir` and returns its path.
#[track_caller]
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// The Python of the client venv `name` that `scripts/setup-clients.sh NAME` makes, or `None`
/// (the test skips, saying so on stderr) when it is missing outside `scripts/test.sh`; there
/// (`AGENTDISPATCH_TEST_SH`, or `CI`) a missing venv fails the test.
pub fn client_python(name: &str, what: &str) -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .expect("HOME or XDG_CACHE_HOME");
    let python = cache.join(format!("agentdispatch-worker/clients/{name}/bin/python"));
    if python.exists() {
        return Some(python);
    }
    let required =
        std::env::var_os("AGENTDISPATCH_TEST_SH").is_some() || std::env::var_os("CI").is_some();
    assert!(
        !required,
        "{} is missing: run scripts/setup-clients.sh {name}",
        python.display()
    );
    eprintln!(
        "SKIPPED: no {what} venv at {} (run scripts/setup-clients.sh {name}); nothing was checked",
        python.display()
    );
    None
}
