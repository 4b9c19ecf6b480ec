//! Streaming bodies: the client's request body (payload hash verified while
//! it streams, bytes counted), the halves of a teed body for dual-write, and
//! a byte-counting wrapper for answers. Nothing here buffers a whole object.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

pub use cutover_s3::http::{Body, BoxError, empty, full};

/// The payload's SHA-256 did not match `x-amz-content-sha256`.
#[derive(Debug, thiserror::Error)]
#[error("the payload's SHA-256 does not match x-amz-content-sha256")]
pub struct PayloadMismatch;

/// The client's request body: verifies the signed payload hash when it
/// ends (an error then aborts the upstream request, so the backend never
/// commits the object) and counts bytes.
pub struct ClientBody<B> {
    inner: B,
    expected: Option<[u8; 32]>,
    hasher: Option<Sha256>,
    counter: Arc<AtomicU64>,
    exact: Option<u64>,
}

impl<B> std::fmt::Debug for ClientBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBody").field("verifies", &self.expected.is_some()).finish()
    }
}

impl<B> ClientBody<B> {
    /// `expected`: the signed SHA-256, or `None` for an unsigned payload.
    /// `exact`: the declared length, used as the size hint.
    pub fn new(inner: B, expected: Option<[u8; 32]>, exact: Option<u64>, counter: Arc<AtomicU64>) -> Self {
        let hasher = expected.map(|_| Sha256::new());
        Self { inner, expected, hasher, counter, exact }
    }
}

impl<B> HttpBody for ClientBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.counter.fetch_add(data.len() as u64, Ordering::Relaxed);
                    if let Some(h) = &mut this.hasher {
                        h.update(data);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => match (this.hasher.take(), this.expected) {
                (Some(h), Some(want)) if h.clone().finalize().as_slice() != want => {
                    Poll::Ready(Some(Err(Box::new(PayloadMismatch))))
                }
                _ => Poll::Ready(None),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.hasher.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        match self.exact {
            Some(n) => SizeHint::with_exact(n),
            None => self.inner.size_hint(),
        }
    }
}

/// One half of a teed body: frames arrive through a bounded channel.
#[derive(Debug)]
pub struct ChannelBody {
    rx: mpsc::Receiver<Result<Bytes, BoxError>>,
    exact: Option<u64>,
}

impl HttpBody for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }

    fn size_hint(&self) -> SizeHint {
        match self.exact {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

/// A bounded channel feeding a [`ChannelBody`].
pub fn channel(capacity: usize, exact: Option<u64>) -> (mpsc::Sender<Result<Bytes, BoxError>>, Body) {
    let (tx, rx) = mpsc::channel(capacity);
    (tx, ChannelBody { rx, exact }.boxed())
}

/// Counts the bytes of an answer body as they are sent.
pub struct Counted {
    inner: Body,
    counter: Arc<AtomicU64>,
}

impl std::fmt::Debug for Counted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counted").finish()
    }
}

impl Counted {
    pub fn wrap(inner: Body, counter: Arc<AtomicU64>) -> Body {
        Self { inner, counter }.boxed()
    }
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &r
            && let Some(d) = f.data_ref()
        {
            self.counter.fetch_add(d.len() as u64, Ordering::Relaxed);
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

/// Reads a small body whole, refusing more than `limit` bytes.
pub async fn collect_limited(body: impl Into<AnyBody>, limit: usize) -> Result<Bytes, BoxError> {
    let body: Body = body.into().0;
    let mut limited = http_body_util::Limited::new(body, limit);
    let mut out = bytes::BytesMut::new();
    while let Some(frame) = limited.frame().await {
        if let Ok(d) = frame?.into_data() {
            out.extend_from_slice(&d);
        }
    }
    Ok(out.freeze())
}

/// A client or backend body, boxed.
#[derive(Debug)]
pub struct AnyBody(Body);

impl From<Body> for AnyBody {
    fn from(b: Body) -> Self {
        Self(b)
    }
}

impl From<hyper::body::Incoming> for AnyBody {
    fn from(b: hyper::body::Incoming) -> Self {
        Self(b.map_err(|e| Box::new(e) as BoxError).boxed())
    }
}
