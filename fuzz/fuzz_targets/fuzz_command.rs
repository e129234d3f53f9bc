//! `command::split` and `command::allowed` on arbitrary input.
//!
//! Input: `ALLOWLIST\nCOMMAND`. The allowlist line is parsed with `command::parse_allowlist`,
//! as `AGENTDISPATCH_COMMAND_ALLOWLIST` is (comma-separated entries split like commands, ` $`
//! for an exact entry, `*` alone); without a newline the whole input is the command and the
//! allowlist is empty. A refused allowlist must name the entry; parsing never panics.
//!
//! Checks: no panic; `Ok` is never an empty list; `Empty` exactly when the command is all
//! whitespace; `UnterminatedQuote` only when there is a quote; the words, re-quoted with single
//! quotes, split back to the same words; `allowed` with `["*"]` is always true, with `[]`
//! always false, with any non-empty prefix of argv true; it agrees with a plain token-prefix
//! oracle; and an allowed argv stays allowed when words are appended.
#![no_main]

use agentdispatch_worker::command::{allowed, parse_allowlist, split, Entry, SplitError};
use libfuzzer_sys::fuzz_target;

fn quote(words: &[String]) -> String {
    words
        .iter()
        .map(|w| format!("'{}'", w.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

fn oracle(list: &[Entry], argv: &[String]) -> bool {
    list.iter().any(|e| match e {
        Entry::Any => true,
        Entry::Prefix(w) => argv.len() >= w.len() && argv[..w.len()] == w[..],
        Entry::Exact(w) => argv.len() == w.len() && argv.iter().zip(w).all(|(a, b)| a == b),
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (list_spec, cmd) = text.split_once('\n').unwrap_or(("", text));
    let list = match parse_allowlist(list_spec) {
        Ok(list) => list,
        Err(reason) => {
            assert!(reason.contains("entry"), "{reason}");
            Vec::new()
        }
    };
    for e in &list {
        match e {
            Entry::Prefix(w) | Entry::Exact(w) => {
                assert!(!w.is_empty() && !w.iter().any(|t| t == "*"), "{e:?}")
            }
            Entry::Any => {}
        }
    }

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

    assert!(allowed(&[Entry::Any], &argv));
    assert!(!allowed(&[], &argv));
    for k in 1..=argv.len() {
        assert!(
            allowed(&[Entry::Prefix(argv[..k].to_vec())], &argv),
            "prefix {k} of {argv:?}"
        );
    }
    assert!(allowed(&[Entry::Exact(argv.clone())], &argv));
    let verdict = allowed(&list, &argv);
    assert_eq!(verdict, oracle(&list, &argv), "{list:?} {argv:?}");
    // Prefix and * entries still allow it with more words; an exact one does not.
    let mut longer = argv.clone();
    longer.push("extra".into());
    let open = |e: &Entry| !matches!(e, Entry::Exact(_)) && oracle(std::slice::from_ref(e), &argv);
    if list.iter().any(open) {
        assert!(allowed(&list, &longer));
    }
});
