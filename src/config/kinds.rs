//! The configuration's kinds of value that are more than a number or a path: what of the
//! environment a child inherits, which frameworks get a warm parent, and the env-defined
//! frameworks' variables kept raw for the registry.

use std::time::Duration;

use super::ConfigError;

/// `AGENTDISPATCH_CHILD_ENV`: what of the worker's environment a child inherits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildEnv {
    /// All of it (the reference worker's behaviour).
    Inherit,
    /// Only `PATH`, `HOME`, `LANG`, `TZ` and these names (`AGENTDISPATCH_CHILD_ENV_PASS`).
    Minimal(Vec<String>),
}

impl ChildEnv {
    /// Names every minimal environment keeps.
    pub const ALWAYS: [&'static str; 4] = ["PATH", "HOME", "LANG", "TZ"];

    /// The worker's variables a child keeps in minimal mode; `None` to inherit everything.
    pub fn kept(&self) -> Option<Vec<(String, String)>> {
        let ChildEnv::Minimal(pass) = self else {
            return None;
        };
        let names = Self::ALWAYS
            .iter()
            .copied()
            .chain(pass.iter().map(String::as_str));
        Some(
            names
                .filter_map(|n| std::env::var(n).ok().map(|v| (n.to_string(), v)))
                .collect(),
        )
    }
}

/// `AGENTDISPATCH_WARM`: which frameworks with `"warm": true` get a warm parent (SPEC §6.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarmPolicy {
    /// The default framework's at start-up, any other one after its first task.
    Auto,
    /// Every one, at start-up.
    All,
    /// None.
    None,
    /// These, at start-up; no other.
    List(Vec<String>),
}

impl WarmPolicy {
    pub(super) fn parse(v: Option<&str>) -> Result<Self, ConfigError> {
        let Some(v) = v else {
            return Ok(WarmPolicy::Auto);
        };
        Ok(match v.to_ascii_lowercase().as_str() {
            "auto" => WarmPolicy::Auto,
            "all" => WarmPolicy::All,
            "none" | "off" | "0" | "false" => WarmPolicy::None,
            _ => {
                let names: Vec<String> = v
                    .split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_string)
                    .collect();
                if let Some(bad) = names.iter().find(|n| {
                    !n.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                }) {
                    return Err(ConfigError::new(
                        "AGENTDISPATCH_WARM",
                        format!("{bad:?} is not a framework name (expected auto, all, none, or a comma-separated list of names)"),
                    ));
                }
                WarmPolicy::List(names)
            }
        })
    }
}

/// The env-defined framework variables, kept raw so the registry owns their meaning.
#[derive(Debug, Clone, Default)]
pub struct FrameworkEnv {
    /// `AGENTDISPATCH_FRAMEWORK_COMMAND`.
    pub command: Option<String>,
    /// The name it goes by: `AGENTDISPATCH_AGENT_FRAMEWORK`, else `command`.
    pub command_name: String,
    /// `AGENTDISPATCH_FRAMEWORK_TIMEOUT_SECONDS`.
    pub command_timeout: Option<Duration>,
    /// `AGENTDISPATCH_FRAMEWORK_COMMANDS` (JSON text).
    pub commands_json: Option<String>,
    /// `AGENTDISPATCH_FRAMEWORK_COMMAND_<NAME>` as (framework name, command).
    pub named: Vec<(String, String)>,
    /// `AGENTDISPATCH_ENTRYPOINT` as set (empty included: the runner's default agent), for the
    /// default framework.
    pub entrypoint: Option<String>,
    /// `AGENTDISPATCH_ENTRYPOINT_<NAME>` as (`<NAME>`, value), the allowlist's variable aside.
    pub entrypoints: Vec<(String, String)>,
    /// `AGENTDISPATCH_WARMUP_PROMPT` as set (empty included: no warm-up run).
    pub warmup_prompt: Option<String>,
}
