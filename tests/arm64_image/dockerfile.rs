//! The Dockerfile's runtime stage, read into what the image is made of ([`Image`]): its ENV,
//! USER, WORKDIR, ENTRYPOINT + CMD and the default FRAMEWORKS.

use std::fs;

use super::repo_root;

/// The Dockerfile's runtime (last) stage, as (keyword, arguments) with continuations joined.
pub(super) fn runtime_stage() -> Vec<(String, String)> {
    let text = fs::read_to_string(repo_root().join("Dockerfile")).unwrap();
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(trimmed);
                let (keyword, args) = current.split_once(char::is_whitespace).unwrap();
                instructions.push((keyword.to_uppercase(), args.trim().to_owned()));
                current.clear();
            }
        }
    }
    let from = instructions.iter().rposition(|(k, _)| k == "FROM").unwrap();
    instructions.split_off(from)
}

/// `NAME=value` words of an instruction, quotes removed (the Dockerfile's values have no spaces
/// except inside quotes).
pub(super) fn assignments(args: &str) -> Vec<(String, String)> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in args.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
        .into_iter()
        .filter_map(|w| w.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

/// What the image is made of, read from the Dockerfile.
pub(super) struct Image {
    pub(super) env: Vec<(String, String)>,
    pub(super) user: String,
    pub(super) workdir: String,
    pub(super) entrypoint: Vec<String>,
    pub(super) frameworks: Vec<String>,
}

pub(super) fn image() -> Image {
    let stage = runtime_stage();
    let last = |keyword: &str| {
        stage
            .iter()
            .rev()
            .find(|(k, _)| k == keyword)
            .map(|(_, a)| a.clone())
            .unwrap_or_else(|| panic!("no {keyword} in the runtime stage"))
    };
    let env = stage
        .iter()
        .filter(|(k, _)| k == "ENV")
        .flat_map(|(_, a)| assignments(a))
        .collect();
    let frameworks = stage
        .iter()
        .filter(|(k, _)| k == "ARG")
        .flat_map(|(_, a)| assignments(a))
        .find(|(k, _)| k == "FRAMEWORKS")
        .expect("ARG FRAMEWORKS=… in the runtime stage")
        .1;
    let mut entrypoint: Vec<String> = serde_json::from_str(&last("ENTRYPOINT")).unwrap();
    let cmd: Vec<String> = serde_json::from_str(&last("CMD")).unwrap();
    entrypoint.extend(cmd);
    Image {
        env,
        user: last("USER"),
        workdir: last("WORKDIR"),
        entrypoint,
        frameworks: frameworks.split_whitespace().map(str::to_owned).collect(),
    }
}
