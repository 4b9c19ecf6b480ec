//! Copies between backends: journal replay (dual-write writes one side
//! missed) and the failback resync (writes taken by a non-primary backend,
//! copied back to the primary and verified).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use cutover_core::{Config, Outcome};
use http::{HeaderName, HeaderValue, Method, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use md5::{Digest, Md5};

use crate::active::ActiveBackend;
use crate::body::{BoxError, collect_limited};
use crate::deadline::Deadlines;
use crate::error::GatewayError;
use crate::server::{Gateway, GatewayOptions, Inner};
use crate::state::{Op, now_ms};
use crate::upstream::{UpRequest, Upstream};
use crate::xmlbody::Malformed;

/// With no entry due sooner, the replayer reads the journal at least once
/// in this many `replay_interval`s (10 s by default): every entry wakes it
/// when written, so this only bounds a wall clock that moved.
const IDLE_PASSES: u32 = 20;

/// The wait before the next pass: until `next_due` (ms since the epoch; an
/// empty journal has none), at least `floor`, at most [`IDLE_PASSES`] of it.
fn pass_wait(next_due: Option<i64>, now_ms: i64, floor: Duration) -> Duration {
    let cap = floor * IDLE_PASSES;
    match next_due {
        Some(at) => Duration::from_millis(u64::try_from(at - now_ms).unwrap_or(0)).clamp(floor, cap),
        None => cap,
    }
}

/// Why a copy between backends failed. Each names the request (`GET from`,
/// `PUT to`, `verify on`, ...) and the backend; none holds a credential.
/// Journaled as its message, with the entry to retry.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CopyError {
    /// A request got no answer (refused, reset, timed out).
    #[error("{request} {backend}: {outcome} ({detail})")]
    Transport { request: &'static str, backend: String, outcome: Outcome, detail: String },
    /// A request of the verification got no answer.
    #[error("{request} {backend}: {outcome}")]
    VerifyTransport { request: &'static str, backend: String, outcome: Outcome },
    /// An answer other than a success (or, for a delete, 404).
    #[error("{request} {backend}: HTTP {status}")]
    Status { request: &'static str, backend: String, status: StatusCode },
    /// A body that could not be read to its end.
    #[error("{request} {backend}: {source}")]
    Body {
        request: &'static str,
        backend: String,
        #[source]
        source: BoxError,
    },
    /// A tag set that is not the XML GetObjectTagging answers.
    #[error("GET ?tagging from {backend}: {source}")]
    Tagging {
        backend: String,
        #[source]
        source: Malformed,
    },
    /// Tags that cannot be an `x-amz-tagging` header.
    #[error("x-amz-tagging: {0}")]
    TagHeader(#[from] http::header::InvalidHeaderValue),
    /// A GET answer without a size.
    #[error("GET from {backend}: no Content-Length")]
    NoLength { backend: String },
    /// The body ended before the size the source announced.
    #[error("PUT to {backend}: sent {sent} of {size} bytes")]
    Short { backend: String, sent: u64, size: u64 },
    /// The copy is not there, or not of the right size.
    #[error("verify on {backend}: HTTP {status}, size {got:?}, expected {size}")]
    Missing { backend: String, status: StatusCode, got: Option<u64>, size: u64 },
    /// The copy read back does not have the source's MD5.
    #[error("verify on {backend}: checksum mismatch")]
    ChecksumMismatch { backend: String },
}

impl CopyError {
    fn transport(request: &'static str, to: &Upstream, e: cutover_s3::http::TransportError) -> Self {
        Self::Transport { request, backend: to.name.clone(), outcome: e.outcome, detail: e.detail }
    }

    fn status(request: &'static str, to: &Upstream, status: StatusCode) -> Self {
        Self::Status { request, backend: to.name.clone(), status }
    }
}

/// What a failback resync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResyncReport {
    /// Objects copied to the primary and verified (size and checksum).
    pub copied: u64,
    /// Keys deleted on the primary (deleted on the other side meanwhile).
    pub deleted: u64,
    /// Records that could not be replayed or verified; they stay recorded.
    pub failed: u64,
    /// Records left after this pass (failed ones and writes that arrived meanwhile).
    pub remaining: u64,
    /// One line per failure, without secrets.
    pub errors: Vec<String>,
}

/// What a copy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Synced {
    Copied { size: u64, md5: String, etag: Option<String> },
    Deleted,
}

/// Headers of an object that a copy keeps: metadata, and the object lock
/// settings (retention and legal hold, which GetObject returns and
/// PutObject takes).
fn kept(name: &str) -> bool {
    name.starts_with("x-amz-meta-")
        || is_lock(name)
        || matches!(
            name,
            "content-type"
                | "cache-control"
                | "content-disposition"
                | "content-encoding"
                | "content-language"
                | "expires"
        )
}

fn is_lock(name: &str) -> bool {
    matches!(name, "x-amz-object-lock-mode" | "x-amz-object-lock-retain-until-date" | "x-amz-object-lock-legal-hold")
}

/// The object's tag set on `from` as an `x-amz-tagging` value, when GetObject
/// said it has tags (`x-amz-tagging-count`).
async fn tagging(from: &Upstream, key: &str, d: Deadlines) -> Result<String, CopyError> {
    const REQUEST: &str = "GET ?tagging from";
    let mut req = UpRequest::new(Method::GET, Some(key));
    req.query = vec![("tagging".into(), String::new())];
    let resp = from.send(req, d).await.map_err(|e| CopyError::transport(REQUEST, from, e))?;
    let status = resp.status();
    let body = collect_limited(resp.into_body(), 1 << 20).await.map_err(|source| CopyError::Body {
        request: REQUEST,
        backend: from.name.clone(),
        source,
    })?;
    if !status.is_success() {
        return Err(CopyError::status(REQUEST, from, status));
    }
    let tags = crate::xmlbody::parse_tagging(&body)
        .map_err(|source| CopyError::Tagging { backend: from.name.clone(), source })?;
    Ok(tags
        .iter()
        .map(|(k, v)| format!("{}={}", cutover_s3::sigv4::uri_encode(k, true), cutover_s3::sigv4::uri_encode(v, true)))
        .collect::<Vec<_>>()
        .join("&"))
}

/// A body that computes the MD5 and counts the bytes of what passes through
/// (the sender may stop polling at Content-Length, before the end of stream).
struct Hashing<B> {
    inner: B,
    seen: Arc<Mutex<(Md5, u64)>>,
}

impl<B> Hashing<B> {
    fn new(inner: B) -> (Self, Arc<Mutex<(Md5, u64)>>) {
        let seen = Arc::new(Mutex::new((Md5::new(), 0)));
        (Self { inner, seen: seen.clone() }, seen)
    }
}

fn finish(seen: &Arc<Mutex<(Md5, u64)>>) -> (String, u64) {
    let g = seen.lock().expect("md5 lock");
    (hex::encode(g.0.clone().finalize()), g.1)
}

impl<B> HttpBody for Hashing<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    let mut g = this.seen.lock().expect("md5 lock");
                    g.0.update(d);
                    g.1 += d.len() as u64;
                }
                Poll::Ready(Some(Ok(f)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Makes `to`'s copy of `key` equal to `from`'s: streams the object across
/// (GET → PUT, bounded memory), or deletes it on `to` when `from` answers
/// 404. A transport error or any other answer is an error, never "deleted".
pub(crate) async fn sync_key(
    inner: &Inner,
    key: &str,
    from: &Upstream,
    to: &Upstream,
    d: Deadlines,
) -> Result<Synced, CopyError> {
    let _ = inner;
    let get = from
        .send(UpRequest::new(Method::GET, Some(key)), d)
        .await
        .map_err(|e| CopyError::transport("GET from", from, e))?;
    if get.status() == StatusCode::NOT_FOUND {
        drop(get);
        delete(to, key, d).await?;
        return Ok(Synced::Deleted);
    }
    if !get.status().is_success() {
        return Err(CopyError::status("GET from", from, get.status()));
    }
    let (parts, body) = get.into_parts();
    let size = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| CopyError::NoLength { backend: from.name.clone() })?;
    let mut put = UpRequest::new(Method::PUT, Some(key));
    put.headers = parts
        .headers
        .iter()
        .filter(|(k, _)| kept(k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect::<Vec<(HeaderName, HeaderValue)>>();
    // Tags go with the object (a PUT without them clears the target's).
    let tag_count =
        parts.headers.get("x-amz-tagging-count").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u32>().ok());
    if tag_count.unwrap_or(0) > 0 {
        let tags = tagging(from, key, d).await?;
        let v = HeaderValue::from_str(&tags)?;
        put.headers.push((HeaderName::from_static("x-amz-tagging"), v));
    }
    // S3 takes object lock settings only with a Content-MD5: the source's
    // ETag is the MD5 of a single-part object.
    if parts.headers.keys().any(|k| is_lock(k.as_str()))
        && let Some(md5) = parts
            .headers
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(|e| e.trim_matches('"'))
            .and_then(|e| hex::decode(e).ok())
            .filter(|b| b.len() == 16)
    {
        use base64::Engine as _;
        let v = base64::engine::general_purpose::STANDARD.encode(md5);
        put.headers.push((HeaderName::from_static("content-md5"), HeaderValue::from_str(&v).expect("base64")));
    }
    let (hashing, seen) = Hashing::new(body);
    put.body = hashing.boxed();
    put.content_length = Some(size);
    let resp = to.send(put, d).await.map_err(|e| CopyError::transport("PUT to", to, e))?;
    let status = resp.status();
    let etag = resp.headers().get("etag").and_then(|v| v.to_str().ok()).map(|e| e.trim_matches('"').to_string());
    let _ = collect_limited(resp.into_body(), 1 << 20).await;
    if !status.is_success() {
        return Err(CopyError::status("PUT to", to, status));
    }
    let (md5, sent) = finish(&seen);
    if sent != size {
        return Err(CopyError::Short { backend: to.name.clone(), sent, size });
    }
    Ok(Synced::Copied { size, md5, etag })
}

async fn delete(to: &Upstream, key: &str, d: Deadlines) -> Result<(), CopyError> {
    let resp = to
        .send(UpRequest::new(Method::DELETE, Some(key)), d)
        .await
        .map_err(|e| CopyError::transport("DELETE on", to, e))?;
    let status = resp.status();
    let _ = collect_limited(resp.into_body(), 1 << 20).await;
    if status.is_success() || status == StatusCode::NOT_FOUND {
        Ok(())
    } else {
        Err(CopyError::status("DELETE on", to, status))
    }
}

/// Checks that `to` holds `size` bytes with MD5 `md5` under `key`: by the
/// ETag when it is a plain MD5, otherwise by reading the object back.
async fn verify(
    to: &Upstream,
    key: &str,
    size: u64,
    md5: &str,
    etag: Option<&str>,
    t: Deadlines,
) -> Result<(), CopyError> {
    let unanswered = |request, e: cutover_s3::http::TransportError| CopyError::VerifyTransport {
        request,
        backend: to.name.clone(),
        outcome: e.outcome,
    };
    let head = to.send(UpRequest::new(Method::HEAD, Some(key)), t).await.map_err(|e| unanswered("HEAD on", e))?;
    let got = head
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let head_etag = head.headers().get("etag").and_then(|v| v.to_str().ok()).map(|e| e.trim_matches('"').to_string());
    if !head.status().is_success() || got != Some(size) {
        return Err(CopyError::Missing { backend: to.name.clone(), status: head.status(), got, size });
    }
    let etag = etag.map(str::to_string).or(head_etag);
    if etag.as_deref() == Some(md5) {
        return Ok(());
    }
    let get = to.send(UpRequest::new(Method::GET, Some(key)), t).await.map_err(|e| unanswered("read-back from", e))?;
    let (mut body, seen) = Hashing::new(get.into_body());
    while let Some(f) = body.frame().await {
        f.map_err(|source| CopyError::Body { request: "read-back from", backend: to.name.clone(), source })?;
    }
    let (got, n) = finish(&seen);
    if got == md5 && n == size { Ok(()) } else { Err(CopyError::ChecksumMismatch { backend: to.name.clone() }) }
}

/// Backoff before the next attempt of a journal entry.
fn backoff(attempts: i64) -> i64 {
    let base = 500i64.saturating_mul(1 << attempts.clamp(0, 7));
    base.min(10_000) + fastrand::i64(0..250)
}

impl Gateway {
    /// Replays the journal entries that are due; returns how many succeeded.
    pub async fn replay_once(&self) -> Result<usize, GatewayError> {
        let inner = &self.inner;
        let due = inner.state.due(64).await?;
        let mut ok = 0;
        // A backend that failed an entry in this pass is not tried again in
        // it (a hung or dead backend would cost a deadline per entry).
        let mut failing: Vec<String> = Vec::new();
        for e in due {
            let (Some(from), Some(to)) = (inner.upstreams.get(&e.source), inner.upstreams.get(&e.target)) else {
                inner.state.retry_later(e.id, 60_000, "unknown backend").await?;
                continue;
            };
            if failing.contains(&e.source) || failing.contains(&e.target) {
                inner.state.retry_later(e.id, backoff(e.attempts), "an earlier entry of this pass failed").await?;
                continue;
            }
            let t = inner.opts.deadlines;
            // No live write of this key runs meanwhile (it waits, or it
            // finished before): the copy cannot leave the target stale.
            let _held = inner.locks.lock(&e.bucket, [e.key.as_str()]).await;
            let r = match e.op {
                Op::Put => sync_key(inner, &e.key, from, to, t).await.map(|_| ()),
                Op::Delete => delete(to, &e.key, t).await,
            };
            match r {
                Ok(()) => {
                    inner.state.done(e.id).await?;
                    inner.replayed(&e.bucket, &e.key, e.id);
                    inner.metrics.journal_replayed.inc();
                    tracing::info!(bucket = %e.bucket, key = %e.key, target = %e.target, "journal entry replayed");
                    ok += 1;
                }
                Err(err) => {
                    tracing::debug!(bucket = %e.bucket, key = %e.key, error = %err, "journal replay failed; will retry");
                    inner.state.retry_later(e.id, backoff(e.attempts), &err.to_string()).await?;
                    failing.extend([e.source.clone(), e.target.clone()]);
                }
            }
        }
        Ok(ok)
    }

    /// Makes every pending entry due now and wakes the replayer (a backend
    /// is known to answer again: no need to wait out the backoff).
    pub async fn replay_soon(&self) -> Result<(), GatewayError> {
        self.inner.state.all_due_now().await?;
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Replays the journal until the task is dropped: woken by new entries
    /// (and by [`Gateway::replay_soon`]), otherwise when the earliest
    /// pending entry is due, at most every `replay_interval` and at least
    /// every [`IDLE_PASSES`] of them (an empty journal is not read twice a
    /// second: each read wakes two threads).
    pub async fn replay_forever(&self) {
        // Entries left by an earlier run: reads of their keys go to the
        // backend that holds the newest version until they are replayed.
        match self.inner.state.pending().await {
            Ok(pending) => {
                let mut m = self.inner.newest.lock().expect("newest");
                for e in pending {
                    m.entry((e.bucket, e.key)).or_insert((e.source, e.id));
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading the journal"),
        }
        loop {
            if let Err(e) = self.replay_once().await {
                tracing::warn!(error = %e, "journal replay pass failed");
            }
            let wait = self.until_next_pass().await;
            tokio::select! {
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// How long the replayer waits for its next pass unless woken: until
    /// the earliest pending entry is due, within `replay_interval` and
    /// [`IDLE_PASSES`] of them.
    async fn until_next_pass(&self) -> Duration {
        let floor = self.inner.opts.replay_interval;
        match self.inner.state.next_due_ms().await {
            Ok(next) => pass_wait(next, now_ms(), floor),
            Err(e) => {
                tracing::warn!(error = %e, "reading the journal");
                floor
            }
        }
    }

    /// Failback: copies every object written to a non-primary backend while
    /// it was active back to the primary, verifies size and checksum, and
    /// clears its record.
    ///
    /// # Guarantees
    /// A record is cleared only after its copy on the primary is verified,
    /// and only if no newer write to that key was recorded meanwhile. A
    /// transport error is never taken for "not found".
    ///
    /// # Caveats
    /// Run it before switching back, with writes still flowing to the
    /// current backend: new writes are recorded and a later pass catches up.
    pub async fn resync(&self) -> Result<ResyncReport, GatewayError> {
        let inner = &self.inner;
        let primary = inner.upstreams.get(&inner.primary).cloned().ok_or_else(|| GatewayError::Config {
            detail: format!("primary backend {} has no client", inner.primary),
        })?;
        let t = inner.opts.deadlines;
        let mut report = ResyncReport::default();
        for rec in inner.state.failback_records().await? {
            if rec.backend == inner.primary {
                inner.state.clear_failback(&rec).await?;
                continue;
            }
            let Some(from) = inner.upstreams.get(&rec.backend) else {
                report.failed += 1;
                report.errors.push(format!("{}/{}: unknown backend {}", rec.bucket, rec.key, rec.backend));
                continue;
            };
            let _held = inner.locks.lock(&rec.bucket, [rec.key.as_str()]).await;
            let r = match rec.op {
                Op::Delete => delete(&primary, &rec.key, t).await.map(|_| Synced::Deleted),
                Op::Put => sync_key(inner, &rec.key, from, &primary, t).await,
            };
            let r = match r {
                Ok(Synced::Copied { size, md5, etag }) => verify(&primary, &rec.key, size, &md5, etag.as_deref(), t)
                    .await
                    .map(|_| Synced::Copied { size, md5, etag }),
                other => other,
            };
            match r {
                Ok(s) => {
                    match s {
                        Synced::Copied { .. } => report.copied += 1,
                        Synced::Deleted => report.deleted += 1,
                    }
                    inner.state.clear_failback(&rec).await?;
                }
                Err(e) => {
                    report.failed += 1;
                    report.errors.push(format!("{}/{}: {e}", rec.bucket, rec.key));
                }
            }
        }
        report.remaining = inner.state.failback_records().await?.len() as u64;
        Ok(report)
    }
}

/// The failback resync as a library call, without a running gateway: builds
/// the backend clients from `config`, opens its state file, and runs
/// [`Gateway::resync`].
pub async fn resync(config: &Config) -> Result<ResyncReport, GatewayError> {
    let gw = Gateway::build(config, ActiveBackend::new(config.primary().name.clone()), GatewayOptions::default())?;
    gw.resync().await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{IDLE_PASSES, pass_wait};

    #[test]
    fn the_replayer_waits_for_the_earliest_entry_within_its_interval_and_idle_bound() {
        let floor = Duration::from_millis(500);
        let now = 1_000_000;
        // Due now or overdue (a pass stopped at its limit): the interval, never a busy loop.
        assert_eq!(pass_wait(Some(now), now, floor), floor);
        assert_eq!(pass_wait(Some(now - 60_000), now, floor), floor);
        // In backoff: when it is due.
        assert_eq!(pass_wait(Some(now + 3_000), now, floor), Duration::from_secs(3));
        // Far off, or nothing pending: the idle bound.
        assert_eq!(pass_wait(Some(now + 3_600_000), now, floor), floor * IDLE_PASSES);
        assert_eq!(pass_wait(None, now, floor), floor * IDLE_PASSES);
        assert_eq!(floor * IDLE_PASSES, Duration::from_secs(10));
    }
}
