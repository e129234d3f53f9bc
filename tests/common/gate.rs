//! The example models' piece gate (`AGENTDISPATCH_EXAMPLE_PIECE_GATE`): how a test proves
//! that text streams (SPEC §4.1).
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

/// The worker's `AGENTDISPATCH_EXAMPLE_PIECE_GATE` path, shut (a FIFO the test writes lines to)
/// only during the live run. The example models open the path before each piece and read up to
/// a newline or the end of the file, so while the path is an empty regular file they never wait:
/// the worker's other tasks (the cancel, the conversations) run as if there were no gate.
pub struct Gate {
    path: PathBuf,
    /// Both ends of the FIFO while the gate is shut: the models' opens never block, and the
    /// lines written stay until a model reads them.
    fifo: Option<std::fs::File>,
    _dir: tempfile::TempDir,
}

impl Gate {
    pub fn new() -> Gate {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gate");
        std::fs::write(&path, b"").unwrap();
        Gate {
            path,
            fifo: None,
            _dir: dir,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes the path a FIFO: from now on each piece but a message's first waits for a line.
    /// Swapped in by a rename, so a model never finds the path missing.
    pub fn shut(&mut self) {
        let tmp = self.path.with_extension("fifo");
        nix::unistd::mkfifo(&tmp, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let fifo = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&tmp)
            .unwrap();
        std::fs::rename(&tmp, &self.path).unwrap();
        self.fifo = Some(fifo);
    }

    /// Lets a waiting model write its next piece.
    pub fn release(&mut self) {
        let fifo = self.fifo.as_mut().expect("the gate is shut");
        fifo.write_all(b"\n").unwrap();
    }

    /// An empty regular file again (lines not read are dropped with the FIFO).
    pub fn open(&mut self) {
        let tmp = self.path.with_extension("file");
        std::fs::write(&tmp, b"").unwrap();
        std::fs::rename(&tmp, &self.path).unwrap();
        self.fifo = None;
    }
}
