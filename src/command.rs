//! `command.run`: splitting a command string into argv with shell-like quoting, and the
//! token-prefix allowlist. Nothing here ever hands a string to a shell.

/// Why a command string could not be split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// A `'` or `"` was never closed.
    #[error("command.run input.command contains an unterminated quote.")]
    UnterminatedQuote,
    /// The string holds no word at all.
    #[error("command.run input.command is empty.")]
    Empty,
}

/// Splits `s` into words: whitespace separates, `'…'` is literal, `"…"` allows `\"` and `\\`,
/// a backslash outside quotes escapes the next character. `;`, `|`, `$` and the like are
/// ordinary characters.
pub fn split(s: &str) -> Result<Vec<String>, SplitError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => word.push(ch),
                        None => return Err(SplitError::UnterminatedQuote),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(ch @ ('"' | '\\' | '$' | '`')) => word.push(ch),
                            Some(ch) => {
                                word.push('\\');
                                word.push(ch);
                            }
                            None => return Err(SplitError::UnterminatedQuote),
                        },
                        Some(ch) => word.push(ch),
                        None => return Err(SplitError::UnterminatedQuote),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(ch) = chars.next() {
                    word.push(ch);
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if words.is_empty() {
        return Err(SplitError::Empty);
    }
    Ok(words)
}

/// One entry of `AGENTDISPATCH_COMMAND_ALLOWLIST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// `*`: every command.
    Any,
    /// Words that must begin the argv; any arguments may follow.
    Prefix(Vec<String>),
    /// Words ending in ` $`: the whole argv, nothing more.
    Exact(Vec<String>),
}

/// Parses the allowlist: comma-separated entries, each split with the same quoting rules as a
/// command; a last word `$` makes an entry exact. `*` is only valid as an entry of its own.
pub fn parse_allowlist(v: &str) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    for raw in v.split(',') {
        let mut words = match split(raw) {
            Ok(w) => w,
            Err(SplitError::Empty) => continue,
            Err(SplitError::UnterminatedQuote) => {
                return Err(format!("entry {raw:?} has an unterminated quote"))
            }
        };
        if words == ["*"] {
            out.push(Entry::Any);
            continue;
        }
        if words.iter().any(|w| w == "*") {
            return Err(format!(
                "entry {raw:?}: * allows every command only as an entry of its own; it matches no word"
            ));
        }
        let exact = words.last().is_some_and(|w| w == "$");
        if exact {
            words.pop();
            if words.is_empty() {
                return Err(format!("entry {raw:?} has no command before $"));
            }
            out.push(Entry::Exact(words));
        } else {
            out.push(Entry::Prefix(words));
        }
    }
    Ok(out)
}

/// Whether `argv` is allowed by some entry. An empty list allows nothing.
pub fn allowed(allowlist: &[Entry], argv: &[String]) -> bool {
    allowlist.iter().any(|entry| match entry {
        Entry::Any => true,
        Entry::Prefix(words) => argv.starts_with(words),
        Entry::Exact(words) => argv == words.as_slice(),
    })
}

/// Programs whose arguments can make them run any code.
const RUNS_CODE: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "fish", "busybox", "env", "xargs", "find", "git", "awk",
    "gawk", "sed", "perl", "ruby", "node", "deno", "bun", "php", "lua", "python", "python3", "pip",
    "pip3", "uv", "npm", "npx", "make", "ssh", "sudo", "su", "nohup", "timeout", "nice", "time",
    "watch", "strace", "docker", "kubectl", "vim", "vi", "less", "more", "tar", "zip",
];
/// Programs whose arguments can make them read (or write) any file.
const READS_FILES: &[&str] = &[
    "cat", "head", "tail", "grep", "cp", "mv", "dd", "tee", "ln", "rm", "curl", "wget", "base64",
    "od", "xxd", "strings", "sort", "uniq", "diff", "cut", "wc", "ls", "stat", "file",
];

/// A start-up warning for an entry that allows more than it seems, or `None`.
pub fn warning(entry: &Entry) -> Option<String> {
    let Entry::Prefix(words) = entry else {
        return None;
    };
    let program = words[0].rsplit('/').next().unwrap_or(&words[0]);
    let base = program.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    let what = if RUNS_CODE.contains(&program) || RUNS_CODE.contains(&base) {
        "can run arbitrary code"
    } else if READS_FILES.contains(&program) {
        "can read or write any file it is given"
    } else {
        return None;
    };
    Some(format!(
        "AGENTDISPATCH_COMMAND_ALLOWLIST entry {:?} allows any arguments after it, and {program} {what} \
         with the right ones; end the entry with \" $\" to allow exactly that command line",
        words.join(" ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn shell_metacharacters_are_plain_words() {
        assert_eq!(
            split("echo ok; uname -a").unwrap(),
            v(&["echo", "ok;", "uname", "-a"])
        );
        assert_eq!(
            split("echo $HOME | cat").unwrap(),
            v(&["echo", "$HOME", "|", "cat"])
        );
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(
            split(r#"a 'b c' "d \"e\"" f\ g"#).unwrap(),
            v(&["a", "b c", "d \"e\"", "f g"])
        );
        assert_eq!(split(r#"x''y "" ''"#).unwrap(), v(&["xy", "", ""]));
        assert_eq!(split(r#""a\nb""#).unwrap(), v(&["a\\nb"]));
        assert_eq!(split("'it''s'").unwrap(), v(&["its"]));
    }

    #[test]
    fn unterminated_quotes_and_empty_strings_are_errors() {
        assert_eq!(split("echo 'oops"), Err(SplitError::UnterminatedQuote));
        assert_eq!(split("echo \"oops"), Err(SplitError::UnterminatedQuote));
        assert_eq!(split("   "), Err(SplitError::Empty));
    }

    fn p(words: &[&str]) -> Entry {
        Entry::Prefix(v(words))
    }

    #[test]
    fn allowlist_entries_split_like_commands_with_exact_and_any_forms() {
        let list = parse_allowlist(r#"git status, cat /etc/hostname $ ,'my tool' --x,*"#).unwrap();
        assert_eq!(
            list,
            vec![
                p(&["git", "status"]),
                Entry::Exact(v(&["cat", "/etc/hostname"])),
                p(&["my tool", "--x"]),
                Entry::Any
            ]
        );
        let exact = &list[1..2];
        assert!(allowed(exact, &v(&["cat", "/etc/hostname"])));
        assert!(!allowed(
            exact,
            &v(&["cat", "/etc/hostname", "/etc/shadow"])
        ));
        assert!(parse_allowlist("git *").is_err());
        assert!(parse_allowlist("git 'oops").is_err());
        assert!(parse_allowlist(" $").is_err());
        assert!(parse_allowlist(" , ,").unwrap().is_empty());
    }

    #[test]
    fn risky_entries_get_a_warning_and_exact_ones_do_not() {
        let w = warning(&p(&["git"])).unwrap();
        assert!(w.contains("arbitrary code") && w.contains(" $"), "{w}");
        assert!(warning(&p(&["/usr/bin/python3.11", "-c"]))
            .unwrap()
            .contains("arbitrary code"));
        assert!(warning(&p(&["cat", "/etc/hostname"]))
            .unwrap()
            .contains("any file"));
        assert!(warning(&Entry::Exact(v(&["git", "status"]))).is_none());
        assert!(warning(&p(&["uname"])).is_none());
    }

    #[test]
    fn allowlist_matches_whole_tokens_as_prefix() {
        let list = vec![p(&["git"]), p(&["ls", "-l"])];
        assert!(allowed(&list, &v(&["git", "status"])));
        assert!(allowed(&list, &v(&["git"])));
        assert!(!allowed(&list, &v(&["gitx"])));
        assert!(allowed(&list, &v(&["ls", "-l", "/"])));
        assert!(!allowed(&list, &v(&["ls"])));
        assert!(!allowed(&list, &v(&["ls", "-la"])));
        assert!(allowed(&[Entry::Any], &v(&["anything", "at", "all"])));
        assert!(!allowed(&[], &v(&["true"])));
    }
}
