//! `AGENTDISPATCH_ENTRYPOINT_ALLOWLIST`: which agent entrypoints a payload may choose with
//! `input.entrypoint`. An entrypoint is code the child imports and runs, so a caller may name
//! one only where the deployment allows it (deny by default, like `command.run`'s allowlist);
//! the entrypoints the deployment itself configures (`AGENTDISPATCH_ENTRYPOINT`, a manifest's
//! `env`) need no entry.

use serde_json::Value;

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

/// `module:attr` with both sides dotted identifiers, as the Python helper accepts them.
fn valid_spec(spec: &str) -> bool {
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
        let list =
            parse_allowlist(" strands=my_agent:agent, ,langgraph=*,*=pkg.mod:Box.agent,*").unwrap();
        assert_eq!(
            list,
            vec![
                entry(Some("strands"), Some("my_agent:agent")),
                entry(Some("langgraph"), None),
                entry(None, Some("pkg.mod:Box.agent")),
                entry(None, None),
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

    #[test]
    fn the_refusal_clips_the_entrypoint_and_names_the_setting() {
        let long = "m".repeat(5000) + ":a";
        let msg = refusal("strands", &long);
        assert!(msg.len() < 600, "{msg}");
        assert!(msg.contains("AGENTDISPATCH_ENTRYPOINT_ALLOWLIST") && msg.contains("strands="));
    }
}
