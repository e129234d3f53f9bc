//! The framework registry: the built-in `echo`, the frameworks directory, and frameworks defined
//! in the environment, merged in the precedence order of the spec (later wins).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::command;
use crate::config::{parse_seconds, Config, ConfigError};
use crate::wire::kind_of;

/// Where a framework definition came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Compiled in.
    BuiltIn,
    /// A `framework.json` in the frameworks directory.
    Directory(PathBuf),
    /// An environment variable.
    Env(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::BuiltIn => f.write_str("built-in"),
            Source::Directory(p) => write!(f, "{}", p.display()),
            Source::Env(var) => write!(f, "env {var}"),
        }
    }
}

/// How a framework runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launch {
    /// The built-in echo: no child process.
    Echo,
    /// A child process speaking the NDJSON child protocol.
    Command {
        /// Program and arguments.
        argv: Vec<String>,
        /// Working directory (the framework's folder), if any.
        cwd: Option<PathBuf>,
        /// Extra environment.
        env: BTreeMap<String, String>,
    },
}

/// One framework the worker can run.
#[derive(Debug, Clone)]
pub struct Framework {
    /// Name used in payloads.
    pub name: String,
    /// One line for `frameworks` and the agent card.
    pub description: Option<String>,
    /// How it runs.
    pub launch: Launch,
    /// Its own default deadline.
    pub timeout: Option<Duration>,
    /// Where it was defined.
    pub source: Source,
    /// The manifest says `"warm": true`: it may run from a warm parent (SPEC §6.3).
    pub warm: bool,
    /// The entrypoint its tasks run and where that comes from (`None`: the built-in echo).
    pub entrypoint: Option<crate::entrypoints::Chosen>,
}

impl Framework {
    /// Whether the program can be found (for `agentdispatch-worker frameworks`).
    pub fn program_found(&self) -> bool {
        match &self.launch {
            Launch::Echo => true,
            Launch::Command { argv, .. } => program_exists(&argv[0]),
        }
    }
}

/// Whether `program` is an executable file, by path or on `PATH`.
pub fn program_exists(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let is_exec = |p: &Path| {
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if program.contains('/') {
        return is_exec(Path::new(program));
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| is_exec(&dir.join(program))))
        .unwrap_or(false)
}

/// Every framework the worker knows, by name.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    frameworks: BTreeMap<String, Framework>,
    /// Folders skipped because their manifest is broken, one line each.
    pub warnings: Vec<String>,
}

impl Registry {
    /// Builds the registry from the configuration. A bad env definition stops start-up; a
    /// broken manifest only adds a warning.
    pub fn load(cfg: &Config) -> Result<Registry, ConfigError> {
        let mut reg = Registry::default();
        reg.insert(Framework {
            name: "echo".into(),
            description: Some("Built-in: answers with the instruction it was given.".into()),
            launch: Launch::Echo,
            timeout: None,
            source: Source::BuiltIn,
            warm: false,
            entrypoint: None,
        });
        if let Some(dir) = &cfg.frameworks_dir {
            reg.load_dir(dir);
        }
        let fenv = &cfg.framework_env;
        if let Some(cmd) = &fenv.command {
            const VAR: &str = "AGENTDISPATCH_FRAMEWORK_COMMAND";
            let name = fenv.command_name.clone();
            let argv = split_env(VAR, cmd)?;
            reg.insert(env_framework(
                name,
                argv,
                fenv.command_timeout,
                BTreeMap::new(),
                VAR,
            ));
        }
        if let Some(json) = &fenv.commands_json {
            const VAR: &str = "AGENTDISPATCH_FRAMEWORK_COMMANDS";
            let bad = |reason: String| ConfigError {
                var: VAR.into(),
                reason,
            };
            let map: serde_json::Map<String, Value> = match serde_json::from_str(json) {
                Ok(Value::Object(m)) => m,
                Ok(other) => {
                    return Err(bad(format!(
                        "must be a JSON object, got {}",
                        kind_of(&other)
                    )))
                }
                Err(e) => return Err(bad(format!("not valid JSON: {e}"))),
            };
            for (name, def) in map {
                let fw = parse_definition(&name, &def).map_err(|r| bad(format!("{name}: {r}")))?;
                // `warm` as in a manifest: a runner on the shared helper may be warm however it
                // was defined.
                let warm = parse_warm(def.as_object()).map_err(|r| bad(format!("{name}: {r}")))?;
                let mut fw = env_framework(name, fw.0, fw.1, fw.2, VAR);
                fw.warm = warm;
                reg.insert(fw);
            }
        }
        for (name, cmd) in &fenv.named {
            let var = format!(
                "AGENTDISPATCH_FRAMEWORK_COMMAND_{}",
                name.to_ascii_uppercase().replace('-', "_")
            );
            let argv = split_env(&var, cmd)?;
            reg.insert(env_framework(
                name.clone(),
                argv,
                None,
                BTreeMap::new(),
                &var,
            ));
        }
        for fw in reg.frameworks.values_mut() {
            crate::entrypoints::settle(fw, fenv, &cfg.default_framework);
        }
        Ok(reg)
    }

    fn insert(&mut self, fw: Framework) {
        self.frameworks.insert(fw.name.clone(), fw);
    }

    fn load_dir(&mut self, dir: &Path) {
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                self.warnings.push(format!(
                    "frameworks directory {} cannot be read: {e}",
                    dir.display()
                ));
                return;
            }
        };
        let mut folders: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .filter(|p| {
                let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                !n.starts_with('.') && !n.starts_with('_')
            })
            .collect();
        folders.sort();
        for folder in folders {
            let manifest = folder.join("framework.json");
            if !manifest.exists() {
                continue;
            }
            match load_manifest(&folder, &manifest) {
                Ok(fw) => self.insert(fw),
                Err(reason) => self.warnings.push(format!(
                    "skipping framework {}: {reason}",
                    manifest.display()
                )),
            }
        }
    }

    /// The framework called `name`.
    pub fn get(&self, name: &str) -> Option<&Framework> {
        self.frameworks.get(name)
    }

    /// Every framework, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Framework> {
        self.frameworks.values()
    }
}

fn env_framework(
    name: String,
    argv: Vec<String>,
    timeout: Option<Duration>,
    env: BTreeMap<String, String>,
    var: &str,
) -> Framework {
    Framework {
        name,
        description: None,
        launch: Launch::Command {
            argv,
            cwd: None,
            env,
        },
        timeout,
        source: Source::Env(var.to_string()),
        warm: false,
        entrypoint: None,
    }
}

fn split_env(var: &str, cmd: &str) -> Result<Vec<String>, ConfigError> {
    command::split(cmd).map_err(|e| ConfigError {
        var: var.to_string(),
        reason: e
            .to_string()
            .replace("command.run input.command", "the command"),
    })
}

type Definition = (Vec<String>, Option<Duration>, BTreeMap<String, String>);

/// A definition's `"warm"` (SPEC §6.3): absent or null is false.
fn parse_warm(obj: Option<&serde_json::Map<String, Value>>) -> Result<bool, String> {
    match obj.and_then(|o| o.get("warm")) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(format!(
            "warm must be true or false, got {}",
            kind_of(other)
        )),
    }
}

/// Parses `"cmd args"` or `{command, timeoutSeconds?, env?, warm?}` (command as string or array).
fn parse_definition(name: &str, def: &Value) -> Result<Definition, String> {
    if name.trim().is_empty() {
        return Err("a framework name must not be empty".into());
    }
    let (command, obj) = match def {
        Value::String(_) => (def, None),
        Value::Object(o) => (o.get("command").ok_or("has no \"command\"")?, Some(o)),
        other => {
            return Err(format!(
                "must be a string or an object, got {}",
                kind_of(other)
            ))
        }
    };
    let argv = parse_command(command)?;
    let timeout = match obj.and_then(|o| o.get("timeoutSeconds")) {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_seconds(&v.to_string()).map_err(|e| format!("timeoutSeconds: {e}"))?),
    };
    let mut env = BTreeMap::new();
    match obj.and_then(|o| o.get("env")) {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(_) | Value::Bool(_) => v.to_string(),
                    other => {
                        return Err(format!("env.{k} must be a string, got {}", kind_of(other)))
                    }
                };
                env.insert(k.clone(), v);
            }
        }
        Some(other) => return Err(format!("env must be an object, got {}", kind_of(other))),
    }
    Ok((argv, timeout, env))
}

fn parse_command(v: &Value) -> Result<Vec<String>, String> {
    let argv: Vec<String> = match v {
        Value::String(s) => command::split(s).map_err(|e| {
            e.to_string()
                .replace("command.run input.command", "command")
        })?,
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or("command must be an array of strings")?,
        other => {
            return Err(format!(
                "command must be an array of strings, got {}",
                kind_of(other)
            ))
        }
    };
    if argv.is_empty() || argv[0].is_empty() {
        return Err("command is empty".into());
    }
    Ok(argv)
}

fn load_manifest(folder: &Path, manifest: &Path) -> Result<Framework, String> {
    let text = std::fs::read_to_string(manifest).map_err(|e| format!("cannot be read: {e}"))?;
    let mut fw = parse_manifest(folder, &text)?;
    fw.source = Source::Directory(manifest.to_path_buf());
    Ok(fw)
}

/// Parses the text of a `framework.json` found in `folder`, without touching the filesystem.
///
/// The name defaults to the folder's name, a relative program path containing `/` is resolved
/// against `folder`, the working directory is `folder`, and the source is
/// `folder/framework.json`. The error is the one-line reason `Registry::load` puts in its
/// warning. Public so the manifest parser can be fuzzed on its own.
pub fn parse_manifest(folder: &Path, text: &str) -> Result<Framework, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let obj = value
        .as_object()
        .ok_or_else(|| format!("must be a JSON object, got {}", kind_of(&value)))?;
    let folder_name = folder
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_string();
    let name = match obj.get("name") {
        None | Some(Value::Null) => folder_name,
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(_) => return Err("name must be a non-empty string".into()),
    };
    let (mut argv, timeout, env) = parse_definition(&name, &value)?;
    let warm = parse_warm(Some(obj))?;
    if argv[0].contains('/') && Path::new(&argv[0]).is_relative() {
        argv[0] = folder.join(&argv[0]).to_string_lossy().into_owned();
    }
    Ok(Framework {
        name,
        description: obj
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_string),
        launch: Launch::Command {
            argv,
            cwd: Some(folder.to_path_buf()),
            env,
        },
        timeout,
        source: Source::Directory(folder.join("framework.json")),
        warm,
        entrypoint: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Config {
        let mut vars: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        vars.push((
            "AGENTDISPATCH_FRAMEWORKS_DIR".into(),
            "/nonexistent-frameworks".into(),
        ));
        Config::from_vars(vars).unwrap()
    }

    #[test]
    fn echo_is_always_there() {
        let reg = Registry::load(&cfg(&[])).unwrap();
        assert_eq!(reg.get("echo").unwrap().launch, Launch::Echo);
    }

    #[test]
    fn commands_json_accepts_strings_and_objects_and_later_sources_win() {
        let reg = Registry::load(&cfg(&[
            (
                "AGENTDISPATCH_FRAMEWORK_COMMANDS",
                r#"{"a":"python3 -u a.py","b":{"command":["b","x y"],"timeoutSeconds":3,"env":{"K":"v"},"warm":true}}"#,
            ),
            ("AGENTDISPATCH_FRAMEWORK_COMMAND_A", "override 'a b'"),
        ]))
        .unwrap();
        let a = reg.get("a").unwrap();
        assert!(matches!(&a.launch, Launch::Command { argv, .. } if argv == &["override", "a b"]));
        let b = reg.get("b").unwrap();
        assert_eq!(b.timeout, Some(Duration::from_secs(3)));
        assert!(matches!(&b.launch, Launch::Command { env, .. } if env["K"] == "v"));
        assert!(
            b.warm && !a.warm,
            "warm from the definition, off by default"
        );
    }

    #[test]
    fn bad_env_definitions_name_the_variable() {
        for (var, val) in [
            ("AGENTDISPATCH_FRAMEWORK_COMMANDS", "{not json"),
            (
                "AGENTDISPATCH_FRAMEWORK_COMMANDS",
                r#"{"a":{"timeoutSeconds":1}}"#,
            ),
            (
                "AGENTDISPATCH_FRAMEWORK_COMMANDS",
                r#"{"a":{"command":"x","timeoutSeconds":-2}}"#,
            ),
            (
                "AGENTDISPATCH_FRAMEWORK_COMMANDS",
                r#"{"a":{"command":"x","warm":"yes"}}"#,
            ),
            ("AGENTDISPATCH_FRAMEWORK_COMMAND", "python 'oops"),
        ] {
            let err = Registry::load(&cfg(&[(var, val)])).unwrap_err();
            assert_eq!(err.var, var, "{err}");
        }
    }

    #[test]
    fn directory_manifests_resolve_relative_programs_and_skip_broken_ones() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        std::fs::create_dir(&good).unwrap();
        std::fs::write(
            good.join("framework.json"),
            r#"{"name":"good","command":[".venv/bin/python","runner.py"],"timeoutSeconds":7}"#,
        )
        .unwrap();
        let broken = dir.path().join("broken");
        std::fs::create_dir(&broken).unwrap();
        std::fs::write(broken.join("framework.json"), "{oops").unwrap();
        std::fs::create_dir(dir.path().join("_shared")).unwrap();
        let c = Config::from_vars([(
            "AGENTDISPATCH_FRAMEWORKS_DIR".to_string(),
            dir.path().to_string_lossy().into_owned(),
        )])
        .unwrap();
        let reg = Registry::load(&c).unwrap();
        let fw = reg.get("good").unwrap();
        let Launch::Command { argv, cwd, .. } = &fw.launch else {
            panic!()
        };
        assert!(argv[0].ends_with("good/.venv/bin/python"), "{argv:?}");
        assert_eq!(argv[1], "runner.py");
        assert!(cwd.as_ref().unwrap().ends_with("good"));
        assert_eq!(fw.timeout, Some(Duration::from_secs(7)));
        assert!(reg.get("broken").is_none());
        assert_eq!(reg.warnings.len(), 1);
        assert!(
            reg.warnings[0].contains("broken/framework.json"),
            "{:?}",
            reg.warnings
        );
    }
}
