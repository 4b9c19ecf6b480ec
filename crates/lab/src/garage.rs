//! A single-node Garage server on free loopback ports.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{LabError, free_ports, new_key, signal};

/// A running Garage node with one bucket and one key allowed on it.
#[derive(Debug)]
pub struct Garage {
    dir: tempfile::TempDir,
    child: Option<Child>,
    pub s3_port: u16,
    pub bucket: String,
    pub key_id: String,
    pub secret: String,
}

fn garage_bin() -> Result<PathBuf, LabError> {
    if let Ok(p) = std::env::var("GARAGE_BIN") {
        return Ok(p.into());
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let cargo_bin = Path::new(&home).join(".cargo/bin/garage");
    if cargo_bin.exists() {
        return Ok(cargo_bin);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("garage");
        if p.exists() {
            return Ok(p);
        }
    }
    Err(LabError::GarageMissing)
}

/// True when a `garage` binary can be found.
pub fn available() -> bool {
    garage_bin().is_ok()
}

impl Garage {
    /// Starts a node with `bucket` and a fresh key allowed to read and write it.
    ///
    /// The ports are free when chosen, but something else (another test's
    /// server, or an outgoing connection's ephemeral port) can take one
    /// before Garage binds it; a node that does not come up is started
    /// again on fresh ports, at most twice more.
    pub fn start(bucket: &str) -> Result<Self, LabError> {
        // Any failure to come up: Garage's RPC or S3 bind may be the one lost.
        crate::on_free_ports(|| Self::start_once(bucket), |_| true)
    }

    fn start_once(bucket: &str) -> Result<Self, LabError> {
        let dir = tempfile::tempdir().map_err(|source| LabError::Io { what: "temporary directory".into(), source })?;
        let [rpc, s3, admin] = free_ports();
        let mut secret = [0u8; 32];
        fastrand::fill(&mut secret);
        let config = format!(
            "metadata_dir = \"{d}/meta\"\ndata_dir = \"{d}/data\"\ndb_engine = \"lmdb\"\nreplication_factor = 1\n\
             rpc_bind_addr = \"127.0.0.1:{rpc}\"\nrpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{secret}\"\n\n\
             [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{s3}\"\nroot_domain = \".s3.garage.localhost\"\n\n\
             [admin]\napi_bind_addr = \"127.0.0.1:{admin}\"\nadmin_token = \"{secret}\"\n",
            d = dir.path().display(),
            secret = hex::encode(secret),
        );
        std::fs::write(dir.path().join("garage.toml"), config)
            .map_err(|source| LabError::Io { what: "write garage.toml".into(), source })?;
        let (key_id, key_secret) = new_key();
        let mut g = Garage { dir, child: None, s3_port: s3, bucket: bucket.to_string(), key_id, secret: key_secret };
        g.spawn()?;
        match g.setup() {
            Ok(()) => Ok(g),
            Err(LabError::NotReady(why)) => {
                Err(LabError::NotReady(format!("{why}; garage.log ends: {}", g.log_tail())))
            }
            Err(e) => Err(e),
        }
    }

    /// The last lines of the server's log.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("garage.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("garage.toml")
    }

    fn spawn(&mut self) -> Result<(), LabError> {
        let log = std::fs::File::create(self.dir.path().join("garage.log"))
            .map_err(|source| LabError::Io { what: "garage.log".into(), source })?;
        let child = Command::new(garage_bin()?)
            .arg("-c")
            .arg(self.config_path())
            .arg("server")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|source| LabError::Io { what: "spawn garage server".into(), source })?;
        self.child = Some(child);
        Ok(())
    }

    /// Runs a `garage` CLI command against this node; returns its stdout.
    pub fn cli(&self, args: &[&str]) -> Result<String, LabError> {
        let out = Command::new(garage_bin()?)
            .arg("-c")
            .arg(self.config_path())
            .args(args)
            .env("RUST_LOG", "error")
            .output()
            .map_err(|source| LabError::Io { what: format!("garage {}", args.join(" ")), source })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(LabError::NotReady(format!(
                "garage {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    /// Retries a CLI command until it succeeds or `limit` passes.
    fn cli_retry(&self, args: &[&str], limit: Duration) -> Result<String, LabError> {
        let start = Instant::now();
        loop {
            match self.cli(args) {
                Ok(out) => return Ok(out),
                Err(e) if start.elapsed() > limit => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    fn setup(&self) -> Result<(), LabError> {
        let id = self.cli_retry(&["node", "id", "-q"], Duration::from_secs(30))?;
        let id = id.trim().split('@').next().unwrap_or("").to_string();
        self.cli_retry(&["layout", "assign", "-z", "dc1", "-c", "1G", &id], Duration::from_secs(10))?;
        self.cli_retry(&["layout", "apply", "--version", "1"], Duration::from_secs(10))?;
        self.create_bucket(&self.bucket)?;
        self.cli_retry(
            &["key", "import", "--yes", "-n", "cutover-test", &self.key_id, &self.secret],
            Duration::from_secs(10),
        )?;
        self.allow(&self.bucket, &self.key_id)?;
        self.wait_s3(Duration::from_secs(20))
    }

    /// Creates another bucket on this node.
    pub fn create_bucket(&self, name: &str) -> Result<(), LabError> {
        self.cli_retry(&["bucket", "create", name], Duration::from_secs(20)).map(|_| ())
    }

    /// Allows a key (by id) to read and write a bucket.
    pub fn allow(&self, bucket: &str, key_id: &str) -> Result<(), LabError> {
        self.cli_retry(
            &["bucket", "allow", "--read", "--write", "--owner", bucket, "--key", key_id],
            Duration::from_secs(10),
        )
        .map(|_| ())
    }

    /// Waits until the S3 port accepts connections.
    fn wait_s3(&self, limit: Duration) -> Result<(), LabError> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if std::net::TcpStream::connect(("127.0.0.1", self.s3_port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(LabError::NotReady(format!("garage S3 API on port {} did not come up", self.s3_port)))
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// SIGSTOP: the process hangs; connections are accepted by the kernel but
    /// never answered.
    pub fn pause(&self) -> Result<(), LabError> {
        signal(self.pid().ok_or_else(|| LabError::NotReady("garage is not running".into()))?, "STOP")
    }

    /// SIGCONT after [`Garage::pause`].
    pub fn resume(&self) -> Result<(), LabError> {
        signal(self.pid().ok_or_else(|| LabError::NotReady("garage is not running".into()))?, "CONT")
    }

    /// SIGKILL: the port refuses connections until [`Garage::restart`].
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the process again on the same data and ports.
    pub fn restart(&mut self) -> Result<(), LabError> {
        self.kill();
        self.spawn()?;
        self.wait_s3(Duration::from_secs(30))
    }

    /// The server log so far (for test failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("garage.log")).unwrap_or_default()
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = signal(pid, "CONT");
        }
        self.kill();
    }
}
