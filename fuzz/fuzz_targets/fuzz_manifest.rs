//! `frameworks::parse_manifest` on arbitrary `framework.json` text.
//!
//! Input: `FOLDER\nMANIFEST`: the first line is the framework folder (any path, even empty or
//! absolute), the rest the manifest text (not UTF-8: skipped, as the file read would fail).
//!
//! Checks: no panic; an accepted manifest is a JSON object; the name is not blank
//! (the folder's name when the manifest has none, the manifest's trimmed `name` otherwise);
//! argv is non-empty with a non-empty program; a relative program path with `/` is placed
//! under the folder; cwd is the folder; the source is `FOLDER/framework.json`; a timeout is
//! below 1e9 s; parsing is deterministic.
#![no_main]

use std::path::Path;

use agentdispatch_worker::frameworks::{parse_manifest, Launch, Source};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (folder, manifest) = text.split_once('\n').unwrap_or(("frameworks/fuzz", text));
    let folder = Path::new(folder);
    let result = parse_manifest(folder, manifest);
    let again = parse_manifest(folder, manifest);
    assert_eq!(format!("{result:?}"), format!("{again:?}"));

    let fw = match result {
        Ok(fw) => fw,
        Err(reason) => {
            assert!(!reason.is_empty());
            return;
        }
    };
    let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(manifest) else {
        panic!("accepted a manifest that is not a JSON object");
    };
    assert!(!fw.name.is_empty() && !fw.name.trim().is_empty());
    match obj.get("name") {
        Some(Value::String(s)) => assert_eq!(fw.name, s.trim()),
        _ => assert_eq!(
            Some(fw.name.as_str()),
            folder.file_name().and_then(|n| n.to_str())
        ),
    }
    let Launch::Command { argv, cwd, .. } = &fw.launch else {
        panic!("a manifest framework must be a command: {fw:?}");
    };
    assert!(!argv.is_empty() && !argv[0].is_empty(), "{argv:?}");
    if argv[0].contains('/') && Path::new(&argv[0]).is_relative() {
        assert!(
            Path::new(&argv[0]).starts_with(folder),
            "{argv:?} {folder:?}"
        );
    }
    assert_eq!(cwd.as_deref(), Some(folder));
    assert_eq!(fw.source, Source::Directory(folder.join("framework.json")));
    if let Some(t) = fw.timeout {
        assert!(t.as_secs_f64() < 1e9, "{t:?}");
    }
});
