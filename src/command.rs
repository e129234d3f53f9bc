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

/// Whether `argv` is allowed: some entry is a token-wise prefix of it, or the list is `*`.
/// An empty list allows nothing.
pub fn allowed(allowlist: &[Vec<String>], argv: &[String]) -> bool {
    allowlist.iter().any(|entry| {
        (entry.len() == 1 && entry[0] == "*")
            || (entry.len() <= argv.len() && entry.iter().zip(argv).all(|(a, b)| a == b))
    })
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

    #[test]
    fn allowlist_matches_whole_tokens_as_prefix() {
        let list = vec![v(&["git"]), v(&["ls", "-l"])];
        assert!(allowed(&list, &v(&["git", "status"])));
        assert!(allowed(&list, &v(&["git"])));
        assert!(!allowed(&list, &v(&["gitx"])));
        assert!(allowed(&list, &v(&["ls", "-l", "/"])));
        assert!(!allowed(&list, &v(&["ls"])));
        assert!(!allowed(&list, &v(&["ls", "-la"])));
        assert!(allowed(&[v(&["*"])], &v(&["anything", "at", "all"])));
        assert!(!allowed(&[], &v(&["true"])));
    }
}
