//! A small W3C WebDriver client for Debian's `chromedriver` driving a
//! headless Chromium: a session, navigation, elements, clicks, keys, page
//! source and screenshots, over plain HTTP/1.1 with JSON bodies.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

/// The key under which WebDriver returns an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A running chromedriver with one browser session.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    /// The browser's profile and its temporary files (`TMPDIR`): Chromium
    /// leaves a `org.chromium.Chromium.scoped_dir.*` behind in the system's
    /// temporary directory when it is stopped before it cleans up.
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub fn start() -> Self {
        for bin in ["chromium", "chromedriver"] {
            let ok = Command::new(bin).arg("--version").output().is_ok_and(|o| o.status.success());
            assert!(ok, "{bin} is not installed: apt-get install -y chromium chromium-driver (.ci/run does)");
        }
        let port = cutover_lab::free_port();
        let profile = tempfile::tempdir().unwrap();
        let tmp = profile.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .env("TMPDIR", &tmp)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut b = Self { driver, port, session: String::new(), _profile: profile };
        let start = Instant::now();
        while b.call("GET", "/status", None).get("value").and_then(|v| v.get("ready")) != Some(&json!(true)) {
            assert!(start.elapsed() < Duration::from_secs(30), "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1000", format!("--user-data-dir={}", b._profile.path().join("profile").display())],
            }
        }}});
        let v = b.call("POST", "/session", Some(caps));
        b.session = v["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {v}")).to_string();
        b
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        if std::env::var_os("CUTOVER_WEBDRIVER_TRACE").is_some() {
            eprintln!("webdriver: {method} {path}");
        }
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else { return Value::Null };
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.port,
            body.len()
        );
        s.write_all(req.as_bytes()).unwrap();
        let raw = read_response(&mut s);
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4).unwrap_or(raw.len());
        let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
        let body = &raw[split..];
        let body = if head.contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_vec() };
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    pub fn goto(&self, url: &str) {
        let v = self.session_call("POST", "/url", Some(json!({"url": url})));
        assert!(v["value"].is_null(), "navigating to {url}: {v}");
    }

    /// The first element matching a CSS selector, if any.
    pub fn find(&self, css: &str) -> Option<String> {
        let v = self.session_call("POST", "/element", Some(json!({"using": "css selector", "value": css})));
        v["value"][ELEMENT].as_str().map(str::to_string)
    }

    /// Waits (up to `limit`) for an element.
    pub fn wait_find(&self, css: &str, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(e) = self.find(css) {
                return e;
            }
            assert!(start.elapsed() < limit, "no {css} within {limit:?}: {}", self.source());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn click(&self, element: &str) {
        let v = self.session_call("POST", &format!("/element/{element}/click"), Some(json!({})));
        assert!(v["value"].is_null(), "click: {v}");
    }

    pub fn type_into(&self, element: &str, text: &str) {
        let v = self.session_call("POST", &format!("/element/{element}/value"), Some(json!({"text": text})));
        assert!(v["value"].is_null(), "typing: {v}");
    }

    pub fn text(&self, element: &str) -> String {
        self.session_call("GET", &format!("/element/{element}/text"), None)["value"].as_str().unwrap_or("").to_string()
    }

    /// The text of the first element matching `css` ("" when there is none).
    pub fn text_of(&self, css: &str) -> String {
        self.find(css).map(|e| self.text(&e)).unwrap_or_default()
    }

    pub fn source(&self) -> String {
        self.session_call("GET", "/source", None)["value"].as_str().unwrap_or("").to_string()
    }

    pub fn url(&self) -> String {
        self.session_call("GET", "/url", None)["value"].as_str().unwrap_or("").to_string()
    }

    /// Opens a new tab and switches to it; returns the previous tab's handle.
    pub fn new_tab(&self) -> String {
        let old = self.session_call("GET", "/window", None)["value"].as_str().unwrap_or("").to_string();
        let v = self.session_call("POST", "/window/new", Some(json!({"type": "tab"})));
        let handle = v["value"]["handle"].as_str().unwrap_or_else(|| panic!("new tab: {v}")).to_string();
        self.switch_to(&handle);
        old
    }

    pub fn current_tab(&self) -> String {
        self.session_call("GET", "/window", None)["value"].as_str().unwrap_or("").to_string()
    }

    pub fn switch_to(&self, handle: &str) {
        let v = self.session_call("POST", "/window", Some(json!({"handle": handle})));
        assert!(v["value"].is_null(), "switching tabs: {v}");
    }

    /// Writes a PNG screenshot of the page to `path`.
    pub fn screenshot(&self, path: &Path) {
        let v = self.session_call("GET", "/screenshot", None);
        if let Some(b64) = v["value"].as_str()
            && let Ok(png) = base64::engine::general_purpose::STANDARD.decode(b64)
        {
            let _ = std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")));
            let _ = std::fs::write(path, png);
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            self.session_call("DELETE", "", None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// One response: its headers, then `Content-Length` bytes or the chunks up
/// to the last (chromedriver keeps the connection open).
fn read_response(s: &mut TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4) {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            let done = match length {
                Some(n) => raw.len() >= end + n,
                None => raw.ends_with(b"0\r\n\r\n"),
            };
            if done {
                return raw;
            }
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return raw,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&rest[..eol]).trim().to_string();
        let Ok(n) = usize::from_str_radix(&size, 16) else { break };
        let after = &rest[eol + 2..];
        if n == 0 || after.len() < n {
            break;
        }
        out.extend_from_slice(&after[..n]);
        rest = after[n..].strip_prefix(b"\r\n").unwrap_or(&after[n..]);
    }
    out
}
