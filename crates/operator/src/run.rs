//! The operator loop: lead through the Lease, list the `StorageBackend`s,
//! reconcile each, sleep until the earliest requeue.
//!
//! Level-triggered: every pass reads the whole state, so a missed change is
//! picked up on the next pass (at most `resync` later); there is no watch to
//! expire or drop.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use crate::crd::StorageBackend;
use crate::error::Error;
use crate::kube_cluster::{KubeCluster, map_err};
use crate::lease::LeaseLock;
use crate::reconcile::reconcile;

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
    /// The longest sleep between passes.
    pub resync: Duration,
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
    let api: Api<StorageBackend> = match &options.namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let renew_every = options.lease_duration / 3;
    let mut leading = false;
    tokio::pin!(shutdown);
    loop {
        let sleep = match lock.try_acquire_or_renew().await {
            Ok(true) => {
                if !leading {
                    tracing::info!(identity = %options.identity, "leading: this replica acts");
                    leading = true;
                }
                pass(&cluster, &api).await.unwrap_or(options.resync).min(options.resync).min(renew_every)
            }
            Ok(false) => {
                if leading {
                    tracing::warn!(identity = %options.identity, "lost the lease: standing by");
                    leading = false;
                }
                renew_every
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not read or renew the lease");
                leading = false;
                renew_every
            }
        };
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}

/// One pass over every `StorageBackend`; the earliest requeue.
async fn pass(cluster: &KubeCluster, api: &Api<StorageBackend>) -> Result<Duration, Error> {
    let list = api.list(&ListParams::default()).await.map_err(|e| map_err("list", "StorageBackends", e))?;
    let mut next = Duration::MAX;
    for sb in &list.items {
        match reconcile(cluster, sb, Timestamp::now()).await {
            Ok(Some(after)) => next = next.min(after),
            Ok(None) => {}
            Err(e) => {
                let retry = e.retryable();
                tracing::warn!(storage_backend = %sb.name_any(), namespace = ?sb.namespace(), error = %e, retry, "reconcile failed");
                if retry {
                    next = next.min(crate::planner::POLL);
                }
            }
        }
    }
    Ok(next)
}

/// A client from the in-cluster configuration or `KUBECONFIG`.
pub async fn connect() -> Result<Client, Error> {
    Client::try_default().await.map_err(|e| Error::Transport {
        verb: "connect to",
        what: "the API server (in-cluster configuration or KUBECONFIG)".into(),
        source: Box::new(e),
    })
}
