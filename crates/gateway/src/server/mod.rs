//! The S3 endpoint: accepts connections (HTTP/1.1, `TCP_NODELAY`), verifies
//! each request's signature, and routes it by its bucket's mode.
//!
//! - [`listener`]: accept, TLS and drain (through `cutover-net`);
//! - [`dispatch`]: one request authenticated, its body prepared
//!   ([`delete_body`] for DeleteObjects), routed by mode and operation;
//! - the modes: [`active_passive`] (and every request one backend takes),
//!   [`read_through`], [`dual_write`] (its plumbing, the tee and the race
//!   with the hedge, in [`tee`]);
//! - [`forward`]: the upstream request and the client's answer;
//! - [`journal`]: journal appends from live requests and the newest side of a key;
//! - [`lane`]: the single-threaded event loop plain connections visit while it has room.

mod active_passive;
mod delete_body;
mod dispatch;
mod dual_write;
mod fast;
mod forward;
mod journal;
pub(crate) mod lane;
mod listener;
mod options;
mod read_through;
mod tee;

use std::collections::HashMap;

use crate::names::NameMap;
use std::sync::Arc;
use std::time::Duration;

use cutover_core::Config;
use cutover_core::Secret;
use cutover_core::config::{GatewayBucket, SecretRef};
use http::{HeaderMap, Method};
use tokio::sync::Notify;

use crate::active::ActiveBackend;
use crate::auth::ClientKeys;
use crate::body::Fault;
use crate::error::GatewayError;
use crate::keys::{KeyLocks, KeyPolicy};
use crate::metrics::Metrics;
use crate::route::S3Op;
use crate::state::State;
use crate::upstream::{UpPayload, Upstream};

pub(crate) use fast::RawPool;
pub(crate) use fast::fuzzing as fast_fuzzing;
pub use lane::LaneMarks;
pub use options::GatewayOptions;

/// The answer header naming the backend that served a request.
pub const BACKEND_HEADER: &str = "x-cutover-backend";

/// Bodies the gateway reads whole: listings and multipart answers, error
/// documents, DeleteObjects requests.
const SMALL_BODY_LIMIT: usize = 16 << 20;

/// The span of waiting for a client's body over which its rate is measured
/// against `client_min_body_rate`.
pub const BODY_RATE_WINDOW: Duration = Duration::from_secs(10);

/// A running (or ready to run) gateway; cheap to clone.
#[derive(Debug, Clone)]
pub struct Gateway {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    keys: ClientKeys,
    buckets: NameMap<Arc<GatewayBucket>>,
    bucket_names: Vec<String>,
    pub(crate) upstreams: NameMap<Arc<Upstream>>,
    pub(crate) primary: String,
    active: ActiveBackend,
    pub(crate) state: State,
    pub(crate) metrics: Metrics,
    pub(crate) opts: GatewayOptions,
    pub(crate) wake: Notify,
    /// Keys with a pending journal entry in dual-write buckets: (bucket,
    /// key) → (the backend that holds the newest version, journal id).
    /// Reads of such a key go to that backend.
    pub(crate) newest: std::sync::Mutex<HashMap<(String, String), (String, i64)>>,
    /// Which keys clients may address (no `.`/`..` segments, not the probe prefix).
    key_policy: KeyPolicy,
    /// Per-key locks shared by live writes and journal replay / resync.
    pub(crate) locks: KeyLocks,
    /// `Some` when the gateway serves HTTPS.
    tls: Option<crate::tls::Tls>,
}

/// One client request, parsed and authenticated.
struct Ctx {
    op: S3Op,
    method: Method,
    bucket: Arc<GatewayBucket>,
    key: Option<String>,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    resource: String,
    /// How the body is signed upstream: with the client's verified payload
    /// hash or its verified trailing checksum the backend checks the body
    /// too.
    payload: UpPayload,
    /// Why the client's body was refused while it streamed (its hash did
    /// not match, a chunk or trailer signature or checksum failed); `None`
    /// for a body read whole and checked before (the fast path's).
    body_fault: Option<Fault>,
    /// DeleteObjects: the keys of the body forwarded (journaled on a miss,
    /// recorded for failback), and the `<Error>` entries of the keys refused.
    delete: Option<(Vec<String>, String)>,
}

fn read_secret(what: &str, r: &SecretRef) -> Result<Secret, GatewayError> {
    let err = |detail: String| GatewayError::Secret { what: what.to_string(), detail };
    let v = match r {
        SecretRef::Env(var) => std::env::var(var).map_err(|_| err(format!("environment variable {var} is not set")))?,
        SecretRef::File(p) => {
            std::fs::read_to_string(p).map_err(|e| err(format!("secret file {}: {e}", p.display())))?.trim().to_string()
        }
    };
    if v.is_empty() {
        return Err(err("the secret is empty".into()));
    }
    Ok(Secret::new(v))
}

impl Gateway {
    /// Resolves client and backend secrets and opens the state file. No
    /// socket is opened.
    pub fn build(config: &Config, active: ActiveBackend, opts: GatewayOptions) -> Result<Self, GatewayError> {
        let gw = config
            .gateway
            .as_ref()
            .ok_or_else(|| GatewayError::Config { detail: "no [gateway] section in the configuration".into() })?;
        let mut keys = Vec::new();
        for c in &gw.clients {
            keys.push((
                c.access_key_id.clone(),
                read_secret(&format!("gateway client {}", c.access_key_id), &c.secret)?,
            ));
        }
        let mut upstreams = NameMap::default();
        for b in &config.backends {
            upstreams.insert(b.name.clone(), Arc::new(Upstream::new(b, opts.connect_timeout)?));
        }
        let tls = gw.tls.as_ref().map(|t| crate::tls::Tls::new(t, opts.tls_handshake_timeout)).transpose()?;
        let state = State::open(&config.state.path)?;
        Ok(Self {
            inner: Arc::new(Inner {
                keys: ClientKeys::new(keys).with_region(&gw.region),
                buckets: gw.buckets.iter().map(|b| (b.name.clone(), Arc::new(b.clone()))).collect(),
                bucket_names: gw.buckets.iter().map(|b| b.name.clone()).collect(),
                upstreams,
                primary: config.primary().name.clone(),
                active,
                state,
                metrics: Metrics::new(config.backends.iter().map(|b| b.name.as_str())),
                opts,
                wake: Notify::new(),
                newest: Default::default(),
                key_policy: KeyPolicy::new(config.probe.prefix.clone()),
                locks: KeyLocks::default(),
                tls,
            }),
        })
    }

    pub fn active(&self) -> &ActiveBackend {
        &self.inner.active
    }

    pub fn state(&self) -> &State {
        &self.inner.state
    }

    /// The Prometheus text of this gateway's metrics alone, journal gauges
    /// included (a process with one registry uses [`Self::register_metrics`]
    /// and [`Self::refresh_metrics`] instead).
    pub async fn render_metrics(&self) -> String {
        self.inner.render_metrics().await
    }

    /// (requests answered, of them with a 5xx status) since it started.
    pub fn answers(&self) -> (u64, u64) {
        self.inner.metrics.answers()
    }

    /// Registers this gateway's metrics into the process's registry.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.inner.metrics.register(registry);
    }

    /// Updates the gauges read from the state file (journal depth and the
    /// age of its oldest entry); call it before encoding the registry.
    pub async fn refresh_metrics(&self) {
        let (depth, age) = self.inner.journal_figures().await;
        self.inner.metrics.set_journal(depth, age);
        self.inner.metrics.set_active_age(self.inner.active.freshness().age);
    }
}

impl Inner {
    async fn journal_figures(&self) -> (u64, Option<Duration>) {
        let (depth, oldest) = self.state.journal_depth().await.unwrap_or((0, None));
        let age = oldest.map(|ms| Duration::from_millis((crate::state::now_ms() - ms).max(0) as u64));
        (depth, age)
    }

    pub(super) async fn render_metrics(&self) -> String {
        let (depth, age) = self.journal_figures().await;
        self.metrics.set_active_age(self.active.freshness().age);
        self.metrics.render(depth, age)
    }
}
