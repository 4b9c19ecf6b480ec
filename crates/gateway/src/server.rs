//! The S3 endpoint: accepts connections (HTTP/1.1, `TCP_NODELAY`), verifies
//! each request's signature, and routes it by its bucket's mode.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use cutover_core::Config;
use cutover_core::config::{Ack, BucketMode, GatewayBucket, GatewayLimits, SecretRef};
use cutover_core::{Outcome, Secret};
use cutover_s3::http::TransportError;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use crate::active::ActiveBackend;
use crate::auth::{self, ClientKeys, Payload, Verified};
use crate::body::{Body, Counted, Fault, Refusal, channel, collect_limited, empty, full};
use crate::deadline::{Deadlines, MinRate};
use crate::error::GatewayError;
use crate::keys::{KeyLocks, KeyPolicy};
use crate::metrics::Metrics;
use crate::route::{self, S3Op, Target};
use crate::s3xml;
use crate::state::{Op, State};
use crate::upstream::{UpPayload, UpRequest, Upstream};

/// The answer header naming the backend that served a request.
pub const BACKEND_HEADER: &str = "x-cutover-backend";
/// Bodies the gateway reads whole: listings and multipart answers, error
/// documents, DeleteObjects requests.
const SMALL_BODY_LIMIT: usize = 16 << 20;
/// The span of waiting for a client's body over which its rate is measured
/// against `client_min_body_rate`.
pub const BODY_RATE_WINDOW: Duration = Duration::from_secs(10);
/// Query parameters of a presigned URL, never forwarded.
const PRESIGN_PARAMS: [&str; 7] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
];

/// Timeouts and buffer sizes of the gateway.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// How long a backend may take to answer and may pause
    /// (`gateway.backend_first_byte_timeout`, `gateway.backend_idle_timeout`);
    /// beyond them read-through tries the other backend and other modes
    /// answer a retryable 503 `SlowDown`.
    pub deadlines: Deadlines,
    /// In dual-write (`gateway.hedge_after`): a write the active backend has
    /// not answered this long after the other backend took it is
    /// acknowledged and journaled for the active one. `None`: wait.
    pub hedge_after: Option<Duration>,
    /// In dual-write: how long the other backend may stall the upload (tee
    /// channel full) or take to answer after the last byte before it is
    /// given up and the write journaled (`ack = "active-journal"`).
    pub other_timeout: Duration,
    /// In dual-write: the same bound for the active backend, and for both with `ack = "all"`.
    pub write_timeout: Duration,
    pub connect_timeout: Duration,
    /// Chunks buffered per side of a dual-write tee.
    pub tee_chunks: usize,
    /// Pause between journal replay passes when nothing is due.
    pub replay_interval: Duration,
    /// After shutdown, how long requests in progress may take to finish.
    pub drain: Duration,
    /// With TLS: how long a client may take to complete its handshake.
    pub tls_handshake_timeout: Duration,
    /// A client must send a whole request head within this, on a new or a
    /// kept-alive connection (`gateway.client_header_timeout`).
    pub client_header_timeout: Duration,
    /// Bytes per second a client must at least send its body at, over
    /// [`BODY_RATE_WINDOW`] of waiting for it; 0: no minimum.
    pub client_min_body_rate: u64,
    /// Client connections served at once; more are closed and counted.
    pub max_connections: usize,
}

impl GatewayOptions {
    /// The defaults, with the deadlines and limits of `gateway.*`.
    pub fn from_limits(l: &GatewayLimits) -> Self {
        Self {
            deadlines: Deadlines { first_byte: l.backend_first_byte, idle: l.backend_idle },
            hedge_after: l.hedge_after,
            client_header_timeout: l.client_header,
            client_min_body_rate: l.client_min_body_rate,
            max_connections: l.max_connections,
            ..Self::default()
        }
    }
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            deadlines: Deadlines::default(),
            hedge_after: Some(Duration::from_secs(1)),
            other_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(2),
            tee_chunks: 16,
            replay_interval: Duration::from_millis(500),
            drain: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
            client_header_timeout: GatewayLimits::default().client_header,
            client_min_body_rate: GatewayLimits::default().client_min_body_rate,
            max_connections: GatewayLimits::default().max_connections,
        }
    }
}

/// A running (or ready to run) gateway; cheap to clone.
#[derive(Debug, Clone)]
pub struct Gateway {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    keys: ClientKeys,
    buckets: HashMap<String, Arc<GatewayBucket>>,
    bucket_names: Vec<String>,
    pub(crate) upstreams: HashMap<String, Arc<Upstream>>,
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
    /// not match, a chunk or trailer signature or checksum failed).
    body_fault: Fault,
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
        let mut upstreams = HashMap::new();
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
                metrics: Metrics::default(),
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

    /// The Prometheus text of this gateway's metrics, journal gauges included.
    pub async fn render_metrics(&self) -> String {
        let (depth, oldest) = self.inner.state.journal_depth().await.unwrap_or((0, None));
        let age = oldest.map(|ms| Duration::from_millis((crate::state::now_ms() - ms).max(0) as u64));
        self.inner.metrics.render(depth, age)
    }

    /// Serves S3 on `listener` until `shutdown` completes, then lets the
    /// requests in progress finish (at most `drain`) and closes the
    /// connections. Dropping the future stops it the same way.
    ///
    /// (Tried and measured: one single-threaded runtime per CPU accepting
    /// from the same socket, so that a connection and its backend
    /// connections stay on one thread. It was no faster than tokio's
    /// work-stealing scheduler on small PUTs and 8 % slower at 32
    /// connections; docs/bench-gateway.md.)
    pub async fn serve(&self, listener: TcpListener, shutdown: impl Future<Output = ()>) -> Result<(), GatewayError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let work = accept_loop(self.inner.clone(), listener, stop_rx);
        tokio::pin!(work);
        tokio::select! {
            _ = &mut work => {}
            _ = shutdown => {
                let _ = stop_tx.send(true);
                work.await;
            }
        }
        Ok(())
    }
}

/// Accepts until told to stop (or until the sender is gone), then drains.
/// At most `max_connections` are served at once (more are closed at once
/// and counted); accept errors (out of file descriptors) back off.
async fn accept_loop(inner: Arc<Inner>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    let mut conns = tokio::task::JoinSet::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(inner.opts.max_connections));
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let (stream, _peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => {
                    backoff = ACCEPT_BACKOFF_MIN;
                    s
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    continue;
                }
            },
            _ = async { drop(stop.wait_for(|s| *s).await) } => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            inner.metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (inner, stop) = (inner.clone(), stop.clone());
        conns.spawn(async move {
            match &inner.tls {
                None => serve_connection(inner.clone(), stream, stop).await,
                Some(tls) => {
                    if let Some(stream) = tls.accept(stream, &inner.metrics).await {
                        serve_connection(inner.clone(), stream, stop).await
                    }
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    let drain = inner.opts.drain;
    if tokio::time::timeout(drain, async { while conns.join_next().await.is_some() {} }).await.is_err() {
        tracing::warn!(connections = conns.len(), "requests still in progress after {drain:?}: closing them");
    }
}

/// The first pause after a failed accept, and the longest.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// HTTP/1.1 on one client connection; after `stop`, the request in
/// progress finishes and the connection closes. A client must send each
/// request head within `client_header_timeout` (hyper's timer starts when it
/// waits for a head, so it also closes idle kept-alive connections).
async fn serve_connection<I>(inner: Arc<Inner>, io: I, mut stop: watch::Receiver<bool>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let header_timeout = inner.opts.client_header_timeout;
    let svc = hyper::service::service_fn(move |req| {
        let inner = inner.clone();
        async move { Ok::<_, Infallible>(inner.handle(req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let r = tokio::select! {
        r = conn.as_mut() => r,
        _ = async { drop(stop.wait_for(|s| *s).await) } => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = r {
        tracing::debug!(error = %e, "client connection ended");
    }
}

fn set_backend(resp: &mut Response<Body>, name: &str) {
    if let Ok(v) = HeaderValue::from_str(name) {
        resp.headers_mut().insert(BACKEND_HEADER, v);
    }
}

fn is_hop_by_hop(n: &str) -> bool {
    matches!(n, "connection" | "keep-alive" | "proxy-connection" | "te" | "trailer" | "transfer-encoding" | "upgrade")
}

fn unavailable(m: &Metrics, up: &Upstream, e: &TransportError, resource: &str) -> Response<Body> {
    if e.outcome == Outcome::Timeout {
        m.backend_timeouts.fetch_add(1, Ordering::Relaxed);
    }
    let (status, code) = match e.outcome {
        Outcome::Timeout => (StatusCode::SERVICE_UNAVAILABLE, "SlowDown"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
    };
    tracing::warn!(backend = %up.name, outcome = %e.outcome, detail = %e.detail, "backend unavailable");
    let mut r = s3xml::error(status, code, &format!("backend {} is unavailable: {}", up.name, e.outcome), resource);
    set_backend(&mut r, &up.name);
    r
}

/// Did a request succeed? (2xx and, for a completion, no error document.)
fn succeeded(status: StatusCode, small: Option<&Bytes>) -> bool {
    status.is_success() && small.is_none_or(|b| s3xml::error_code(b).is_none())
}

impl Inner {
    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let start = Instant::now();
        let (parts, body) = req.into_parts();
        let raw_path = parts.uri.path().to_string();
        let query = auth::parse_query(parts.uri.query().unwrap_or(""));
        let target = route::target(&parts.headers, &raw_path, &self.bucket_names);
        let op = route::operation(&parts.method, &target, &query, &parts.headers);
        let verified =
            match auth::verify(&self.keys, parts.method.as_str(), &raw_path, &query, &parts.headers, SystemTime::now())
            {
                Ok(v) => v,
                Err(e) => {
                    let resp = s3xml::error(e.status(), e.code(), &e.to_string(), &raw_path);
                    self.metrics.request(op.name(), "gateway", resp.status().as_u16(), start.elapsed());
                    return resp;
                }
            };
        let resp = self.dispatch(op, parts, target, query, body, verified, raw_path).await;
        let backend = resp.headers().get(BACKEND_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("gateway");
        self.metrics.request(op.name(), backend, resp.status().as_u16(), start.elapsed());
        let (parts, body) = resp.into_parts();
        Response::from_parts(parts, Counted::wrap(body, self.metrics.bytes_out.clone()))
    }

    #[allow(clippy::too_many_arguments)]
    async fn dispatch(
        &self,
        op: S3Op,
        parts: http::request::Parts,
        target: Target,
        query: Vec<(String, String)>,
        body: Incoming,
        verified: Verified,
        resource: String,
    ) -> Response<Body> {
        if op == S3Op::ListBuckets {
            let names: Vec<&str> = self.bucket_names.iter().map(String::as_str).collect();
            let mut r = Response::new(full(s3xml::list_buckets(&names)));
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
            return r;
        }
        let Some(bucket) = target.bucket.as_ref().and_then(|b| self.buckets.get(b)).cloned() else {
            return s3xml::error(StatusCode::NOT_FOUND, "NoSuchBucket", "no such bucket on this gateway", &resource);
        };
        if let Err(r) = self.check_keys(target.key.as_deref(), &parts.headers) {
            return s3xml::error(r.status, r.code, &r.message, &resource);
        }
        if op == S3Op::Unsupported {
            return s3xml::error(
                StatusCode::NOT_IMPLEMENTED,
                "NotImplemented",
                "bucket management is not available through the gateway",
                &resource,
            );
        }
        let len =
            parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        // Verified by the body as it streams (its last bytes are held back
        // until then), and by the backend when the payload hash or trailing
        // checksum goes on with it.
        let body_fault = Fault::default();
        let counter = self.metrics.bytes_in.clone();
        // A body without Content-Length (HTTP chunked) that is not
        // aws-chunked (whose decoded length is declared): the gateway
        // cannot forward it with a length, and must never send it as empty.
        let unknown_len = len.is_none() && http_body::Body::size_hint(&body).exact() != Some(0);
        let fwd = match crate::chunked::client_body(body, &verified, &parts.headers, len, counter, &body_fault) {
            Ok(b) => b,
            Err(r) => return s3xml::error(r.status, r.code, &r.message, &resource),
        };
        if unknown_len && fwd.len.is_none() {
            return s3xml::error(
                StatusCode::LENGTH_REQUIRED,
                "MissingContentLength",
                "You must provide the Content-Length HTTP header.",
                &resource,
            );
        }
        let (body, len, payload) = (fwd.body, fwd.len, fwd.payload);
        let body = MinRate::wrap(
            body,
            self.opts.client_min_body_rate,
            BODY_RATE_WINDOW,
            body_fault.clone(),
            self.metrics.slow_clients.clone(),
        );
        // An empty aws-chunked upload sent upstream as a plain body has
        // Content-Length 0, which hyper sends without polling the body: its
        // checks (final chunk signature, trailer) run here first. (With a
        // forwarded trailer the upstream body is never empty.)
        let streaming = matches!(verified.payload, Payload::StreamingUnsignedTrailer | Payload::StreamingSigned { .. });
        let body = if streaming && len == Some(0) {
            match collect_limited(body, 0).await {
                Ok(_) => empty(),
                Err(e) => {
                    let r = body_fault.get().cloned().unwrap_or_else(|| {
                        Refusal::bad_request("IncompleteBody", format!("could not read the request body: {e}"))
                    });
                    return s3xml::error(r.status, r.code, &r.message, &resource);
                }
            }
        } else {
            body
        };
        let query = query
            .into_iter()
            .filter(|(k, _)| !PRESIGN_PARAMS.contains(&k.as_str()) && !k.eq_ignore_ascii_case("x-amz-content-sha256"))
            .collect();
        let mut headers = parts.headers;
        let (body, len, payload, delete) = if op == S3Op::DeleteObjects {
            match self.delete_objects_body(body, &mut headers, &body_fault).await {
                Ok((b, keys, refused)) => {
                    let n = b.len() as u64;
                    let hash = UpPayload::Sha256(cutover_s3::sigv4::sha256_hex(&b));
                    if keys.is_empty() {
                        // Every key was refused: nothing to forward.
                        let xml = crate::xmlbody::with_delete_errors(None, &refused).unwrap_or_default();
                        let mut r = Response::new(full(xml));
                        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
                        return r;
                    }
                    (full(b), Some(n), hash, Some((keys, refused)))
                }
                Err(r) => return s3xml::error(r.status, r.code, &r.message, &resource),
            }
        } else {
            (body, len, payload, None)
        };
        let ctx = Ctx {
            op,
            method: parts.method,
            bucket,
            key: target.key,
            query,
            headers,
            resource,
            payload,
            body_fault,
            delete,
        };
        let refused = ctx.delete.as_ref().map(|(_, r)| r.clone()).filter(|r| !r.is_empty());
        let resp = self.route(ctx, body, len).await;
        match refused {
            Some(errors) if resp.status().is_success() => with_refused_keys(resp, &errors).await,
            _ => resp,
        }
    }

    /// The object key of the request and of its `x-amz-copy-source`, by
    /// [`KeyPolicy`]: no `.`/`..` segment, nothing under the probe prefix.
    fn check_keys(&self, key: Option<&str>, headers: &HeaderMap) -> Result<(), Refusal> {
        if let Some(k) = key {
            self.key_policy.check(k)?;
        }
        if let Some(v) = headers.get("x-amz-copy-source") {
            let v =
                v.to_str().map_err(|_| Refusal::bad_request("InvalidArgument", "x-amz-copy-source is not ASCII"))?;
            let v = v.strip_prefix('/').unwrap_or(v);
            let v = v.split_once('?').map_or(v, |(p, _)| p);
            let key = v.split_once('/').map(|(_, k)| auth::percent_decode(k)).unwrap_or_default();
            self.key_policy.check(&key)?;
        }
        Ok(())
    }

    /// A DeleteObjects body, read whole (its signed hash, Content-MD5 or
    /// checksum header verified), parsed, and rendered again without the
    /// keys [`KeyPolicy`] refuses: (the body to forward, its keys, the
    /// `<Error>` entries of the refused keys). The forwarded body is the
    /// gateway's own rendering, so the backend deletes exactly the keys the
    /// gateway journals; its Content-MD5 is set anew.
    async fn delete_objects_body(
        &self,
        body: Body,
        headers: &mut HeaderMap,
        fault: &Fault,
    ) -> Result<(Bytes, Vec<String>, String), Refusal> {
        let b = collect_limited(body, SMALL_BODY_LIMIT).await.map_err(|e| {
            fault.get().cloned().unwrap_or_else(|| {
                Refusal::bad_request("IncompleteBody", format!("could not read the request body: {e}"))
            })
        })?;
        let bad_digest = || {
            Refusal::bad_request(
                "BadDigest",
                "the Content-MD5 or checksum you specified did not match what was received",
            )
        };
        if let Some(md5) = headers.get("content-md5") {
            use base64::Engine as _;
            use md5::Digest as _;
            let want = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&b));
            if md5.as_bytes() != want.as_bytes() {
                return Err(bad_digest());
            }
        }
        for (name, v) in headers.iter() {
            if let Some(a) = crate::checksum::Algorithm::from_header(name.as_str()) {
                let want = v.to_str().ok().and_then(|v| a.parse_value(v)).ok_or_else(bad_digest)?;
                let mut h = a.hasher();
                h.update(&b);
                if h.finish() != want {
                    return Err(bad_digest());
                }
            }
        }
        let req = crate::xmlbody::parse_delete(&b).map_err(|e| {
            Refusal::bad_request(
                "MalformedXML",
                format!(
                    "The XML you provided was not well-formed or did not validate against our published schema: {e}"
                ),
            )
        })?;
        let mut refused = Vec::new();
        let mut kept = Vec::new();
        for o in &req.objects {
            match self.key_policy.check(&o.key) {
                Ok(()) => kept.push(o),
                Err(r) => refused.push((o.key.clone(), r.code, r.message)),
            }
        }
        let out = crate::xmlbody::render_delete(req.quiet, &kept);
        let stale: Vec<HeaderName> = headers
            .keys()
            .filter(|k| {
                let k = k.as_str();
                k == "content-md5" || k.starts_with("x-amz-checksum-") || k == "x-amz-sdk-checksum-algorithm"
            })
            .cloned()
            .collect();
        for k in stale {
            headers.remove(k);
        }
        {
            use base64::Engine as _;
            use md5::Digest as _;
            let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&out));
            headers.insert("content-md5", HeaderValue::from_str(&md5).expect("base64"));
        }
        let keys = kept.iter().map(|o| o.key.clone()).collect();
        Ok((out, keys, crate::xmlbody::delete_errors(&refused)))
    }

    /// (active, other) backends of a bucket.
    fn sides(&self, b: &GatewayBucket) -> (Arc<Upstream>, Option<Arc<Upstream>>) {
        let active = self.active.get();
        let name = if b.backends.contains(&active) { active } else { b.backends[0].clone() };
        let other = b.backends.iter().find(|n| **n != name).and_then(|n| self.upstreams.get(n)).cloned();
        (self.upstreams[&name].clone(), other)
    }

    async fn route(&self, ctx: Ctx, body: Body, len: Option<u64>) -> Response<Body> {
        // A write holds its keys until it is recorded, so a journal replay of
        // the same key runs wholly before or after it (crate::keys::KeyLocks).
        let write_keys: Vec<&str> = match (&ctx.delete, ctx.op) {
            (Some((keys, _)), _) => keys.iter().map(String::as_str).collect(),
            (None, S3Op::PutObject | S3Op::CopyObject | S3Op::DeleteObject | S3Op::CompleteMultipartUpload) => {
                ctx.key.iter().map(String::as_str).collect()
            }
            (None, op) if op.is_subresource_write(&ctx.method) => ctx.key.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        };
        let _held =
            if write_keys.is_empty() { None } else { Some(self.locks.lock_shared(&ctx.bucket.name, write_keys).await) };
        let (active, other) = self.sides(&ctx.bucket);
        let mode = ctx.bucket.mode;
        match ctx.op {
            S3Op::GetObject | S3Op::HeadObject if mode == BucketMode::ReadThrough => {
                self.read_through(&ctx, &active, other, true).await
            }
            S3Op::GetObject | S3Op::HeadObject if mode == BucketMode::DualWrite && other.is_some() => {
                let key = ctx.key.as_deref().unwrap_or("");
                match self.newest_of(&ctx.bucket.name, key).and_then(|n| self.upstreams.get(&n).cloned()) {
                    // One side holds a write the other has not got yet
                    // (journaled): only that side answers.
                    Some(up) => self.single(&ctx, &up, None, body, len).await,
                    // Both sides hold the same: the other answers when the
                    // active cannot.
                    None => self.read_through(&ctx, &active, other, false).await,
                }
            }
            S3Op::PutObject | S3Op::CopyObject | S3Op::DeleteObject | S3Op::DeleteObjects
                if mode == BucketMode::DualWrite && other.is_some() =>
            {
                let other = other.expect("checked");
                self.dual_write(&ctx, &active, &other, body, len).await
            }
            S3Op::UploadPart
            | S3Op::UploadPartCopy
            | S3Op::CompleteMultipartUpload
            | S3Op::AbortMultipartUpload
            | S3Op::ListParts => {
                let upload_id = param(&ctx.query, "uploadId").unwrap_or_default();
                let owner = match self.state.upload_backend(&upload_id).await {
                    Ok(o) => o.and_then(|n| self.upstreams.get(&n).cloned()).unwrap_or(active.clone()),
                    Err(e) => {
                        tracing::error!(error = %e, "reading the multipart upload owner");
                        return s3xml::error(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "ServiceUnavailable",
                            "state database error",
                            &ctx.resource,
                        );
                    }
                };
                let other = other_of(&ctx.bucket, &owner.name, &self.upstreams);
                self.single(&ctx, &owner, other, body, len).await
            }
            _ => self.single(&ctx, &active, other, body, len).await,
        }
    }

    /// The request for one backend: forwarded headers, copy source mapped to
    /// that backend's bucket (the client's aws-chunked headers are not
    /// forwarded: [`Upstream`] sets them for the body it sends, from
    /// [`UpPayload`]). The error is the answer for the client.
    #[allow(clippy::result_large_err)]
    fn up_request(&self, ctx: &Ctx, up: &Upstream, body: Body, len: Option<u64>) -> Result<UpRequest, Response<Body>> {
        let mut headers = Vec::with_capacity(ctx.headers.len());
        for (k, v) in &ctx.headers {
            let n = k.as_str();
            if is_hop_by_hop(n)
                || matches!(
                    n,
                    "host"
                        | "authorization"
                        | "content-length"
                        | "expect"
                        | "x-amz-date"
                        | "x-amz-content-sha256"
                        | "x-amz-security-token"
                        | "x-amz-decoded-content-length"
                        | "x-amz-trailer"
                )
            {
                continue;
            }
            if n == "content-encoding" {
                let rest: Vec<&str> = v
                    .to_str()
                    .unwrap_or("")
                    .split(',')
                    .map(str::trim)
                    .filter(|e| *e != "aws-chunked" && !e.is_empty())
                    .collect();
                if !rest.is_empty() {
                    headers.push((k.clone(), HeaderValue::from_str(&rest.join(", ")).unwrap_or(v.clone())));
                }
                continue;
            }
            if n == "x-amz-copy-source" {
                let mapped = self.map_copy_source(v.to_str().unwrap_or(""), up).ok_or_else(|| {
                    s3xml::error(
                        StatusCode::FORBIDDEN,
                        "AccessDenied",
                        "the copy source is not a bucket of this gateway",
                        &ctx.resource,
                    )
                })?;
                headers.push((k.clone(), mapped));
                continue;
            }
            headers.push((k.clone(), v.clone()));
        }
        Ok(UpRequest {
            method: ctx.method.clone(),
            key: ctx.key.clone(),
            query: ctx.query.clone(),
            headers,
            body,
            content_length: len,
            payload: ctx.payload.clone(),
        })
    }

    /// `/client-bucket/key?versionId=..` → `/backend-bucket/key?versionId=..`,
    /// when the client bucket is one `up` serves (gateway buckets never share
    /// a backend bucket: a copy across them is not a server-side copy).
    fn map_copy_source(&self, v: &str, up: &Upstream) -> Option<HeaderValue> {
        let s = v.strip_prefix('/').unwrap_or(v);
        let (b, rest) = s.split_once('/')?;
        let b = auth::percent_decode(b);
        self.buckets.get(&b).filter(|gb| gb.backends.contains(&up.name))?;
        HeaderValue::from_str(&format!("/{}/{rest}", cutover_s3::sigv4::uri_encode(&up.bucket, false))).ok()
    }

    /// Turns a backend's answer into the client's: headers copied (hop-by-hop
    /// ones dropped), small XML answers read whole to rename the bucket,
    /// everything else streamed. Returns the whole body when it was read.
    async fn answer(&self, ctx: &Ctx, up: &Upstream, resp: Response<Body>) -> (Response<Body>, Option<Bytes>) {
        let (mut parts, incoming) = resp.into_parts();
        let drop: Vec<HeaderName> = parts.headers.keys().filter(|k| is_hop_by_hop(k.as_str())).cloned().collect();
        for k in drop {
            parts.headers.remove(k);
        }
        // A copy's answer is read whole too: S3 may answer 200 and report
        // the copy's failure in an error document.
        let copy = matches!(ctx.op, S3Op::CopyObject | S3Op::UploadPartCopy);
        let read_whole = ((ctx.op.names_bucket() || copy) && parts.status.is_success())
            || (!parts.status.is_success() && ctx.method != Method::HEAD);
        let (body, small) = if read_whole {
            match collect_limited(incoming, SMALL_BODY_LIMIT).await {
                Ok(b) => {
                    let b =
                        if ctx.op.names_bucket() { s3xml::rename_bucket(&b, &up.bucket, &ctx.bucket.name) } else { b };
                    // Listings never show the probe prefix.
                    let b = if ctx.op.lists_keys() && parts.status.is_success() {
                        let url = param(&ctx.query, "encoding-type").is_some_and(|e| e.eq_ignore_ascii_case("url"));
                        match crate::xmlbody::filter_listing(&b, url, |k| self.key_policy.is_probe(k)) {
                            Some(b) => b,
                            None => {
                                tracing::warn!(backend = %up.name, op = ctx.op.name(), "a listing answer could not be read to filter it");
                                let mut r = s3xml::error(
                                    StatusCode::BAD_GATEWAY,
                                    "InternalError",
                                    "the backend's listing could not be read",
                                    &ctx.resource,
                                );
                                set_backend(&mut r, &up.name);
                                return (r, None);
                            }
                        }
                    } else {
                        b
                    };
                    // "200 with an error document" is a failure: never a 200 to the client.
                    if parts.status.is_success()
                        && let Some(code) = s3xml::error_code(&b)
                    {
                        tracing::warn!(backend = %up.name, op = ctx.op.name(), %code, "the backend answered 200 with an error document");
                        parts.status = if code == "SlowDown" {
                            StatusCode::SERVICE_UNAVAILABLE
                        } else {
                            StatusCode::INTERNAL_SERVER_ERROR
                        };
                    }
                    parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(b.len()));
                    (full(b.clone()), Some(b))
                }
                Err(e) => {
                    let e = cutover_s3::http::classify(&*e);
                    return (unavailable(&self.metrics, up, &e, &ctx.resource), None);
                }
            }
        } else {
            (incoming, None)
        };
        let mut r = Response::from_parts(parts, body);
        set_backend(&mut r, &up.name);
        (r, small)
    }

    /// One backend takes the request (active-passive, reads, multipart).
    async fn single(
        &self,
        ctx: &Ctx,
        up: &Upstream,
        other: Option<Arc<Upstream>>,
        body: Body,
        len: Option<u64>,
    ) -> Response<Body> {
        let req = match self.up_request(ctx, up, body, len) {
            Ok(r) => r,
            Err(resp) => return resp,
        };
        let resp = match up.send(req, self.opts.deadlines).await {
            Ok(r) => r,
            Err(e) => return send_failed(&self.metrics, ctx, up, &e),
        };
        let (resp, small) = self.answer(ctx, up, resp).await;
        if !succeeded(resp.status(), small.as_ref()) {
            return resp;
        }
        if let Err(e) = self.after_write(ctx, up, other, small.as_ref()).await {
            tracing::error!(error = %e, "recording a write in the state file");
            return s3xml::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "the write was taken but could not be recorded for failback; retry it",
                &ctx.resource,
            );
        }
        resp
    }

    /// Bookkeeping after a successful write on `up`: multipart owners,
    /// failback records, dual-write replication of completed uploads.
    async fn after_write(
        &self,
        ctx: &Ctx,
        up: &Upstream,
        other: Option<Arc<Upstream>>,
        small: Option<&Bytes>,
    ) -> Result<(), GatewayError> {
        let key = ctx.key.clone().unwrap_or_default();
        match ctx.op {
            S3Op::CreateMultipartUpload => {
                if let Some(id) = small.and_then(|b| upload_id(b)) {
                    self.state.remember_upload(&id, &up.name).await?;
                }
                return Ok(());
            }
            S3Op::AbortMultipartUpload => {
                if let Some(id) = param(&ctx.query, "uploadId") {
                    self.state.forget_upload(&id).await?;
                }
                return Ok(());
            }
            _ => {}
        }
        if let Some((keys, _)) = &ctx.delete {
            // DeleteObjects: "make the primary equal": each key is copied
            // back, or deleted there if it is gone (also right for a key the
            // backend reported an error for). One transaction.
            if up.name != self.primary {
                self.state.record_failback_many(&ctx.bucket.name, keys, Op::Put, &up.name).await?;
            }
            return Ok(());
        }
        if ctx.op.is_subresource_write(&ctx.method) {
            // Tagging, ACL, retention, legal hold: the object is copied again
            // with them (crate::replay::sync_key), on failback and, in
            // dual-write, to the other backend.
            if ctx.bucket.mode == BucketMode::DualWrite
                && let Some(o) = &other
            {
                self.journal(&ctx.bucket.name, &key, Op::Put, &up.name, &o.name).await?;
            }
            if up.name != self.primary {
                self.state.record_failback(&ctx.bucket.name, &key, Op::Put, &up.name).await?;
            }
            return Ok(());
        }
        let op = match ctx.op {
            S3Op::PutObject | S3Op::CopyObject | S3Op::CompleteMultipartUpload => Op::Put,
            S3Op::DeleteObject => Op::Delete,
            _ => return Ok(()),
        };
        if ctx.op == S3Op::CompleteMultipartUpload {
            if let Some(id) = param(&ctx.query, "uploadId") {
                self.state.forget_upload(&id).await?;
            }
            if ctx.bucket.mode == BucketMode::DualWrite
                && let Some(o) = other
            {
                // The parts went to one backend; the other gets a copy of
                // the completed object through the journal (ack = all: now).
                if ctx.bucket.ack == Ack::All {
                    if let Err(e) = crate::replay::sync_key(self, &key, up, &o, self.opts.deadlines).await {
                        tracing::warn!(error = %e, "dual-write copy of a completed upload failed; journaled");
                        self.journal(&ctx.bucket.name, &key, Op::Put, &up.name, &o.name).await?;
                    }
                } else {
                    self.journal(&ctx.bucket.name, &key, Op::Put, &up.name, &o.name).await?;
                }
            }
        }
        if up.name != self.primary {
            self.state.record_failback(&ctx.bucket.name, &key, op, &up.name).await?;
        }
        Ok(())
    }

    /// The backend that holds the newest version of a key with a pending
    /// journal entry.
    fn newest_of(&self, bucket: &str, key: &str) -> Option<String> {
        let m = self.newest.lock().expect("newest");
        m.get(&(bucket.to_string(), key.to_string())).map(|(s, _)| s.clone())
    }

    /// A journal entry was replayed (or superseded): its key is equal on
    /// both sides again unless a newer entry took its place.
    pub(crate) fn replayed(&self, bucket: &str, key: &str, id: i64) {
        let mut m = self.newest.lock().expect("newest");
        let k = (bucket.to_string(), key.to_string());
        if m.get(&k).is_some_and(|(_, i)| *i == id) {
            m.remove(&k);
        }
    }

    pub(crate) async fn journal(
        &self,
        bucket: &str,
        key: &str,
        op: Op,
        source: &str,
        target: &str,
    ) -> Result<(), GatewayError> {
        self.journal_many(bucket, &[key.to_string()], op, source, target).await
    }

    /// [`Inner::journal`] for several keys, in one transaction.
    pub(crate) async fn journal_many(
        &self,
        bucket: &str,
        keys: &[String],
        op: Op,
        source: &str,
        target: &str,
    ) -> Result<(), GatewayError> {
        if keys.is_empty() {
            return Ok(());
        }
        let ids = self.state.append_many(bucket, keys, op, source, target).await?;
        {
            let mut m = self.newest.lock().expect("newest");
            for (k, id) in keys.iter().zip(ids) {
                m.insert((bucket.to_string(), k.clone()), (source.to_string(), id));
            }
        }
        self.metrics.journal_appended.fetch_add(keys.len() as u64, Ordering::Relaxed);
        self.wake.notify_one();
        Ok(())
    }

    /// GET/HEAD on the active backend; on a transport error, timeout, 5xx or
    /// (with `on_missing`) 404, the same on the other backend.
    async fn read_through(
        &self,
        ctx: &Ctx,
        active: &Upstream,
        other: Option<Arc<Upstream>>,
        on_missing: bool,
    ) -> Response<Body> {
        let first = self.up_request(ctx, active, empty(), None);
        let first = match first {
            Ok(r) => active.send(r, self.opts.deadlines).await,
            Err(resp) => return resp,
        };
        let retry = match &first {
            Err(_) => true,
            Ok(r) => r.status().is_server_error() || (on_missing && r.status() == StatusCode::NOT_FOUND),
        };
        let other = if retry { other } else { None };
        let Some(other) = other else {
            return match first {
                Ok(r) => self.answer(ctx, active, r).await.0,
                Err(e) => unavailable(&self.metrics, active, &e, &ctx.resource),
            };
        };
        // Keep the active's answer (read whole: it is an error document) in
        // case the other backend does no better.
        let first = match first {
            Ok(r) => Ok(self.answer(ctx, active, r).await.0),
            Err(e) => Err(e),
        };
        let second = match self.up_request(ctx, &other, empty(), None) {
            Ok(r) => other.send(r, self.opts.deadlines).await,
            Err(resp) => return resp,
        };
        match second {
            Ok(r)
                if r.status().is_success()
                    || r.status().is_redirection()
                    || r.status() == StatusCode::PRECONDITION_FAILED
                    || r.status() == StatusCode::RANGE_NOT_SATISFIABLE =>
            {
                self.metrics.fallbacks.fetch_add(1, Ordering::Relaxed);
                self.answer(ctx, &other, r).await.0
            }
            _ => match first {
                Ok(r) => r,
                Err(e) => unavailable(&self.metrics, active, &e, &ctx.resource),
            },
        }
    }

    /// Dual-write: the same write to both backends in parallel; the body is
    /// teed through two bounded channels (never buffered whole).
    async fn dual_write(
        &self,
        ctx: &Ctx,
        active: &Upstream,
        other: &Upstream,
        body: Body,
        len: Option<u64>,
    ) -> Response<Body> {
        let all = ctx.bucket.ack == Ack::All;
        let other_limit = if all { self.opts.write_timeout } else { self.opts.other_timeout };
        // With ack = active-journal, the other backend's answer is enough
        // when the active one cannot give its own in time.
        let hedge = if all { None } else { self.opts.hedge_after };
        // DeleteObjects bodies are small and name the keys to journal.
        let (body, small_req) = if ctx.op == S3Op::DeleteObjects {
            match collect_limited(body, SMALL_BODY_LIMIT).await {
                Ok(b) => (full(b.clone()), Some(b)),
                Err(_) => {
                    if let Some(r) = ctx.body_fault.get() {
                        return s3xml::error(r.status, r.code, &r.message, &ctx.resource);
                    }
                    return s3xml::error(
                        StatusCode::BAD_REQUEST,
                        "IncompleteBody",
                        "could not read the request body",
                        &ctx.resource,
                    );
                }
            }
        } else {
            (body, None)
        };
        let (body_a, body_b, pump) = if len.unwrap_or(0) == 0 || small_req.is_some() {
            let b = small_req.clone().unwrap_or_default();
            (full(b.clone()), full(b), None)
        } else {
            let (tx_a, body_a) = channel(self.opts.tee_chunks, len);
            let (tx_b, body_b) = channel(self.opts.tee_chunks, len);
            (body_a, body_b, Some(tee(body, tx_a, tx_b, other_limit, hedge)))
        };
        let (req_a, req_b) = match (self.up_request(ctx, active, body_a, len), self.up_request(ctx, other, body_b, len))
        {
            (Ok(a), Ok(b)) => (a, b),
            (Err(r), _) | (_, Err(r)) => return r,
        };
        let (done_tx, done_rx) = watch::channel(pump.is_none());
        let pump = async move {
            if let Some(p) = pump {
                p.await;
            }
            let _ = done_tx.send(true);
        };
        let d = self.opts.deadlines;
        let send_a =
            deadline_after(Box::pin(active.send(req_a, d)), done_rx.clone(), self.opts.write_timeout, &active.name);
        let send_b = deadline_after(Box::pin(other.send(req_b, d)), done_rx, other_limit, &other.name);
        // The other backend's answer is small (a PUT's headers, a copy's or
        // a DeleteObjects' XML): read it whole.
        let read_b = async move {
            let (parts, b) = send_b.await?.into_parts();
            let text = collect_limited(b, SMALL_BODY_LIMIT).await.ok();
            Ok::<_, TransportError>((parts, text))
        };
        let ((), (ra, rb)) = tokio::join!(pump, race(send_a, read_b, hedge));
        let b_ok = match &rb {
            Ok((parts, text)) => {
                // A 200 with an error document (a failed copy) is a failure too.
                let ok = succeeded(parts.status, text.as_ref());
                if !ok {
                    tracing::warn!(backend = %other.name, status = parts.status.as_u16(), code = ?text.as_deref().and_then(s3xml::error_code), "dual-write: the other backend refused the write");
                }
                ok
            }
            Err(e) => {
                tracing::warn!(backend = %other.name, outcome = %e.outcome, detail = %e.detail, "dual-write: the other backend did not take the write");
                false
            }
        };
        let keys: Vec<String> = match &ctx.delete {
            Some((keys, _)) => keys.clone(),
            None => ctx.key.iter().cloned().collect(),
        };
        let op = if matches!(ctx.op, S3Op::DeleteObject | S3Op::DeleteObjects) { Op::Delete } else { Op::Put };
        let ra = match ra {
            Some(Ok(r)) => {
                let (r, small_a) = self.answer(ctx, active, r).await;
                Ok((r, small_a))
            }
            Some(Err(e)) => Err(e),
            None => Err(TransportError {
                outcome: Outcome::Timeout,
                detail: format!(
                    "{}: no answer within {:?} of the other backend's",
                    active.name,
                    hedge.unwrap_or_default()
                ),
            }),
        };
        // The active backend could not take the write (no answer in time, a
        // transport error, a 5xx) but the other did: with ack =
        // active-journal the write is acknowledged from the other backend
        // and journaled for the active one, so no client write fails while
        // the active backend is down, even before the failover.
        let active_unavailable = match &ra {
            Err(_) => true,
            Ok((r, _)) => r.status().is_server_error(),
        };
        if hedge.is_some()
            && b_ok
            && active_unavailable
            && let Ok((parts, text)) = rb
        {
            return self.hedged(ctx, active, other, &keys, op, parts, text).await;
        }
        let (ra, small_a) = match ra {
            Ok((r, s)) => (Ok(r), s),
            Err(e) => (Err(e), None),
        };
        let a_ok = matches!(&ra, Ok(r) if succeeded(r.status(), small_a.as_ref()));
        if a_ok && b_ok {
            return ra.expect("ok");
        }
        // One side missed the write: make it converge to the active's state
        // (journal), whatever the client is told.
        let mut journaled = true;
        if a_ok || b_ok {
            // A failed active write that the other side took: converge the
            // other side back to the active's state. All keys in one transaction.
            let op = if a_ok { op } else { Op::Put };
            if let Err(e) = self.journal_many(&ctx.bucket.name, &keys, op, &active.name, &other.name).await {
                tracing::error!(error = %e, "writing the journal");
                journaled = false;
            }
        }
        match ra {
            Ok(r) if a_ok && !all && journaled => r,
            Ok(_) if a_ok => {
                let why = if journaled { "ack = all" } else { "the journal could not be written" };
                let mut r = s3xml::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    &format!("dual-write: backend {} did not take the write ({why}); retry", other.name),
                    &ctx.resource,
                );
                set_backend(&mut r, &active.name);
                r
            }
            Ok(r) => r,
            Err(e) => send_failed(&self.metrics, ctx, active, &e),
        }
    }

    /// Acknowledges a dual-write from the other backend's answer: every key
    /// is journaled from the other backend to the active one first (and,
    /// when the other is not the primary, recorded for failback); if that
    /// cannot be written the client is told to retry.
    #[allow(clippy::too_many_arguments)]
    async fn hedged(
        &self,
        ctx: &Ctx,
        active: &Upstream,
        other: &Upstream,
        keys: &[String],
        op: Op,
        parts: http::response::Parts,
        text: Option<Bytes>,
    ) -> Response<Body> {
        {
            let mut r = self.journal_many(&ctx.bucket.name, keys, op, &other.name, &active.name).await;
            if r.is_ok() && other.name != self.primary {
                r = self.state.record_failback_many(&ctx.bucket.name, keys, op, &other.name).await;
            }
            if let Err(e) = r {
                tracing::error!(error = %e, "writing the journal for a hedged write");
                let mut r = s3xml::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    &format!(
                        "dual-write: backend {} did not take the write and the journal could not be written; retry",
                        active.name
                    ),
                    &ctx.resource,
                );
                set_backend(&mut r, &active.name);
                return r;
            }
        }
        self.metrics.hedged.fetch_add(1, Ordering::Relaxed);
        tracing::info!(backend = %active.name, acknowledged_by = %other.name, keys = keys.len(), "dual-write: acknowledged from the other backend and journaled for the active one");
        self.answer(ctx, other, Response::from_parts(parts, full(text.unwrap_or_default()))).await.0
    }
}

/// Waits for both backends of a dual-write; with `hedge`, stops waiting for
/// the active one (`None`) once the other has answered successfully and
/// `hedge` has passed.
async fn race<A, B>(
    send_a: A,
    read_b: B,
    hedge: Option<Duration>,
) -> (Option<Result<Response<Body>, TransportError>>, Result<(http::response::Parts, Option<Bytes>), TransportError>)
where
    A: Future<Output = Result<Response<Body>, TransportError>>,
    B: Future<Output = Result<(http::response::Parts, Option<Bytes>), TransportError>>,
{
    tokio::pin!(send_a, read_b);
    let (mut ra, mut rb) = (None, None);
    let mut give_up: Option<tokio::time::Instant> = None;
    loop {
        let at = give_up;
        tokio::select! {
            r = &mut send_a, if ra.is_none() => ra = Some(r),
            r = &mut read_b, if rb.is_none() => {
                if let (Some(h), Ok((parts, text))) = (hedge, &r)
                    && succeeded(parts.status, text.as_ref())
                {
                    give_up = Some(tokio::time::Instant::now() + h);
                }
                rb = Some(r);
            }
            _ = async move {
                match at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            }, if ra.is_none() => return (None, rb.expect("the other answered")),
        }
        if let (Some(_), Some(_)) = (&ra, &rb) {
            return (ra, rb.expect("checked"));
        }
    }
}

/// The answer when sending to a backend failed: the client's fault if its
/// body was refused while it streamed (the upstream request was aborted
/// short of its end), the backend's otherwise.
fn send_failed(m: &Metrics, ctx: &Ctx, up: &Upstream, e: &TransportError) -> Response<Body> {
    if let Some(r) = ctx.body_fault.get() {
        return s3xml::error(r.status, r.code, &r.message, &ctx.resource);
    }
    unavailable(m, up, e, &ctx.resource)
}

/// Adds the `<Error>` entries of the keys the gateway refused to a
/// DeleteObjects answer.
async fn with_refused_keys(resp: Response<Body>, errors: &str) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    let b = match collect_limited(body, SMALL_BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            return s3xml::error(StatusCode::BAD_GATEWAY, "InternalError", "the backend's answer was cut short", "");
        }
    };
    let b = crate::xmlbody::with_delete_errors(Some(&b), errors).unwrap_or(b);
    parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(b.len()));
    Response::from_parts(parts, full(b))
}

fn other_of(b: &GatewayBucket, name: &str, ups: &HashMap<String, Arc<Upstream>>) -> Option<Arc<Upstream>> {
    b.backends.iter().find(|n| *n != name).and_then(|n| ups.get(n)).cloned()
}

fn param(query: &[(String, String)], name: &str) -> Option<String> {
    query.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

fn upload_id(body: &[u8]) -> Option<String> {
    let t = std::str::from_utf8(body).ok()?;
    let i = t.find("<UploadId>")? + 10;
    let j = t[i..].find("</UploadId>")? + i;
    Some(t[i..j].to_string())
}

/// Waits for `send`, but gives up `limit` after the body has been fully fed.
async fn deadline_after<T>(
    send: std::pin::Pin<Box<dyn Future<Output = Result<T, TransportError>> + Send + '_>>,
    mut done: watch::Receiver<bool>,
    limit: Duration,
    name: &str,
) -> Result<T, TransportError> {
    let mut send = send;
    let deadline = async {
        let _ = done.wait_for(|d| *d).await;
        tokio::time::sleep(limit).await;
    };
    tokio::select! {
        r = &mut send => r,
        _ = deadline => Err(TransportError { outcome: Outcome::Timeout, detail: format!("{name}: no answer within {limit:?} after the upload") }),
    }
}

/// Feeds each chunk of `body` to both channels. The other side (`tx_b`) is
/// dropped if it stalls for `stall` or goes away. The active side is waited
/// for (its upstream request has its own deadlines), except with `hedge`:
/// then it is dropped when it stalls that long, so the other side still
/// gets the whole body (and the write is acknowledged from it).
async fn tee(
    mut body: Body,
    tx_a: tokio::sync::mpsc::Sender<Result<Bytes, crate::body::BoxError>>,
    tx_b: tokio::sync::mpsc::Sender<Result<Bytes, crate::body::BoxError>>,
    stall: Duration,
    hedge: Option<Duration>,
) {
    let (mut tx_a, mut tx_b) = (Some(tx_a), Some(tx_b));
    while tx_a.is_some() || tx_b.is_some() {
        match body.frame().await {
            None => return,
            Some(Err(e)) => {
                let msg = e.to_string();
                for tx in [&tx_a, &tx_b].into_iter().flatten() {
                    let _ = tx.try_send(Err(msg.clone().into()));
                }
                return;
            }
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else { continue };
                if let Some(b) = &tx_b {
                    match tokio::time::timeout(stall, b.send(Ok(data.clone()))).await {
                        Ok(Ok(())) => {}
                        _ => {
                            tracing::warn!(
                                "dual-write: the other backend stalled or failed; continuing with the active one"
                            );
                            tx_b = None;
                        }
                    }
                }
                if let Some(a) = &tx_a {
                    let sent = match hedge {
                        None => a.send(Ok(data)).await.is_ok(),
                        Some(h) => matches!(tokio::time::timeout(h, a.send(Ok(data))).await, Ok(Ok(()))),
                    };
                    if !sent {
                        if tx_b.is_some() && hedge.is_some() {
                            tracing::warn!("dual-write: the active backend stalled; continuing with the other one");
                        }
                        tx_a = None;
                        if hedge.is_none() {
                            return;
                        }
                    }
                }
            }
        }
    }
}
