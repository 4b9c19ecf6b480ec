//! The harness of `bench ha`: a three-member etcd cluster and two s3s-fs
//! backends (in this process), kept for the whole bench, and the
//! controllers and gateways each part starts on them.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cutover_core::duration::format_duration;
use cutover_etcd::{Client, ClientOptions};
use cutover_lab::etcd::{EtcdCluster, Storage};
use cutover_lab::s3sfs::S3sFs;

use super::config::{BackendSpec, GATEWAY_SECRET_ENV, Shared};
use super::process::HaProcess;
use crate::cmd::bench::error::{BenchError, etcd};
use crate::cmd::bench::process::PATIENCE;

/// The etcd cluster, the backends, and a client of the bench's own.
pub struct HaLab {
    pub exe: PathBuf,
    pub lease_ttl: Duration,
    pub rt: tokio::runtime::Runtime,
    pub options: ClientOptions,
    pub client: Client,
    pub primary: S3sFs,
    pub secondary: S3sFs,
    // Last: the processes of the parts are gone before etcd goes.
    pub cluster: EtcdCluster,
}

impl HaLab {
    pub fn start(exe: PathBuf, lease_ttl: Duration) -> Result<Self, BenchError> {
        let cluster =
            EtcdCluster::start_on(Storage::Disk).map_err(|source| BenchError::Setup { what: "etcd", source })?;
        let s3 = |what| S3sFs::start("app-data").map_err(|source| BenchError::Setup { what, source });
        let (primary, secondary) = (s3("the primary")?, s3("the secondary")?);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(crate::cmd::bench::error::io("a tokio runtime"))?;
        let options = ClientOptions::new(cluster.endpoints(), Duration::from_secs(1));
        let client = Client::new(&options).map_err(etcd("an etcd client"))?;
        Ok(HaLab { exe, lease_ttl, rt, options, client, primary, secondary, cluster })
    }

    /// What the processes of part `part` share: the prefix `/cutover-bench/<part>`.
    pub fn shared(&self, part: &str) -> Shared {
        let spec = |name, s: &S3sFs| BackendSpec { name, endpoint: s.endpoint(), bucket: s.bucket.clone() };
        Shared {
            etcd: self.cluster.endpoints(),
            prefix: format!("/cutover-bench/{part}"),
            lease_ttl: self.lease_ttl,
            primary: spec("primary", &self.primary),
            secondary: spec("secondary", &self.secondary),
        }
    }

    fn env(&self) -> Vec<(String, String)> {
        let (p, s) = (&self.primary, &self.secondary);
        [
            ("BENCH_PRIMARY_KEY_ID", p.key_id.clone()),
            ("BENCH_PRIMARY_SECRET", p.secret.clone()),
            ("BENCH_SECONDARY_KEY_ID", s.key_id.clone()),
            ("BENCH_SECONDARY_SECRET", s.secret.clone()),
            (GATEWAY_SECRET_ENV, "bench-ha-gateway-secret-0123".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Starts `n` `cutover run` nodes `ctl-0`.. of `shared` (with `extra`
    /// in their configuration), one after the other: `ctl-0` leads.
    pub fn start_nodes(&self, shared: &Shared, n: usize, extra: &str) -> Result<Vec<HaProcess>, BenchError> {
        let mut nodes: Vec<HaProcess> = Vec::new();
        for i in 0..n {
            let name = format!("ctl-{i}");
            let port = cutover_lab::free_port();
            let config = shared.node(&name, port, extra);
            let node = HaProcess::start(&self.exe, "run", &name, port, &config, self.env())?;
            wait(&format!("role in the status of {name}"), &[&node], || node.status()["role"].is_string())?;
            nodes.push(node);
        }
        Ok(nodes)
    }

    /// Starts `n` `cutover gateway` processes `gw-0`.. of `shared` and waits
    /// until each accepts connections.
    pub fn start_gateways(&self, shared: &Shared, n: usize) -> Result<Vec<HaProcess>, BenchError> {
        let mut gateways = Vec::new();
        for i in 0..n {
            let name = format!("gw-{i}");
            let port = cutover_lab::free_port();
            let config = shared.gateway(&name, port);
            let gw = HaProcess::start(&self.exe, "gateway", &name, port, &config, self.env())?;
            wait(&format!("listener of {name}"), &[&gw], || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok())?;
            gateways.push(gw);
        }
        Ok(gateways)
    }
}

/// Polls `f` every 10 ms until it holds, for at most [`PATIENCE`]; the
/// timeout names `what` and ends with the logs of `procs`.
pub fn wait(what: &str, procs: &[&HaProcess], mut f: impl FnMut() -> bool) -> Result<(), BenchError> {
    let start = Instant::now();
    while !f() {
        if start.elapsed() > PATIENCE {
            return Err(BenchError::Timeout {
                what: what.to_string(),
                patience: format_duration(PATIENCE),
                log_tail: procs.iter().map(|p| p.log_tail()).collect::<Vec<_>>().join("\n"),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}
