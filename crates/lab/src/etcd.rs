//! A three-member etcd cluster (Debian's `etcd-server`) on free loopback
//! ports, for the HA tests: every member can be killed (SIGKILL), paused
//! (SIGSTOP), resumed and restarted on its data directory.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{LabError, free_ports, signal};

/// Members in a cluster started by [`EtcdCluster::start`].
pub const MEMBERS: usize = 3;

fn etcd_bin() -> Result<PathBuf, LabError> {
    if let Ok(p) = std::env::var("ETCD_BIN") {
        return Ok(p.into());
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':').chain(["/usr/bin"]) {
        let p = Path::new(dir).join("etcd");
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(LabError::EtcdMissing)
}

/// True when an `etcd` binary can be found.
pub fn available() -> bool {
    etcd_bin().is_ok()
}

/// One member of an [`EtcdCluster`].
#[derive(Debug)]
pub struct EtcdMember {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    initial_cluster: String,
    child: Option<Child>,
}

/// Where the members keep their data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// On tmpfs (`/dev/shm`) when it is there, else in the temporary
    /// directory: an fsync then costs nothing, so a test measures cutover's
    /// timing and not a shared disk's (a killed member still keeps what it
    /// wrote: the page cache outlives the process).
    Memory,
    /// In the temporary directory, on disk: what a benchmark measures.
    Disk,
}

/// A running three-member etcd cluster; stopped (every member killed) when dropped.
#[derive(Debug)]
pub struct EtcdCluster {
    _dir: tempfile::TempDir,
    members: Vec<EtcdMember>,
}

impl EtcdCluster {
    /// Starts [`MEMBERS`] members on [`Storage::Memory`] and waits until
    /// every one is healthy.
    /// A port taken between its choice and etcd's bind (other tests pick
    /// free ports too) makes it start again on new ports, up to three times.
    pub fn start() -> Result<Self, LabError> {
        Self::start_on(Storage::Memory)
    }

    /// [`EtcdCluster::start`] with the members' data on `storage`.
    pub fn start_on(storage: Storage) -> Result<Self, LabError> {
        crate::on_free_ports(|| Self::start_once(storage), |why| why.contains("address already in use"))
    }

    fn start_once(storage: Storage) -> Result<Self, LabError> {
        let shm = Path::new("/dev/shm");
        let dir = match storage {
            Storage::Memory if shm.is_dir() => tempfile::tempdir_in(shm).or_else(|_| tempfile::tempdir()),
            _ => tempfile::tempdir(),
        }
        .map_err(|source| LabError::Io { what: "temporary directory".into(), source })?;
        // Picked together: one port twice (a peer URL) and the members never start.
        let picked = free_ports::<{ 2 * MEMBERS }>();
        let ports: Vec<(u16, u16)> = picked.chunks(2).map(|p| (p[0], p[1])).collect();
        let initial_cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut members = Vec::new();
        for (i, (client_port, peer_port)) in ports.into_iter().enumerate() {
            members.push(EtcdMember {
                name: format!("m{i}"),
                client_port,
                peer_port,
                data_dir: dir.path().join(format!("m{i}")),
                log: dir.path().join(format!("m{i}.log")),
                initial_cluster: initial_cluster.clone(),
                child: None,
            });
        }
        let mut cluster = EtcdCluster { _dir: dir, members };
        for m in &mut cluster.members {
            m.spawn()?;
        }
        for m in &cluster.members {
            m.wait_healthy(Duration::from_secs(30))?;
        }
        Ok(cluster)
    }

    /// The client URLs of every member (`http://127.0.0.1:port`).
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(EtcdMember::endpoint).collect()
    }

    /// Member `i` (0-based).
    pub fn member(&mut self, i: usize) -> &mut EtcdMember {
        &mut self.members[i]
    }

    /// Waits until every running member reports healthy.
    pub fn wait_healthy(&self, limit: Duration) -> Result<(), LabError> {
        for m in self.members.iter().filter(|m| m.child.is_some()) {
            m.wait_healthy(limit)?;
        }
        Ok(())
    }
}

impl EtcdMember {
    /// This member's client URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn spawn(&mut self) -> Result<(), LabError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|source| LabError::Io { what: format!("{}", self.log.display()), source })?;
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new(etcd_bin()?)
            .arg("--name")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.initial_cluster, "--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "cutover-lab"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|source| LabError::Io { what: "spawn etcd".into(), source })?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL, and reaps the process.
    pub fn kill(&mut self) -> Result<(), LabError> {
        if let Some(mut child) = self.child.take() {
            child.kill().map_err(|source| LabError::Io { what: format!("kill etcd {}", self.name), source })?;
            child.wait().map_err(|source| LabError::Io { what: format!("wait etcd {}", self.name), source })?;
        }
        Ok(())
    }

    /// SIGSTOP: the member stops answering (its connections stay open).
    pub fn pause(&self) -> Result<(), LabError> {
        self.pid().map_or(Ok(()), |pid| signal(pid, "STOP"))
    }

    /// SIGCONT after [`EtcdMember::pause`].
    pub fn resume(&self) -> Result<(), LabError> {
        self.pid().map_or(Ok(()), |pid| signal(pid, "CONT"))
    }

    /// Kills the member (when running) and starts it again on its data
    /// directory, without waiting: a member alone is not healthy until a
    /// quorum is back (restart every member, then
    /// [`EtcdCluster::wait_healthy`]).
    pub fn start_again(&mut self) -> Result<(), LabError> {
        self.kill()?;
        self.spawn()
    }

    /// Kills the member (when running) and starts it again on its data
    /// directory; waits until it is healthy.
    pub fn restart(&mut self) -> Result<(), LabError> {
        self.kill()?;
        self.spawn()?;
        self.wait_healthy(Duration::from_secs(30))
    }

    /// Waits until `GET /health` answers `"health":"true"`.
    pub fn wait_healthy(&self, limit: Duration) -> Result<(), LabError> {
        let start = Instant::now();
        loop {
            if self.healthy() {
                return Ok(());
            }
            // The port was taken by someone else after it was chosen.
            if std::fs::read_to_string(&self.log).is_ok_and(|l| l.contains("address already in use")) {
                return Err(LabError::NotReady(format!("etcd {}: address already in use", self.name)));
            }
            if start.elapsed() > limit {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail: String = log.lines().rev().take(10).collect::<Vec<_>>().join("\n");
                return Err(LabError::NotReady(format!(
                    "etcd {} not healthy after {limit:?}; last log lines (newest first):\n{tail}",
                    self.name
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn healthy(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.client_port)) else { return false };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let req = format!("GET /health HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\r\n", self.client_port);
        if s.write_all(req.as_bytes()).is_err() {
            return false;
        }
        let mut body = String::new();
        s.read_to_string(&mut body).is_ok() && body.contains("\"health\":\"true\"")
    }
}

impl Drop for EtcdMember {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGCONT first: a paused process would not die before it runs again.
            let _ = signal(child.id(), "CONT");
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
