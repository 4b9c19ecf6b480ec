//! Helpers of the tests against a real three-member etcd cluster.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use cutover_etcd::{Client, ClientOptions, Election, ElectionConfig, EtcdStore};
use cutover_lab::etcd::EtcdCluster;

/// The lease TTL of the tests (renew every 1 s, deadline 2 s).
pub const TTL: Duration = Duration::from_secs(3);

pub fn cluster() -> EtcdCluster {
    EtcdCluster::start().expect("a three-member etcd cluster")
}

pub fn options(cluster: &EtcdCluster) -> ClientOptions {
    ClientOptions::new(cluster.endpoints(), Duration::from_millis(1000))
}

pub fn client(cluster: &EtcdCluster) -> Client {
    Client::new(&options(cluster)).unwrap()
}

pub fn config(prefix: &str, node: &str) -> ElectionConfig {
    ElectionConfig::new(prefix, node, &format!("http://{node}.test:8080"), TTL)
}

/// A store on the cluster under `prefix`, with a local SQLite in `dir`.
pub fn store(cluster: &EtcdCluster, prefix: &str, dir: &tempfile::TempDir) -> EtcdStore {
    let local = cutover_store::SqliteStore::open(&dir.path().join("local.db")).unwrap();
    EtcdStore::open(&options(cluster), prefix, local).unwrap()
}

/// The indexes of the elections that lead now.
pub fn leaders(elections: &[Option<Election>]) -> Vec<usize> {
    elections
        .iter()
        .enumerate()
        .filter(|(_, e)| e.as_ref().is_some_and(|e| e.status().borrow().is_leader()))
        .map(|(i, _)| i)
        .collect()
}

/// Waits until exactly one election leads; its index.
pub async fn one_leader(elections: &[Option<Election>], limit: Duration) -> usize {
    let start = Instant::now();
    loop {
        let l = leaders(elections);
        assert!(l.len() <= 1, "two leaders at once: {l:?}");
        if l.len() == 1 {
            return l[0];
        }
        assert!(start.elapsed() < limit, "no leader after {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
