//! Every `AGENTDISPATCH_*` variable (and `PORT`), read once into typed values.
//!
//! Parsing never panics: a bad value becomes a [`ConfigError`] that names the variable, and
//! `main` prints it as the one line that stops start-up.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

mod kinds;
pub use kinds::{ChildEnv, FrameworkEnv, WarmPolicy};

/// A configuration value that cannot be used; `main` prints it and exits 2.
#[derive(Debug, thiserror::Error)]
#[error("invalid {var}: {reason}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: String,
    /// What is wrong with its value.
    pub reason: String,
}

impl ConfigError {
    fn new(var: &str, reason: impl Into<String>) -> Self {
        Self {
            var: var.to_string(),
            reason: reason.into(),
        }
    }
}

/// Which protocol the deployment mainly speaks; only changes the default port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// AgentCore's HTTP protocol (`/invocations`, `/ping`), default port 8080.
    Http,
    /// A2A JSON-RPC, default port 9000.
    A2a,
    /// MCP Streamable HTTP on `/mcp` (SPEC §15), default port 8000, as AgentCore's MCP
    /// protocol expects.
    Mcp,
    /// AG-UI: every `/invocations` body but a control request is a `RunAgentInput` (SPEC
    /// §13), default port 8080.
    Agui,
}

/// The worker's whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub host: IpAddr,
    /// Listen port.
    pub port: u16,
    /// Main protocol (default port only).
    pub protocol: Protocol,
    /// Parent of every task folder.
    pub artifact_dir: PathBuf,
    /// The entries allowed for `command.run`.
    pub command_allowlist: Vec<crate::command::Entry>,
    /// The entrypoints a payload may choose (`AGENTDISPATCH_ENTRYPOINT_ALLOWLIST`); empty: none.
    pub entrypoint_allowlist: Vec<crate::entrypoints::Entry>,
    /// Framework used by `agent.run` when the payload names none.
    pub default_framework: String,
    /// Directory of framework folders, when one is configured or `./frameworks` exists.
    pub frameworks_dir: Option<PathBuf>,
    /// Raw env-defined framework variables, resolved by the framework registry.
    pub framework_env: FrameworkEnv,
    /// Task deadline when neither payload nor framework gives one.
    pub default_timeout: Duration,
    /// Upper bound of any deadline.
    pub max_timeout: Duration,
    /// Interval of `task.heartbeat` events.
    pub heartbeat: Duration,
    /// SIGTERM → SIGKILL grace for a task's process group.
    pub kill_grace: Duration,
    /// Running tasks at once.
    pub max_concurrent_tasks: usize,
    /// Request body limit in bytes.
    pub max_payload_bytes: usize,
    /// Longest child output line kept whole.
    pub max_line_bytes: usize,
    /// Cap on `output` text and on events kept for one response.
    pub max_output_bytes: usize,
    /// Time to stop children and finish responses on SIGTERM.
    pub shutdown_grace: Duration,
    /// Open client connections at most (`AGENTDISPATCH_MAX_CONNECTIONS`).
    pub max_connections: usize,
    /// A request's headers, then its body, must arrive within this
    /// (`AGENTDISPATCH_REQUEST_READ_TIMEOUT_SECONDS`).
    pub request_read_timeout: Duration,
    /// Live event streams of one task at most (`AGENTDISPATCH_MAX_SUBSCRIBERS_PER_TASK`).
    pub max_subscribers_per_task: usize,
    /// A `/ws` socket quiet for this long is pinged (`AGENTDISPATCH_WS_PING_SECONDS`).
    pub ws_ping: Duration,
    /// How long a finished task stays in memory (its folder stays on disk).
    pub task_retention: Duration,
    /// Finished tasks kept in memory at most (`AGENTDISPATCH_MAX_RETAINED_TASKS`).
    pub max_retained_tasks: usize,
    /// How long a finished task's folder stays in the artifact directory; `None`: for ever
    /// (`AGENTDISPATCH_ARTIFACT_RETENTION_SECONDS`, unset by default).
    pub artifact_retention: Option<Duration>,
    /// How long a session's folder stays after its last change, its open questions with it;
    /// `None`: for ever (`AGENTDISPATCH_SESSION_RETENTION_SECONDS`, unset by default).
    pub session_retention: Option<Duration>,
    /// Agent card name.
    pub agent_name: String,
    /// Agent card description.
    pub agent_description: String,
    /// Public URL for the agent card: `AGENTDISPATCH_PUBLIC_URL`, else `AGENTCORE_RUNTIME_URL`.
    pub public_url: Option<String>,
    /// Which frameworks get a warm parent, and when (`AGENTDISPATCH_WARM`).
    pub warm: WarmPolicy,
    /// Parent of each session's folder (`AGENTDISPATCH_SESSION_DIR`).
    pub session_dir: PathBuf,
    /// What of the worker's environment a child sees (`AGENTDISPATCH_CHILD_ENV`).
    pub child_env: ChildEnv,
    /// Whether each task gets a cgroup of its own (`AGENTDISPATCH_TASK_CGROUPS`).
    pub task_cgroups: crate::cgroup::Mode,
    /// Which child lines reach the worker's log, and how many (`AGENTDISPATCH_CHILD_LOG…`).
    pub child_log: crate::childlog::Settings,
    /// AgentCore's warm-up hook (`AGENTDISPATCH_WARMUP_HOOK_…`).
    pub warmup_hook: crate::warm::hook::Settings,
    /// Dev mode (`serve --dev`): framework folders watched, the playground page at `/`.
    pub dev: bool,
}

const NAMED_PREFIX: &str = "AGENTDISPATCH_FRAMEWORK_COMMAND_";

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// Reads configuration from explicit variables (tests, `run`).
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let vars: BTreeMap<String, String> = vars.into_iter().collect();
        let get = |k: &str| vars.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());

        let protocol = match get("AGENTDISPATCH_WORKER_PROTOCOL") {
            None => Protocol::Http,
            Some(v) if v.eq_ignore_ascii_case("http") => Protocol::Http,
            Some(v) if v.eq_ignore_ascii_case("a2a") => Protocol::A2a,
            Some(v) if v.eq_ignore_ascii_case("mcp") => Protocol::Mcp,
            Some(v) if v.eq_ignore_ascii_case("agui") => Protocol::Agui,
            Some(v) => {
                return Err(ConfigError::new(
                    "AGENTDISPATCH_WORKER_PROTOCOL",
                    format!("{v:?} is not one of \"http\", \"a2a\", \"mcp\", \"agui\""),
                ))
            }
        };
        let port = match get("PORT") {
            None => match protocol {
                Protocol::Http | Protocol::Agui => 8080,
                Protocol::A2a => 9000,
                Protocol::Mcp => 8000,
            },
            Some(v) => v.parse::<u16>().map_err(|_| {
                ConfigError::new("PORT", format!("{v:?} is not a port number (0-65535)"))
            })?,
        };
        let host = match get("AGENTDISPATCH_HOST") {
            None => IpAddr::from([0, 0, 0, 0]),
            Some(v) => v.parse().map_err(|_| {
                ConfigError::new("AGENTDISPATCH_HOST", format!("{v:?} is not an IP address"))
            })?,
        };
        let command_allowlist = match get("AGENTDISPATCH_COMMAND_ALLOWLIST") {
            None => Vec::new(),
            Some(v) => crate::command::parse_allowlist(v)
                .map_err(|reason| ConfigError::new("AGENTDISPATCH_COMMAND_ALLOWLIST", reason))?,
        };
        let entrypoint_allowlist = match get("AGENTDISPATCH_ENTRYPOINT_ALLOWLIST") {
            None => Vec::new(),
            Some(v) => crate::entrypoints::parse_allowlist(v)
                .map_err(|reason| ConfigError::new("AGENTDISPATCH_ENTRYPOINT_ALLOWLIST", reason))?,
        };
        let frameworks_dir = match get("AGENTDISPATCH_FRAMEWORKS_DIR") {
            Some(v) => Some(PathBuf::from(v)),
            None => {
                let local = PathBuf::from("frameworks");
                local.is_dir().then_some(local)
            }
        };
        let secs = |var: &str, default: f64| -> Result<Duration, ConfigError> {
            match get(var) {
                None => Ok(Duration::from_secs_f64(default)),
                Some(v) => parse_seconds(v).map_err(|reason| ConfigError::new(var, reason)),
            }
        };
        // A retention: unset (or empty) is for ever.
        let optional_secs = |var: &str| -> Result<Option<Duration>, ConfigError> {
            get(var)
                .map(|v| parse_seconds(v).map_err(|reason| ConfigError::new(var, reason)))
                .transpose()
        };
        let count = |var: &str, default: usize| -> Result<usize, ConfigError> {
            match get(var) {
                None => Ok(default),
                Some(v) => match v.parse::<usize>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(ConfigError::new(
                        var,
                        format!("{v:?} is not a positive whole number"),
                    )),
                },
            }
        };

        let mut named: Vec<(String, String)> = vars
            .iter()
            .filter_map(|(k, v)| {
                let suffix = k.strip_prefix(NAMED_PREFIX)?;
                (!suffix.is_empty() && !v.trim().is_empty()).then(|| {
                    (
                        suffix.to_ascii_lowercase().replace('_', "-"),
                        v.trim().to_string(),
                    )
                })
            })
            .collect();
        named.sort();

        let framework_env = FrameworkEnv {
            command: get("AGENTDISPATCH_FRAMEWORK_COMMAND").map(str::to_string),
            command_name: get("AGENTDISPATCH_AGENT_FRAMEWORK")
                .unwrap_or("command")
                .to_string(),
            command_timeout: match get("AGENTDISPATCH_FRAMEWORK_TIMEOUT_SECONDS") {
                None => None,
                Some(v) => Some(parse_seconds(v).map_err(|reason| {
                    ConfigError::new("AGENTDISPATCH_FRAMEWORK_TIMEOUT_SECONDS", reason)
                })?),
            },
            commands_json: get("AGENTDISPATCH_FRAMEWORK_COMMANDS").map(str::to_string),
            named,
            // Raw: set but empty is a choice too (the default agent; no warm-up run).
            entrypoint: vars
                .get("AGENTDISPATCH_ENTRYPOINT")
                .map(|v| v.trim().to_string()),
            entrypoints: vars
                .iter()
                .filter_map(|(k, v)| {
                    let suffix = k.strip_prefix("AGENTDISPATCH_ENTRYPOINT_")?;
                    (!suffix.is_empty() && suffix != "ALLOWLIST")
                        .then(|| (suffix.to_string(), v.trim().to_string()))
                })
                .collect(),
            warmup_prompt: vars.get("AGENTDISPATCH_WARMUP_PROMPT").cloned(),
        };

        let max_timeout = secs("AGENTDISPATCH_MAX_TIMEOUT_SECONDS", 28800.0)?;
        let default_timeout =
            secs("AGENTDISPATCH_DEFAULT_TIMEOUT_SECONDS", 900.0)?.min(max_timeout);

        Ok(Config {
            host,
            port,
            protocol,
            artifact_dir: PathBuf::from(
                get("AGENTDISPATCH_ARTIFACT_DIR").unwrap_or("/tmp/agentdispatch-artifacts"),
            ),
            command_allowlist,
            entrypoint_allowlist,
            default_framework: get("AGENTDISPATCH_AGENT_FRAMEWORK")
                .unwrap_or("echo")
                .to_string(),
            frameworks_dir,
            framework_env,
            default_timeout,
            max_timeout,
            heartbeat: secs("AGENTDISPATCH_HEARTBEAT_SECONDS", 10.0)?,
            kill_grace: secs("AGENTDISPATCH_KILL_GRACE_SECONDS", 5.0)?,
            max_concurrent_tasks: count("AGENTDISPATCH_MAX_CONCURRENT_TASKS", 8)?,
            max_payload_bytes: count("AGENTDISPATCH_MAX_PAYLOAD_BYTES", 100_000_000)?,
            max_line_bytes: count("AGENTDISPATCH_MAX_LINE_BYTES", 1_048_576)?,
            max_output_bytes: count("AGENTDISPATCH_MAX_OUTPUT_BYTES", 10_485_760)?,
            shutdown_grace: secs("AGENTDISPATCH_SHUTDOWN_GRACE_SECONDS", 10.0)?,
            max_connections: count("AGENTDISPATCH_MAX_CONNECTIONS", 1024)?,
            request_read_timeout: secs("AGENTDISPATCH_REQUEST_READ_TIMEOUT_SECONDS", 30.0)?,
            max_subscribers_per_task: count("AGENTDISPATCH_MAX_SUBSCRIBERS_PER_TASK", 32)?,
            // Well under the idle drop of AgentCore's proxy (minutes) and of common load
            // balancers (60 s), so that a socket between tasks stays open.
            ws_ping: secs("AGENTDISPATCH_WS_PING_SECONDS", 30.0)?,
            task_retention: secs("AGENTDISPATCH_TASK_RETENTION_SECONDS", 3600.0)?,
            max_retained_tasks: count("AGENTDISPATCH_MAX_RETAINED_TASKS", 10_000)?,
            artifact_retention: optional_secs("AGENTDISPATCH_ARTIFACT_RETENTION_SECONDS")?,
            session_retention: optional_secs("AGENTDISPATCH_SESSION_RETENTION_SECONDS")?,
            agent_name: get("AGENTDISPATCH_AGENT_NAME")
                .unwrap_or("AgentDispatch Worker")
                .to_string(),
            agent_description: get("AGENTDISPATCH_AGENT_DESCRIPTION")
                .unwrap_or("Runs agent frameworks and allowlisted commands as supervised tasks.")
                .to_string(),
            public_url: get("AGENTDISPATCH_PUBLIC_URL")
                .or_else(|| get("AGENTCORE_RUNTIME_URL"))
                .map(str::to_string),
            warm: WarmPolicy::parse(get("AGENTDISPATCH_WARM"))?,
            child_env: match get("AGENTDISPATCH_CHILD_ENV") {
                None => ChildEnv::Inherit,
                Some(v) if v.eq_ignore_ascii_case("inherit") => ChildEnv::Inherit,
                Some(v) if v.eq_ignore_ascii_case("minimal") => ChildEnv::Minimal(
                    get("AGENTDISPATCH_CHILD_ENV_PASS")
                        .unwrap_or("")
                        .split(',')
                        .map(str::trim)
                        .filter(|n| !n.is_empty())
                        .map(str::to_string)
                        .collect(),
                ),
                Some(v) => {
                    return Err(ConfigError::new(
                        "AGENTDISPATCH_CHILD_ENV",
                        format!("{v:?} is neither \"inherit\" nor \"minimal\""),
                    ))
                }
            },
            session_dir: PathBuf::from(
                get("AGENTDISPATCH_SESSION_DIR").unwrap_or("/tmp/agentdispatch-sessions"),
            ),
            task_cgroups: match get("AGENTDISPATCH_TASK_CGROUPS") {
                None => crate::cgroup::Mode::Auto,
                Some(v) if v.eq_ignore_ascii_case("auto") => crate::cgroup::Mode::Auto,
                Some(v) if v.eq_ignore_ascii_case("off") => crate::cgroup::Mode::Off,
                Some(v) => {
                    return Err(ConfigError::new(
                        "AGENTDISPATCH_TASK_CGROUPS",
                        format!("{v:?} is neither \"auto\" nor \"off\""),
                    ))
                }
            },
            child_log: crate::childlog::Settings::parse(
                get(crate::childlog::MODE_VAR),
                get(crate::childlog::RATE_VAR),
            )?,
            warmup_hook: crate::warm::hook::Settings::parse(
                get(crate::warm::hook::PATH_VAR),
                get(crate::warm::hook::TIMEOUT_VAR),
            )?,
            // Set by the command line (`serve --dev`), never by the environment: a deployment's
            // environment cannot turn the playground on by mistake.
            dev: false,
        })
    }
}

/// Parses a positive number of seconds (fractions allowed).
pub fn parse_seconds(v: &str) -> Result<Duration, String> {
    match v.parse::<f64>() {
        Ok(s) if (0.001..1e9).contains(&s) => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!(
            "{v:?} is not a number of seconds of at least 0.001"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn defaults_follow_the_spec() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.port, 8080);
        assert_eq!(c.default_framework, "echo");
        assert_eq!(c.max_concurrent_tasks, 8);
        assert_eq!(c.default_timeout, Duration::from_secs(900));
        assert!(c.command_allowlist.is_empty());
        assert!(
            c.entrypoint_allowlist.is_empty(),
            "a payload chooses no entrypoint by default"
        );
        assert_eq!(c.task_cgroups, crate::cgroup::Mode::Auto);
        let off = cfg(&[("AGENTDISPATCH_TASK_CGROUPS", "OFF")]).unwrap();
        assert_eq!(off.task_cgroups, crate::cgroup::Mode::Off);
    }

    #[test]
    fn a2a_protocol_moves_the_default_port_only() {
        assert_eq!(
            cfg(&[("AGENTDISPATCH_WORKER_PROTOCOL", "a2a")])
                .unwrap()
                .port,
            9000
        );
        let c = cfg(&[("AGENTDISPATCH_WORKER_PROTOCOL", "A2A"), ("PORT", "81")]).unwrap();
        assert_eq!(c.port, 81);
        let c = cfg(&[("AGENTDISPATCH_WORKER_PROTOCOL", "agui")]).unwrap();
        assert_eq!((c.protocol, c.port), (Protocol::Agui, 8080));
    }

    #[test]
    fn mcp_protocol_listens_on_8000_by_default() {
        let c = cfg(&[("AGENTDISPATCH_WORKER_PROTOCOL", "MCP")]).unwrap();
        assert_eq!((c.port, c.protocol), (8000, Protocol::Mcp));
        let bad = cfg(&[("AGENTDISPATCH_WORKER_PROTOCOL", "grpc")]).unwrap_err();
        assert!(bad.to_string().contains("\"mcp\""), "{bad}");
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, val) in [
            ("PORT", "http"),
            ("AGENTDISPATCH_WORKER_PROTOCOL", "grpc"),
            ("AGENTDISPATCH_HEARTBEAT_SECONDS", "-1"),
            ("AGENTDISPATCH_MAX_CONCURRENT_TASKS", "0"),
            ("AGENTDISPATCH_HOST", "nowhere"),
            ("AGENTDISPATCH_FRAMEWORK_TIMEOUT_SECONDS", "soon"),
            ("AGENTDISPATCH_TASK_CGROUPS", "on"),
            ("AGENTDISPATCH_ENTRYPOINT_ALLOWLIST", "my_agent:agent"),
        ] {
            let err = cfg(&[(var, val)]).unwrap_err();
            assert_eq!(err.var, var);
            assert!(err.to_string().contains(var), "{err}");
        }
    }

    #[test]
    fn allowlist_entries_are_token_lists() {
        use crate::command::Entry;
        let c = cfg(&[("AGENTDISPATCH_COMMAND_ALLOWLIST", "git status, ls ,,echo")]).unwrap();
        assert_eq!(
            c.command_allowlist,
            vec![
                Entry::Prefix(vec!["git".to_string(), "status".to_string()]),
                Entry::Prefix(vec!["ls".into()]),
                Entry::Prefix(vec!["echo".into()])
            ]
        );
        let err = cfg(&[("AGENTDISPATCH_COMMAND_ALLOWLIST", "git *")]).unwrap_err();
        assert_eq!(err.var, "AGENTDISPATCH_COMMAND_ALLOWLIST");
    }

    #[test]
    fn named_framework_variables_are_lowercased_with_dashes() {
        let c = cfg(&[("AGENTDISPATCH_FRAMEWORK_COMMAND_MY_AGENT", "python3 a.py")]).unwrap();
        assert_eq!(
            c.framework_env.named,
            vec![("my-agent".into(), "python3 a.py".into())]
        );
    }
}
