//! Who is there: controller nodes (`<prefix>/nodes/<node>`, under the
//! node's election lease) and gateways (`<prefix>/gateways/<name>`, under
//! the gateway's own lease, with the active backend it acknowledged), and
//! one read of them all with the leader (`cutover ha status`, and
//! `state.switch` waiting for every live gateway's acknowledgement).

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::{Instant, timeout};

use crate::client::Client;
use crate::election::{LeaderInfo, leader_key};
use crate::error::EtcdError;

/// The key of a node's registration.
pub fn node_key(prefix: &str, node: &str) -> String {
    format!("{}/nodes/{node}", prefix.trim_end_matches('/'))
}

/// The key of a gateway's registration.
pub fn gateway_key(prefix: &str, name: &str) -> String {
    format!("{}/gateways/{name}", prefix.trim_end_matches('/'))
}

/// A controller node as registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    pub node: String,
    /// `leader` or `standby`.
    pub role: String,
    pub api: String,
    /// RFC 3339.
    pub last_renewal: String,
}

/// A gateway as registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayEntry {
    pub name: String,
    /// The active backend it serves (acknowledged), if it knows one.
    pub active: Option<String>,
    /// When it acknowledged that value (RFC 3339).
    pub acked_at: String,
}

/// The leader, every node and every gateway, read at one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaSnapshot {
    /// The leader and its fencing token (the leader key's create revision).
    pub leader: Option<(LeaderInfo, i64)>,
    pub nodes: Vec<NodeEntry>,
    pub gateways: Vec<GatewayEntry>,
    pub revision: i64,
}

/// Reads the leader, the nodes and the gateways under `prefix` (one range
/// over the prefix: one revision). Unparsable entries are skipped.
pub async fn read_all(client: &Client, prefix: &str) -> Result<HaSnapshot, EtcdError> {
    let prefix = prefix.trim_end_matches('/');
    let r = client.get_prefix(format!("{prefix}/").as_bytes()).await?;
    let leader = leader_key(prefix);
    let (nodes_p, gateways_p) = (format!("{prefix}/nodes/"), format!("{prefix}/gateways/"));
    let mut snap = HaSnapshot { leader: None, nodes: vec![], gateways: vec![], revision: r.header.revision };
    for kv in &r.kvs {
        let key = String::from_utf8_lossy(&kv.key);
        if key == leader {
            snap.leader = serde_json::from_slice(&kv.value).ok().map(|l| (l, kv.create_revision));
        } else if key.starts_with(&nodes_p) {
            snap.nodes.extend(serde_json::from_slice(&kv.value).ok());
        } else if key.starts_with(&gateways_p) {
            snap.gateways.extend(serde_json::from_slice(&kv.value).ok());
        }
    }
    Ok(snap)
}

/// A gateway's registration: a task that holds the gateway's lease and
/// keeps `<prefix>/gateways/<name>` on it with the acknowledged value.
/// Dropping it stops the task (the key expires with the lease).
#[derive(Debug)]
pub struct GatewayRegistration {
    ack: watch::Sender<Option<String>>,
    task: tokio::task::JoinHandle<()>,
}

impl GatewayRegistration {
    /// Registers gateway `name` with a lease of `ttl` (renewed every third).
    pub fn start(client: Client, prefix: &str, name: &str, ttl: Duration) -> Self {
        let (ack, rx) = watch::channel(None);
        let key = gateway_key(prefix, name);
        let task = tokio::spawn(hold(client, key, name.to_string(), ttl, rx));
        Self { ack, task }
    }

    /// Acknowledges that the gateway now serves `active` (written at once,
    /// and again with every renewal).
    pub fn ack(&self, active: Option<String>) {
        self.ack.send_replace(active);
    }
}

impl Drop for GatewayRegistration {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn hold(client: Client, key: String, name: String, ttl: Duration, mut acks: watch::Receiver<Option<String>>) {
    let every = ttl / 3;
    let secs = ttl.as_secs_f64().ceil().max(1.0) as i64;
    loop {
        let Ok(Ok((lease, _))) = timeout(every, client.lease_grant(secs)).await else {
            tokio::time::sleep(every).await;
            continue;
        };
        let mut acked_at = SystemTime::now();
        let mut next = Instant::now();
        loop {
            let entry = GatewayEntry {
                name: name.clone(),
                active: acks.borrow_and_update().clone(),
                acked_at: cutover_core::time::rfc3339(acked_at),
            };
            let value = serde_json::to_vec(&entry).expect("serializable");
            let put = timeout(every, client.put(key.as_bytes(), &value, lease)).await;
            if matches!(put, Ok(Err(EtcdError::Status { .. }))) {
                break; // the lease is gone: take a new one
            }
            tokio::select! {
                _ = tokio::time::sleep_until(next + every) => {
                    next = Instant::now();
                    match timeout(every, client.lease_keepalive(lease)).await {
                        Ok(Err(EtcdError::LeaseGone { .. })) => break,
                        _ => continue,
                    }
                }
                changed = acks.changed() => {
                    if changed.is_err() {
                        return; // the registration was dropped
                    }
                    acked_at = SystemTime::now();
                }
            }
        }
    }
}
