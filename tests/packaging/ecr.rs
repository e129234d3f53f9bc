//! `scripts/build-and-push-ecr.sh` against fake `aws` and `docker` executables that record
//! their calls.

use super::*;

pub(crate) const DEFAULT_URI: &str =
    "123456789012.dkr.ecr.eu-west-1.amazonaws.com/agentdispatch-worker-agentcore:latest";

/// Fake `scripts/test.sh` for a copy of the script in a scratch repository.
pub(crate) const FAKE_TESTS: &str =
    "#!/bin/sh\necho \"test.sh\" >>\"$FAKE_LOG\"\nexit \"${FAKE_TESTS_EXIT:-0}\"\n";

/// The real script, as shipped.
pub(crate) fn ecr_script() -> PathBuf {
    repo_root().join("scripts/build-and-push-ecr.sh")
}

/// Runs the shipped script with both fakes (tests are opt-in: not run).
pub(crate) fn run_ecr(env: &[(&str, &str)]) -> ScriptRun {
    run_script(&ecr_script(), &["aws", "docker"], env)
}

/// The login is one pipeline, `aws ecr get-login-password | docker login`: its two calls may be
/// logged in either order, so they are sorted before comparing.
pub(crate) fn with_login_pair_sorted(calls: &[String]) -> Vec<String> {
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
pub(crate) fn scratch_repo_with_fake_tests() -> (tempfile::TempDir, PathBuf) {
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
