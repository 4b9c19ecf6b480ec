//! Leader election on an etcd lease, with a fencing token.
//!
//! Each campaigner holds a lease of `lease_ttl`, renewed every
//! `renew_interval`. Campaigning is one transaction: when
//! `create_revision(<prefix>/leader) == 0`, put the leader key
//! (`{"node", "api"}`) under our lease. The winner's **fencing token** is
//! the leader key's create revision: every write of shared state compares
//! it ([`crate::store::EtcdStore`]). A standby watches the key and
//! campaigns again when it is deleted (resigned, or its lease expired).
//!
//! # Guarantees
//! - Leadership ends **locally** when `renew_deadline` (monotonic, from the
//!   start of the last successful renewal) passes without a renewal, even
//!   when etcd cannot be reached: the role goes to `Standby` at that
//!   instant, which is what cancels the step in flight. With
//!   `renew_deadline < lease_ttl`, the old leader stops before etcd lets the
//!   key expire and another node can win.
//! - [`Election::resign`] deletes the leader key (guarded on our create
//!   revision) and revokes the lease at once.
//! - Node registration: `<prefix>/nodes/<node>` under the same lease, with
//!   the role, API address and last renewal ([`crate::registry`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use cutover_store::Fence;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, oneshot, watch};
use tokio::time::{Instant, sleep_until, timeout};

use crate::client::Client;
use crate::error::EtcdError;
use crate::kv::{Cmp, Compare, KeyValue, Op};
use crate::registry::{NodeEntry, node_key};
use crate::watch::EventType;

/// The timings and names of one campaigner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionConfig {
    /// Every key under it.
    pub prefix: String,
    /// This node's name.
    pub node: String,
    /// How other nodes reach this node's API (`advertise_api`).
    pub api: String,
    pub lease_ttl: Duration,
    pub renew_interval: Duration,
    /// The bound on one renewal attempt (a renewal may take two).
    pub request_timeout: Duration,
    pub renew_deadline: Duration,
}

impl ElectionConfig {
    /// The timings derived from `lease_ttl`: renew every third of it, a
    /// request timeout of a sixth, a renew deadline of two thirds (6 s →
    /// 2 s, 1 s, 4 s), so that `renew_interval + 2 × request_timeout ≤
    /// renew_deadline < lease_ttl`.
    pub fn new(prefix: &str, node: &str, api: &str, lease_ttl: Duration) -> Self {
        Self {
            prefix: prefix.trim_end_matches('/').to_string(),
            node: node.to_string(),
            api: api.to_string(),
            lease_ttl,
            renew_interval: lease_ttl / 3,
            request_timeout: lease_ttl / 6,
            renew_deadline: lease_ttl * 2 / 3,
        }
    }

    /// The leader key.
    pub fn leader_key(&self) -> String {
        leader_key(&self.prefix)
    }

    fn ttl_secs(&self) -> i64 {
        self.lease_ttl.as_secs_f64().ceil().max(1.0) as i64
    }
}

/// The leader key under `prefix`.
pub fn leader_key(prefix: &str) -> String {
    format!("{}/leader", prefix.trim_end_matches('/'))
}

/// Who leads, as the leader key says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderInfo {
    pub node: String,
    pub api: String,
}

/// This node's role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// We lead; every shared write carries `token`.
    Leader { token: i64 },
    /// Another node leads (`Some`), or nobody is known to (`None`).
    Standby { leader: Option<LeaderInfo> },
}

/// What [`Election::status`] publishes.
#[derive(Debug, Clone, PartialEq)]
pub struct ElectionStatus {
    pub role: Role,
    /// Our lease, when we hold one.
    pub lease: Option<i64>,
    /// The lease's TTL as etcd gave it at the last renewal.
    pub lease_ttl_left: Option<Duration>,
    /// Wall-clock time of the last successful renewal.
    pub last_renewal: Option<SystemTime>,
    /// When leadership ends locally without another renewal (leader only).
    pub renew_deadline: Option<Instant>,
    /// How long the last successful renewal took.
    pub renew_latency: Option<Duration>,
    /// How many times this node became or stopped being the leader.
    pub leadership_changes: u64,
    /// Whether the last request to etcd got an answer.
    pub etcd_reachable: bool,
}

impl ElectionStatus {
    fn initial() -> Self {
        Self {
            role: Role::Standby { leader: None },
            lease: None,
            lease_ttl_left: None,
            last_renewal: None,
            renew_deadline: None,
            renew_latency: None,
            leadership_changes: 0,
            etcd_reachable: false,
        }
    }

    /// The fence of our leadership, when we lead.
    pub fn fence(&self) -> Option<Fence> {
        match self.role {
            Role::Leader { token } => Some(Fence::leader(token)),
            Role::Standby { .. } => None,
        }
    }

    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader { .. })
    }
}

/// A running campaigner (a task on the runtime it was started on).
/// Dropping it stops the task without resigning: the lease then expires
/// as if the process had died.
#[derive(Debug)]
pub struct Election {
    client: Client,
    config: ElectionConfig,
    status: watch::Receiver<ElectionStatus>,
    tx: Arc<watch::Sender<ElectionStatus>>,
    task: tokio::task::JoinHandle<()>,
    held: Arc<Mutex<Held>>,
    stopped: Arc<AtomicBool>,
}

/// The lease and token the task holds, for [`Election::resign`].
#[derive(Debug, Default, Clone, Copy)]
struct Held {
    lease: Option<i64>,
    token: Option<i64>,
}

impl Election {
    /// Starts campaigning (spawns the task on the current tokio runtime).
    pub fn start(client: Client, config: ElectionConfig) -> Self {
        let (tx, status) = watch::channel(ElectionStatus::initial());
        let tx = Arc::new(tx);
        let held = Arc::new(Mutex::new(Held::default()));
        let stopped = Arc::new(AtomicBool::new(false));
        let campaign = Campaign {
            client: client.clone(),
            cfg: config.clone(),
            tx: tx.clone(),
            held: held.clone(),
            stopped: stopped.clone(),
        };
        let task = tokio::spawn(campaign.run());
        Self { client, config, status, tx, task, held, stopped }
    }

    /// The role and lease, updated as they change.
    pub fn status(&self) -> watch::Receiver<ElectionStatus> {
        self.status.clone()
    }

    /// Our current lease, if any.
    pub async fn lease(&self) -> Option<i64> {
        self.held.lock().await.lease
    }

    /// Stops campaigning and gives leadership up at once: deletes the leader
    /// key when it is still ours and revokes the lease (the node key goes
    /// with it). Errors when etcd cannot be reached (the lease then expires).
    pub async fn resign(self) -> Result<(), EtcdError> {
        self.stop();
        let held = *self.held.lock().await;
        let key = self.config.leader_key();
        if let Some(token) = held.token {
            let guard = [Compare::create_revision(key.as_bytes(), Cmp::Equal, token)];
            self.client.txn(&guard, &[Op::Delete { key: key.into_bytes() }], &[]).await?;
        }
        if let Some(lease) = held.lease {
            self.client.lease_revoke(lease).await?;
        }
        Ok(())
    }
}

impl Election {
    /// Stops the task and publishes that this node no longer leads.
    fn stop(&self) {
        // Set before the last publication: the task, maybe still running on
        // another thread until the abort lands, publishes nothing after it.
        self.stopped.store(true, Ordering::SeqCst);
        self.task.abort();
        self.tx.send_modify(|s| {
            if s.is_leader() {
                s.leadership_changes += 1;
            }
            s.role = Role::Standby { leader: None };
            s.renew_deadline = None;
        });
    }
}

impl Drop for Election {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The campaign task.
struct Campaign {
    client: Client,
    cfg: ElectionConfig,
    tx: Arc<watch::Sender<ElectionStatus>>,
    held: Arc<Mutex<Held>>,
    stopped: Arc<AtomicBool>,
}

/// Why a lease's life ended.
enum LeaseEnd {
    /// etcd says the lease is gone, or the deadline passed without renewal.
    Lost,
}

/// The state of one lease.
struct Lease {
    id: i64,
    /// Start of the last successful renewal (or of the grant).
    renewed: Instant,
}

impl Campaign {
    async fn run(self) {
        loop {
            let started = Instant::now();
            let grant = timeout(self.cfg.request_timeout * 2, self.client.lease_grant(self.cfg.ttl_secs())).await;
            let id = match grant {
                Ok(Ok((id, _))) => id,
                Ok(Err(e)) => {
                    self.unreachable(&e);
                    tokio::time::sleep(self.cfg.renew_interval).await;
                    continue;
                }
                Err(_) => {
                    self.set(|s| s.etcd_reachable = false);
                    tokio::time::sleep(self.cfg.renew_interval).await;
                    continue;
                }
            };
            self.held.lock().await.lease = Some(id);
            self.set(|s| {
                s.lease = Some(id);
                s.etcd_reachable = true;
                s.last_renewal = Some(SystemTime::now());
                s.lease_ttl_left = Some(self.cfg.lease_ttl);
            });
            let mut lease = Lease { id, renewed: started };
            let LeaseEnd::Lost = self.with_lease(&mut lease).await;
            self.step_down(None);
            {
                let mut held = self.held.lock().await;
                *held = Held::default();
            }
            self.set(|s| s.lease = None);
            // Best effort: the lease may still live in etcd; do not wait for it.
            let client = self.client.clone();
            tokio::spawn(async move {
                if let Err(e) = client.lease_revoke(id).await {
                    tracing::debug!(error = %e, "etcd: revoking a lost lease failed (it expires)");
                }
            });
        }
    }

    /// Campaigns, leads or stands by under one lease until it is lost.
    async fn with_lease(&self, lease: &mut Lease) -> LeaseEnd {
        self.register(lease.id, false).await;
        loop {
            let key = self.cfg.leader_key();
            let me = serde_json::to_vec(&LeaderInfo { node: self.cfg.node.clone(), api: self.cfg.api.clone() })
                .expect("serializable");
            let put = Op::Put { key: key.clone().into_bytes(), value: me, lease: lease.id };
            let (cmp, ops, read) =
                ([Compare::create_revision(key.as_bytes(), Cmp::Equal, 0)], [put], [Op::get(key.clone())]);
            let campaign = self.client.txn(&cmp, &ops, &read);
            let outcome = tokio::select! {
                r = timeout(self.cfg.request_timeout * 2, campaign) => r,
                _ = sleep_until(lease.renewed + self.cfg.renew_deadline) => return LeaseEnd::Lost,
            };
            match outcome {
                Ok(Ok(r)) if r.succeeded => {
                    let token = r.header.revision;
                    if let Some(end) = self.lead(lease, token).await {
                        return end;
                    }
                }
                Ok(Ok(r)) if r.range(0).first().is_some_and(|kv| kv.lease == lease.id) => {
                    // Ours already: an earlier campaign applied but its answer was lost.
                    let token = r.range(0)[0].create_revision;
                    if let Some(end) = self.lead(lease, token).await {
                        return end;
                    }
                }
                Ok(Ok(r)) => {
                    let current = r.range(0).first().cloned();
                    if let Some(end) = self.stand_by(lease, current, r.header.revision).await {
                        return end;
                    }
                }
                Ok(Err(e)) => {
                    self.unreachable(&e);
                    if let Some(end) = self.stand_by(lease, None, 0).await {
                        return end;
                    }
                }
                Err(_) => {
                    self.set(|s| s.etcd_reachable = false);
                    if let Some(end) = self.stand_by(lease, None, 0).await {
                        return end;
                    }
                }
            }
        }
    }

    /// Leads until the lease is lost (`Some`) or the leader key is no
    /// longer ours (`None`: campaign again).
    async fn lead(&self, lease: &mut Lease, token: i64) -> Option<LeaseEnd> {
        self.held.lock().await.token = Some(token);
        self.set(|s| {
            s.role = Role::Leader { token };
            s.renew_deadline = Some(lease.renewed + self.cfg.renew_deadline);
            s.leadership_changes += 1;
            s.etcd_reachable = true;
        });
        tracing::info!(node = %self.cfg.node, token, "etcd: this node leads");
        self.register(lease.id, true).await;
        let key = self.cfg.leader_key();
        let mut next = Instant::now() + self.cfg.renew_interval;
        loop {
            let deadline = lease.renewed + self.cfg.renew_deadline;
            let renew = async {
                sleep_until(next).await;
                let t0 = Instant::now();
                (t0, timeout(self.cfg.request_timeout * 2, self.renew_and_check(lease.id, &key)).await)
            };
            tokio::select! {
                biased;
                _ = sleep_until(deadline) => {
                    tracing::warn!(node = %self.cfg.node, token, "etcd: renew deadline passed without a renewal: leadership ends here");
                    self.held.lock().await.token = None;
                    return Some(LeaseEnd::Lost);
                }
                (t0, r) = renew => {
                    next = t0 + self.cfg.renew_interval;
                    match r {
                        Ok(Ok((ttl, leader))) => {
                            lease.renewed = t0;
                            self.renewed(t0, ttl, true);
                            if leader.as_ref().map(|kv| kv.create_revision) != Some(token) {
                                tracing::warn!(node = %self.cfg.node, token, "etcd: the leader key is no longer ours");
                                self.held.lock().await.token = None;
                                self.step_down(leader.as_ref().and_then(info));
                                return None;
                            }
                            self.register(lease.id, true).await;
                        }
                        Ok(Err(EtcdError::LeaseGone { .. })) => {
                            self.held.lock().await.token = None;
                            return Some(LeaseEnd::Lost);
                        }
                        Ok(Err(e)) => self.unreachable(&e),
                        Err(_) => self.set(|s| s.etcd_reachable = false),
                    }
                }
            }
        }
    }

    /// Stands by while `current` leads: watches the leader key, renews our
    /// lease. Returns `None` to campaign again (the key was deleted), or the
    /// end of the lease.
    async fn stand_by(&self, lease: &mut Lease, current: Option<KeyValue>, rev: i64) -> Option<LeaseEnd> {
        let was_leader = self.tx.borrow().is_leader();
        if was_leader {
            self.step_down(current.as_ref().and_then(info));
        } else {
            self.set(|s| s.role = Role::Standby { leader: current.as_ref().and_then(info) });
        }
        let key = self.cfg.leader_key();
        // A watcher that fires when the leader key is deleted (or the watch fails).
        let (fire, mut deleted) = oneshot::channel::<()>();
        let watcher = {
            let client = self.client.clone();
            let key = key.clone();
            let start = if current.is_some() { rev + 1 } else { 0 };
            tokio::spawn(async move {
                if start == 0 {
                    return; // nothing known: the renew loop re-reads
                }
                if let Ok(mut w) = client.watch(key.as_bytes(), &[], start).await {
                    while let Ok(Some(msg)) = w.next().await {
                        if msg.events.iter().any(|e| e.kind == EventType::Delete) {
                            break;
                        }
                    }
                }
                let _ = fire.send(()); // the receiver may be gone: nothing to do
            })
        };
        let _stop_watcher = AbortOnDrop(watcher);
        let mut next = Instant::now() + self.cfg.renew_interval;
        loop {
            let deadline = lease.renewed + self.cfg.renew_deadline;
            let renew = async {
                sleep_until(next).await;
                let t0 = Instant::now();
                (t0, timeout(self.cfg.request_timeout * 2, self.renew_and_check(lease.id, &key)).await)
            };
            tokio::select! {
                biased;
                _ = sleep_until(deadline) => return Some(LeaseEnd::Lost),
                _ = &mut deleted, if current.is_some() => return None,
                (t0, r) = renew => {
                    next = t0 + self.cfg.renew_interval;
                    match r {
                        Ok(Ok((ttl, leader))) => {
                            lease.renewed = t0;
                            self.renewed(t0, ttl, false);
                            self.register(lease.id, false).await;
                            match leader {
                                None => return None,
                                Some(kv) if current.as_ref().map(|c| c.create_revision) != Some(kv.create_revision) => {
                                    return None; // another term began: re-read through a campaign
                                }
                                Some(_) => {}
                            }
                        }
                        Ok(Err(EtcdError::LeaseGone { .. })) => return Some(LeaseEnd::Lost),
                        Ok(Err(e)) => self.unreachable(&e),
                        Err(_) => self.set(|s| s.etcd_reachable = false),
                    }
                }
            }
        }
    }

    /// Renews the lease and reads the leader key.
    async fn renew_and_check(&self, lease: i64, key: &str) -> Result<(i64, Option<KeyValue>), EtcdError> {
        let ttl = self.client.lease_keepalive(lease).await?;
        let (_, leader) = self.client.get(key.as_bytes()).await?;
        Ok((ttl, leader))
    }

    fn renewed(&self, t0: Instant, ttl: i64, leader: bool) {
        self.set(|s| {
            s.etcd_reachable = true;
            s.last_renewal = Some(SystemTime::now());
            s.renew_latency = Some(t0.elapsed());
            s.lease_ttl_left = Some(Duration::from_secs(ttl.max(0) as u64));
            s.renew_deadline = leader.then_some(t0 + self.cfg.renew_deadline);
        });
    }

    /// Puts this node's registration under its lease (best effort).
    async fn register(&self, lease: i64, leader: bool) {
        let entry = NodeEntry {
            node: self.cfg.node.clone(),
            role: if leader { "leader" } else { "standby" }.to_string(),
            api: self.cfg.api.clone(),
            last_renewal: cutover_core::time::rfc3339(SystemTime::now()),
        };
        let value = serde_json::to_vec(&entry).expect("serializable");
        let key = node_key(&self.cfg.prefix, &self.cfg.node);
        match timeout(self.cfg.request_timeout, self.client.put(key.as_bytes(), &value, lease)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "etcd: node registration failed"),
            Err(_) => tracing::debug!("etcd: node registration timed out"),
        }
    }

    fn step_down(&self, leader: Option<LeaderInfo>) {
        self.set(|s| {
            if s.is_leader() {
                s.leadership_changes += 1;
                tracing::warn!(node = %self.cfg.node, "etcd: this node no longer leads");
            }
            s.role = Role::Standby { leader };
            s.renew_deadline = None;
        });
    }

    fn unreachable(&self, e: &EtcdError) {
        tracing::debug!(error = %e, "etcd request failed");
        self.set(|s| s.etcd_reachable = false);
    }

    fn set(&self, f: impl FnOnce(&mut ElectionStatus)) {
        // Checked under the channel's lock, which `Election::stop` takes after setting the flag.
        self.tx.send_if_modified(|s| {
            if self.stopped.load(Ordering::SeqCst) {
                return false;
            }
            f(s);
            true
        });
    }
}

fn info(kv: &KeyValue) -> Option<LeaderInfo> {
    serde_json::from_slice(&kv.value).ok()
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
