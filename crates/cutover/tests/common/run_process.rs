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
    /// Starts the controller with its API on a free port (another one if
    /// another test took that port between its choice and the bind).
    pub fn start(setup: &Setup) -> Self {
        for _ in 0..3 {
            match Self::try_start_on(setup, cutover_lab::free_port()) {
                Ok(c) => return c,
                Err(logs) if logs.to_lowercase().contains("address already in use") => continue,
                Err(logs) => panic!("{logs}"),
            }
        }
        panic!("no free port for the API after three tries")
    }

    /// Starts (or restarts) the controller with its API on `port`.
    pub fn start_on(setup: &Setup, port: u16) -> Self {
        Self::try_start_on(setup, port).unwrap_or_else(|logs| panic!("{logs}"))
    }

    /// Starts the controller and waits for its API; when the process exits
    /// first (or the API is not up in 20 s), what it printed.
    fn try_start_on(setup: &Setup, port: u16) -> Result<Self, String> {
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
        let mut c = Self { setup_env: setup.env.clone(), config: setup.config.clone(), child, port, log };
        let start = Instant::now();
        while c.get("/healthz").0 != 200 {
            if let Some(status) = c.try_wait() {
                return Err(format!("cutover run exited ({status}) before its API was up; its output:\n{}", c.logs()));
            }
            if start.elapsed() > Duration::from_secs(20) {
                return Err(format!("timed out waiting for api up; its output:\n{}", c.logs()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(c)
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
        panic!("timed out waiting for {what}; controller output:\n{}", self.logs());
    }

    /// What the process printed on stdout.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its stdout and its stderr (the `tracing` log), for a failure's message.
    pub fn logs(&self) -> String {
        let err = std::fs::read_to_string(self.log.with_extension("err")).unwrap_or_default();
        format!("{}\n--- stderr ---\n{err}", self.log())
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
    let (status, _, body) = request_with_head(port, method, path, token, body);
    (status, body)
}

/// [`request`], with the answer's head (status line and headers) as well.
pub fn request_with_head(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String, String) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return (0, String::new(), String::new()) };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).is_err() {
        return (0, String::new(), String::new());
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, body) = out.split_once("\r\n\r\n").map(|(h, b)| (h.to_string(), b.to_string())).unwrap_or_default();
    (status, head, body)
}
