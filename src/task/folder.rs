//! The task folder, `<artifact dir>/<task id>`: the one owner of its paths and of the worker's
//! own files in it (`events.ndjson`, `result.json`, `manifest.json`). It makes the folder (a
//! fresh `mkdir`, never an existing folder or a link), writes the files atomically without
//! following a link, and reads them back for a task that left memory.
//!
//! The folder is the child's to write in, so every read treats it as hostile: each open goes
//! through the folder opened with `O_NOFOLLOW`, uses `O_NOFOLLOW|O_NONBLOCK` itself (a FIFO a
//! child planted opens at once instead of waiting for a writer), takes only a regular file
//! (`fstat`), and reads a bounded number of bytes. Callers run reads on the blocking pool with
//! a time bound (`Worker::off_thread`), never on a thread that serves HTTP.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::events::{self, Since};
use crate::wire::{Artifact, ErrorCode, TaskResult};

/// The result file's name.
pub const RESULT_FILE: &str = "result.json";
/// The manifest file's name.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The event log's name.
pub const EVENTS_FILE: &str = "events.ndjson";
/// The worker's own files in a folder: never listed as the child's artifacts.
pub const OWN_FILES: [&str; 4] = [RESULT_FILE, MANIFEST_FILE, EVENTS_FILE, UNWRITTEN_MARK];

/// An empty file left in a task folder whose `result.json` could not be written (a full disk
/// has room for an empty file, never for the result): after a restart the task is said to
/// have failed for that, not to have been interrupted.
const UNWRITTEN_MARK: &str = "result.unwritten";
/// Longest first line read back for a task's session (its `accepted` event: a clipped label,
/// two ids).
const MAX_FIRST_LINE: u64 = 256 * 1024;

/// Largest `manifest.json` read back (1,000 listed and 1,000 declared artifacts fit well).
const MAX_MANIFEST_BYTES: u64 = 64 << 20;

/// The answer for a task id nobody knows.
pub fn unknown(id: &str) -> TaskResult {
    let shown = crate::wire::clip(id, 200);
    TaskResult::refusal(
        &shown,
        ErrorCode::UnknownTask,
        format!("Unknown taskId: {shown}"),
    )
}

/// The answer when a task's folder cannot be read back; `why` names the file.
pub fn unreadable(id: &str, why: String) -> TaskResult {
    TaskResult::refusal(
        id,
        ErrorCode::ArtifactReadFailed,
        format!("Cannot read the task's folder back: {why}"),
    )
}

/// One task's folder.
pub struct TaskFolder {
    path: PathBuf,
    /// Set once this run made the folder; nothing is written into a folder it did not make.
    made: AtomicBool,
}

/// A task's `events.ndjson`, for reading back (the sink appends through its own handle).
#[derive(Clone, Debug)]
pub struct EventsLog {
    dir: PathBuf,
}

fn flags(extra: OFlag) -> OFlag {
    OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | extra
}

/// `path`'s directory opened without following a link (`ELOOP`/`ENOTDIR`: it is not one).
fn open_dir(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((flags(OFlag::O_DIRECTORY | OFlag::O_NONBLOCK)).bits())
        .open(path)
}

/// A message for an open of `path` that failed, saying what is there instead of a folder/file
/// (`O_NOFOLLOW` fails with `ELOOP` on a link, `O_DIRECTORY` with `ENOTDIR` on a link too).
fn open_error(path: &Path, e: std::io::Error) -> String {
    match e.raw_os_error().map(Errno::from_raw) {
        Some(Errno::ELOOP | Errno::ENOTDIR) => match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => {
                format!("{} is a symbolic link; it is not followed", path.display())
            }
            _ => format!("{} is not a directory", path.display()),
        },
        _ => format!("cannot open {}: {e}", path.display()),
    }
}

/// Opens `name` in `dir` for reading: `None` when it does not exist, an error naming it when it
/// is a link or not a regular file. Never waits (`O_NONBLOCK`), never follows a link.
fn open_regular(dir: &File, dir_path: &Path, name: &str) -> Result<Option<(File, u64)>, String> {
    let path = dir_path.join(name);
    let fd = match nix::fcntl::openat(
        dir,
        name,
        flags(OFlag::O_RDONLY | OFlag::O_NONBLOCK),
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(open_error(&path, e.into())),
    };
    let file = File::from(fd);
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !meta.is_file() {
        let ft = meta.file_type();
        let what = if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_socket() {
            "a socket"
        } else if ft.is_dir() {
            "a directory"
        } else {
            "a device"
        };
        return Err(format!(
            "{} is not a regular file ({what}); it is not read",
            path.display()
        ));
    }
    Ok(Some((file, meta.len())))
}

/// Reads all of a regular file, refusing one larger than `limit` (named in the error).
fn read_bounded(file: File, path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > limit {
        return Err(format!(
            "{} is larger than {} MiB; it is not read",
            path.display(),
            limit >> 20
        ));
    }
    Ok(bytes)
}

impl TaskFolder {
    /// The folder of task `id` (a valid task id: one path component) under `root`.
    pub fn at(root: &Path, id: &str) -> Self {
        TaskFolder {
            path: root.join(id),
            made: AtomicBool::new(false),
        }
    }

    /// Where it is (for the child and for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this run made it (nothing is written into a folder it did not make).
    pub fn made(&self) -> bool {
        self.made.load(Ordering::Acquire)
    }

    /// A path in it, for messages and for the artifacts listed from it.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Makes the folder — a fresh `mkdir` of the last component, so an existing folder or a
    /// link planted there is refused, never followed — and creates its `events.ndjson`.
    pub fn create(&self) -> Result<(File, EventsLog), String> {
        let shown = self.path.display();
        if let Some(root) = self.path.parent() {
            // The artifact directory itself is the operator's (it may be a link).
            std::fs::create_dir_all(root)
                .map_err(|e| format!("Cannot create the artifact directory of {shown}: {e}"))?;
        }
        if let Err(e) = std::fs::create_dir(&self.path) {
            if e.kind() != std::io::ErrorKind::AlreadyExists {
                return Err(format!("Cannot create task folder {shown}: {e}"));
            }
            let what = match std::fs::symlink_metadata(&self.path) {
                Ok(m) if m.file_type().is_symlink() => "a symbolic link",
                Ok(m) if m.is_dir() => "a folder of an earlier run without its result",
                _ => "something that is not a folder",
            };
            return Err(format!(
                "Cannot create task folder {shown}: it already exists ({what}); \
                 a task runs only in a folder it made itself"
            ));
        }
        // The folder just made, opened without following a link: if something swapped it for
        // one in between, this fails instead of writing through it.
        let dir = open_dir(&self.path)
            .map_err(|e| format!("Cannot open task folder: {}", open_error(&self.path, e)))?;
        let log = nix::fcntl::openat(
            &dir,
            EVENTS_FILE,
            flags(OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL),
            Mode::from_bits_truncate(0o644),
        )
        .map_err(|e| format!("cannot create {}: {e}", self.file(EVENTS_FILE).display()))?;
        self.made.store(true, Ordering::Release);
        Ok((File::from(log), self.events_log()))
    }

    /// Its event log, for reading back.
    pub fn events_log(&self) -> EventsLog {
        EventsLog {
            dir: self.path.clone(),
        }
    }

    /// Whether it is still the directory (not a link or a file a child put in its place).
    pub fn intact(&self) -> std::io::Result<()> {
        open_dir(&self.path).map(drop).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                format!(
                    "the task folder is gone or is no longer a directory ({})",
                    open_error(&self.path, e)
                ),
            )
        })
    }

    /// Writes `name` through a temporary file and a rename inside the folder (opened without
    /// following a link), so readers see the old content or the new, never a part, and no link
    /// a child planted is written through.
    pub fn write_atomic(
        &self,
        name: &str,
        fill: impl FnOnce(&mut std::io::BufWriter<File>) -> std::io::Result<()>,
    ) -> std::io::Result<PathBuf> {
        if !self.made() {
            return Err(std::io::Error::other(
                "the task folder was not made by this run",
            ));
        }
        let dir = open_dir(&self.path)?;
        // A name a child cannot plant a link at beforehand, created only if it does not exist.
        let tmp = format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple());
        let result = (|| {
            let fd = nix::fcntl::openat(
                &dir,
                tmp.as_str(),
                flags(OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL),
                Mode::from_bits_truncate(0o644),
            )?;
            let mut f = std::io::BufWriter::new(File::from(fd));
            fill(&mut f)?;
            f.flush()?;
            drop(f);
            nix::fcntl::renameat(&dir, tmp.as_str(), &dir, name)?;
            Ok(())
        })();
        if result.is_err() {
            let _ =
                nix::unistd::unlinkat(&dir, tmp.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
        }
        result.map(|()| self.file(name))
    }

    /// Leaves [`UNWRITTEN_MARK`] in the folder; best effort (a folder that cannot take even
    /// that reads back as interrupted).
    pub fn mark_unwritten(&self) {
        if let Ok(dir) = open_dir(&self.path) {
            let _ = nix::fcntl::openat(
                &dir,
                UNWRITTEN_MARK,
                flags(OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL),
                Mode::from_bits_truncate(0o644),
            );
        }
    }

    /// The session of the task in this folder: the `sessionId` of its first event
    /// (`accepted`). A folder whose log cannot be read safely belongs to no session.
    pub fn session(&self) -> Option<String> {
        use std::io::BufRead;
        let dir = open_dir(&self.path).ok()?;
        let (file, _) = open_regular(&dir, &self.path, EVENTS_FILE).ok()??;
        let mut line = Vec::new();
        std::io::BufReader::new(file.take(MAX_FIRST_LINE))
            .read_until(b'\n', &mut line)
            .ok()?;
        let first: serde_json::Value = serde_json::from_slice(&line).ok()?;
        first["payload"]["sessionId"].as_str().map(str::to_string)
    }

    /// A finished task's answer from `result.json`, `manifest.json` and `events.ndjson` (events
    /// after `after_seq`, up to `cap` bytes of answer): `None` when there is no such task here,
    /// an error naming the file when one cannot be read (a link, a FIFO, a device, too large).
    pub fn read_back(&self, after_seq: u64, cap: usize) -> Result<Option<TaskResult>, String> {
        let dir = match open_dir(&self.path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(open_error(&self.path, e)),
        };
        // The record holds the output (up to the cap, JSON-escaped: up to 6 bytes a byte) and
        // the task's `result` value.
        let limit = (cap as u64).saturating_mul(8).saturating_add(16 << 20);
        let mut result: TaskResult = match open_regular(&dir, &self.path, RESULT_FILE)? {
            Some((file, _)) => {
                let path = self.file(RESULT_FILE);
                let bytes = read_bounded(file, &path, limit)?;
                serde_json::from_slice(&bytes)
                    .map_err(|e| format!("{} is not a task result: {e}", path.display()))?
            }
            None => {
                // Files the worker writes: regular files, never links a child planted.
                let is_file =
                    |name| open_regular(&dir, &self.path, name).is_ok_and(|f| f.is_some());
                let (code, why) = if is_file(UNWRITTEN_MARK) {
                    (ErrorCode::ArtifactWriteFailed, "The task ended but its result could not be written to its folder (the disk was full, or the folder not writable); what of its events was written is kept.")
                } else if is_file(EVENTS_FILE) {
                    // Events but no result: the worker died while the task ran (SIGKILL,
                    // OOM, microVM stop). Say so, and keep what it did.
                    (ErrorCode::Interrupted, "The task was interrupted: the worker stopped while it ran. Its events are kept.")
                } else {
                    return Ok(None);
                };
                let id = self
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                TaskResult::refusal(&id, code, why)
            }
        };
        if let Some((file, _)) = open_regular(&dir, &self.path, MANIFEST_FILE)? {
            #[derive(serde::Deserialize)]
            struct Manifest {
                artifacts: Vec<Artifact>,
            }
            let bytes = read_bounded(file, &self.file(MANIFEST_FILE), MAX_MANIFEST_BYTES)?;
            if let Ok(m) = serde_json::from_slice::<Manifest>(&bytes) {
                result.artifacts = m.artifacts;
            }
        }
        let budget = result.events_budget(cap);
        let (since, _) = self.events_log().page(0, after_seq, budget)?;
        result.events = since.events;
        result.events_truncated = since.truncated;
        result.fit_output(cap);
        Ok(Some(result))
    }
}

impl EventsLog {
    /// Events with `seq > after` from byte `offset` (the start of a line), about `max` bytes
    /// (see [`events::read_page`]); a missing log reads as empty, one that is not a regular
    /// file is an error naming it.
    pub fn page(&self, offset: u64, after: u64, max: usize) -> Result<(Since, u64), String> {
        let dir = open_dir(&self.dir).map_err(|e| open_error(&self.dir, e))?;
        match open_regular(&dir, &self.dir, EVENTS_FILE)? {
            Some((file, _)) => Ok(events::read_page(file, offset, after, max)),
            None => Ok((Since::default(), offset)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_is_made_once_and_never_through_a_link() {
        let root = tempfile::tempdir().unwrap();
        let f = TaskFolder::at(root.path(), "t1");
        let (mut log, _) = f.create().unwrap();
        assert!(f.made());
        log.write_all(b"{}\n").unwrap();
        assert!(TaskFolder::at(root.path(), "t1")
            .create()
            .unwrap_err()
            .contains("already exists"));
        let target = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(target.path(), root.path().join("t2")).unwrap();
        let linked = TaskFolder::at(root.path(), "t2");
        assert!(linked.create().unwrap_err().contains("a symbolic link"));
        assert!(!linked.made());
        assert!(linked.write_atomic(RESULT_FILE, |_| Ok(())).is_err());
        assert!(linked
            .read_back(0, 1024)
            .unwrap_err()
            .contains("symbolic link"));
        assert_eq!(std::fs::read_dir(target.path()).unwrap().count(), 0);
    }

    #[test]
    fn special_files_are_refused_without_waiting() {
        let root = tempfile::tempdir().unwrap();
        let f = TaskFolder::at(root.path(), "t1");
        f.create().unwrap();
        nix::unistd::mkfifo(&f.file(RESULT_FILE), Mode::from_bits_truncate(0o600)).unwrap();
        let e = f.read_back(0, 1024).unwrap_err();
        assert!(e.contains("result.json") && e.contains("a FIFO"), "{e}");
        std::fs::remove_file(f.file(EVENTS_FILE)).unwrap();
        nix::unistd::mkfifo(&f.file(EVENTS_FILE), Mode::from_bits_truncate(0o600)).unwrap();
        let e = f.events_log().page(0, 0, 1024).err().unwrap();
        assert!(e.contains("events.ndjson") && e.contains("a FIFO"), "{e}");
    }
}
