//! Just enough of a WebDriver client (W3C WebDriver over HTTP, to Debian's `chromedriver`
//! driving Debian's `chromium`, headless) for the playground test: open a page, find
//! elements, type, click, run a script that reads the page.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The key WebDriver names an element by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A headless Chromium session; the browser and its driver end when it is dropped.
pub struct Browser {
    driver: Child,
    url: String,
    client: reqwest::Client,
    _profile: tempfile::TempDir,
}

/// Whether Chromium and its driver are installed: when not, outside scripts/test.sh and CI the
/// test is skipped with this message; there it fails.
pub fn installed() -> bool {
    let there =
        std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists();
    let required =
        std::env::var_os("AGENTDISPATCH_TEST_SH").is_some() || std::env::var_os("CI").is_some();
    assert!(
        there || !required,
        "{CHROMIUM} or {CHROMEDRIVER} is missing: run scripts/setup-browser.sh"
    );
    if !there {
        eprintln!("skipped: {CHROMIUM} or {CHROMEDRIVER} is missing (scripts/setup-browser.sh installs them)");
    }
    there
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile. The flags keep it off
    /// the network (this machine's is closed: Chromium's background fetches would stall it).
    pub async fn start() -> Browser {
        let port = crate::common::free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().unwrap();
        let mut b = Browser {
            driver,
            url: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            _profile: profile,
        };
        let began = Instant::now();
        loop {
            if let Ok(r) = b.client.get(format!("{}/status", b.url)).send().await {
                if let Ok(v) = r.json::<Value>().await {
                    if v["value"]["ready"] == true {
                        break;
                    }
                }
            }
            assert!(
                began.elapsed() < Duration::from_secs(30),
                "chromedriver not ready"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            &format!("--user-data-dir={}", b._profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let v = b.call("POST", "/session", caps).await;
        let id = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        b.url = format!("{}/session/{id}", b.url);
        b
    }

    /// One WebDriver command; its `value`.
    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.url);
        let req = match method {
            "GET" => self.client.get(url),
            "DELETE" => self.client.delete(url),
            _ => self.client.post(url).json(&body),
        };
        let resp = req.send().await.expect("chromedriver answers");
        let v: Value = resp.json().await.expect("chromedriver answers JSON");
        assert!(
            v["value"].get("error").is_none(),
            "WebDriver {method} {path}: {v}"
        );
        v["value"].clone()
    }

    pub async fn open(&self, url: &str) {
        self.call("POST", "/url", json!({"url": url})).await;
    }

    /// The element `css` selects.
    pub async fn find(&self, css: &str) -> String {
        let v = self
            .call(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.call(
            "POST",
            &format!("/element/{e}/value"),
            json!({"text": text}),
        )
        .await;
    }

    pub async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.call("POST", &format!("/element/{e}/click"), json!({}))
            .await;
    }

    /// Runs `script` (a function body) in the page; what it returns.
    pub async fn eval(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// Polls `script` until `check` holds of its value (`within` at most); that value.
    pub async fn until(&self, what: &str, script: &str, check: impl Fn(&Value) -> bool) -> Value {
        let began = Instant::now();
        loop {
            let v = self.eval(script).await;
            if check(&v) {
                return v;
            }
            if began.elapsed() > Duration::from_secs(60) {
                let page = self.eval("return document.body.innerText").await;
                panic!("the page never showed {what}; last {v}; page:\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends the browser (chromedriver quits it with the session), then the driver.
        let url = self.url.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async { reqwest::Client::new().delete(url).send().await })
        })
        .join();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
