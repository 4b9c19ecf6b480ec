//! Deadlines on every backend request, so that no client waits on a hung
//! backend: the backend must take the request body without pausing longer
//! than `idle`, answer within `first_byte` of the request's end, and keep
//! sending its answer without pausing longer than `idle`.
//!
//! A pause is counted only while the backend is the one being waited for:
//! while the gateway is waiting on its client for more of the body, or the
//! client is slow to read the answer, no backend deadline runs.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use prometheus_client::metrics::counter::Counter;
use tokio::time::{Instant, Sleep};

use crate::body::{Body, BoxError, Fault, S3Refusal};

/// How long a backend may take (`gateway.backend_first_byte_timeout` and
/// `gateway.backend_idle_timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// From the end of the request (its last body byte taken) to the
    /// answer's headers.
    pub first_byte: Duration,
    /// The longest pause of the backend while it takes the body or sends
    /// its answer.
    pub idle: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self { first_byte: Duration::from_secs(5), idle: Duration::from_secs(5) }
    }
}

/// Where a request stands, written by [`Watched`] and read by [`stalled`].
/// Times are nanoseconds since `base`, plus one (0: not set).
#[derive(Debug)]
pub(crate) struct Progress {
    base: Instant,
    /// When a frame was handed to the connection and it has not asked for
    /// the next one since: the backend is being waited for.
    handed: AtomicU64,
    /// When the whole body had been handed over.
    done: AtomicU64,
}

impl Progress {
    pub fn new(bodyless: bool) -> Arc<Self> {
        let p = Self { base: Instant::now(), handed: AtomicU64::new(0), done: AtomicU64::new(0) };
        if bodyless {
            p.done.store(1, Ordering::Relaxed);
        }
        Arc::new(p)
    }

    fn stamp(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64 + 1
    }

    fn at(&self, v: u64) -> Option<Instant> {
        (v != 0).then(|| self.base + Duration::from_nanos(v - 1))
    }
}

/// A request body that tells [`Progress`] when the backend is the one
/// being waited for.
pub(crate) struct Watched {
    inner: Body,
    progress: Arc<Progress>,
    left: Option<u64>,
}

impl Watched {
    /// `len`: the Content-Length sent (the connection may not ask for the
    /// body's end once it has sent that many bytes).
    pub fn wrap(inner: Body, progress: Arc<Progress>, len: Option<u64>) -> Body {
        let left = len.or(inner.size_hint().exact());
        Self { inner, progress, left }.boxed()
    }
}

impl HttpBody for Watched {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        // Asked for more: the connection took what it had.
        this.progress.handed.store(0, Ordering::Relaxed);
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(f))) => {
                if let (Some(left), Some(d)) = (&mut this.left, f.data_ref()) {
                    *left = left.saturating_sub(d.len() as u64);
                }
                let stamp = this.progress.stamp();
                if this.left == Some(0) || this.inner.is_end_stream() {
                    this.progress.done.store(stamp, Ordering::Relaxed);
                } else {
                    this.progress.handed.store(stamp, Ordering::Relaxed);
                }
            }
            Poll::Ready(None) => {
                let _ =
                    this.progress.done.compare_exchange(0, this.progress.stamp(), Ordering::Relaxed, Ordering::Relaxed);
            }
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Resolves when the backend has missed a deadline, with why.
pub(crate) async fn stalled(progress: &Progress, d: Deadlines) -> String {
    loop {
        let now = Instant::now();
        let (deadline, why) = if let Some(done) = progress.at(progress.done.load(Ordering::Relaxed)) {
            (done + d.first_byte, Some(format!("no answer within {:?} of the request", d.first_byte)))
        } else if let Some(handed) = progress.at(progress.handed.load(Ordering::Relaxed)) {
            (handed + d.idle, Some(format!("took no request bytes for {:?}", d.idle)))
        } else {
            // Waiting on the client: look again later.
            (now + d.idle, None)
        };
        if let Some(why) = why
            && deadline <= now
        {
            return why;
        }
        tokio::time::sleep_until(deadline).await;
    }
}

/// An answer body that fails (as a timeout) when the backend pauses longer
/// than `idle` while it is being read.
pub(crate) struct IdleBody<B> {
    inner: B,
    idle: Duration,
    sleep: Pin<Box<Sleep>>,
    armed: bool,
    name: Arc<str>,
}

impl<B> IdleBody<B>
where
    B: HttpBody<Data = Bytes> + Send + Sync + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    pub fn wrap(inner: B, idle: Duration, name: Arc<str>) -> Body {
        let sleep = Box::pin(tokio::time::sleep(idle));
        Self { inner, idle, sleep, armed: false, name }.boxed()
    }
}

impl<B> HttpBody for IdleBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(r) => {
                this.armed = false;
                Poll::Ready(r.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                // The wait starts when the backend is first waited for, not
                // when the reader last asked (a slow client is not the
                // backend's fault).
                if !this.armed {
                    this.armed = true;
                    let at = Instant::now() + this.idle;
                    this.sleep.as_mut().reset(at);
                }
                match this.sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        let msg = format!("{}: sent no bytes of its answer for {:?}", this.name, this.idle);
                        Poll::Ready(Some(Err(Box::new(std::io::Error::new(std::io::ErrorKind::TimedOut, msg)))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A client's request body that fails when the client sends it slower
/// than `rate` bytes per second, measured over `window` of time spent
/// waiting for it (time the gateway spends waiting on a backend does not
/// count). The client is told 400 `RequestTimeout`, as S3 does.
pub(crate) struct MinRate {
    inner: Body,
    rate: u64,
    window: Duration,
    /// Waiting time and bytes in the current window.
    waited: Duration,
    bytes: u64,
    /// When the current wait for the client started.
    since: Option<Instant>,
    sleep: Pin<Box<Sleep>>,
    fault: Fault,
    refused: Counter,
}

impl MinRate {
    /// `rate` 0: `inner` unchanged.
    pub fn wrap(inner: Body, rate: u64, window: Duration, fault: Fault, refused: Counter) -> Body {
        if rate == 0 || inner.is_end_stream() {
            return inner;
        }
        let sleep = Box::pin(tokio::time::sleep(window));
        Self { inner, rate, window, waited: Duration::ZERO, bytes: 0, since: None, sleep, fault, refused }.boxed()
    }

    /// Ends the window when `window` of waiting has passed: too few bytes
    /// is a failure, otherwise a new window starts.
    fn too_slow(&mut self, now: Instant) -> bool {
        let waited = self.waited + self.since.map(|s| now - s).unwrap_or_default();
        if waited < self.window {
            return false;
        }
        let needed = (self.rate as f64 * self.window.as_secs_f64()) as u64;
        if self.bytes < needed {
            return true;
        }
        self.waited = Duration::ZERO;
        self.bytes = 0;
        self.since = self.since.map(|_| now);
        false
    }

    fn fail(&mut self) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.refused.inc();
        let r = S3Refusal::request_timeout();
        let _ = self.fault.set(r.clone());
        Poll::Ready(Some(Err(Box::new(r))))
    }
}

impl HttpBody for MinRate {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(r) => {
                    let now = Instant::now();
                    if let Some(s) = this.since.take() {
                        this.waited += now - s;
                    }
                    if let Some(Ok(f)) = &r
                        && let Some(d) = f.data_ref()
                    {
                        this.bytes += d.len() as u64;
                    }
                    if r.is_some() && this.too_slow(now) {
                        return this.fail();
                    }
                    return Poll::Ready(r);
                }
                Poll::Pending => {
                    let now = Instant::now();
                    let since = *this.since.get_or_insert(now);
                    if this.too_slow(now) {
                        return this.fail();
                    }
                    let since = this.since.unwrap_or(since);
                    let at = since + this.window.saturating_sub(this.waited);
                    this.sleep.as_mut().reset(at);
                    if this.sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    // The window ended while waiting: check it (loop).
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::{channel, empty, full};

    const D: Deadlines = Deadlines { first_byte: Duration::from_secs(3), idle: Duration::from_secs(2) };

    #[tokio::test(start_paused = true)]
    async fn a_bodyless_request_has_first_byte_from_the_start() {
        let p = Progress::new(true);
        let start = Instant::now();
        let why = stalled(&p, D).await;
        assert_eq!(start.elapsed(), D.first_byte);
        assert!(why.contains("no answer"), "{why}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_backend_that_stops_taking_the_body_misses_its_idle_deadline() {
        let p = Progress::new(false);
        let (tx, body) = channel(4, Some(10));
        let mut b = Watched::wrap(body, p.clone(), None);
        tx.send(Ok(Bytes::from_static(b"abcd"))).await.unwrap();
        let start = Instant::now();
        // The connection takes one frame, then never asks again.
        assert!(b.frame().await.is_some());
        let why = stalled(&p, D).await;
        assert_eq!(start.elapsed(), D.idle);
        assert!(why.contains("no request bytes"), "{why}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_client_is_not_the_backends_fault() {
        let p = Progress::new(false);
        let (tx, body) = channel(4, Some(8));
        let mut b = Watched::wrap(body, p.clone(), None);
        let feeder = async move {
            for _ in 0..2 {
                // The client pauses far longer than the idle deadline.
                tokio::time::sleep(Duration::from_secs(30)).await;
                tx.send(Ok(Bytes::from_static(b"abcd"))).await.unwrap();
            }
        };
        let reader = async {
            while let Some(f) = b.frame().await {
                f.unwrap();
            }
        };
        let start = Instant::now();
        tokio::select! {
            _ = async { tokio::join!(feeder, reader) } => {}
            why = stalled(&p, D) => panic!("fired while waiting on the client: {why}"),
        }
        assert_eq!(start.elapsed(), Duration::from_secs(60));
        // The whole body is handed over: now the first-byte deadline runs.
        let why = stalled(&p, D).await;
        assert!(why.contains("no answer"), "{why}");
        assert_eq!(start.elapsed(), Duration::from_secs(60) + D.first_byte);
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_that_pauses_fails_as_a_timeout_but_a_slow_reader_does_not() {
        let (tx, body) = channel(4, None);
        let mut b = IdleBody::wrap(body, D.idle, "primary".into());
        tx.send(Ok(Bytes::from_static(b"ab"))).await.unwrap();
        // The reader comes back late: the data waiting is still read.
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(b.frame().await.unwrap().unwrap().into_data().unwrap(), "ab");
        let start = Instant::now();
        let e = b.frame().await.unwrap().unwrap_err();
        assert_eq!(start.elapsed(), D.idle);
        let t = cutover_s3::http::classify(&*e);
        assert_eq!(t.outcome, cutover_core::Outcome::Timeout, "{e}");
        assert!(e.to_string().contains("primary"), "{e}");
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn bodies_that_flow_pass_through_unchanged() {
        let p = Progress::new(false);
        let b = Watched::wrap(full("hello"), p.clone(), Some(5));
        assert_eq!(b.collect().await.unwrap().to_bytes(), "hello");
        assert!(p.at(p.done.load(Ordering::Relaxed)).is_some());
        let b = IdleBody::wrap(empty(), D.idle, "x".into());
        assert!(b.collect().await.unwrap().to_bytes().is_empty());
    }

    fn min_rate(body: Body) -> (Body, Fault, Counter) {
        let (fault, refused) = (Fault::default(), Counter::default());
        (MinRate::wrap(body, 100, Duration::from_secs(10), fault.clone(), refused.clone()), fault, refused)
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_trickling_its_body_gets_request_timeout() {
        let (tx, body) = channel(4, Some(1000));
        let (mut b, fault, refused) = min_rate(body);
        let feeder = tokio::spawn(async move {
            // 10 bytes a second: a tenth of the minimum.
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if tx.send(Ok(Bytes::from_static(b"0123456789"))).await.is_err() {
                    return;
                }
            }
        });
        let start = Instant::now();
        let e = loop {
            match b.frame().await {
                Some(Ok(_)) => continue,
                Some(Err(e)) => break e,
                None => panic!("the body ended"),
            }
        };
        assert!(start.elapsed() <= Duration::from_secs(11), "{:?}", start.elapsed());
        assert!(e.to_string().contains("RequestTimeout"), "{e}");
        assert_eq!(fault.get().map(|r| r.code), Some("RequestTimeout"));
        assert_eq!(refused.get(), 1);
        feeder.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_gets_request_timeout_after_the_window() {
        let (_tx, body) = channel(4, Some(1000));
        let (mut b, fault, _) = min_rate(body);
        let start = Instant::now();
        assert!(b.frame().await.unwrap().is_err());
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        assert!(fault.get().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn time_spent_waiting_on_the_backend_is_not_the_clients() {
        let (tx, body) = channel(64, Some(4000));
        let (mut b, fault, _) = min_rate(body);
        for _ in 0..4 {
            tx.send(Ok(Bytes::from(vec![0u8; 1000]))).await.unwrap();
        }
        drop(tx);
        let mut n = 0;
        while let Some(f) = b.frame().await {
            n += f.unwrap().into_data().unwrap().len();
            // The backend takes a minute per frame: the reader is slow, not the client.
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        assert_eq!(n, 4000);
        assert!(fault.get().is_none());
    }
}
