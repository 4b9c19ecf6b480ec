//! Running the `git` program for `git.set`: no prompts, no system config, a
//! fixed identity, killed when the step is dropped, and error messages
//! without URL credentials.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use crate::actuators::StepError;
use crate::actuators::text::{redact_url_credentials, truncate_lossy};

/// How much of git's error output goes into a message.
const STDERR_KEPT: usize = 2048;

/// What a git command printed, and whether it succeeded.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    /// Without URL credentials, at most 2 KiB.
    pub stderr: String,
}

/// git in one directory, as one author.
#[derive(Debug, Clone)]
pub struct Git {
    dir: PathBuf,
    /// The repository as shown in messages (no credentials).
    shown: String,
    config: Vec<String>,
}

impl Git {
    pub fn new(dir: impl Into<PathBuf>, shown: &str, author_name: &str, author_email: &str) -> Self {
        Self {
            dir: dir.into(),
            shown: shown.to_string(),
            config: vec![format!("user.name={author_name}"), format!("user.email={author_email}")],
        }
    }

    /// The same git in another directory.
    pub fn at(&self, dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into(), ..self.clone() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Adds `-c key=value` to every command.
    pub fn with_config(mut self, setting: String) -> Self {
        self.config.push(setting);
        self
    }

    /// Runs `git args` and returns what it printed, whatever its exit status.
    pub async fn output<I, S>(&self, args: I) -> Result<Output, StepError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new("git");
        command.arg("-C").arg(&self.dir);
        for setting in &self.config {
            command.arg("-c").arg(setting);
        }
        command
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_INDEX_FILE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let out = command.output().await.map_err(|e| StepError::Failed(format!("cannot run git: {e}")))?;
        let stderr = redact_url_credentials(&String::from_utf8_lossy(&out.stderr));
        Ok(Output {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: truncate_lossy(stderr.trim().as_bytes(), STDERR_KEPT),
        })
    }

    /// Runs `git args`; its trimmed standard output, or a failure naming the
    /// repository, the git command and its error output.
    pub async fn run<I, S>(&self, args: I) -> Result<String, StepError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<S> = args.into_iter().collect();
        let out = self.output(&args).await?;
        if out.success {
            Ok(out.stdout.trim_end().to_string())
        } else {
            let verb = args.first().map(|a| a.as_ref().to_string_lossy().into_owned()).unwrap_or_default();
            Err(StepError::Failed(format!("{}: git {verb} failed: {}", self.shown, out.stderr)))
        }
    }

    /// Runs `git args`; its trimmed standard output, or `None` when it fails
    /// (for questions such as "does this ref exist").
    pub async fn ask<I, S>(&self, args: I) -> Result<Option<String>, StepError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = self.output(args).await?;
        Ok(out.success.then(|| out.stdout.trim_end().to_string()))
    }

    /// How many commits `local` has that `upstream` has not, and the other
    /// way round.
    pub async fn ahead_behind(&self, local: &str, upstream: &str) -> Result<(u64, u64), StepError> {
        let counts = self.run(["rev-list", "--left-right", "--count", &format!("{local}...{upstream}")]).await?;
        let mut numbers = counts.split_whitespace().map(str::parse::<u64>);
        match (numbers.next(), numbers.next()) {
            (Some(Ok(ahead)), Some(Ok(behind))) => Ok((ahead, behind)),
            _ => Err(StepError::Failed(format!("{}: unexpected git rev-list output {counts:?}", self.shown))),
        }
    }

    /// Whether `rev` names a commit.
    pub async fn has_commit(&self, rev: &str) -> Result<bool, StepError> {
        Ok(self.ask(["rev-parse", "--verify", "--quiet", &format!("{rev}^{{commit}}")]).await?.is_some())
    }

    /// The paths with uncommitted changes to tracked files (staged or not).
    pub async fn dirty_paths(&self) -> Result<Vec<String>, StepError> {
        let status = self.run(["status", "--porcelain=v1", "-z", "--untracked-files=no"]).await?;
        let mut paths = Vec::new();
        let mut entries = status.split('\0').filter(|e| !e.is_empty());
        while let Some(entry) = entries.next() {
            let (code, path) = entry.split_at(entry.len().min(3));
            paths.push(path.to_string());
            if code.contains('R') || code.contains('C') {
                entries.next(); // the original path of a rename or copy
            }
        }
        Ok(paths)
    }
}
