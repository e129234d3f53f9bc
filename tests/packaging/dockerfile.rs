//! The `Dockerfile` read statically: its instructions, and the promises that can be checked
//! without building it.

use super::*;

/// One Dockerfile instruction: its stage (0 = before the first FROM), keyword and arguments.
pub(crate) struct Instruction {
    pub(crate) stage: usize,
    pub(crate) keyword: String,
    pub(crate) args: String,
}

/// The Dockerfile's instructions, with continuation lines joined and comments dropped.
pub(crate) fn dockerfile() -> Vec<Instruction> {
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
pub(crate) fn assignments<'a>(
    instructions: impl Iterator<Item = &'a Instruction>,
) -> Vec<(String, String)> {
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

pub(crate) fn last_stage(instructions: &[Instruction]) -> Vec<&Instruction> {
    let last = instructions.iter().map(|i| i.stage).max().unwrap();
    instructions.iter().filter(|i| i.stage == last).collect()
}

/// The arguments of every `keyword` instruction in `stage`, in order.
pub(crate) fn args_of<'a>(stage: &[&'a Instruction], keyword: &str) -> Vec<&'a str> {
    let matching = stage.iter().filter(|i| i.keyword == keyword);
    matching.map(|i| i.args.as_str()).collect()
}

/// The value an ENV instruction of the runtime stage gives `name`.
pub(crate) fn runtime_env(instructions: &[Instruction], name: &str) -> Option<String> {
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
