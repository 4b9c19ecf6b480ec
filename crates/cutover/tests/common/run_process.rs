//! The real `cutover run` as a separate process, with its API read over HTTP.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Setup;

/// The viewer token the harness adds to every configuration it starts.
pub const HARNESS_VIEWER: &str = "harness-viewer";
pub const HARNESS_VIEWER_TOKEN: &str = "harness-viewer-token";

pub struct RunProcess {
    pub setup_env: Vec<(String, String)>,
    pub config: std::path::PathBuf,
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl RunProcess {
    pub fn start(setup: &Setup) -> Self {
        Self::start_on(setup, cutover_lab::free_port())
    }

    /// Starts (or restarts) the controller with its API on `port`.
    pub fn start_on(setup: &Setup, port: u16) -> Self {
        let log = setup.dir.path().join(format!("run-{port}-{}.log", fastrand::u32(..)));
        let text = std::fs::read_to_string(&setup.config).unwrap();
        let mut text = if text.contains("[api]") {
            replace_listen(&text, port)
        } else {
            format!("[api]\nlisten = \"127.0.0.1:{port}\"\n{text}")
        };
        // Every GET /v1/* needs a token: the harness reads with its own viewer.
        if !text.contains(HARNESS_VIEWER) {
            text.push_str(&format!(
                "\n[[api.tokens]]\nname = \"{HARNESS_VIEWER}\"\nrole = \"viewer\"\nsha256 = \"{}\"\n",
                super::sha256_hex(HARNESS_VIEWER_TOKEN)
            ));
        }
        std::fs::write(&setup.config, text).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cutover"));
        cmd.arg("--config")
            .arg(&setup.config)
            .arg("run")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("err")).unwrap());
        for (k, v) in &setup.env {
            cmd.env(k, v);
        }
        cmd.env("CUTOVER_LOG", "info");
        let child = cmd.spawn().unwrap();
        let c = Self { setup_env: setup.env.clone(), config: setup.config.clone(), child, port, log };
        c.wait_for("api up", Duration::from_secs(20), |c| c.get("/healthz").0 == 200);
        c
    }

    /// A GET with the harness's viewer token.
    pub fn get(&self, path: &str) -> (u16, String) {
        self.request("GET", path, Some(HARNESS_VIEWER_TOKEN), "")
    }

    pub fn request(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
        request(self.port, method, path, token, body)
    }

    pub fn json(&self, path: &str) -> Value {
        serde_json::from_str(&self.get(path).1).unwrap_or(Value::Null)
    }

    pub fn wait_for(&self, what: &str, limit: Duration, f: impl Fn(&Self) -> bool) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if f(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "timed out waiting for {what}; controller log:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        let (status, text) = self.request("POST", path, token, &body.to_string());
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Runs a CLI command against this controller's API.
    pub fn cli(&self, args: &[&str], envs: &[(&str, &str)]) -> super::Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cutover"));
        cmd.arg("--config").arg(&self.config).args(args);
        cmd.envs(self.setup_env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd.envs(envs.iter().copied());
        super::Run::from(cmd.output().unwrap())
    }

    /// Sends SIGTERM (a clean stop).
    pub fn terminate(&self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args([&format!("-{signal}"), &pid]).status().unwrap().success());
    }

    /// The exit status, once the process has exited.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RunProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn replace_listen(text: &str, port: u16) -> String {
    let mut section = "";
    text.lines()
        .map(|l| {
            if l.starts_with('[') {
                section = l.trim();
            }
            if section == "[api]" && l.starts_with("listen = ") {
                format!("listen = \"127.0.0.1:{port}\"")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One HTTP/1.1 request to the API on `port` (status 0 when it does not answer).
pub fn request(port: u16, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return (0, String::new()) };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}
