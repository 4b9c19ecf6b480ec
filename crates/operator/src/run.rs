//! The operator loop: lead through the Lease, watch, and reconcile the
//! `StorageBackend`s that changed (or whose requeue is due), with a full
//! resync at most `resync` apart as a safety net.
//!
//! # Guarantees
//! - Reconciles are serial: one task runs them, one at a time, so two never
//!   run at once on one `StorageBackend`.
//! - A change seen by a watch ([`crate::watch`]) is reconciled at once; a
//!   missed one (a watch down, a 410) is caught by the re-list's resync or the
//!   periodic one.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::crd::{OWNER_LABEL, RETRY_ANNOTATION, StorageBackend};
use crate::error::Error;
use crate::kube_cluster::{KubeCluster, map_err};
use crate::lease::LeaseLock;
use crate::reconcile::reconcile;
use crate::schedule::{Known, Schedule};
use crate::watch::{self, Backoff, Trigger};

/// How long to gather watch events into one pass after the first.
pub const COALESCE: Duration = Duration::from_millis(200);

/// How the operator runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Watch one namespace (`None`: all).
    pub namespace: Option<String>,
    /// This replica's name in the Lease (the pod name).
    pub identity: String,
    /// Where the Lease lives.
    pub lease_namespace: String,
    pub lease_name: String,
    pub lease_duration: Duration,
    /// The longest time between two full passes (the safety net under the watches).
    pub resync: Duration,
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as kube::Resource>::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Starts the three watches (StorageBackends, Deployments, the operator's Jobs).
pub fn spawn_watches(
    client: &Client,
    namespace: Option<&str>,
    backoff: Backoff,
) -> (JoinSet<()>, mpsc::UnboundedReceiver<Trigger>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut set = JoinSet::new();
    set.spawn(watch::watch(
        api::<StorageBackend>(client, namespace),
        "StorageBackends",
        None,
        tx.clone(),
        watch::backend_trigger,
        backoff,
    ));
    set.spawn(watch::watch(
        api::<Deployment>(client, namespace),
        "Deployments",
        None,
        tx.clone(),
        watch::deployment_trigger,
        backoff,
    ));
    set.spawn(watch::watch(api::<Job>(client, namespace), "Jobs", Some(OWNER_LABEL), tx, watch::job_trigger, backoff));
    (set, rx)
}

/// Runs until `shutdown` resolves.
pub async fn run(
    client: Client,
    options: Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    let cluster = KubeCluster::new(client.clone());
    let lock = LeaseLock::new(
        client.clone(),
        &options.lease_namespace,
        &options.lease_name,
        &options.identity,
        options.lease_duration,
    );
    let api: Api<StorageBackend> = api(&client, options.namespace.as_deref());
    let (_watches, mut triggers) = spawn_watches(&client, options.namespace.as_deref(), Backoff::default());
    let renew_every = options.lease_duration / 3;
    let mut schedule = Schedule::new(options.resync, Instant::now());
    let mut next_renew = Instant::now();
    let mut leading = false;
    tokio::pin!(shutdown);
    loop {
        let now = Instant::now();
        if now >= next_renew {
            next_renew = now + renew_every;
            let was_leading = leading;
            leading = match lock.try_acquire_or_renew().await {
                Ok(true) => true,
                Ok(false) => false,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read or renew the lease");
                    false
                }
            };
            if leading && !was_leading {
                tracing::info!(identity = %options.identity, "leading: this replica acts");
                // What happened while standing by is unknown: look at everything.
                schedule.trigger(Trigger::Resync, now);
            } else if was_leading && !leading {
                tracing::warn!(identity = %options.identity, "lost the lease: standing by");
            }
        }
        if leading {
            let full = schedule.resync_due(now);
            if (full || !schedule.due(now).is_empty())
                && let Err(e) = pass(&cluster, &api, &mut schedule, full).await
            {
                tracing::warn!(error = %e, "could not list the StorageBackends");
                schedule.list_failed(crate::planner::POLL, Instant::now());
            }
        }
        let wake = if leading { schedule.next_wake().min(next_renew) } else { next_renew };
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = tokio::time::sleep_until(wake) => {}
            Some(t) = triggers.recv() => {
                // Coalesce a burst (a rollout's Deployment status updates)
                // into one pass.
                tokio::time::sleep(COALESCE).await;
                let now = Instant::now();
                schedule.trigger(t, now);
                while let Ok(t) = triggers.try_recv() {
                    schedule.trigger(t, now);
                }
            }
        }
    }
}

/// Lists the `StorageBackend`s and reconciles those due (all when `full`).
async fn pass(
    cluster: &KubeCluster,
    api: &Api<StorageBackend>,
    schedule: &mut Schedule,
    full: bool,
) -> Result<(), Error> {
    let list = api.list(&ListParams::default()).await.map_err(|e| map_err("list", "StorageBackends", e))?;
    let now = Instant::now();
    let due = schedule.due(now);
    let known: BTreeMap<_, _> = list
        .items
        .iter()
        .map(|sb| {
            let known = Known {
                selector: sb.spec.rollout.as_ref().map(|r| r.selector.clone()),
                generation: sb.metadata.generation,
                retry: sb.annotations().get(RETRY_ANNOTATION).cloned(),
            };
            ((sb.namespace().unwrap_or_default(), sb.name_any()), known)
        })
        .collect();
    schedule.listed(known, full, now);
    for sb in &list.items {
        let key = (sb.namespace().unwrap_or_default(), sb.name_any());
        if !full && !due.contains(&key) {
            continue;
        }
        let requeue = match reconcile(cluster, sb, Timestamp::now()).await {
            Ok(after) => after,
            Err(e) => {
                let retry = e.retryable();
                tracing::warn!(storage_backend = %sb.name_any(), namespace = ?sb.namespace(), error = %e, retry, "reconcile failed");
                retry.then_some(crate::planner::POLL)
            }
        };
        schedule.reconciled(&key, requeue, Instant::now());
    }
    Ok(())
}

/// A client from the in-cluster configuration or `KUBECONFIG`.
pub async fn connect() -> Result<Client, Error> {
    Client::try_default().await.map_err(|e| Error::Transport {
        verb: "connect to",
        what: "the API server (in-cluster configuration or KUBECONFIG)".into(),
        source: Box::new(e),
    })
}
