//! The tracing tests' OTLP/HTTP receiver (tests/clients/otel/receiver.py, on the `otel` client
//! venv of scripts/setup-clients.sh) and the venv itself.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::common::eventually;

/// The `otel` client venv of scripts/setup-clients.sh, or `None` (said) outside scripts/test.sh.
pub fn otel_venv() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"));
    let venv = cache.join("agentdispatch-worker/clients/otel");
    if venv.join("bin/python").exists() {
        return Some(venv);
    }
    // As tests/request_context.rs: required under scripts/test.sh and in CI.
    let required =
        std::env::var_os("AGENTDISPATCH_TEST_SH").is_some() || std::env::var_os("CI").is_some();
    assert!(
        !required,
        "{} is missing: run scripts/setup-clients.sh otel",
        venv.display()
    );
    eprintln!(
        "SKIPPED: no OpenTelemetry venv at {} (run scripts/setup-clients.sh otel); nothing was checked",
        venv.display()
    );
    None
}

pub fn site_packages(venv: &Path) -> String {
    let lib = venv.join("lib");
    let python = std::fs::read_dir(&lib)
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with("python"))
        .expect("lib/python3.x in the otel venv");
    python.path().join("site-packages").display().to_string()
}

/// The receiver process and every line it printed (one per span).
pub struct Receiver {
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
    port: u16,
}

impl Receiver {
    /// Listens on `port` (0: any free one).
    pub async fn start(venv: &Path, port: u16) -> Receiver {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/otel/receiver.py");
        let mut child = Command::new(venv.join("bin/python"))
            .arg(script)
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the OTLP receiver");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        let listening = || {
            lines
                .lock()
                .unwrap()
                .iter()
                .find_map(|l| l["listening"].as_u64())
        };
        let up = eventually(Duration::from_secs(30), || listening().is_some()).await;
        assert!(
            up,
            "the OTLP receiver did not start on port {port} (in use?)"
        );
        let port = listening().unwrap() as u16;
        Receiver { child, lines, port }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Spans received, of `trace` (every span when `None`).
    pub fn spans(&self, trace: Option<&str>) -> Vec<Value> {
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .filter(|l| l.get("listening").is_none())
            .filter(|l| trace.is_none_or(|t| l["traceId"] == t))
            .cloned()
            .collect()
    }

    /// Waits until a span of `trace` satisfies `found`; returns the trace's spans.
    pub async fn wait_for(
        &self,
        trace: &str,
        what: &str,
        found: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let ok = eventually(Duration::from_secs(60), || {
            self.spans(Some(trace)).iter().any(&found)
        })
        .await;
        let spans = self.spans(Some(trace));
        assert!(ok, "no {what} span of trace {trace}; received: {spans:#?}");
        spans
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
