//! The control messages between the worker and a warm parent, typed (docs/warm-protocol.md).
//! The Python side is `frameworks/_shared/agentdispatch/warm/messages.py`; one message of each
//! kind is in `tests/fixtures/warm-messages.json`, which both sides' tests read with their types.
//!
//! Fields a reader does not know are ignored (an older worker, a newer parent); a field it knows
//! with the wrong type fails the message, with serde's reason naming the field.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Parent → worker, once, when the parent can fork.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(super) enum ParentHello {
    Ready(Ready),
}

/// What a warm parent reports when it is ready (all but `pid` may be left out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Ready {
    pub pid: u32,
    /// The manifest's entrypoint it imported, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<String>,
    /// Why the entrypoint's agent cannot load (import, build), when it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint_error: Option<String>,
    /// Its threads when ready: it forks only while it has one.
    #[serde(default = "one")]
    pub threads: u64,
    #[serde(default)]
    pub import_ms: f64,
    #[serde(default)]
    pub fork: ForkMode,
    /// Why spares are made with two forks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fork_why: Option<String>,
    #[serde(default, rename = "hugeMB")]
    pub huge_mb: f64,
    /// Objects made immortal.
    #[serde(default)]
    pub immortal: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immortal_why: Option<String>,
    /// Placeholders put in pymalloc's free blocks.
    #[serde(default)]
    pub plugged: u64,
    #[serde(default)]
    pub tuning: TuningMode,
    /// The interpreter, C library and machine, as the parent's gate saw them.
    #[serde(default)]
    pub runtime: String,
    /// The tricks in effect.
    #[serde(default)]
    pub tricks: Vec<String>,
    /// The tricks not in effect, each with why.
    #[serde(default)]
    pub tricks_off: BTreeMap<String, String>,
}

fn one() -> u64 {
    1
}

/// How a parent makes its spares the worker's children.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum ForkMode {
    /// One `clone(CLONE_PARENT)`.
    Clone,
    /// A fork through an intermediate that exits (the spare re-parents to the worker).
    #[default]
    Double,
}

/// `AGENTDISPATCH_WARM_TUNING`: all the tricks the gate allows, or none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum TuningMode {
    #[default]
    Full,
    Plain,
}

impl ForkMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ForkMode::Clone => "clone",
            ForkMode::Double => "double",
        }
    }
}

impl TuningMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TuningMode::Full => "full",
            TuningMode::Plain => "plain",
        }
    }
}

/// Worker → parent, with the task's stdin, stdout and stderr attached (and with task cgroups
/// the next spare's `cgroup.procs` as a fourth descriptor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub(super) enum Request {
    Fork(ForkRequest),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ForkRequest {
    pub task_id: String,
    /// Set in the task process (the task id's marker included).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Removed from its environment.
    #[serde(default)]
    pub unset: Vec<String>,
    pub cwd: Option<PathBuf>,
    /// Other tasks run beside this one: the next spare copies nothing ahead and has no holder.
    #[serde(default)]
    pub busy: bool,
}

/// Parent → worker, the answer to a fork request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawReply", into = "RawReply")]
pub(super) enum Reply {
    /// The task process, the worker's child.
    Forked {
        pid: i32,
        /// Pages its spare copied ahead.
        pages_ahead: Option<u64>,
        /// Its memory holder, not a task process.
        holder: Option<u32>,
    },
    /// No task process; the task starts cold with this reason.
    Refused { reason: String },
}

/// A reply as it is sent: `{"ok":true,"pid",…}` or `{"ok":false,"reason"}` (serde tags by
/// strings, not booleans, so the enum goes through this).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawReply {
    ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pages_ahead: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    holder: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

impl TryFrom<RawReply> for Reply {
    type Error = String;

    fn try_from(raw: RawReply) -> Result<Reply, String> {
        if !raw.ok {
            let reason = raw.reason.unwrap_or_else(|| "no reason given".into());
            return Ok(Reply::Refused { reason });
        }
        let Some(pid) = raw.pid else {
            return Err("a fork answer without a pid".into());
        };
        match i32::try_from(pid) {
            Ok(pid) if pid > 0 => Ok(Reply::Forked {
                pid,
                pages_ahead: raw.pages_ahead,
                holder: raw.holder,
            }),
            _ => Err(format!("a fork answer with pid {pid}")),
        }
    }
}

impl From<Reply> for RawReply {
    fn from(r: Reply) -> RawReply {
        let mut raw = RawReply {
            ok: false,
            pid: None,
            pages_ahead: None,
            holder: None,
            reason: None,
        };
        match r {
            Reply::Forked {
                pid,
                pages_ahead,
                holder,
            } => {
                raw.ok = true;
                raw.pid = Some(pid.into());
                raw.pages_ahead = pages_ahead;
                raw.holder = holder;
            }
            Reply::Refused { reason } => raw.reason = Some(reason),
        }
        raw
    }
}

/// Reads `bytes` as a `what` message, or says what is wrong with it (and shows its start).
pub(super) fn parse<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| {
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]);
        format!("not a {what} message ({e}): {text}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// The fixture both test suites read: `kind` → valid messages, and `invalid` → `kind` → ones
    /// each side must refuse.
    fn fixture() -> Value {
        let text = include_str!("../../tests/fixtures/warm-messages.json");
        serde_json::from_str(text).expect("the fixture is JSON")
    }

    fn check<T: serde::de::DeserializeOwned + Serialize>(kind: &str) {
        let all = fixture();
        let valid = all[kind].as_array().expect("valid messages");
        assert!(!valid.is_empty(), "{kind}: no example");
        for msg in valid {
            let bytes = serde_json::to_vec(msg).unwrap();
            let typed: T = parse(kind, &bytes).unwrap_or_else(|e| panic!("{kind}: {e}"));
            // Every field of the example is one the type knows: it comes back unchanged.
            assert_eq!(&serde_json::to_value(&typed).unwrap(), msg, "{kind}");
        }
        let invalid = all["invalid"][kind].as_array().expect("invalid messages");
        for msg in invalid {
            let bytes = serde_json::to_vec(msg).unwrap();
            assert!(parse::<T>(kind, &bytes).is_err(), "{kind}: took {msg}");
        }
    }

    #[test]
    fn every_message_of_the_fixture_reads_as_its_type_and_back() {
        check::<ParentHello>("ready");
        check::<Request>("fork");
        check::<Reply>("reply");
    }

    #[test]
    fn a_refusal_without_a_reason_and_a_ready_with_only_its_pid_read_with_defaults() {
        let r: Reply = parse("reply", br#"{"ok":false}"#).unwrap();
        assert_eq!(
            r,
            Reply::Refused {
                reason: "no reason given".into()
            }
        );
        let ParentHello::Ready(ready) = parse("ready", br#"{"type":"ready","pid":7}"#).unwrap();
        assert_eq!(
            (ready.threads, ready.fork, ready.tuning),
            (1, ForkMode::Double, TuningMode::Full)
        );
        let e = parse::<Reply>("reply", br#"{"ok":true}"#).unwrap_err();
        assert!(e.contains("without a pid"), "{e}");
    }
}
