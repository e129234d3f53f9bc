//! Sessions (SPEC §7.1): one folder per session id under `AGENTDISPATCH_SESSION_DIR`, where the
//! framework keeps the conversation, and one `agent.run` turn at a time per session, in arrival
//! order. Different sessions run in parallel; control requests never wait here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use tokio::sync::OwnedMutexGuard;

use crate::wire::valid_task_id;

/// The folder name of a session id: the id itself when it is a safe file name (the task id
/// pattern), else `h-` and the first 32 hex digits of its SHA-256.
pub fn folder_name(id: &str) -> String {
    if valid_task_id(id) && !id.starts_with("h-") {
        return id.to_string();
    }
    let digest = Sha256::digest(id.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("h-{hex}")
}

/// Every session's turn lock.
#[derive(Default)]
pub struct Sessions {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Held while a session's turn runs; the next turn starts when it is dropped.
pub struct Turn {
    sessions: Arc<Sessions>,
    id: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.guard.take();
        let mut locks = self
            .sessions
            .locks
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // Nobody holds or waits for it: forget it (the map holds one reference).
        if locks
            .get(&self.id)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            locks.remove(&self.id);
        }
    }
}

impl Sessions {
    /// Waits for the session's earlier turns (in arrival order); `waiting` is called first
    /// when one is still running.
    pub async fn turn(self: &Arc<Self>, id: &str, waiting: impl FnOnce()) -> Turn {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(id.to_string()).or_default().clone()
        };
        let guard = match lock.clone().try_lock_owned() {
            Ok(g) => g,
            Err(_) => {
                waiting();
                lock.lock_owned().await
            }
        };
        Turn {
            sessions: self.clone(),
            id: id.to_string(),
            guard: Some(guard),
        }
    }
}

/// Creates (or checks) the session's folder under `root`; the error names the path.
pub fn prepare(root: &Path, id: &str) -> Result<PathBuf, String> {
    let dir = root.join(folder_name(id));
    match std::fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(format!(
                "the session folder {} is not a directory",
                dir.display()
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create the session folder {}: {e}", dir.display()))?;
        }
        Err(e) => {
            return Err(format!(
                "cannot read the session folder {}: {e}",
                dir.display()
            ))
        }
    }
    if let Err(e) = std::fs::read_dir(&dir) {
        return Err(format!(
            "cannot read the session folder {}: {e}",
            dir.display()
        ));
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_ids_name_their_folder_and_others_are_hashed() {
        assert_eq!(folder_name("abc-123.x_y"), "abc-123.x_y");
        for id in [
            "../etc",
            "a/b",
            "",
            ".hidden",
            "x".repeat(200).as_str(),
            "h-abc",
            "ü",
        ] {
            let name = folder_name(id);
            assert!(
                name.starts_with("h-") && name.len() == 34,
                "{id:?} → {name}"
            );
        }
        assert_ne!(folder_name("a/b"), folder_name("a/c"));
        assert_eq!(folder_name("a/b"), folder_name("a/b"));
    }

    #[tokio::test]
    async fn turns_of_one_session_wait_in_order_and_others_do_not() {
        let s = Arc::new(Sessions::default());
        let first = s.turn("a", || panic!("the first turn does not wait")).await;
        let other = s
            .turn("b", || panic!("another session does not wait"))
            .await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for i in 0..3 {
            let (s, order) = (s.clone(), order.clone());
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            waiters.push(tokio::spawn(async move {
                let _t = s.turn("a", move || drop(tx)).await;
                order.lock().unwrap().push(i);
            }));
            // Queued before the next one.
            let _ = rx.await;
        }
        drop(other);
        assert!(order.lock().unwrap().is_empty());
        drop(first);
        for w in waiters {
            w.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2]);
        assert!(
            s.locks.lock().unwrap().is_empty(),
            "finished sessions are forgotten"
        );
    }
}
