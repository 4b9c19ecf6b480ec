//! A `cutover run` process started for one trial: its API and its log.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use cutover_core::duration::format_duration;
use serde_json::Value;

use super::error::BenchError;
use super::health_log::{HealthChange, health_changes};

/// The longest a trial waits for any one thing before it counts as failed.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The viewer token the trials' controller is configured with (loopback only).
pub const BENCH_TOKEN: &str = "cutover-bench-viewer";

/// A `cutover run --log-format json` process for one trial, stopped when dropped.
pub struct TrialProcess {
    pub child: Child,
    pub port: u16,
    /// Its stdout: the event lines, one JSON object each.
    pub log: PathBuf,
    pub _dir: tempfile::TempDir,
}

impl TrialProcess {
    /// `GET path` on its API as JSON (`Null` when that failed).
    pub fn json(&self, path: &str) -> Value {
        api_json(self.port, path)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The health changes it logged so far.
    pub fn health_changes(&self) -> Vec<HealthChange> {
        health_changes(&self.log())
    }

    /// Polls `f` until it holds, for at most [`PATIENCE`].
    pub fn wait(&self, what: &str, f: impl Fn(&Self) -> bool) -> Result<(), BenchError> {
        self.wait_value(what, |c| f(c).then_some(()))
    }

    /// Polls `f` until it gives a value, for at most [`PATIENCE`].
    pub fn wait_value<T>(&self, what: &str, f: impl Fn(&Self) -> Option<T>) -> Result<T, BenchError> {
        let start = Instant::now();
        loop {
            if let Some(v) = f(self) {
                return Ok(v);
            }
            if start.elapsed() > PATIENCE {
                let log = self.log();
                let lines: Vec<&str> = log.lines().collect();
                let tail = &lines[lines.len().saturating_sub(15)..];
                return Err(BenchError::Timeout {
                    what: what.to_string(),
                    patience: format_duration(PATIENCE),
                    log_tail: tail.join("\n"),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `GET path` with the bench's viewer token on the API at `127.0.0.1:port`,
/// as JSON (`Null` when that failed).
pub fn api_json(port: u16, path: &str) -> Value {
    api_get(port, path).and_then(|b| serde_json::from_str(&b).ok()).unwrap_or(Value::Null)
}

fn api_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {BENCH_TOKEN}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, body)| body.to_string())
}

impl Drop for TrialProcess {
    fn drop(&mut self) {
        // Best effort: the process may have exited already.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
