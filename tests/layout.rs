//! The repository's shape, as the house rules keep it (issue 27): no Rust file under `src/`,
//! `tests/` or `bench/` over 500 lines, no module of the shared Python helper over 400. A file
//! that grows past its bound is split by what it owns, not trimmed.

use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Every file under `dir` (recursively) whose name ends with `ext`, virtualenvs and caches aside.
fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(kind) = e.file_type() else { continue };
        if kind.is_dir() && !name.starts_with('.') && name != "__pycache__" && name != "target" {
            files(&path, ext, out);
        } else if kind.is_file() && name.ends_with(ext) {
            out.push(path);
        }
    }
}

fn over(bound: usize, dirs: &[&str], ext: &str) -> Vec<String> {
    let mut found = Vec::new();
    for d in dirs {
        files(&Path::new(ROOT).join(d), ext, &mut found);
    }
    assert!(!found.is_empty(), "no {ext} file under {dirs:?}");
    found
        .into_iter()
        .filter_map(|p| {
            let lines = std::fs::read_to_string(&p).ok()?.lines().count();
            let shown = p.strip_prefix(ROOT).unwrap_or(&p).display().to_string();
            (lines > bound).then(|| format!("{shown}: {lines} lines"))
        })
        .collect()
}

#[test]
fn no_rust_file_is_over_500_lines() {
    let long = over(500, &["src", "tests", "bench"], ".rs");
    assert!(long.is_empty(), "split these by what they own: {long:#?}");
}

#[test]
fn no_module_of_the_shared_python_helper_is_over_400_lines() {
    let long = over(400, &["frameworks/_shared/agentdispatch"], ".py");
    assert!(long.is_empty(), "split these by what they own: {long:#?}");
}
