//! Real S3 servers for tests, benchmarks and the demo.
//!
//! - [`garage::Garage`]: a single-node Garage process on free loopback ports,
//!   set up with `garage layout assign/apply`, `bucket create`, `key import`,
//!   `bucket allow`; it can be paused (SIGSTOP), resumed, killed and restarted.
//! - [`s3sfs::S3sFs`]: an s3s-fs server in this process, on a temporary
//!   directory, that can be made to stop answering.
//! - [`prometheus::Prometheus`]: a Prometheus process (Debian's package)
//!   scraping given targets.
//! - [`etcd::EtcdCluster`]: a three-member etcd cluster (Debian's package)
//!   whose members can be killed, paused, resumed and restarted.
//! - [`bind::Bind`]: a BIND 9 name server (Debian's package), primary for a
//!   zone that a TSIG key may update, read back with `dig`.
//! - [`tls::TestPki`]: a throwaway CA and server certificate (`openssl`).
//!
//! Every server lives on 127.0.0.1 only and is stopped when dropped.

pub mod bind;
pub mod etcd;
pub mod garage;
pub mod prometheus;
pub mod s3sfs;
pub mod tls;

use std::net::TcpListener;

/// Why a lab server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The `garage` binary is not installed.
    #[error("garage binary not found (set GARAGE_BIN, or run `cargo install garage --locked`, as .ci/run does)")]
    GarageMissing,
    /// The `etcd` binary is not installed.
    #[error("etcd binary not found (set ETCD_BIN, or `apt-get install etcd-server etcd-client`, as .ci/run does)")]
    EtcdMissing,
    /// The `prometheus` binary is not installed.
    #[error("prometheus binary not found (set PROMETHEUS_BIN, or `apt-get install prometheus`, as .ci/run does)")]
    PrometheusMissing,
    /// A command or file operation failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The in-process s3s-fs server could not start.
    #[error("s3s-fs: {0}")]
    S3sFs(#[source] s3sfs::StartError),
    /// A server did not become ready.
    #[error("{0}")]
    NotReady(String),
}

/// Runs `start_once`, which starts a server on ports from [`free_port`],
/// and starts it again on fresh ones (at most twice more) while it fails
/// with a [`LabError::NotReady`] that `port_taken` recognises: a port free
/// when chosen can be taken before the server binds it (another test's
/// server, an outgoing connection's ephemeral port).
pub(crate) fn on_free_ports<T>(
    mut start_once: impl FnMut() -> Result<T, LabError>,
    port_taken: impl Fn(&str) -> bool,
) -> Result<T, LabError> {
    let mut tries = 0;
    loop {
        match start_once() {
            Err(LabError::NotReady(why)) if tries < 2 && port_taken(&why) => {
                tries += 1;
                eprintln!("{why}; starting again on other ports");
            }
            r => return r,
        }
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    let [port] = free_ports();
    port
}

/// `N` distinct free TCP ports on 127.0.0.1: all bound at once, then
/// released. (Ports from separate [`free_port`] calls may repeat: the
/// kernel may hand out a port again once it is released.)
pub fn free_ports<const N: usize>() -> [u16; N] {
    let held: [TcpListener; N] = std::array::from_fn(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"));
    held.each_ref().map(|l| l.local_addr().expect("a bound listener's address").port())
}

/// A Garage-style access key id (`GK` + 24 hex digits) and secret (64 hex digits).
pub fn new_key() -> (String, String) {
    let mut id = [0u8; 12];
    let mut secret = [0u8; 32];
    fastrand::fill(&mut id);
    fastrand::fill(&mut secret);
    (format!("GK{}", hex::encode(id)), hex::encode(secret))
}

/// Sends a signal to a process with the `kill` command.
pub fn signal(pid: u32, sig: &str) -> Result<(), LabError> {
    let status = std::process::Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .map_err(|source| LabError::Io { what: format!("kill -{sig} {pid}"), source })?;
    if status.success() { Ok(()) } else { Err(LabError::NotReady(format!("kill -{sig} {pid} failed"))) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An etcd test cluster was once given one peer port twice ("initial
    /// cluster ... has duplicate url") by separate `free_port` calls.
    #[test]
    fn ports_picked_together_are_distinct() {
        for _ in 0..50 {
            let mut ports = free_ports::<64>().to_vec();
            assert!(ports.iter().all(|p| *p != 0));
            ports.sort_unstable();
            ports.dedup();
            assert_eq!(ports.len(), 64, "a port was picked twice");
        }
    }
}
