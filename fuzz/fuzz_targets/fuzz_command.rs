//! `command::split` and `command::allowed` on arbitrary input.
//!
//! Input: `ALLOWLIST\nCOMMAND`. The allowlist line is parsed the way
//! `AGENTDISPATCH_COMMAND_ALLOWLIST` is (comma-separated entries of whitespace-separated
//! tokens, empty entries dropped); without a newline the whole input is the command and the
//! allowlist is empty.
//!
//! Checks: no panic; `Ok` is never an empty list; `Empty` exactly when the command is all
//! whitespace; `UnterminatedQuote` only when there is a quote; the words, re-quoted with single
//! quotes, split back to the same words; `allowed` with `["*"]` is always true, with `[]`
//! always false, with any non-empty prefix of argv true; it agrees with a plain token-prefix
//! oracle; and an allowed argv stays allowed when words are appended.
#![no_main]

use agentdispatch_worker::command::{allowed, split, SplitError};
use libfuzzer_sys::fuzz_target;

fn quote(words: &[String]) -> String {
    words
        .iter()
        .map(|w| format!("'{}'", w.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

fn oracle(list: &[Vec<String>], argv: &[String]) -> bool {
    list.iter()
        .any(|e| (e.len() == 1 && e[0] == "*") || argv.starts_with(e))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (list_spec, cmd) = text.split_once('\n').unwrap_or(("", text));
    let list: Vec<Vec<String>> = list_spec
        .split(',')
        .map(|e| e.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter(|e| !e.is_empty())
        .collect();

    let argv = match split(cmd) {
        Ok(argv) => argv,
        Err(SplitError::Empty) => {
            assert!(cmd.chars().all(char::is_whitespace), "Empty for {cmd:?}");
            return;
        }
        Err(SplitError::UnterminatedQuote) => {
            assert!(cmd.contains(['\'', '"']), "UnterminatedQuote for {cmd:?}");
            return;
        }
    };
    assert!(!argv.is_empty(), "Ok(vec![]) for {cmd:?}");
    assert!(!cmd.chars().all(char::is_whitespace));
    assert_eq!(
        split(&quote(&argv)).as_ref(),
        Ok(&argv),
        "re-quoted {argv:?}"
    );

    let star = vec![vec!["*".to_string()]];
    assert!(allowed(&star, &argv));
    assert!(!allowed(&[], &argv));
    for k in 1..=argv.len() {
        assert!(
            allowed(&[argv[..k].to_vec()], &argv),
            "prefix {k} of {argv:?}"
        );
    }
    let verdict = allowed(&list, &argv);
    assert_eq!(verdict, oracle(&list, &argv), "{list:?} {argv:?}");
    if verdict {
        let mut longer = argv.clone();
        longer.push("extra".into());
        assert!(allowed(&list, &longer));
    }
    // Every token the allowlist parser produces is whitespace-free, so a one-word argv
    // holding whitespace is allowed only by `*`.
    if argv.len() == 1 && argv[0].chars().any(char::is_whitespace) {
        assert_eq!(verdict, list.iter().any(|e| e.len() == 1 && e[0] == "*"));
    }
});
