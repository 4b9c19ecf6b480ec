//! [`EtcdStore`]: cutover's state (`cutover_store::Store`) in etcd, every
//! shared key under the prefix:
//!
//! | key | value |
//! |---|---|
//! | `<p>/leader` | the election's leader key (the fence) |
//! | `<p>/active_backend` | the backend's name |
//! | `<p>/incidents/<id>` | an [`cutover_store::Incident`] (JSON) |
//! | `<p>/timeline/<id>/<seq:020>` | a [`cutover_store::TimelineEvent`] |
//! | `<p>/decisions/<seq:020>` | a decision with its evidence |
//! | `<p>/approvals/<id:020>` | an [`cutover_store::Approval`] |
//! | `<p>/runs/<id:020>` | a [`cutover_store::RunRecord`] |
//! | `<p>/steps/<run:020>/<idx:010>/<do\|undo>` | a [`cutover_store::StepRecord`] |
//! | `<p>/audit/<seq:020>` | an [`cutover_store::AuditRow`], hashed as SQLite's |
//! | `<p>/audit_head` | `{seq, hash, alg}` of the newest audit entry |
//! | `<p>/counters/<name>` | the last id given (`runs`, `approvals`, `decisions`, `timeline`) |
//!
//! # Guarantees
//! - Every write is ONE etcd transaction ([`EtcdStore::transact`]): it
//!   compares `create_revision(<p>/leader) == token` (the fence) and the
//!   `mod_revision` of every key the writes were computed from (counters,
//!   the audit head, the records read-modified-written). A refused fence is
//!   [`StoreError::Fenced`]; a lost race re-runs the body on fresh reads
//!   (optimistic concurrency). So ids and audit seqs stay dense and the
//!   audit chain linear across leaders. A [`Fence::local`] is refused.
//! - [`cutover_store::ActiveBackend::watch_active_backend`] follows the key
//!   with an etcd watch, reconnecting; on a disconnect it keeps the last
//!   value, and it only ever publishes whole values read from etcd.
//!
//! # Caveats
//! - The interface is synchronous: the store owns a small tokio runtime
//!   (one worker thread) and blocks the calling thread on it; on a worker
//!   of a multi-threaded runtime it hands the worker over first
//!   (`block_in_place`). Inside a current-thread runtime it panics.
//! - A commit whose answer was lost (etcd electing a raft leader, a member
//!   gone) is sent again as the very same transaction, a few times: its
//!   compares let at most one copy apply, and the failure branch tells
//!   whether an earlier copy did. When every try goes unanswered the error
//!   is [`StoreError::Remote`], and whether the write applied is unknown.
//! - Health history is node-local: it goes to the local [`SqliteStore`].

mod reads;
mod tx;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cutover_core::Secret;
use cutover_store::{Fence, SqliteStore, StoreError};
use tokio::sync::watch;

use crate::client::{Client, ClientOptions};
use crate::error::EtcdError;
use crate::watch::EventType;

pub use tx::EtcdTx;

/// How many times a transaction that lost a race is run again.
const RETRIES: usize = 32;

/// The state store on etcd. Cloning shares the connection and runtime.
#[derive(Debug, Clone)]
pub struct EtcdStore {
    inner: Arc<Inner>,
    audit_key: Option<Arc<Secret>>,
}

#[derive(Debug)]
struct Inner {
    client: Client,
    keys: Keys,
    location: String,
    rt: OwnRuntime,
    local: SqliteStore,
    active: watch::Sender<Option<String>>,
}

/// The store's own runtime, shut down in the background when dropped:
/// dropping a runtime inside an asynchronous context panics, and a store
/// is dropped there (a failed `open` in `cutover run`'s start-up, or the
/// last clone at shutdown).
#[derive(Debug)]
struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl OwnRuntime {
    fn get(&self) -> &tokio::runtime::Runtime {
        self.0.as_ref().expect("taken only when dropped")
    }
}

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background(); // allowed anywhere, unlike dropping a runtime
        }
    }
}

/// The key of the active backend under `prefix`.
pub fn active_key(prefix: &str) -> String {
    format!("{}/active_backend", prefix.trim_end_matches('/'))
}

/// The keys under the prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    p: String,
}

impl Keys {
    pub(crate) fn leader(&self) -> String {
        crate::election::leader_key(&self.p)
    }
    pub(crate) fn active(&self) -> String {
        active_key(&self.p)
    }
    pub(crate) fn incidents(&self) -> String {
        format!("{}/incidents/", self.p)
    }
    pub(crate) fn incident(&self, id: &str) -> String {
        format!("{}/incidents/{id}", self.p)
    }
    pub(crate) fn timeline(&self, incident: &str) -> String {
        format!("{}/timeline/{incident}/", self.p)
    }
    pub(crate) fn decisions(&self) -> String {
        format!("{}/decisions/", self.p)
    }
    pub(crate) fn approvals(&self) -> String {
        format!("{}/approvals/", self.p)
    }
    pub(crate) fn runs(&self) -> String {
        format!("{}/runs/", self.p)
    }
    pub(crate) fn steps(&self, run: i64) -> String {
        format!("{}/steps/{run:020}/", self.p)
    }
    pub(crate) fn audit(&self) -> String {
        format!("{}/audit/", self.p)
    }
    pub(crate) fn audit_head(&self) -> String {
        format!("{}/audit_head", self.p)
    }
    pub(crate) fn counter(&self, name: &str) -> String {
        format!("{}/counters/{name}", self.p)
    }
}

/// A sequence number in a key (sorts as a number).
pub(crate) fn seq(n: i64) -> String {
    format!("{n:020}")
}

impl EtcdStore {
    /// Connects to etcd (`options`), keeps every key under `prefix`, and
    /// keeps node-local data (health history) in `local`. Reads the active
    /// backend once and starts following it.
    pub fn open(options: &ClientOptions, prefix: &str, local: SqliteStore) -> Result<Self, StoreError> {
        let location = format!("etcd {} {}", options.endpoints.join(","), prefix);
        let remote = |what, e: EtcdError| StoreError::Remote { location: location.clone(), what, source: Box::new(e) };
        let rt = OwnRuntime(Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("cutover-etcd-store")
                .enable_all()
                .build()
                .map_err(|e| StoreError::Remote { location: location.clone(), what: "runtime", source: Box::new(e) })?,
        ));
        let client = Client::new(options).map_err(|e| remote("client", e))?;
        let keys = Keys { p: prefix.trim_end_matches('/').to_string() };
        let (header, kv) = block(rt.get(), client.get(keys.active().as_bytes())).map_err(|e| remote("read", e))?;
        let value = kv.as_ref().and_then(|kv| String::from_utf8(kv.value.clone()).ok());
        let (active, _) = watch::channel(value);
        let start = kv.map_or(header.revision, |kv| kv.mod_revision.max(header.revision));
        rt.get().spawn(follow(
            client.clone(),
            keys.active(),
            active.clone(),
            start,
            options.request_timeout.max(Duration::from_millis(500)),
            crate::active::Contact::default(),
        ));
        Ok(Self { inner: Arc::new(Inner { client, keys, location, rt, local, active }), audit_key: None })
    }

    /// Keys the audit chain with an HMAC secret (as [`SqliteStore::with_audit_key`]).
    pub fn with_audit_key(mut self, key: Option<Secret>) -> Self {
        self.audit_key = key.map(Arc::new);
        self
    }

    /// The etcd client the store uses.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    pub(crate) fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    pub(crate) fn key_bytes(&self) -> Option<&[u8]> {
        self.audit_key.as_deref().map(|k| k.expose().as_bytes())
    }

    pub(crate) fn local(&self) -> &SqliteStore {
        &self.inner.local
    }

    /// Runs `f` on the store's runtime, blocking this thread. On a worker of
    /// a multi-threaded tokio runtime the worker is handed over first
    /// (`block_in_place`), so async callers (the runbook engine) may call
    /// the store as they call SQLite.
    ///
    /// # Panics
    /// When called inside a current-thread tokio runtime.
    pub(crate) fn block_on<F: Future>(&self, f: F) -> F::Output {
        block(self.inner.rt.get(), f)
    }

    pub(crate) fn remote(&self, what: &'static str) -> impl Fn(EtcdError) -> StoreError + '_ {
        move |e| StoreError::Remote { location: self.inner.location.clone(), what, source: Box::new(e) }
    }

    pub(crate) fn fenced(&self, revision: Option<i64>) -> StoreError {
        StoreError::Fenced { location: self.inner.location.clone(), revision }
    }

    pub(crate) fn json_err(&self, what: &'static str) -> impl Fn(serde_json::Error) -> StoreError + '_ {
        move |source| StoreError::Json { path: self.inner.location.clone(), what, source }
    }

    /// Runs `f` with a transaction fenced by `fence`: every write of `f`
    /// commits in one etcd transaction that also compares the leader key's
    /// create revision with the fence's token; on a lost race (a key `f`
    /// read changed), runs `f` again on fresh reads. A [`Fence::local`] is
    /// refused: in HA every write comes from an elected leader.
    pub fn transact(
        &self,
        fence: &Fence,
        f: &mut dyn FnMut(&EtcdTx<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let token = fence.revision().ok_or_else(|| self.fenced(None))?;
        for _ in 0..RETRIES {
            let tx = EtcdTx::new(self, token);
            f(&tx)?;
            if let Some(active) = tx.commit()? {
                if let Some(name) = active {
                    self.publish_active(Some(name));
                }
                return Ok(());
            }
        }
        Err(self.remote("transaction")(EtcdError::CompareFailed {
            what: format!("lost the race {RETRIES} times in a row"),
        }))
    }

    fn publish_active(&self, value: Option<String>) {
        publish(&self.inner.active, value);
    }
}

/// Runs `f` on `rt`, blocking this thread (handing a multi-threaded
/// runtime's worker over first).
fn block<F: Future>(rt: &tokio::runtime::Runtime, f: F) -> F::Output {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| rt.block_on(f))
        }
        _ => rt.block_on(f),
    }
}

fn publish(tx: &watch::Sender<Option<String>>, value: Option<String>) {
    tx.send_if_modified(|now| {
        let changed = *now != value;
        *now = value;
        changed
    });
}

/// Follows the active backend key from `rev` on: a watch, reconnected when
/// it fails, and a read every `resync` in case the stream went silent (a
/// paused or cut-off member). Keeps the last value while etcd is away.
/// (Also what [`crate::active::ActiveFollower`] runs for a gateway.)
pub(crate) async fn follow(
    client: Client,
    key: String,
    tx: watch::Sender<Option<String>>,
    mut rev: i64,
    resync: Duration,
    contact: crate::active::Contact,
) {
    let key = key.into_bytes();
    let read = |rev_now: i64| {
        let client = client.clone();
        let key = key.clone();
        let tx = tx.clone();
        let contact = contact.clone();
        async move {
            match tokio::time::timeout(resync * 2, client.get(&key)).await {
                Ok(Ok((header, kv))) => {
                    contact.touch();
                    let mod_rev = kv.as_ref().map_or(0, |kv| kv.mod_revision);
                    if mod_rev > rev_now || (kv.is_none() && rev_now > 0 && tx.borrow().is_some()) {
                        publish(&tx, kv.and_then(|kv| String::from_utf8(kv.value).ok()));
                        return Some((header.revision, true));
                    }
                    Some((header.revision.max(rev_now), false))
                }
                _ => None,
            }
        }
    };
    loop {
        let mut w = match client.watch(&key, &[], rev + 1).await {
            Ok(w) => w,
            Err(e) => {
                tracing::debug!(error = %e, "etcd: the active backend's watch failed; reading");
                tokio::time::sleep(resync / 2).await;
                if let Some((r, _)) = read(rev).await {
                    rev = r;
                }
                continue;
            }
        };
        loop {
            tokio::select! {
                m = w.next() => match m {
                    Ok(Some(msg)) => {
                        contact.touch();
                        for ev in msg.events {
                            rev = rev.max(ev.kv.mod_revision);
                            match ev.kind {
                                EventType::Put => {
                                    if let Ok(v) = String::from_utf8(ev.kv.value) {
                                        publish(&tx, Some(v));
                                    }
                                }
                                EventType::Delete => publish(&tx, None),
                            }
                        }
                    }
                    Ok(None) | Err(_) => break,
                },
                _ = tokio::time::sleep(resync) => {
                    // etcd away (None): keep the last value.
                    if let Some((r, changed)) = read(rev).await {
                        rev = r;
                        if changed {
                            break; // the stream missed it: a new watch
                        }
                    }
                }
            }
        }
    }
}
