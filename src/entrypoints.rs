//! `AGENTDISPATCH_ENTRYPOINT_ALLOWLIST`: which agent entrypoints a payload may choose with
//! `input.entrypoint`. An entrypoint is code the child imports and runs, so a caller may name
//! one only where the deployment allows it (deny by default, like `command.run`'s allowlist);
//! the entrypoints the deployment itself configures (`AGENTDISPATCH_ENTRYPOINT`, a manifest's
//! `env`) need no entry.

use std::fmt;
use std::path::PathBuf;

use serde_json::Value;

use crate::config::FrameworkEnv;
use crate::frameworks::{Framework, Launch, Source};

/// The variable a Python runner reads its agent's `module:attr` from.
pub const ENTRYPOINT_VAR: &str = "AGENTDISPATCH_ENTRYPOINT";
/// The variable a warm parent reads its warm-up prompt from.
pub const WARMUP_PROMPT_VAR: &str = "AGENTDISPATCH_WARMUP_PROMPT";

/// Where the entrypoint a framework runs comes from; strongest first (the table of
/// docs/entrypoints.md). A payload's `input.entrypoint`, where allowed, beats them all, per task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The worker's `AGENTDISPATCH_ENTRYPOINT_<NAME>`.
    FrameworkVar(String),
    /// The `env` of a framework the worker's environment defines
    /// (`AGENTDISPATCH_FRAMEWORK_COMMANDS`).
    Definition(String),
    /// The worker's `AGENTDISPATCH_ENTRYPOINT`, which names the default framework's agent.
    DefaultVar,
    /// The manifest's `env` (the framework folder's own, e.g. its example agent).
    Manifest(PathBuf),
    /// Nothing sets one: the runner's own default agent (`AGENTDISPATCH_MODEL_ID`).
    Unset,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::FrameworkVar(var) => write!(f, "env {var}"),
            Origin::Definition(var) => write!(f, "env {var}"),
            Origin::DefaultVar => write!(f, "env {ENTRYPOINT_VAR}, for the default framework"),
            Origin::Manifest(p) => write!(f, "manifest {}", p.display()),
            Origin::Unset => f.write_str("nothing sets one"),
        }
    }
}

/// The entrypoint a framework's tasks run unless a payload chooses one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    /// `module:attr`; empty for the runner's own default agent.
    pub spec: String,
    /// Where it comes from.
    pub origin: Origin,
}

impl Chosen {
    /// The entrypoint in words: `my_agent:agent`, or what runs without one.
    pub fn shown(&self) -> &str {
        if self.spec.is_empty() {
            "(none: the runner's default agent, AGENTDISPATCH_MODEL_ID)"
        } else {
            &self.spec
        }
    }
}

/// `<NAME>` of a framework's variables: upper-cased, `-` and `.` → `_`.
pub fn var_suffix(framework: &str) -> String {
    framework
        .chars()
        .map(|c| match c {
            '-' | '.' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

/// Settles which entrypoint `fw` runs (the precedence of [`Origin`]) and writes it into the
/// framework's `env`, which the child gets over the worker's environment: so that a
/// deployment's `ENV` wins over a shipped manifest's example, and the default framework's
/// `AGENTDISPATCH_ENTRYPOINT` does not leak into every other framework. The manifest's warm-up
/// prompt goes with the manifest's entrypoint only: it would otherwise run the deployment's
/// agent (and call its model) at every warm start; the worker's `AGENTDISPATCH_WARMUP_PROMPT`
/// is an explicit ask and wins.
pub fn settle(fw: &mut Framework, fenv: &FrameworkEnv, default_framework: &str) {
    let Launch::Command { env, .. } = &mut fw.launch else {
        return;
    };
    let suffix = var_suffix(&fw.name);
    let named = fenv.entrypoints.iter().find(|(s, _)| *s == suffix);
    let own = env.get(ENTRYPOINT_VAR).map(|s| s.trim().to_string());
    let chosen = if let Some((s, spec)) = named {
        Chosen {
            spec: spec.clone(),
            origin: Origin::FrameworkVar(format!("{ENTRYPOINT_VAR}_{s}")),
        }
    } else if let (Source::Env(var), Some(spec)) = (&fw.source, &own) {
        Chosen {
            spec: spec.clone(),
            origin: Origin::Definition(var.clone()),
        }
    } else if let (true, Some(spec)) = (fw.name == default_framework, &fenv.entrypoint) {
        Chosen {
            spec: spec.clone(),
            origin: Origin::DefaultVar,
        }
    } else if let (Source::Directory(path), Some(spec)) = (&fw.source, own) {
        Chosen {
            spec,
            origin: Origin::Manifest(path.clone()),
        }
    } else {
        Chosen {
            spec: String::new(),
            origin: Origin::Unset,
        }
    };
    let from_manifest = matches!(chosen.origin, Origin::Manifest(_));
    if chosen.origin != Origin::Unset || fenv.entrypoint.is_some() {
        env.insert(ENTRYPOINT_VAR.into(), chosen.spec.clone());
    }
    match &fenv.warmup_prompt {
        Some(prompt) => {
            env.insert(WARMUP_PROMPT_VAR.into(), prompt.clone());
        }
        None if !from_manifest => {
            env.remove(WARMUP_PROMPT_VAR);
        }
        None => {}
    }
    fw.entrypoint = Some(chosen);
}

/// Which frameworks' agents cannot load, as last seen: by a warm parent loading it, or by a
/// task of the deployment's own entrypoint failing to import or resolve it; a load that works
/// clears it. `/ping` says the default framework's (SPEC keeps its status values).
#[derive(Debug, Default)]
pub struct Loading(std::sync::Mutex<std::collections::BTreeMap<String, String>>);

impl Loading {
    fn map(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, String>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `framework`'s agent cannot load: `why`.
    pub fn failed(&self, framework: &str, why: &str) {
        self.map().insert(framework.to_string(), why.to_string());
    }

    /// `framework`'s agent loaded.
    pub fn loaded(&self, framework: &str) {
        self.map().remove(framework);
    }

    /// Why `framework`'s agent cannot load, if it cannot.
    pub fn problem(&self, framework: &str) -> Option<String> {
        self.map().get(framework).cloned()
    }
}

/// The variable a framework child finds the payload's entrypoint in once the worker has
/// allowed it; the Python helper honours `input.entrypoint` only when it matches (defence in
/// depth should a payload ever reach a child without this check).
pub const APPROVED_VAR: &str = "AGENTDISPATCH_PAYLOAD_ENTRYPOINT";

/// One entry of the allowlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// A framework name, or `None` for `*` (every framework).
    pub framework: Option<String>,
    /// A `module:attr`, or `None` for `*` (any entrypoint).
    pub entrypoint: Option<String>,
}

/// Parses the allowlist: comma-separated `framework=module:attr`, `framework=*`, or `*` alone
/// (any framework, any entrypoint: a local developer's opt-in).
pub fn parse_allowlist(v: &str) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    for raw in v.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        if raw == "*" {
            entries.push(Entry {
                framework: None,
                entrypoint: None,
            });
            continue;
        }
        let Some((fw, spec)) = raw.split_once('=') else {
            return Err(format!(
                "entry {raw:?} is not framework=module:attr, framework=* or *"
            ));
        };
        let (fw, spec) = (fw.trim(), spec.trim());
        let framework = match fw {
            "*" => None,
            _ if valid_framework(fw) => Some(fw.to_string()),
            _ => return Err(format!("entry {raw:?}: {fw:?} is not a framework name")),
        };
        let entrypoint = match spec {
            "*" => None,
            _ if valid_spec(spec) => Some(spec.to_string()),
            _ => {
                return Err(format!(
                    "entry {raw:?}: {spec:?} is not module:attr (e.g. my_agent:agent) or *"
                ))
            }
        };
        entries.push(Entry {
            framework,
            entrypoint,
        });
    }
    Ok(entries)
}

fn valid_framework(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn identifiers(dotted: &str) -> bool {
    dotted.split('.').all(|part| {
        let mut chars = part.chars();
        chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
            && chars.all(|c| c.is_alphanumeric() || c == '_')
    })
}

/// `module:attr` with both sides dotted identifiers, as the Python helper accepts them; `()`
/// after it marks a zero-argument factory to call (SPEC §6).
fn valid_spec(spec: &str) -> bool {
    let spec = spec.strip_suffix("()").unwrap_or(spec);
    spec.split_once(':')
        .is_some_and(|(m, a)| identifiers(m) && identifiers(a))
}

/// The entrypoint a payload chooses: `input.entrypoint` when it is a non-empty string (empty
/// or null means none, as the helper reads it); `Err` names a value of another type.
pub fn chosen(input: &serde_json::Map<String, Value>) -> Result<Option<&str>, String> {
    match input.get("entrypoint") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!(
            "input.entrypoint must be a string \"module:attr\", got {}",
            crate::wire::kind_of(other)
        )),
    }
}

/// Whether `framework` may run `entrypoint` when a payload asks for it.
pub fn allowed(allowlist: &[Entry], framework: &str, entrypoint: &str) -> bool {
    allowlist.iter().any(|e| {
        e.framework.as_deref().is_none_or(|f| f == framework)
            && e.entrypoint.as_deref().is_none_or(|s| s == entrypoint)
    })
}

/// The refusal of a payload's entrypoint: what was asked (clipped) and the setting that would
/// allow it.
pub fn refusal(framework: &str, entrypoint: &str) -> String {
    let shown = crate::wire::clip(entrypoint, 200);
    format!(
        "Entrypoint refused: input.entrypoint {shown:?} is not allowed for framework {framework}. \
         A payload may choose only the entrypoints AGENTDISPATCH_ENTRYPOINT_ALLOWLIST lists \
         (e.g. {framework}=my_agent:agent); to run one agent always, set AGENTDISPATCH_ENTRYPOINT instead."
    )
}

/// Start-up warnings: entries that let a caller run any importable code.
pub fn warnings(allowlist: &[Entry]) -> Vec<String> {
    allowlist
        .iter()
        .filter(|e| e.entrypoint.is_none())
        .map(|e| {
            let who = e.framework.as_deref().unwrap_or("every framework");
            format!(
                "AGENTDISPATCH_ENTRYPOINT_ALLOWLIST lets a payload choose any entrypoint for {who}: \
                 anyone who can call this worker can import any module its Python can"
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(fw: Option<&str>, spec: Option<&str>) -> Entry {
        Entry {
            framework: fw.map(str::to_string),
            entrypoint: spec.map(str::to_string),
        }
    }

    #[test]
    fn entries_are_framework_entrypoint_pairs_or_stars() {
        let list = parse_allowlist(
            " strands=my_agent:agent, ,langgraph=*,*=pkg.mod:Box.agent,*,crewai=f:Flow()",
        )
        .unwrap();
        assert_eq!(
            list,
            vec![
                entry(Some("strands"), Some("my_agent:agent")),
                entry(Some("langgraph"), None),
                entry(None, Some("pkg.mod:Box.agent")),
                entry(None, None),
                entry(Some("crewai"), Some("f:Flow()")),
            ]
        );
        assert!(parse_allowlist("").unwrap().is_empty());
    }

    #[test]
    fn bad_entries_say_which_and_why() {
        for (v, words) in [
            ("my_agent:agent", "not framework=module:attr"),
            ("strands=my_agent", "is not module:attr"),
            ("strands=my-agent:agent", "is not module:attr"),
            ("strands=:agent", "is not module:attr"),
            ("strands=m:a()()", "is not module:attr"),
            ("strands=m:a(x)", "is not module:attr"),
            ("str ands=m:a", "is not a framework name"),
            ("=m:a", "is not a framework name"),
        ] {
            let err = parse_allowlist(v).unwrap_err();
            assert!(err.contains(words), "{v}: {err}");
        }
    }

    #[test]
    fn only_listed_pairs_are_allowed() {
        let list = parse_allowlist("strands=my_agent:agent,langgraph=*").unwrap();
        assert!(allowed(&list, "strands", "my_agent:agent"));
        assert!(!allowed(&list, "strands", "cgi:print_environ"));
        assert!(!allowed(&list, "openai-agents", "my_agent:agent"));
        assert!(allowed(&list, "langgraph", "cgi:print_environ"));
        assert!(!allowed(&[], "strands", "my_agent:agent"));
        assert!(allowed(&parse_allowlist("*").unwrap(), "x", "a:b"));
        assert_eq!(warnings(&list).len(), 1);
    }

    #[test]
    fn a_payload_chooses_with_a_non_empty_string() {
        let input = |v: Value| {
            serde_json::json!({ "entrypoint": v })
                .as_object()
                .unwrap()
                .clone()
        };
        assert_eq!(chosen(&input(Value::Null)), Ok(None));
        assert_eq!(chosen(&input("".into())), Ok(None));
        assert_eq!(chosen(&input("m:a".into())), Ok(Some("m:a")));
        let err = chosen(&input(5.into())).unwrap_err();
        assert!(err.contains("input.entrypoint must be a string"), "{err}");
        assert_eq!(chosen(&serde_json::Map::new()), Ok(None));
    }

    fn settled(
        name: &str,
        source: Source,
        env: &[(&str, &str)],
        vars: &[(&str, &str)],
    ) -> Framework {
        let mut fw = Framework {
            name: name.into(),
            description: None,
            launch: Launch::Command {
                argv: vec!["python3".into()],
                cwd: None,
                env: env
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
            timeout: None,
            source,
            warm: true,
            entrypoint: None,
        };
        let vars = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain([("AGENTDISPATCH_FRAMEWORKS_DIR".into(), "/nonexistent".into())]);
        let cfg = crate::config::Config::from_vars(vars).unwrap();
        settle(&mut fw, &cfg.framework_env, &cfg.default_framework);
        fw
    }

    fn env_of(fw: &Framework) -> &std::collections::BTreeMap<String, String> {
        let Launch::Command { env, .. } = &fw.launch else {
            panic!()
        };
        env
    }

    #[test]
    fn the_worker_environment_beats_the_manifest_and_takes_its_warm_up_prompt_away() {
        let manifest = PathBuf::from("/f/langgraph/framework.json");
        let example = [
            (ENTRYPOINT_VAR, "example_agent:agent"),
            (WARMUP_PROMPT_VAR, "hello world"),
        ];
        let dir = || Source::Directory(manifest.clone());
        // The manifest alone: its example, with its warm-up prompt.
        let fw = settled("langgraph", dir(), &example, &[]);
        assert_eq!(
            fw.entrypoint.as_ref().unwrap().origin,
            Origin::Manifest(manifest.clone())
        );
        assert_eq!(env_of(&fw)[WARMUP_PROMPT_VAR], "hello world");
        // AGENTDISPATCH_ENTRYPOINT names the default framework's agent, no other's.
        let default = [
            ("AGENTDISPATCH_AGENT_FRAMEWORK", "langgraph"),
            (ENTRYPOINT_VAR, "my_agent:graph"),
        ];
        let fw = settled("langgraph", dir(), &example, &default);
        assert_eq!(fw.entrypoint.as_ref().unwrap().origin, Origin::DefaultVar);
        assert_eq!(env_of(&fw)[ENTRYPOINT_VAR], "my_agent:graph");
        assert!(!env_of(&fw).contains_key(WARMUP_PROMPT_VAR), "{fw:?}");
        let other = settled("strands", dir(), &example, &default);
        assert_eq!(env_of(&other)[ENTRYPOINT_VAR], "example_agent:agent");
        // Not leaked into a framework that sets none.
        let bare = settled("openai-agents", dir(), &[], &default);
        assert_eq!(bare.entrypoint.as_ref().unwrap().origin, Origin::Unset);
        assert_eq!(env_of(&bare)[ENTRYPOINT_VAR], "");
        // The framework's own variable is strongest; an explicit prompt is kept.
        let mut vars = default.to_vec();
        vars.extend([
            ("AGENTDISPATCH_ENTRYPOINT_OPENAI_AGENTS", "mine:agent"),
            (WARMUP_PROMPT_VAR, ""),
        ]);
        let fw = settled("openai-agents", dir(), &example, &vars);
        assert_eq!(
            fw.entrypoint.as_ref().unwrap().origin,
            Origin::FrameworkVar("AGENTDISPATCH_ENTRYPOINT_OPENAI_AGENTS".into())
        );
        assert_eq!(env_of(&fw)[ENTRYPOINT_VAR], "mine:agent");
        assert_eq!(env_of(&fw)[WARMUP_PROMPT_VAR], "");
        // An environment definition's own env is the deployment's too.
        let src = Source::Env("AGENTDISPATCH_FRAMEWORK_COMMANDS".into());
        let fw = settled(
            "langgraph",
            src,
            &[(ENTRYPOINT_VAR, "defined:agent")],
            &default,
        );
        assert_eq!(env_of(&fw)[ENTRYPOINT_VAR], "defined:agent");
        // The allowlist's variable names no framework.
        let fw = settled(
            "allowlist",
            dir(),
            &[],
            &[("AGENTDISPATCH_ENTRYPOINT_ALLOWLIST", "*")],
        );
        assert_eq!(fw.entrypoint.as_ref().unwrap().origin, Origin::Unset);
    }

    #[test]
    fn the_refusal_clips_the_entrypoint_and_names_the_setting() {
        let long = "m".repeat(5000) + ":a";
        let msg = refusal("strands", &long);
        assert!(msg.len() < 600, "{msg}");
        assert!(msg.contains("AGENTDISPATCH_ENTRYPOINT_ALLOWLIST") && msg.contains("strands="));
    }
}
