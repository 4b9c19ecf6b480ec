//! The active backend as etcd has it, followed by a gateway on any host:
//! one read at start, then a watch (and a periodic read in case the stream
//! went silent). While etcd is away the last value stays, and
//! [`ActiveFollower::age`] says how long ago etcd last answered.
//!
//! # Guarantees
//! Only whole values read from etcd are published, in revision order; a
//! value is never guessed while etcd cannot be reached.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::client::Client;
use crate::store::active_key;

/// When etcd last answered the follower (ms since the Unix epoch; 0: never).
#[derive(Debug, Clone, Default)]
pub struct Contact(Arc<AtomicU64>);

impl Contact {
    /// Records an answer now.
    pub fn touch(&self) {
        self.0.store(cutover_core::time::unix_ms(SystemTime::now()), Ordering::Relaxed);
    }

    /// How long ago etcd last answered, `None` if it never did.
    pub fn age(&self) -> Option<Duration> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            ms => {
                let now = cutover_core::time::unix_ms(SystemTime::now());
                Some(Duration::from_millis(now.saturating_sub(ms)))
            }
        }
    }
}

/// A task following `<prefix>/active_backend`; dropping it stops the task.
#[derive(Debug)]
pub struct ActiveFollower {
    value: watch::Receiver<Option<String>>,
    /// `false` until the first read answered.
    known: watch::Receiver<bool>,
    contact: Contact,
    task: tokio::task::JoinHandle<()>,
}

impl ActiveFollower {
    /// Starts following (on the current runtime). The first read is retried
    /// every `resync` until etcd answers; nothing is published before.
    pub fn start(client: Client, prefix: &str, resync: Duration) -> Self {
        let key = active_key(prefix);
        let (tx, value) = watch::channel(None);
        let (known_tx, known) = watch::channel(false);
        let contact = Contact::default();
        let c = contact.clone();
        let task = tokio::spawn(async move {
            let rev = loop {
                match tokio::time::timeout(resync * 2, client.get(key.as_bytes())).await {
                    Ok(Ok((header, kv))) => {
                        c.touch();
                        let rev = kv.as_ref().map_or(header.revision, |kv| kv.mod_revision.max(header.revision));
                        // Known first: whoever sees the value change sees it known.
                        known_tx.send_replace(true);
                        tx.send_replace(kv.and_then(|kv| String::from_utf8(kv.value).ok()));
                        break rev;
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "etcd: reading the active backend failed; retrying"),
                    Err(_) => tracing::warn!("etcd: reading the active backend timed out; retrying"),
                }
                tokio::time::sleep(resync).await;
            };
            crate::store::follow(client, key, tx, rev, resync, c).await;
        });
        Self { value, known, contact, task }
    }

    /// The active backend, as etcd said last (`None`: not set, or not read yet).
    pub fn value(&self) -> watch::Receiver<Option<String>> {
        self.value.clone()
    }

    /// Whether etcd has answered the first read.
    pub fn known(&self) -> watch::Receiver<bool> {
        self.known.clone()
    }

    /// How long ago etcd last answered (`None`: never).
    pub fn age(&self) -> Option<Duration> {
        self.contact.age()
    }
}

impl Drop for ActiveFollower {
    fn drop(&mut self) {
        self.task.abort();
    }
}
