//! A task's artifacts: their metadata (size, SHA-256, kind, content type), the files the child
//! wrote in its folder, and the artifacts it declared. (The folder itself, and the worker's own
//! files in it, are `task::TaskFolder`'s.)

use std::collections::HashSet;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::wire::Artifact;

/// Most files listed from a task folder (a child writing thousands gets the first ones).
const MAX_LISTED: usize = 1000;
/// Most artifacts a child may declare; the rest are dropped with a warning.
pub const MAX_DECLARED: usize = 1000;
/// Largest file hashed; a bigger one is described without `sha256`, and says so.
const MAX_HASHED: u64 = 64 * 1024 * 1024;

/// `kind` and `contentType` from a file name's extension.
fn kind_and_type(path: &str) -> (&'static str, &'static str) {
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("json") => ("json", "application/json"),
        Some("ndjson" | "jsonl") => ("json", "application/x-ndjson"),
        Some("txt" | "log") => ("text", "text/plain"),
        Some("md") => ("text", "text/markdown"),
        Some("csv") => ("text", "text/csv"),
        Some("html" | "htm") => ("text", "text/html"),
        Some("png") => ("image", "image/png"),
        Some("jpg" | "jpeg") => ("image", "image/jpeg"),
        Some("pdf") => ("file", "application/pdf"),
        _ => ("file", "application/octet-stream"),
    }
}

/// Describes a local file: size, SHA-256 (up to a bound), kind, content type. Only a regular
/// file with one link is described; it is opened without following a link and without
/// blocking (a FIFO or device never stalls the worker).
pub fn describe(path: &Path) -> std::io::Result<Artifact> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if meta.nlink() > 1 {
        return Err(std::io::Error::other(format!(
            "it has {} hard links",
            meta.nlink()
        )));
    }
    let uri = path.to_string_lossy().into_owned();
    let (kind, content_type) = kind_and_type(&uri);
    let mut artifact = Artifact {
        uri,
        kind: kind.to_string(),
        content_type: Some(content_type.to_string()),
        size_bytes: Some(meta.len()),
        sha256: None,
        note: None,
    };
    if meta.len() > MAX_HASHED {
        artifact.note = Some(format!(
            "not hashed: larger than {} MiB",
            MAX_HASHED / (1024 * 1024)
        ));
        return Ok(artifact);
    }
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    while size <= MAX_HASHED {
        let n = match file.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    artifact.size_bytes = Some(size);
    if size > MAX_HASHED {
        artifact.note = Some(format!(
            "not hashed: larger than {} MiB",
            MAX_HASHED / (1024 * 1024)
        ));
    } else {
        artifact.sha256 = Some(format!("{:x}", hasher.finalize()));
    }
    Ok(artifact)
}

/// Appends `more` to `list`, leaving out URIs already in it (a set: declarations are many).
pub fn merge_unique(list: &mut Vec<Artifact>, more: Vec<Artifact>) {
    let mut seen: HashSet<String> = list.iter().map(|a| a.uri.clone()).collect();
    for a in more {
        if seen.insert(a.uri.clone()) {
            list.push(a);
        }
    }
}

/// Files the child wrote in `dir` (recursively, sorted), less the worker's own files (`ours`,
/// at the top level, and names starting with a dot); `skip` is told of every entry that is not a regular file or a folder (FIFOs, sockets, devices,
/// symlinks: never opened, never followed).
pub fn written_files(dir: &Path, ours: &[&str], skip: &mut dyn FnMut(String)) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() {
                stack.push(path);
            } else if !ft.is_file() {
                let what = if ft.is_symlink() {
                    "a symbolic link"
                } else {
                    "not a regular file"
                };
                skip(format!("{} is not listed: {what}", path.display()));
            } else {
                let top_level = d == dir;
                let name = entry.file_name();
                let name = name.to_string_lossy();
                let own = top_level && (ours.contains(&&*name) || name.starts_with('.'));
                if !own {
                    out.push(path);
                }
            }
        }
    }
    out.sort();
    out.truncate(MAX_LISTED);
    out
}

/// Turns the artifacts a child declared into entries. Local paths must lie inside `dir`
/// (else `warn` is told and the entry dropped); remote URIs pass through as declared.
pub fn declared(dir: &Path, items: &[Value], warn: &mut dyn FnMut(String)) -> Vec<Artifact> {
    let root = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut out = Vec::new();
    if items.len() > MAX_DECLARED {
        warn(format!(
            "{} declared artifacts were ignored: at most {MAX_DECLARED} are kept",
            items.len() - MAX_DECLARED
        ));
    }
    for item in items.iter().take(MAX_DECLARED) {
        let (uri, obj) = match item {
            Value::String(s) => (s.clone(), None),
            Value::Object(o) => match o
                .get("uri")
                .or_else(|| o.get("path"))
                .and_then(Value::as_str)
            {
                Some(u) => (u.to_string(), Some(o)),
                None => {
                    warn(format!(
                        "artifact declared without a uri or path was ignored: {item}"
                    ));
                    continue;
                }
            },
            other => {
                warn(format!(
                    "artifact declaration must be a string or an object, got {other}"
                ));
                continue;
            }
        };
        let field = |k: &str| {
            obj.and_then(|o| o.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        // Schemes are case-insensitive: FILE:///etc/passwd is a local path, refused below.
        let scheme = uri.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        let is_remote = scheme.as_deref().is_some_and(|s| s != "file");
        if is_remote {
            let (kind, _) = kind_and_type(&uri);
            out.push(Artifact {
                kind: field("kind").unwrap_or_else(|| kind.to_string()),
                content_type: field("contentType"),
                size_bytes: obj.and_then(|o| o.get("sizeBytes")).and_then(Value::as_u64),
                sha256: field("sha256"),
                note: None,
                uri,
            });
            continue;
        }
        let local = if scheme.is_some() {
            uri.split_once("://").map_or(uri.as_str(), |(_, rest)| rest)
        } else {
            uri.as_str()
        };
        let path = if Path::new(local).is_absolute() {
            PathBuf::from(local)
        } else {
            root.join(local)
        };
        match path.canonicalize() {
            Ok(real) if real.starts_with(&root) && real != root => match describe(&real) {
                Ok(mut a) => {
                    if let Some(k) = field("kind") {
                        a.kind = k;
                    }
                    if let Some(ct) = field("contentType") {
                        a.content_type = Some(ct);
                    }
                    out.push(a);
                }
                Err(e) => warn(format!("artifact {uri} cannot be read: {e}")),
            },
            Ok(_) => warn(format!(
                "artifact {uri} refused: it is outside the task folder {}",
                root.display()
            )),
            Err(e) => warn(format!("artifact {uri} refused: {e}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_size_and_digest() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        std::fs::write(&p, b"{}").unwrap();
        let a = describe(&p).unwrap();
        assert_eq!(a.size_bytes, Some(2));
        assert_eq!(a.kind, "json");
        assert_eq!(
            a.sha256.as_deref(),
            Some("44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a")
        );
    }

    #[test]
    fn declared_paths_outside_the_folder_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("out.txt"), "hi").unwrap();
        let mut warnings = Vec::new();
        let items: Vec<Value> = serde_json::from_str(
            r#"["out.txt", {"uri":"/etc/passwd"}, {"path":"../x"}, {"uri":"s3://b/k","kind":"file"}, 3]"#,
        )
        .unwrap();
        let got = declared(dir.path(), &items, &mut |w| warnings.push(w));
        assert_eq!(got.len(), 2);
        assert!(got[0].uri.ends_with("out.txt"));
        assert_eq!(got[0].size_bytes, Some(2));
        assert_eq!(got[1].uri, "s3://b/k");
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(warnings[0].contains("outside the task folder"));
    }

    #[test]
    fn written_files_leave_out_the_workers_own() {
        let dir = tempfile::tempdir().unwrap();
        let ours = ["result.json", "manifest.json", "events.ndjson"];
        for f in ours.iter().chain(&[".tmp", "report.md"]) {
            std::fs::write(dir.path().join(f), "x").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/result.json"), "x").unwrap();
        let files = written_files(dir.path(), &ours, &mut |_| {});
        assert_eq!(files.len(), 2, "{files:?}");
    }
}
