//! A Prometheus server (Debian's `prometheus` package, `/usr/bin/prometheus`)
//! on a free loopback port, scraping the targets it is given.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{LabError, free_port};

/// A running Prometheus with its own temporary configuration and storage.
#[derive(Debug)]
pub struct Prometheus {
    dir: tempfile::TempDir,
    child: Option<Child>,
    pub port: u16,
}

/// The `prometheus` binary: `$PROMETHEUS_BIN`, else `/usr/bin/prometheus`,
/// else the first on `PATH`.
pub fn binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("PROMETHEUS_BIN") {
        return Some(p.into());
    }
    let debian = Path::new("/usr/bin/prometheus");
    if debian.exists() {
        return Some(debian.into());
    }
    std::env::var("PATH").unwrap_or_default().split(':').map(|d| Path::new(d).join("prometheus")).find(|p| p.exists())
}

impl Prometheus {
    /// Starts Prometheus on 127.0.0.1, scraping `targets` (`host:port`, path
    /// `/metrics`) every `scrape_interval`, and waits until it is ready.
    /// A port taken by something else between its choice and the bind
    /// (another test, an outgoing connection) starts it again on another.
    pub fn start(targets: &[String], scrape_interval: Duration) -> Result<Self, LabError> {
        crate::on_free_ports(
            || Self::start_once(targets, scrape_interval),
            |why| why.contains("address already in use"),
        )
    }

    fn start_once(targets: &[String], scrape_interval: Duration) -> Result<Self, LabError> {
        let bin = binary().ok_or(LabError::PrometheusMissing)?;
        let dir = tempfile::tempdir().map_err(|source| LabError::Io { what: "temporary directory".into(), source })?;
        let port = free_port();
        let every = format!("{}ms", scrape_interval.as_millis().max(1));
        let list = targets.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ");
        let config = format!(
            "global:\n  scrape_interval: {every}\n  evaluation_interval: {every}\n\
             scrape_configs:\n  - job_name: test\n    scrape_timeout: {every}\n    static_configs:\n      - targets: [{list}]\n"
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config)
            .map_err(|source| LabError::Io { what: "write prometheus.yml".into(), source })?;
        let log = std::fs::File::create(dir.path().join("prometheus.log"))
            .map_err(|source| LabError::Io { what: "prometheus.log".into(), source })?;
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|source| LabError::Io { what: "spawn prometheus".into(), source })?;
        let p = Self { dir, child: Some(child), port };
        p.wait_ready(Duration::from_secs(60))?;
        Ok(p)
    }

    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn wait_ready(&self, limit: Duration) -> Result<(), LabError> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if get_status(self.port, "/-/ready") == Some(200) {
                return Ok(());
            }
            if self.log().contains("address already in use") {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(LabError::NotReady(format!("prometheus on port {} not ready; log:\n{}", self.port, self.log())))
    }

    /// Stops the process (SIGKILL); the port refuses connections afterwards.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The server log so far (for test failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The status code of a plain HTTP/1.0 GET on 127.0.0.1.
fn get_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}
