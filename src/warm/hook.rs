//! AgentCore's warm-up hook (`hooksConfiguration.build.warmup`, SPEC §12): one HTTP POST
//! before any session, not retried, that must succeed within 120 s. The worker holds it until
//! the warm parents that start with it are ready ([`Pool::warm_up`]); the HTTP side is
//! `http::warmup`.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde::Serialize;

use super::{Pool, Status, When};
use crate::config::{parse_seconds, ConfigError};

/// The hook's path.
pub const PATH_VAR: &str = "AGENTDISPATCH_WARMUP_HOOK_PATH";
/// How long the hook waits at most.
pub const TIMEOUT_VAR: &str = "AGENTDISPATCH_WARMUP_HOOK_TIMEOUT_SECONDS";
/// AgentCore's limit on the hook's path.
pub const MAX_PATH_CHARS: usize = 32;
/// The path AWS's own examples give the hook.
const DEFAULT_PATH: &str = "/warmup";
/// AgentCore gives the hook 120 s; answering a little sooner lets its 503 (and the reason)
/// reach AgentCore's log instead of a timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(115);
/// Paths the worker serves already: the hook cannot take one.
const TAKEN: [&str; 7] = [
    "/",
    "/ping",
    "/health",
    "/invocations",
    "/tasks",
    "/ws",
    "/mcp",
];

/// Where the hook is served and how long it waits.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The path, starting with `/`, without a trailing one.
    pub path: String,
    /// Waits at most this long before answering 503.
    pub timeout: Duration,
}

impl Settings {
    /// From the two variables' values (trimmed, `None` when unset or empty).
    pub fn parse(path: Option<&str>, timeout: Option<&str>) -> Result<Self, ConfigError> {
        let bad = |var: &str, reason: String| ConfigError {
            var: var.to_string(),
            reason,
        };
        let path = path.unwrap_or(DEFAULT_PATH);
        let why = if !path.starts_with('/') {
            Some("does not start with /".to_string())
        } else if path.chars().count() > MAX_PATH_CHARS {
            Some(format!(
                "has {} characters; AgentCore allows {MAX_PATH_CHARS} at most",
                path.chars().count()
            ))
        } else if let Some(c) = path
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "/-._~".contains(*c)))
        {
            Some(format!(
                "holds {c:?}; use letters, digits and / - . _ ~ only"
            ))
        } else if path.contains("//") || path.len() > 1 && path.ends_with('/') {
            Some("has an empty segment (// or a trailing /)".to_string())
        } else if TAKEN.contains(&path)
            || path.starts_with("/tasks/")
            || path.starts_with("/.well-known/")
        {
            Some("is a path the worker serves already".to_string())
        } else {
            None
        };
        if let Some(why) = why {
            return Err(bad(PATH_VAR, format!("{path:?} {why}")));
        }
        let timeout = match timeout {
            None => DEFAULT_TIMEOUT,
            Some(v) => parse_seconds(v).map_err(|reason| bad(TIMEOUT_VAR, reason))?,
        };
        Ok(Settings {
            path: path.to_string(),
            timeout,
        })
    }
}

/// What the hook found.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WarmUp {
    /// Every warm parent that starts with the worker is ready.
    pub ok: bool,
    /// The frameworks whose warm parent is ready.
    pub ready: Vec<String>,
    /// The frameworks waited for in vain, each with what its warm parent was doing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_ready: Vec<NotReady>,
    /// The frameworks whose warm parent starts only after their first task
    /// (`AGENTDISPATCH_WARM=auto`): not waited for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub after_first_task: Vec<String>,
    /// How long the hook waited.
    pub waited_ms: u64,
}

/// A warm parent that was not ready in time.
#[derive(Debug, Serialize)]
pub struct NotReady {
    /// Its framework.
    pub framework: String,
    /// What it was doing.
    pub state: String,
}

impl Pool {
    /// Waits until every warm parent that starts with the worker is ready, for at most
    /// `bound`; the worker's shutdown ends the wait at once.
    pub async fn warm_up(&self, bound: Duration) -> WarmUp {
        let began = Instant::now();
        let mut names: Vec<&String> = self
            .parents
            .iter()
            .filter(|(_, p)| p.when == When::StartUp)
            .map(|(n, _)| n)
            .collect();
        names.sort();
        let waits = names.iter().map(|n| async move {
            let mut rx = self.parents[*n].status.subscribe();
            // Ends when it is ready, or never (the timeout and the shutdown end the wait).
            let _ = rx.wait_for(|s| matches!(s, Status::Ready(_))).await;
        });
        tokio::select! {
            _ = tokio::time::timeout(bound, join_all(waits)) => {}
            _ = self.shutdown.cancelled() => {}
        }
        let mut after_first_task: Vec<String> = self
            .parents
            .iter()
            .filter(|(_, p)| p.when == When::FirstTask)
            .map(|(n, _)| n.clone())
            .collect();
        after_first_task.sort();
        let (mut ready, mut not_ready) = (Vec::new(), Vec::new());
        for n in names {
            let state = match &*self.parents[n].status.borrow() {
                Status::Ready(_) => None,
                Status::Idle => Some("not started yet".to_string()),
                Status::Starting => Some("importing".to_string()),
                Status::Down(why) => Some(format!("restarting: {why}")),
                Status::Stopped => Some("stopped with the worker".to_string()),
            };
            match state {
                None => ready.push(n.clone()),
                Some(state) => not_ready.push(NotReady {
                    framework: n.clone(),
                    state,
                }),
            }
        }
        WarmUp {
            ok: not_ready.is_empty(),
            ready,
            not_ready,
            after_first_task,
            waited_ms: began.elapsed().as_millis() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_is_checked_and_bad_ones_say_why() {
        let s = Settings::parse(None, None).unwrap();
        assert_eq!((s.path.as_str(), s.timeout), ("/warmup", DEFAULT_TIMEOUT));
        assert_eq!(
            Settings::parse(Some("/hooks/warm-up_1"), Some("2.5"))
                .unwrap()
                .timeout,
            Duration::from_millis(2500)
        );
        for (bad, says) in [
            ("warmup", "start with /"),
            ("/warmup-hook-with-a-name-too-long", "33 characters"),
            ("/warm up", "' '"),
            ("/warmup/", "empty segment"),
            ("/ping", "serves already"),
            ("/tasks/x", "serves already"),
        ] {
            let e = Settings::parse(Some(bad), None).unwrap_err();
            assert_eq!(e.var, PATH_VAR);
            assert!(e.to_string().contains(says), "{bad}: {e}");
        }
        let e = Settings::parse(None, Some("soon")).unwrap_err();
        assert_eq!(e.var, TIMEOUT_VAR);
    }
}
