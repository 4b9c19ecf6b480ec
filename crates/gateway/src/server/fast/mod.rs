//! The fast path: small plain requests served without hyper.
//!
//! A client connection starts here. As long as its requests are small
//! `PUT`s, `DELETE`s and `HEAD`s of objects that one backend takes (an
//! `active-passive` bucket, or a write to a `read-through` one), signed
//! with a valid signature and a matching payload hash, to a backend over
//! plain HTTP, each is read whole (head and body), verified, re-signed and
//! written to the backend in one vectored write over a pooled connection of its own,
//! and the backend's answer is read whole and written back: one task, no
//! channel, no second HTTP state machine. Everything the gateway decides
//! (authentication, routing, key policy, the upstream request and its
//! signature, the answer's headers, failback records, metrics) is the same
//! code the hyper path runs.
//!
//! A client that sends `Expect: 100-continue` gets `100 Continue` once its
//! signature verifies, and a body that then does not match its signed hash
//! is refused here, as the hyper path refuses it.
//!
//! Anything else (another method or mode, a bigger or streamed body,
//! another expectation, a head or signature the fast path does not take, a refusal)
//! hands the connection to hyper with the bytes read so far, before
//! anything of the request was sent anywhere; hyper then serves the
//! connection to its end, and answers exactly as it always did.

mod backend;
pub(crate) mod fuzzing;
mod rewind;
mod timer;
mod wire;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use cutover_core::config::BucketMode;
use cutover_net::Stopping;
use http::header::HeaderValue;
use http::{HeaderMap, Method, Response, StatusCode};
use hyper::server::conn::http1;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub(crate) use backend::RawPool;

use self::wire::{ClientHead, Parsed};
use super::active_passive::unrecorded;
use super::dispatch::forwarded_query;
use super::forward::{Forward, forwarded, send_failed};
use super::{BACKEND_HEADER, BODY_RATE_WINDOW, Ctx, Inner, SMALL_BODY_LIMIT};
use crate::auth::{self, Payload, Verified};
use crate::body::{S3Refusal, collect_limited, empty};
use crate::route::{self, S3Op};
use crate::s3xml;
use crate::upstream::{ToSign, UpPayload};

/// The largest body the fast path reads whole (larger ones stream through hyper).
pub(crate) const FAST_BODY_MAX: usize = 64 << 10;

/// Room for reading a connection's requests (heads and small bodies).
const READ_BUF: usize = 8 << 10;

/// The largest request head the fast path waits for.
const MAX_HEAD: usize = 16 << 10;

/// The largest answer body the fast path reads from a backend: the answer
/// to a PUT, DELETE or HEAD is an empty body or an error document, and a
/// chunked body is parsed again from its start as it arrives.
const MAX_ANSWER: usize = 1 << 20;

/// Serves a client connection: the fast path while it can, then hyper.
/// `buf`: bytes already read from it.
pub(super) async fn serve<I>(
    inner: Arc<Inner>,
    http: &http1::Builder,
    mut io: I,
    mut buf: BytesMut,
    mut stopping: Stopping,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if let Next::Hyper = requests(&inner, &mut io, &mut buf, &mut stopping, || false).await {
        hyper(inner, http, io, buf, stopping).await;
    }
}

/// Hyper serves the connection to its end, from the bytes the fast path read.
pub(super) async fn hyper<I>(inner: Arc<Inner>, http: &http1::Builder, io: I, buf: BytesMut, stopping: Stopping)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    super::listener::hyper_connection(inner, http, rewind::Rewind::new(buf.freeze(), io), stopping).await;
}

/// Why [`requests`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// The connection is done with (closed, broken, too slow, or the
    /// listener stopped).
    Closed,
    /// Its next request is hyper's: its bytes so far are in `buf`.
    Hyper,
    /// `leave` said so, between two requests (`buf` holds any bytes of the
    /// next one).
    Leave,
}

/// Serves the fast path's requests on `io`, `buf` holding bytes read
/// already, until the connection is done, a request is not the fast path's,
/// or `leave()` is true between two requests.
pub(super) async fn requests<I>(
    inner: &Inner,
    io: &mut I,
    buf: &mut BytesMut,
    stopping: &mut Stopping,
    mut leave: impl FnMut() -> bool,
) -> Next
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    // One wait for the listener's stop for the whole connection, not one
    // made and dropped (a waiter list's lock each) per request.
    let mut told = stopping.clone();
    let mut stopped = std::pin::pin!(told.stopped());
    // One header timer for the connection, moved lazily (`timer::within`):
    // a wait for the next request does not add and remove a timer each time.
    let mut timer = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
    // The same for every wait on a backend.
    let mut backend_timer = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
    // One header map for the connection's requests, cleared for each: its
    // room is allocated once, not per request. The same for the buffers of
    // the upstream request's head, the backend's answer and the reply.
    let mut headers = HeaderMap::new();
    let mut room = Room::default();
    loop {
        if leave() {
            return Next::Leave;
        }
        let header_timeout = inner.opts.client_header_timeout;
        let waiting = next_head(header_timeout, io, buf, &mut headers, stopped.as_mut(), timer.as_mut()).await;
        let Some(h) = waiting else { return Next::Closed };
        let Some(h) = h else { return Next::Hyper };
        // The head apart from what follows it: its path and query are
        // borrowed from it while the body is read into `buf`.
        let head = buf.split_to(h.head_len);
        let (path, query) = h.path_and_query(&head);
        let Some(fast) = inner.fast_route(&h.method, path, query, &headers) else {
            give_back(buf, [&head]);
            return Next::Hyper;
        };
        // A client waiting for `100 Continue` gets it once its signature
        // verifies (or hyper answers it without reading the body, as before).
        let verified = if h.expect && buf.len() < h.len {
            let now = SystemTime::now();
            let Some(v) = inner.fast_verify(&fast, &h.method, path, &headers, now) else {
                give_back(buf, [&head]);
                return Next::Hyper;
            };
            if io.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err() || io.flush().await.is_err() {
                return Next::Closed;
            }
            Some(v)
        } else {
            None
        };
        if !read_body(inner, io, buf, h.len, fast.op, path).await {
            return Next::Closed;
        }
        let body = buf.split_to(h.len).freeze();
        let served =
            inner.fast_request(fast, &h.method, path, &mut headers, &body, verified, &mut room, backend_timer.as_mut());
        if served.await.is_none() {
            give_back(buf, [&head, &body]);
            return Next::Hyper;
        }
        let close = h.close;
        if io.write_all(&room.reply).await.is_err() || io.flush().await.is_err() || close || stopping.is_stopping() {
            return Next::Closed;
        }
        room.trim();
    }
}

/// Puts `parts` (what was split off `buf`, in order) back in front of it,
/// for hyper to read the connection from there.
fn give_back<const N: usize>(buf: &mut BytesMut, parts: [&[u8]; N]) {
    let mut back = BytesMut::with_capacity(parts.iter().map(|p| p.len()).sum::<usize>() + buf.len());
    for p in parts {
        back.extend_from_slice(p);
    }
    back.extend_from_slice(buf);
    *buf = back;
}

/// Waits for the next request head, within `client_header_timeout`.
/// `None`: close the connection (the client left, was too slow, or the
/// listener stopped while the connection was idle); `Some(None)`: hyper's.
/// The head's header fields are put in `headers` (cleared first).
async fn next_head<I>(
    header_timeout: Duration,
    io: &mut I,
    buf: &mut BytesMut,
    headers: &mut HeaderMap,
    mut stopped: Pin<&mut impl Future<Output = ()>>,
    mut timer: Pin<&mut tokio::time::Sleep>,
) -> Option<Option<ClientHead>>
where
    I: AsyncRead + Unpin,
{
    let deadline = tokio::time::Instant::now() + header_timeout;
    loop {
        if !buf.is_empty() {
            match wire::client_head(buf, FAST_BODY_MAX, headers) {
                Parsed::Head(h) => return Some(Some(h)),
                Parsed::Hyper => return Some(None),
                Parsed::Partial if buf.len() >= MAX_HEAD => return Some(None),
                Parsed::Partial => {}
            }
        }
        // Room for a whole small request every time: the previous one was
        // split off the front, and a read that fills what room is left
        // takes a second read (two syscalls) for one request.
        buf.reserve(READ_BUF);
        let idle = buf.is_empty();
        let read = async {
            tokio::select! {
                r = io.read_buf(buf) => Some(r),
                _ = stopped.as_mut(), if idle => None,
            }
        };
        match timer::within(timer.as_mut(), || deadline, read).await {
            Some(Some(Ok(n))) if n > 0 => {}
            // Too slow, closed, broken, or the listener stopped: as hyper
            // does, close without an answer.
            _ => return None,
        }
    }
}

/// Reads the rest of the body (`total` bytes, from `buf`'s start) into
/// `buf`; a client sending it slower than `client_min_body_rate` (over
/// [`BODY_RATE_WINDOW`] of waiting) gets `400 RequestTimeout` as on the
/// hyper path (`path`: the request's). `false`: close the connection.
async fn read_body<I>(inner: &Inner, io: &mut I, buf: &mut BytesMut, total: usize, op: S3Op, path: &str) -> bool
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    if buf.len() >= total {
        // Read with its head (nearly every small request): no clock read.
        return true;
    }
    let start = Instant::now();
    let rate = inner.opts.client_min_body_rate;
    let needed = (rate as f64 * BODY_RATE_WINDOW.as_secs_f64()) as usize;
    let (mut window_end, mut window_bytes) = (tokio::time::Instant::now() + BODY_RATE_WINDOW, 0usize);
    while buf.len() < total {
        buf.reserve(total - buf.len());
        let read = if rate == 0 {
            Ok(io.read_buf(buf).await)
        } else {
            tokio::time::timeout_at(window_end, io.read_buf(buf)).await
        };
        match read {
            Ok(Ok(0) | Err(_)) => return false,
            Ok(Ok(n)) => window_bytes += n,
            Err(_) if window_bytes >= needed => {
                window_end = tokio::time::Instant::now() + BODY_RATE_WINDOW;
                window_bytes = 0;
            }
            Err(_) => {
                inner.metrics.slow_clients.inc();
                let mut answer = parts_of(refusal(S3Refusal::request_timeout(), path)).await;
                answer.1.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
                let mut out = BytesMut::new();
                inner.finish(op, start, false, Reply::Made(answer), &mut out);
                let _ = io.write_all(&out).await;
                let _ = io.flush().await;
                return false;
            }
        }
    }
    true
}

/// Buffers a client connection keeps from request to request (each
/// cleared before use): the upstream request's head, the backend's answer,
/// the reply to the client.
#[derive(Default)]
pub(super) struct Room {
    up_head: BytesMut,
    answer: BytesMut,
    reply: BytesMut,
}

/// The most room a connection keeps in each of its buffers between two
/// requests (an error document's answer may have made one larger).
const ROOM_KEPT: usize = 64 << 10;

impl Room {
    /// Lets go of a buffer grown larger than [`ROOM_KEPT`].
    fn trim(&mut self) {
        for b in [&mut self.up_head, &mut self.answer, &mut self.reply] {
            if b.capacity() > ROOM_KEPT {
                *b = BytesMut::new();
            }
        }
    }
}

/// A request the fast path takes, as routed before its body is read (its
/// query borrowed from the request's head).
pub(super) struct FastRoute<'a> {
    op: S3Op,
    bucket: Arc<cutover_core::config::GatewayBucket>,
    key: String,
    query: auth::QueryPairs<'a>,
}

impl Inner {
    /// Is the request one for the fast path? (A known bucket whose mode
    /// sends it to one backend, an object key the key policy allows, the
    /// active backend over plain HTTP.)
    fn fast_route<'a>(
        &self,
        method: &Method,
        path: &str,
        query: &'a str,
        headers: &HeaderMap,
    ) -> Option<FastRoute<'a>> {
        let query = auth::parse_query_borrowed(query);
        let target = route::target(headers, path, &self.bucket_names);
        let op = route::operation(method, &target, &query, headers);
        if !matches!(op, S3Op::PutObject | S3Op::DeleteObject | S3Op::HeadObject) {
            return None;
        }
        let bucket = self.buckets.get(target.bucket.as_deref()?)?.clone();
        let (active, other) = self.sides(&bucket);
        let one_backend = match bucket.mode {
            BucketMode::ActivePassive => true,
            BucketMode::ReadThrough => op != S3Op::HeadObject,
            BucketMode::DualWrite => other.is_none(),
        };
        let key = target.key?;
        if !one_backend || active.connector().endpoint().tls || self.check_keys(Some(&key), headers).is_err() {
            return None;
        }
        Some(FastRoute { op, bucket, key, query })
    }

    /// The request's signature, when it verifies.
    fn fast_verify(
        &self,
        f: &FastRoute<'_>,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        now: SystemTime,
    ) -> Option<Verified> {
        auth::verify(&self.keys, method.as_str(), path, &f.query, headers, now).ok()
    }

    /// Serves one request whose body is read, its answer's bytes put in
    /// `room.reply`; `None` when hyper must take it (the signature or payload hash does
    /// not verify, the active backend changed to one over TLS, the upstream
    /// request cannot be built), before anything was sent.
    ///
    /// `verified`: the signature verified already (before `100 Continue`
    /// was sent: a body that does not match its hash is then refused here,
    /// as the hyper path refuses it, not handed to hyper).
    /// `headers` are taken once the upstream request is built, and given
    /// back cleared when the answer is made. `backend_timer`: the client
    /// connection's timer for its waits on backends.
    #[allow(clippy::too_many_arguments)]
    async fn fast_request(
        &self,
        f: FastRoute<'_>,
        method: &Method,
        raw_path: &str,
        headers: &mut HeaderMap,
        body: &[u8],
        verified: Option<Verified>,
        room: &mut Room,
        backend_timer: Pin<&mut tokio::time::Sleep>,
    ) -> Option<()> {
        let (start, now) = (Instant::now(), SystemTime::now());
        let continued = verified.is_some();
        let verified = match verified {
            Some(v) => v,
            None => self.fast_verify(&f, method, raw_path, headers, now)?,
        };
        let payload = match verified.payload {
            Payload::Unsigned => UpPayload::Unsigned,
            Payload::Sha256(expected) if cutover_s3::sigv4::sha256(body) == expected => {
                UpPayload::Sha256(cutover_s3::sigv4::hex_lower(&expected))
            }
            Payload::Sha256(_) if continued => {
                let answer = parts_of(refusal(S3Refusal::payload_mismatch(), raw_path)).await;
                self.finish(f.op, start, false, Reply::Made(answer), &mut room.reply);
                return Some(());
            }
            _ => return None,
        };
        let (up, other) = self.sides(&f.bucket);
        if up.connector().endpoint().tls {
            return None;
        }
        // A length as the client gave it (a DELETE or HEAD usually has none).
        let len = headers.contains_key(http::header::CONTENT_LENGTH).then_some(body.len() as u64);
        let head = method == Method::HEAD;
        let ctx = Ctx {
            op: f.op,
            method: method.clone(),
            bucket: f.bucket,
            key: Some(f.key),
            query: forwarded_query(f.query),
            resource: raw_path.to_string(),
            headers: std::mem::take(headers),
            payload,
            body_fault: None,
            delete: None,
        };
        // The head is signed straight into its bytes on the wire; the body
        // goes from `body` (below): the request's own is only asked whether
        // it is empty and how long, which `len` says.
        room.up_head.clear();
        let mut wire_head = wire::WireHead { out: &mut room.up_head, method: &ctx.method };
        if ctx.headers.keys().any(|k| forwarded(k) == Forward::Mapped) {
            // Headers changed for the backend: taken from the request built for it.
            let req = self.up_request(&ctx, &up, empty(), len).ok()?;
            up.sign_into(req.to_sign(&req.body), now, &mut wire_head).ok()?;
        } else {
            let what = ToSign {
                method: &ctx.method,
                key: ctx.key.as_deref(),
                query: &ctx.query,
                headers: || ctx.headers.iter().filter(|(k, _)| forwarded(k) == Forward::AsIs),
                payload: &ctx.payload,
                content_length: len,
                body_ends: true,
                body_empty: true,
            };
            up.sign_into(what, now, &mut wire_head).ok()?;
        }
        wire_head.end();
        self.metrics.bytes_in.inc_by(body.len() as u64);
        let write = matches!(ctx.op, S3Op::PutObject | S3Op::DeleteObject);
        let _held = if write {
            Some(self.locks.lock_brief(&ctx.bucket.name, ctx.key.as_deref().unwrap_or("")).await)
        } else {
            None
        };
        let sent = backend::exchange(
            up.connector(),
            &up.raw,
            up.connect_host(),
            [&room.up_head, body],
            &mut room.answer,
            head,
            self.opts.deadlines,
            MAX_ANSWER,
            backend_timer,
            start,
        )
        .await;
        let answer = match sent {
            Err(e) => Reply::Made(parts_of(send_failed(&self.metrics, &ctx, &up, &e)).await),
            Ok(a) => {
                let recorded =
                    if a.head.status.is_success() { self.after_write(&ctx, &up, other, None).await } else { Ok(()) };
                match recorded {
                    Ok(()) => Reply::Relayed(a, &up.name),
                    Err(e) => Reply::Made(parts_of(unrecorded(&e, &ctx.resource)).await),
                }
            }
        };
        self.finish(ctx.op, start, head, answer, &mut room.reply);
        let mut map = ctx.headers;
        map.clear();
        *headers = map;
        Some(())
    }

    /// Counts an answer of the fast path (`start`: when the request began)
    /// and writes it into `out` (cleared first); a HEAD's without its body.
    fn finish(&self, op: S3Op, start: Instant, head: bool, reply: Reply<'_>, out: &mut BytesMut) {
        let (status, backend, body) = match &reply {
            Reply::Made((status, headers, body)) => (
                *status,
                headers.get(BACKEND_HEADER).and_then(|v| v.to_str().ok()).unwrap_or(crate::metrics::GATEWAY),
                body,
            ),
            Reply::Relayed(a, backend) => (a.head.status, *backend, &a.body),
        };
        self.metrics.request(op, backend, status.as_u16(), start.elapsed());
        self.metrics.bytes_out.inc_by(if head { 0 } else { body.len() as u64 });
        self.metrics.fast_path.inc();
        out.clear();
        out.reserve(512 + body.len());
        // A HEAD's answer keeps the length its headers give (the object's,
        // or none); any other gets its body's.
        let len = (!head).then_some(body.len());
        match &reply {
            Reply::Made((status, headers, _)) => wire::answer_head(out, *status, headers, len),
            Reply::Relayed(a, backend) => wire::relayed_head(out, &a.raw, &a.head, backend, len),
        }
        if !head {
            out.extend_from_slice(body);
        }
    }
}

/// An answer of the fast path.
enum Reply<'a> {
    /// One the gateway made.
    Made(Made),
    /// A backend's (named), relayed.
    Relayed(backend::Answer, &'a str),
}

/// An answer the gateway made: status, headers and whole body.
type Made = (StatusCode, HeaderMap, Bytes);

/// An answer the gateway made (`full` body), taken apart, with its length.
async fn parts_of(r: Response<crate::body::Body>) -> Made {
    let (mut parts, body) = r.into_parts();
    let body = collect_limited(body, SMALL_BODY_LIMIT).await.unwrap_or_default();
    parts.headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    (parts.status, parts.headers, body)
}

/// The S3 error document of a refusal.
fn refusal(r: S3Refusal, resource: &str) -> Response<crate::body::Body> {
    s3xml::error(r.status, r.code, &r.message, resource)
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use bytes::BytesMut;
    use http::HeaderMap;
    use tokio::io::{AsyncRead, ReadBuf};

    use super::{next_head, wire::ClientHead};

    /// A client whose bytes arrive in the given pieces, one piece at a
    /// time (a read takes what is left of the piece, as much as fits).
    struct Arrivals {
        pieces: VecDeque<Vec<u8>>,
        reads: usize,
    }

    impl AsyncRead for Arrivals {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            out: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let Some(piece) = self.pieces.front_mut() else { return Poll::Pending };
            let n = piece.len().min(out.remaining());
            out.put_slice(&piece[..n]);
            piece.drain(..n);
            if piece.is_empty() {
                self.pieces.pop_front();
            }
            self.reads += 1;
            Poll::Ready(Ok(()))
        }
    }

    fn put(key: &str, body: usize) -> Vec<u8> {
        let mut r = format!("PUT /app/{key} HTTP/1.1\r\nHost: gw\r\nContent-Length: {body}\r\n\r\n").into_bytes();
        r.resize(r.len() + body, b'x');
        r
    }

    async fn head(io: &mut Arrivals, buf: &mut BytesMut) -> ClientHead {
        let never = std::pin::pin!(std::future::pending::<()>());
        let timer = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
        match next_head(Duration::from_secs(5), io, buf, &mut HeaderMap::new(), never, timer).await {
            Some(Some(h)) => h,
            _ => panic!("no request head read"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_alive_connection_gets_its_whole_header_timeout_from_a_timer_set_before() {
        // The connection's one timer was set for the first wait; a second
        // wait that starts 4 s later must still last 5 s, not 1.
        let mut io = Arrivals { pieces: VecDeque::from([put("a", 16)]), reads: 0 };
        let mut buf = BytesMut::new();
        let mut timer = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
        let never = std::pin::pin!(std::future::pending::<()>());
        let mut never = never;
        let mut headers = HeaderMap::new();
        let first =
            next_head(Duration::from_secs(5), &mut io, &mut buf, &mut headers, never.as_mut(), timer.as_mut()).await;
        assert!(matches!(first, Some(Some(_))), "the first request was not read");
        buf.clear();
        tokio::time::sleep(Duration::from_secs(4)).await;
        let start = tokio::time::Instant::now();
        let second =
            next_head(Duration::from_secs(5), &mut io, &mut buf, &mut headers, never.as_mut(), timer.as_mut()).await;
        assert!(second.is_none(), "a silent client was kept");
        assert_eq!(start.elapsed(), Duration::from_secs(5), "the wait did not last the header timeout");
    }

    #[test]
    fn a_connection_keeps_small_buffers_and_lets_large_ones_go_between_requests() {
        let mut room = super::Room::default();
        room.answer.reserve(super::ROOM_KEPT + 1);
        room.reply.reserve(1024);
        room.up_head.reserve(super::ROOM_KEPT);
        room.trim();
        assert_eq!(room.answer.capacity(), 0, "a large answer's room was kept");
        assert!(room.reply.capacity() >= 1024 && room.up_head.capacity() >= super::ROOM_KEPT);
    }

    #[tokio::test]
    async fn regression_a_small_request_after_another_took_two_reads() {
        // Two 4 KiB PUTs, the second arriving after the first was served:
        // the room left behind the first (8 KiB less its 4.4 KiB) used to
        // take the second's first 3.7 KiB, and a second read the rest.
        let (first, second) = (put("a", 4096), put("b", 4096));
        let mut io = Arrivals { pieces: VecDeque::from([first.clone(), second.clone()]), reads: 0 };
        let mut buf = BytesMut::new();
        let h = head(&mut io, &mut buf).await;
        assert_eq!(h.head_len + h.len, first.len());
        assert_eq!(buf.len(), first.len(), "the first request was not read whole");
        drop(buf.split_to(first.len()));
        let reads = io.reads;
        let h = head(&mut io, &mut buf).await;
        assert_eq!(h.path_and_query(&buf).0, "/app/b");
        assert_eq!(buf.len(), second.len(), "the second request was not read whole");
        assert_eq!(io.reads - reads, 1, "the second request took more than one read");
    }
}
