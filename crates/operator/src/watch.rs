//! Watches: one per kind (StorageBackends, Deployments, the operator's Jobs),
//! each turning events into [`Trigger`]s for the operator loop.
//!
//! # Guarantees
//! - A watch starts from a list's `resourceVersion` (the list itself sends
//!   [`Trigger::Resync`]: anything may have changed while nobody watched).
//! - A watch that ends (the server closed it, a transport error) is restarted
//!   from the last `resourceVersion` seen (an event's or a bookmark's), after
//!   a backoff that doubles up to `max` and resets once events flow again.
//! - `410 Gone` (an `ERROR` event with code 410, or a 410 answer to the watch
//!   request) re-lists (after the same backoff) and watches from the new
//!   list's `resourceVersion`.
//!
//! # Caveats
//! - The lists and watches ask for metadata only (labels, generation,
//!   annotations are all a trigger needs); the loop reads the objects.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

use futures::StreamExt;
use kube::Resource;
use kube::api::{Api, ListParams, PartialObjectMeta, WatchEvent, WatchParams};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

use crate::crd::{OWNER_LABEL, RETRY_ANNOTATION};

/// A `StorageBackend`'s namespace and name.
pub type Key = (String, String);

/// What a watch saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A (re-)list: anything may have changed; reconcile everything.
    Resync,
    /// A `StorageBackend` was added or changed (its generation and
    /// `cutover.dev/retry` annotation tell a spec change from a status write).
    Backend { key: Key, generation: Option<i64>, retry: Option<String> },
    /// A Deployment changed: every `StorageBackend` whose selector matches.
    Deployment { namespace: String, labels: BTreeMap<String, String> },
    /// A Job labelled with its `StorageBackend`.
    Job(Key),
}

/// How long to wait before watching again after a watch ended.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { initial: Duration::from_millis(500), max: Duration::from_secs(30) }
    }
}

/// The trigger for a `StorageBackend` event (`None` when deleted).
pub fn backend_trigger<K: Resource>(event: &WatchEvent<K>) -> Option<Trigger> {
    match event {
        WatchEvent::Added(sb) | WatchEvent::Modified(sb) => Some(Trigger::Backend {
            key: (sb.meta().namespace.clone().unwrap_or_default(), sb.meta().name.clone().unwrap_or_default()),
            generation: sb.meta().generation,
            retry: sb.meta().annotations.as_ref().and_then(|a| a.get(RETRY_ANNOTATION)).cloned(),
        }),
        _ => None,
    }
}

/// The trigger for a Deployment event (deleted ones too: the set changed).
pub fn deployment_trigger<K: Resource>(event: &WatchEvent<K>) -> Option<Trigger> {
    match event {
        WatchEvent::Added(d) | WatchEvent::Modified(d) | WatchEvent::Deleted(d) => Some(Trigger::Deployment {
            namespace: d.meta().namespace.clone().unwrap_or_default(),
            labels: d.meta().labels.clone().unwrap_or_default(),
        }),
        _ => None,
    }
}

/// The trigger for a Job event: the owner label names the `StorageBackend`.
pub fn job_trigger<K: Resource>(event: &WatchEvent<K>) -> Option<Trigger> {
    match event {
        WatchEvent::Added(j) | WatchEvent::Modified(j) | WatchEvent::Deleted(j) => {
            let owner = j.meta().labels.as_ref()?.get(OWNER_LABEL)?;
            Some(Trigger::Job((j.meta().namespace.clone().unwrap_or_default(), owner.clone())))
        }
        _ => None,
    }
}

fn is_gone(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 410)
}

/// Watches `api` forever (until the receiver is gone), sending triggers.
/// `selector` restricts the list and the watch (a label selector).
pub async fn watch<K>(
    api: Api<K>,
    kind: &'static str,
    selector: Option<&str>,
    tx: UnboundedSender<Trigger>,
    to_trigger: impl Fn(&WatchEvent<PartialObjectMeta<K>>) -> Option<Trigger>,
    backoff: Backoff,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let mut lp = ListParams::default();
    let mut wp = WatchParams::default();
    if let Some(s) = selector {
        lp = lp.labels(s);
        wp = wp.labels(s);
    }
    let mut version: Option<String> = None;
    let mut delay = backoff.initial;
    loop {
        let from = match version.take() {
            Some(v) => v,
            None => match api.list_metadata(&lp).await {
                Ok(list) => {
                    if tx.send(Trigger::Resync).is_err() {
                        return;
                    }
                    list.metadata.resource_version.unwrap_or_default()
                }
                Err(e) => {
                    tracing::warn!(kind, error = %e, "could not list; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(backoff.max);
                    continue;
                }
            },
        };
        let started = Instant::now();
        let mut flowed = false;
        version = Some(from.clone());
        match api.watch_metadata(&wp, &from).await {
            Err(e) if is_gone(&e) => {
                tracing::info!(kind, "watch expired (410): re-listing");
                version = None;
            }
            Err(e) => tracing::warn!(kind, error = %e, "could not watch; retrying"),
            Ok(stream) => {
                let mut stream = std::pin::pin!(stream);
                while let Some(item) = stream.next().await {
                    match item {
                        Ok(WatchEvent::Bookmark(b)) => version = Some(b.metadata.resource_version),
                        Ok(WatchEvent::Error(s)) if s.code == 410 => {
                            tracing::info!(kind, "watch expired (410): re-listing");
                            version = None;
                            break;
                        }
                        Ok(WatchEvent::Error(s)) => {
                            tracing::warn!(kind, code = s.code, message = %s.message, "watch error event");
                            break;
                        }
                        Ok(event) => {
                            flowed = true;
                            if let WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) = &event
                                && let Some(v) = o.meta().resource_version.clone()
                            {
                                version = Some(v);
                            }
                            if let Some(t) = to_trigger(&event)
                                && tx.send(t).is_err()
                            {
                                return;
                            }
                        }
                        Err(e) if is_gone(&e) => {
                            version = None;
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(kind, error = %e, "watch stream failed");
                            break;
                        }
                    }
                }
            }
        }
        // Ended: watch again from the last resourceVersion (or re-list after
        // a 410), after a backoff (reset when events flowed or the watch ran
        // its course), so a server that keeps refusing is not hammered.
        if flowed || started.elapsed() >= Duration::from_secs(60) {
            delay = backoff.initial;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(backoff.max);
        if tx.is_closed() {
            return;
        }
    }
}
