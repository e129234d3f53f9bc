//! Watches the frameworks directory and replaces the warm parent of a framework whose files
//! changed. Each folder is watched on its own (not one recursive watch): a recursive watch would
//! also watch every folder of each `.venv`, thousands of inotify watches for files a developer
//! does not edit; a folder made later is watched when it appears.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher};

use crate::frameworks::Source;
use crate::task::Worker;
use crate::warm::Reload;

/// Quiet time after a change before it counts: an editor's save (a temporary file, a rename,
/// a write) is one change, not three.
const QUIET: Duration = Duration::from_millis(150);

/// Folders never watched: virtualenvs, caches, and version control.
const IGNORED_DIRS: [&str; 4] = ["venv", "__pycache__", "node_modules", "site-packages"];

/// Whether a change at `rel` (a path inside the frameworks directory) is one to ignore: inside
/// a virtualenv or cache, hidden (`.venv`, `.git`, `.#x` locks, `.x.swp`), bytecode, or an
/// editor's temporary or backup file.
pub fn is_ignored(rel: &Path) -> bool {
    let names: Vec<&str> = rel
        .components()
        .filter_map(|c| c.as_os_str().to_str())
        .collect();
    let Some(file) = names.last() else {
        return false;
    };
    names
        .iter()
        .any(|n| n.starts_with('.') || IGNORED_DIRS.contains(n))
        || file.ends_with('~')
        || (file.starts_with('#') && file.ends_with('#'))
        || [".swp", ".swx", ".swo", ".tmp", ".pyc", ".pyo"]
            .iter()
            .any(|s| file.ends_with(s))
        // vim writes this file to test that a folder is writable.
        || *file == "4913"
}

/// Starts watching the frameworks directory for `worker` (on a thread of its own; it runs as
/// long as the process). Needs a tokio runtime (the reload log lines wait on it).
pub fn watch(worker: Arc<Worker>) -> anyhow::Result<()> {
    let Some(root) = worker.cfg.frameworks_dir.clone() else {
        tracing::warn!("dev mode: there is no frameworks directory to watch; nothing reloads");
        return Ok(());
    };
    let root = root.canonicalize().unwrap_or(root);
    let (tx, rx) = std::sync::mpsc::channel::<notify::Result<notify::Event>>();
    let mut watcher = notify::recommended_watcher(tx)
        .map_err(|e| anyhow::anyhow!("cannot watch {}: {e}", root.display()))?;
    let mut watched = HashSet::new();
    add_tree(&mut watcher, &root, &root, &mut watched);
    tracing::info!(
        frameworksDir = %root.display(),
        folders = watched.len(),
        "dev mode: watching the framework folders; a change replaces the framework's warm parent"
    );
    let runtime = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("dev-watch".into())
        .spawn(move || {
            let folders = framework_folders(&worker);
            while let Some(paths) = next_change(&rx) {
                let mut changed = BTreeSet::new();
                for path in paths {
                    let Ok(rel) = path.strip_prefix(&root) else {
                        continue;
                    };
                    if rel.as_os_str().is_empty() || is_ignored(rel) {
                        continue;
                    }
                    if path.is_dir() {
                        add_tree(&mut watcher, &root, &path, &mut watched);
                        continue;
                    }
                    if !path.exists() {
                        // A folder removed: its watch went with it; watch it again if it is made again.
                        watched.remove(&path);
                    }
                    changed.insert(rel.to_path_buf());
                }
                for (name, files) in by_framework(&folders, &changed) {
                    reload(&worker, &runtime, &root, name, files);
                }
            }
        })?;
    Ok(())
}

/// The paths of the next change: the events up to a quiet time of [`QUIET`], reads (an import
/// opens every file it loads) left out; `None` once the watcher is gone.
fn next_change(
    rx: &std::sync::mpsc::Receiver<notify::Result<notify::Event>>,
) -> Option<BTreeSet<PathBuf>> {
    let mut paths = BTreeSet::new();
    let mut event = rx.recv().ok()?;
    loop {
        match event {
            Ok(e) if !matches!(e.kind, EventKind::Access(_)) => paths.extend(e.paths),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "dev mode: watching the framework folders failed"),
        }
        if paths.is_empty() {
            event = rx.recv().ok()?;
            continue;
        }
        match rx.recv_timeout(QUIET) {
            Ok(e) => event = e,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => return Some(paths),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return None,
        }
    }
}

/// Each framework that comes from the frameworks directory, with its folder.
fn framework_folders(worker: &Worker) -> Vec<(String, PathBuf)> {
    worker
        .frameworks
        .iter()
        .filter_map(|f| match &f.source {
            Source::Directory(manifest) => {
                let folder = manifest.parent()?;
                let folder = folder
                    .canonicalize()
                    .unwrap_or_else(|_| folder.to_path_buf());
                Some((f.name.clone(), folder))
            }
            _ => None,
        })
        .collect()
}

/// The frameworks `changed` (paths relative to the frameworks directory) touch, each with its
/// changed files: those in a framework's folder are its own; any other (shared code such as
/// `_shared/`, which every runner imports) touches every framework of the directory.
fn by_framework<'a>(
    folders: &'a [(String, PathBuf)],
    changed: &BTreeSet<PathBuf>,
) -> BTreeMap<&'a str, Vec<String>> {
    let mut out: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for rel in changed {
        let shown = rel.display().to_string();
        let owner = folders
            .iter()
            .find(|(_, folder)| folder.file_name().is_some_and(|n| rel.starts_with(n)));
        match owner {
            Some((name, _)) => out.entry(name).or_default().push(shown),
            None => folders
                .iter()
                .for_each(|(name, _)| out.entry(name).or_default().push(shown.clone())),
        }
    }
    out
}

/// Replaces `name`'s warm parent and says so, once when it starts and once it is done.
fn reload(
    worker: &Arc<Worker>,
    runtime: &tokio::runtime::Handle,
    root: &Path,
    name: &str,
    files: Vec<String>,
) {
    // An editor's temporary file is gone by now: the files still there say what was saved
    // (all of them when every one was removed).
    let kept: Vec<&String> = files.iter().filter(|f| root.join(f).exists()).collect();
    let files = if kept.is_empty() {
        files.join(",")
    } else {
        kept.iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join(",")
    };
    if files.split(',').any(|f| f.ends_with("framework.json")) {
        tracing::warn!(framework = name, "dev mode: framework.json changed; the worker reads manifests at start-up, so a change of its command, env or warm flag needs a restart");
    }
    let old = match worker.warm.reload(name) {
        Reload::NoParent => {
            tracing::info!(
                framework = name,
                files,
                warm = false,
                "framework reloaded: its tasks start cold, so the next one runs the new code"
            );
            return;
        }
        Reload::NotStarted => {
            tracing::info!(framework = name, files, warm = false, "framework reloaded: its warm parent has not started yet and will load the new code");
            return;
        }
        Reload::Replacing { old } => old,
    };
    tracing::info!(
        framework = name,
        files,
        oldPid = old,
        "framework files changed: replacing its warm parent"
    );
    let began = Instant::now();
    let worker = worker.clone();
    let name = name.to_string();
    runtime.spawn(async move {
        match worker.warm.replaced(&name, old).await {
            Ok(pid) => tracing::info!(
                framework = %name,
                files,
                warm = true,
                pid,
                reloadMs = began.elapsed().as_millis() as u64,
                "framework reloaded: its next task forks from the new warm parent"
            ),
            Err(why) => tracing::warn!(framework = %name, files, reason = %why, "framework reload failed: the new warm parent is not ready; its tasks run cold until a change fixes it"),
        }
    });
}

/// Watches `dir` and every folder under it that is not ignored (symbolic links are not
/// followed: a linked `.venv` or shared folder is not the framework's own code).
fn add_tree(watcher: &mut impl Watcher, root: &Path, dir: &Path, watched: &mut HashSet<PathBuf>) {
    if watched.contains(dir) {
        return;
    }
    if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
        tracing::warn!(dir = %dir.strip_prefix(root).unwrap_or(dir).display(), error = %e, "dev mode: cannot watch a folder; its changes are not seen");
        return;
    }
    watched.insert(dir.to_path_buf());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir && !path.strip_prefix(root).is_ok_and(is_ignored) {
            add_tree(watcher, root, &path, watched);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtualenvs_caches_and_editor_files_are_ignored_and_code_is_not() {
        for p in [
            "langgraph/.venv/lib/x.py",
            "langgraph/__pycache__/agent.cpython-312.pyc",
            "langgraph/agent.py~",
            "langgraph/.agent.py.swp",
            "langgraph/.#agent.py",
            "langgraph/#agent.py#",
            "langgraph/4913",
            "langgraph/venv/bin/python",
        ] {
            assert!(is_ignored(Path::new(p)), "{p}");
        }
        for p in [
            "langgraph/agent.py",
            "langgraph/tools/search.py",
            "_shared/agentdispatch/runner.py",
            "langgraph/framework.json",
        ] {
            assert!(!is_ignored(Path::new(p)), "{p}");
        }
    }

    #[test]
    fn a_change_in_a_folder_is_its_frameworks_and_shared_code_is_everyones() {
        let folders = vec![
            ("lg".to_string(), PathBuf::from("/f/langgraph")),
            ("strands".to_string(), PathBuf::from("/f/strands")),
        ];
        let changed: BTreeSet<PathBuf> = ["langgraph/agent.py", "_shared/agentdispatch/x.py"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let got = by_framework(&folders, &changed);
        assert_eq!(
            got["lg"],
            vec!["_shared/agentdispatch/x.py", "langgraph/agent.py"]
        );
        assert_eq!(got["strands"], vec!["_shared/agentdispatch/x.py"]);
    }
}
