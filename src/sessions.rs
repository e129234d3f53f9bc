//! Sessions (SPEC §7.1): one folder per session id under `AGENTDISPATCH_SESSION_DIR`, where the
//! framework keeps the conversation, and one `agent.run` turn at a time per session, in arrival
//! order. Different sessions run in parallel; control requests never wait here.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use tokio::sync::watch;

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

/// Every session's queue of turns.
#[derive(Default)]
pub struct Sessions {
    queues: Mutex<HashMap<String, Queue>>,
}

/// One session's turns: tickets are handed out in arrival order and served one at a time.
struct Queue {
    /// The next ticket to hand out.
    next: u64,
    /// The ticket whose turn it is.
    serving: watch::Sender<u64>,
    /// Tickets given up before their turn (a cancel while waiting): skipped when reached.
    abandoned: BTreeSet<u64>,
}

/// A place in a session's queue, taken when the task is accepted; its turn ends when dropped.
pub struct Ticket {
    sessions: Arc<Sessions>,
    id: String,
    n: u64,
}

impl Sessions {
    /// Takes the next place in `id`'s queue (call in arrival order: this is what orders turns).
    pub fn ticket(self: &Arc<Self>, id: &str) -> Ticket {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        let q = queues.entry(id.to_string()).or_insert_with(|| Queue {
            next: 0,
            serving: watch::channel(0).0,
            abandoned: BTreeSet::new(),
        });
        let n = q.next;
        q.next += 1;
        Ticket {
            sessions: self.clone(),
            id: id.to_string(),
            n,
        }
    }
}

impl Sessions {
    /// Whether the session whose folder is named `folder` has a turn running or waiting:
    /// never removed by the session retention.
    pub fn in_use(&self, folder: &str) -> bool {
        let queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        queues.keys().any(|id| folder_name(id) == folder)
    }
}

impl Ticket {
    /// Waits for this ticket's turn; `waiting` is called first when an earlier turn is not done.
    pub async fn wait(&self, waiting: impl FnOnce()) {
        let mut rx = {
            let queues = self
                .sessions
                .queues
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match queues.get(&self.id) {
                Some(q) => q.serving.subscribe(),
                None => return,
            }
        };
        if *rx.borrow_and_update() != self.n {
            waiting();
            // The sender lives while this ticket does (the queue outlives its tickets).
            let _ = rx.wait_for(|serving| *serving == self.n).await;
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut queues = self
            .sessions
            .queues
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let Some(q) = queues.get_mut(&self.id) else {
            return;
        };
        let serving = *q.serving.borrow();
        if serving != self.n {
            q.abandoned.insert(self.n);
            return;
        }
        let mut next = serving + 1;
        while q.abandoned.remove(&next) {
            next += 1;
        }
        q.serving.send_replace(next);
        if next == q.next {
            queues.remove(&self.id);
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
    async fn turns_are_served_in_ticket_order_one_at_a_time_and_abandoned_ones_skipped() {
        let s = Arc::new(Sessions::default());
        let first = s.ticket("a");
        first.wait(|| panic!("the first turn does not wait")).await;
        let other = s.ticket("b");
        other.wait(|| panic!("another session does not wait")).await;
        let tickets: Vec<Ticket> = (0..4).map(|_| s.ticket("a")).collect();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        // Started in reverse: the order still follows the tickets.
        for (i, t) in tickets.into_iter().enumerate().rev() {
            let order = order.clone();
            waiters.push(tokio::spawn(async move {
                if i == 2 {
                    return; // given up before its turn (dropped unused)
                }
                let mut waited = false;
                t.wait(|| waited = true).await;
                assert!(waited);
                order.lock().unwrap().push(i);
            }));
        }
        tokio::task::yield_now().await;
        assert!(order.lock().unwrap().is_empty());
        drop(first);
        for w in waiters {
            w.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 3]);
        drop(other);
        assert!(
            s.queues.lock().unwrap().is_empty(),
            "finished sessions are forgotten"
        );
    }
}
