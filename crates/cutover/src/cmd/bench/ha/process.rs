//! A `cutover run` or `cutover gateway` process of `bench ha`: started on
//! its own configuration in its own directory, killed with SIGKILL and
//! started again on the same directory and port.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::cmd::bench::error::{BenchError, io};
use crate::cmd::bench::process::api_json;

/// A bench process, killed when dropped.
pub struct HaProcess {
    pub name: String,
    /// Its API (`run`) or its S3 listener (`gateway`).
    pub port: u16,
    exe: PathBuf,
    command: &'static str,
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl HaProcess {
    /// Writes `config` to a fresh directory and starts `cutover --config
    /// <it> <command>` there; its stdout and stderr go to `<name>.log`.
    pub fn start(
        exe: &Path,
        command: &'static str,
        name: &str,
        port: u16,
        config: &str,
        env: Vec<(String, String)>,
    ) -> Result<Self, BenchError> {
        let dir = tempfile::tempdir().map_err(io("temporary directory"))?;
        std::fs::write(dir.path().join("cutover.toml"), config).map_err(io("writing the configuration"))?;
        let mut p = HaProcess { name: name.to_string(), port, exe: exe.to_path_buf(), command, env, dir, child: None };
        p.spawn()?;
        Ok(p)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("{}.log", self.name))
    }

    fn spawn(&mut self) -> Result<(), BenchError> {
        let log = || OpenOptions::new().create(true).append(true).open(self.log_path());
        let (out, err): (File, File) = (log().map_err(io("the log"))?, log().map_err(io("the log"))?);
        let child = Command::new(&self.exe)
            .arg("--config")
            .arg(self.dir.path().join("cutover.toml"))
            .arg(self.command)
            .current_dir(self.dir.path())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("CUTOVER_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(io("starting a cutover process"))?;
        self.child = Some(child);
        Ok(())
    }

    /// Whether it was started and not killed since.
    pub fn alive(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL (`kill -9`), and reaps the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Best effort: the process may have exited already.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the killed process again, on the same directory and port.
    pub fn restart(&mut self) -> Result<(), BenchError> {
        self.kill();
        self.spawn()
    }

    /// `GET /v1/status` (`Null` when it does not answer or is not running).
    pub fn status(&self) -> Value {
        if self.alive() { api_json(self.port, "/v1/status") } else { Value::Null }
    }

    /// The last lines of its log, for an error message.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        format!("{}:\n{}", self.name, lines[lines.len().saturating_sub(10)..].join("\n"))
    }
}

impl Drop for HaProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
