//! Packaging (issue 5), tested without a Docker engine: `scripts/build-and-push-ecr.sh` against
//! fake `aws` and `docker` executables that record their calls; `shellcheck` on every script;
//! the promises of the `Dockerfile` that can be read statically; the runtime filesystem the
//! Dockerfile produces, run with the worker as PID 1 of a fresh PID namespace as the image's
//! user; and `scripts/smoke-image.sh` against a fake `docker` that runs the real worker.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal::SIGKILL, Signal::SIGTERM};
use nix::unistd::Pid;
use serde_json::{json, Value};

mod common;

// The concerns, one file each under tests/packaging/.
#[path = "packaging/dockerfile.rs"]
mod dockerfile;
#[path = "packaging/ecr.rs"]
mod ecr;
#[path = "packaging/image.rs"]
mod image;
#[path = "packaging/lint.rs"]
mod lint;
#[path = "packaging/smoke.rs"]
mod smoke;
#[path = "packaging/venv_step.rs"]
mod venv_step;

// What the concerns share: running a script with fake `aws` and `docker` first on its PATH.

pub(crate) const ACCOUNT: &str = "123456789012";

/// Fake `aws`: records its argv, answers like the real CLI. `FAKE_REPO=existing` makes the
/// repository exist; `FAKE_DESCRIBE=denied` and `FAKE_STS=fail` make those calls fail.
pub(crate) const FAKE_AWS: &str = r#"#!/bin/sh
if [ "$1" = --version ]; then echo "aws-cli/${FAKE_AWS_VERSION:-2.17.0} Python/3.12.6 Linux/6.1 exe/x86_64"; exit 0; fi
echo "aws $*" >>"$FAKE_LOG"
case "$1 $2" in
"sts get-caller-identity")
  if [ "$FAKE_STS" = fail ]; then echo "Unable to locate credentials." >&2; exit 253; fi
  echo "$FAKE_ACCOUNT" ;;
"ecr describe-repositories")
  if [ "$FAKE_DESCRIBE" = denied ]; then
    echo "An error occurred (AccessDeniedException) when calling the DescribeRepositories operation" >&2; exit 254
  elif [ "$FAKE_REPO" = existing ]; then echo '{"repositories":[{"repositoryName":"x"}]}'
  else
    echo "An error occurred (RepositoryNotFoundException) when calling the DescribeRepositories operation: The repository with name '$4' does not exist in the registry with id '$FAKE_ACCOUNT'" >&2
    exit 254
  fi ;;
"ecr create-repository") echo '{"repository":{"repositoryName":"x"}}' ;;
"ecr get-login-password") echo fake-ecr-password ;;
*) echo "fake aws: unexpected call: $*" >&2; exit 2 ;;
esac
"#;

/// Fake `docker`: records its argv (and the directory of a build); `FAKE_LOGIN=fail` and
/// `FAKE_BUILD=fail` make those steps fail. A login must receive the password on stdin.
pub(crate) const FAKE_DOCKER: &str = r#"#!/bin/sh
echo "docker $*" >>"$FAKE_LOG"
case "$1 $2" in
"buildx version") echo "github.com/docker/buildx v0.17.1" ;;
"login --username")
  read -r password
  if [ "$password" != fake-ecr-password ]; then echo "fake docker: bad password '$password'" >&2; exit 3; fi
  if [ "$FAKE_LOGIN" = fail ]; then echo "Error response from daemon: login denied" >&2; exit 1; fi
  echo "Login Succeeded" ;;
"buildx build")
  echo "build-dir $(pwd)" >>"$FAKE_LOG"
  if [ "$FAKE_BUILD" = fail ]; then echo "ERROR: failed to solve: exit code: 1" >&2; exit 1; fi
  echo "pushed" ;;
*) echo "fake docker: unexpected call: $*" >&2; exit 2 ;;
esac
"#;

pub(crate) fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn write_executable(path: &Path, body: &str) {
    fs::write(path, body).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A program on the test's own PATH.
pub(crate) fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// What one run of the script did.
pub(crate) struct ScriptRun {
    pub(crate) success: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    /// Lines of the fakes' log: `aws …`, `docker …`, `build-dir …`, `test.sh`.
    pub(crate) calls: Vec<String>,
}

impl ScriptRun {
    pub(crate) fn calls_starting(&self, prefix: &str) -> Vec<&str> {
        let calls = self.calls.iter().map(String::as_str);
        calls.filter(|call| call.starts_with(prefix)).collect()
    }

    pub(crate) fn describe(&self) -> String {
        let calls = self.calls.join("\n  ");
        format!(
            "stdout:\n{}\nstderr:\n{}\ncalls:\n  {calls}",
            self.stdout, self.stderr
        )
    }

    pub(crate) fn assert_failed_saying(&self, words: &[&str]) {
        assert!(!self.success, "expected a failure\n{}", self.describe());
        for word in words {
            assert!(
                self.stderr.contains(word),
                "stderr lacks {word:?}\n{}",
                self.describe()
            );
        }
        assert!(
            !self.stdout.contains(".dkr.ecr."),
            "no URI on failure\n{}",
            self.describe()
        );
    }
}

/// Runs `script` with a clean environment: PATH holds only the fakes named in `fakes` and the
/// few real tools the script needs, so a real `aws` or `docker` can never be reached.
pub(crate) fn run_script(script: &Path, fakes: &[&str], env: &[(&str, &str)]) -> ScriptRun {
    let scratch = tempfile::tempdir().unwrap();
    let bin = scratch.path().join("bin");
    fs::create_dir(&bin).unwrap();
    for tool in ["bash", "sh", "env", "dirname"] {
        let real = which(tool).unwrap_or_else(|| panic!("{tool} is not on PATH"));
        symlink(real, bin.join(tool)).unwrap();
    }
    for (name, body) in [("aws", FAKE_AWS), ("docker", FAKE_DOCKER)] {
        if fakes.contains(&name) {
            write_executable(&bin.join(name), body);
        }
    }
    let log = scratch.path().join("calls.log");
    let output = Command::new(script)
        .env_clear()
        .env("PATH", &bin)
        .env("FAKE_LOG", &log)
        .env("FAKE_ACCOUNT", ACCOUNT)
        .envs(env.iter().copied())
        .current_dir(scratch.path())
        .output()
        .unwrap();
    let calls = fs::read_to_string(&log).unwrap_or_default();
    ScriptRun {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        calls: calls.lines().map(str::to_owned).collect(),
    }
}
