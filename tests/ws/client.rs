//! The Python `websockets` client (tests/clients/ws/driver.py), driven one JSON line at a time.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// The Python `websockets` client's venv, or `None` (said on stderr) outside `scripts/test.sh`.
pub fn python() -> Option<PathBuf> {
    super::common::client_python("ws", "Python websockets client")
}

/// One driver process holding one socket.
pub struct Client {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

/// What one `recv` gave.
#[derive(Debug)]
pub enum Got {
    /// A text message, parsed.
    Message(Value),
    /// The socket closed with this code and reason.
    Closed(Option<u64>, String),
    /// Nothing within the time asked.
    Nothing,
}

impl Client {
    /// Starts a driver (no socket yet).
    pub fn new(python: &PathBuf) -> Self {
        let driver = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/ws/driver.py");
        let mut child = Command::new(python)
            .arg(driver)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the websockets driver");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Client {
            child,
            stdin,
            lines,
        }
    }

    /// Sends one command and reads its answer.
    pub async fn call(&mut self, cmd: Value) -> Value {
        let mut line = cmd.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(60), self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("the driver did not answer {cmd}"))
            .unwrap()
            .unwrap_or_else(|| panic!("the driver exited on {cmd}: {:?}", self.child.try_wait()));
        serde_json::from_str(&answer).unwrap()
    }

    /// Connects to `url` with `headers`; the driver's answer (`ok`, or `error` and `status`).
    pub async fn connect(&mut self, url: &str, headers: Value) -> Value {
        self.call(json!({"op": "connect", "url": url, "headers": headers}))
            .await
    }

    /// A client connected to `base`'s `/ws` (http URL) with `headers`.
    pub async fn open(python: &PathBuf, base: &str, headers: Value) -> Self {
        let mut c = Client::new(python);
        let url = format!("{}/ws", base.replacen("http://", "ws://", 1));
        let r = c.connect(&url, headers).await;
        assert_eq!(r["ok"], true, "connect: {r}");
        c
    }

    /// Sends a text message.
    pub async fn send(&mut self, text: &str) {
        let r = self.call(json!({"op": "send", "text": text})).await;
        assert_eq!(r["ok"], true, "send: {r}");
    }

    /// Sends a JSON message.
    pub async fn send_json(&mut self, v: &Value) {
        self.send(&v.to_string()).await
    }

    /// The next message (or the close), waiting at most `secs`.
    pub async fn recv_within(&mut self, secs: f64) -> Got {
        let r = self.call(json!({"op": "recv", "timeout": secs})).await;
        if let Some(text) = r["text"].as_str() {
            return Got::Message(serde_json::from_str(text).unwrap_or(Value::String(text.into())));
        }
        if r["timeout"] == true {
            return Got::Nothing;
        }
        let c = &r["closed"];
        Got::Closed(
            c["code"].as_u64(),
            c["reason"].as_str().unwrap_or("").into(),
        )
    }

    /// The next message; panics on a close or nothing within 30 s.
    pub async fn recv(&mut self) -> Value {
        match self.recv_within(30.0).await {
            Got::Message(v) => v,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// Messages until the result object (`ok` and `status` at the top level), which is last.
    pub async fn until_result(&mut self) -> (Vec<Value>, Value) {
        let mut before = Vec::new();
        loop {
            let m = self.recv().await;
            if m.get("ok").is_some() && m.get("status").is_some() {
                return (before, m);
            }
            before.push(m);
        }
    }

    /// Runs `command` (`command.run`) on the socket: its result.
    pub async fn command(&mut self, command: &str) -> Value {
        self.send_json(&json!({"taskType": "command.run", "input": {"command": command}}))
            .await;
        self.until_result().await.1
    }

    /// The close the server sends next (messages before it are skipped), within 30 s.
    pub async fn closed(&mut self) -> (Option<u64>, String) {
        loop {
            match self.recv_within(30.0).await {
                Got::Closed(code, reason) => return (code, reason),
                Got::Message(_) => {}
                Got::Nothing => panic!("the socket did not close within 30 s"),
            }
        }
    }

    /// Frames received since the last call: (opcode, payload bytes, fin).
    pub async fn frames(&mut self) -> Vec<(String, u64, bool)> {
        let r = self.call(json!({"op": "frames"})).await;
        r["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f[0].as_str().unwrap().to_string(),
                    f[1].as_u64().unwrap(),
                    f[2].as_bool().unwrap(),
                )
            })
            .collect()
    }

    /// Closes with `code`; the code the server answered with.
    pub async fn close(&mut self, code: u16) -> Option<u64> {
        let r = self.call(json!({"op": "close", "code": code})).await;
        r["closed"]["code"].as_u64()
    }

    /// Cuts the connection without a close.
    pub async fn drop_connection(&mut self) {
        let r = self.call(json!({"op": "drop"})).await;
        assert_eq!(r["ok"], true);
    }
}
