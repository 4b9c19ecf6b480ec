//! Helpers for tests that run the real `cutover` binary against real S3 servers.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use cutover_lab::garage::Garage;
use cutover_lab::s3sfs::S3sFs;

pub mod console;
pub mod receiver;
pub mod run_process;
pub mod webdriver;

/// One backend as the tests configure it.
#[derive(Debug, Clone)]
pub struct Backend {
    pub name: String,
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub role: &'static str,
    pub key_id: String,
    pub secret: String,
    pub extra: String,
}

impl Backend {
    pub fn garage(name: &str, role: &'static str, g: &Garage) -> Self {
        Self {
            name: name.into(),
            endpoint: g.endpoint(),
            region: "garage".into(),
            bucket: g.bucket.clone(),
            role,
            key_id: g.key_id.clone(),
            secret: g.secret.clone(),
            extra: String::new(),
        }
    }

    pub fn s3sfs(name: &str, role: &'static str, s: &S3sFs) -> Self {
        Self {
            name: name.into(),
            endpoint: s.endpoint(),
            region: "us-east-1".into(),
            bucket: s.bucket.clone(),
            role,
            key_id: s.key_id.clone(),
            secret: s.secret.clone(),
            extra: String::new(),
        }
    }

    /// A backend nothing listens for: for commands that must fail before any I/O.
    pub fn dummy(name: &str, role: &'static str) -> Self {
        Self {
            name: name.into(),
            endpoint: "http://127.0.0.1:1".into(),
            region: "region".into(),
            bucket: "bucket".into(),
            role,
            key_id: "k".into(),
            secret: "s".into(),
            extra: String::new(),
        }
    }

    /// cutover's gateway on `port`, as an application sees it (bucket `app`).
    pub fn gateway(port: u16, key_id: &str, secret: &str) -> Self {
        Self {
            name: "gateway".into(),
            endpoint: format!("http://127.0.0.1:{port}"),
            region: "us-east-1".into(),
            bucket: "app".into(),
            role: "primary",
            key_id: key_id.into(),
            secret: secret.into(),
            extra: String::new(),
        }
    }

    /// A client of cutover's own for this backend, for seeding and checking
    /// data behind the binary's back.
    pub fn client(&self) -> cutover_s3::S3Client {
        let endpoint = cutover_core::Endpoint::parse(&self.endpoint).unwrap();
        let opts = cutover_s3::ClientOptions {
            timeout: std::time::Duration::from_secs(120),
            connect_timeout: std::time::Duration::from_secs(5),
            pooled: true,
        };
        cutover_s3::S3Client::path_style(
            &self.name,
            endpoint,
            &self.region,
            &self.bucket,
            &self.key_id,
            &self.secret,
            opts,
        )
    }

    fn env_prefix(&self) -> String {
        self.name.to_uppercase().replace('-', "_")
    }
}

/// A configuration file in a temporary directory, and the environment that
/// holds its credentials.
#[derive(Debug)]
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub env: Vec<(String, String)>,
}

impl Setup {
    pub fn new(backends: &[Backend], extra_toml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut toml = String::from("[probe]\ninterval = \"1s\"\ntimeout = \"2s\"\n\n");
        toml.push_str(extra_toml);
        let mut env = Vec::new();
        for b in backends {
            let p = b.env_prefix();
            toml.push_str(&format!(
                "\n[[backends]]\nname = \"{}\"\nendpoint = \"{}\"\nregion = \"{}\"\nbucket = \"{}\"\nrole = \"{}\"\npath_style = true\n\
                 credentials = {{ access_key_id_env = \"{p}_KEY_ID\", secret_access_key_env = \"{p}_SECRET\" }}\n{}\n",
                b.name, b.endpoint, b.region, b.bucket, b.role, b.extra
            ));
            env.push((format!("{p}_KEY_ID"), b.key_id.clone()));
            env.push((format!("{p}_SECRET"), b.secret.clone()));
        }
        let config = dir.path().join("cutover.toml");
        std::fs::write(&config, toml).unwrap();
        Self { dir, config, env }
    }

    /// Runs `cutover --config <this> ARGS`.
    pub fn run(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cutover"));
        cmd.arg("--config").arg(&self.config).args(args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        Run::from(cmd.output().unwrap())
    }
}

/// What a command printed and how it exited.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Self {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    /// The JSON documents printed on stdout, one per line.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}\n{self:?}")))
            .collect()
    }

    pub fn assert_no_secret(&self, secret: &str) {
        assert!(!self.stdout.contains(secret), "secret in stdout: {}", self.stdout);
        assert!(!self.stderr.contains(secret), "secret in stderr: {}", self.stderr);
    }
}

/// Runs `cutover ARGS` with no configuration file argument.
pub fn cutover(args: &[&str], envs: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cutover"));
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    Run::from(cmd.output().unwrap())
}

pub fn start_garage() -> Garage {
    Garage::start("app-data").unwrap_or_else(|e| panic!("starting Garage: {e}"))
}

/// Two Garage backends, `primary` and `secondary`, in a configuration with `extra`.
pub fn two_garages(extra: &str) -> (Garage, Garage, Setup) {
    let (a, b) = (start_garage(), start_garage());
    let setup =
        Setup::new(&[Backend::garage("primary", "primary", &a), Backend::garage("secondary", "secondary", &b)], extra);
    (a, b, setup)
}

/// A backend's health in a `GET /v1/status` answer ("" when it is not there).
pub fn health(status: &serde_json::Value, backend: &str) -> String {
    status["backends"]
        .as_array()
        .and_then(|l| l.iter().find(|b| b["name"] == backend))
        .map_or(String::new(), |b| b["health"].as_str().unwrap_or("").to_string())
}

pub fn start_s3sfs() -> S3sFs {
    S3sFs::start("app-data").unwrap_or_else(|e| panic!("starting s3s-fs: {e}"))
}

/// The hex SHA-256 of a token, as `[[api.tokens]] sha256` wants it (computed by coreutils).
pub fn sha256_hex(s: &str) -> String {
    let mut child = Command::new("sha256sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_string()
}
