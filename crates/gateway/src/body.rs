//! Streaming bodies: the client's request body (payload hash verified while
//! it streams, bytes counted), the halves of a teed body for dual-write, and
//! a byte-counting wrapper for answers. Nothing here buffers a whole object.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::StatusCode;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use prometheus_client::metrics::counter::Counter;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

pub use cutover_s3::http::{Body, BoxError, empty, full};

/// The payload's SHA-256 did not match `x-amz-content-sha256`.
#[derive(Debug, thiserror::Error)]
#[error("the payload's SHA-256 does not match x-amz-content-sha256")]
pub struct PayloadMismatch;

/// Why the gateway refuses a client's request body: the S3 error answer
/// for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct S3Refusal {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl S3Refusal {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// The body does not match its signed `x-amz-content-sha256`.
    pub fn payload_mismatch() -> Self {
        Self::bad_request(
            "XAmzContentSHA256Mismatch",
            "the provided x-amz-content-sha256 does not match what was computed",
        )
    }

    /// The client sent its body slower than `client_min_body_rate`.
    pub fn request_timeout() -> Self {
        Self::bad_request(
            "RequestTimeout",
            "Your socket connection to the server was not read from or written to within the timeout period.",
        )
    }
}

/// Where a body that fails while it streams leaves its [`S3Refusal`]: the
/// upstream request is aborted by the body's error and the client is told
/// why (not that the backend failed).
pub type Fault = Arc<OnceLock<S3Refusal>>;

/// The client's request body: verifies the signed payload hash when it
/// ends, and counts bytes.
///
/// When it verifies, the latest frame is held back until the next one
/// arrives or the body ends and its hash matches: the upstream request
/// never gets its last bytes from a body that fails, so it stays short of
/// its Content-Length and the backend cannot commit the object (the error
/// then aborts the upstream request).
pub struct ClientBody<B> {
    inner: B,
    expected: Option<[u8; 32]>,
    hasher: Option<Sha256>,
    held: Option<Frame<Bytes>>,
    counter: Counter,
    exact: Option<u64>,
    /// Told when the hash does not match, for the answer to the client.
    fault: Option<Fault>,
}

impl<B> std::fmt::Debug for ClientBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBody").field("verifies", &self.expected.is_some()).finish()
    }
}

impl<B> ClientBody<B> {
    /// `expected`: the signed SHA-256, or `None` for an unsigned payload.
    /// `exact`: the declared length, used as the size hint.
    pub fn new(inner: B, expected: Option<[u8; 32]>, exact: Option<u64>, counter: Counter) -> Self {
        let hasher = expected.map(|_| Sha256::new());
        Self { inner, expected, hasher, held: None, counter, exact, fault: None }
    }

    /// Leaves a `400 XAmzContentSHA256Mismatch` refusal in `fault` if the
    /// payload hash does not match.
    pub fn report_to(mut self, fault: Fault) -> Self {
        self.fault = Some(fault);
        self
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
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => {
                    this.held = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        this.counter.inc_by(data.len() as u64);
                    }
                    let Some(h) = &mut this.hasher else {
                        return Poll::Ready(Some(Ok(frame)));
                    };
                    if let Some(data) = frame.data_ref() {
                        h.update(data);
                    }
                    if let Some(prev) = this.held.replace(frame) {
                        return Poll::Ready(Some(Ok(prev)));
                    }
                }
                Poll::Ready(None) => {
                    if let (Some(h), Some(want)) = (this.hasher.take(), this.expected)
                        && h.finalize().as_slice() != want
                    {
                        this.held = None;
                        if let Some(f) = &this.fault {
                            let _ = f.set(S3Refusal::payload_mismatch());
                        }
                        return Poll::Ready(Some(Err(Box::new(PayloadMismatch))));
                    }
                    return Poll::Ready(this.held.take().map(Ok));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.hasher.is_none() && self.held.is_none() && self.inner.is_end_stream()
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
    counter: Counter,
}

impl std::fmt::Debug for Counted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counted").finish()
    }
}

impl Counted {
    pub fn wrap(inner: Body, counter: Counter) -> Body {
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
            self.counter.inc_by(d.len() as u64);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A body of `parts`, one frame each.
    struct Parts(std::collections::VecDeque<&'static [u8]>);

    impl HttpBody for Parts {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(self.0.pop_front().map(|p| Ok(Frame::data(Bytes::from_static(p)))))
        }
    }

    fn parts(parts: &[&'static [u8]]) -> Parts {
        Parts(parts.iter().copied().collect())
    }

    /// Polls a body to its end: (data delivered, error at the end).
    async fn drain(mut b: impl HttpBody<Data = Bytes, Error = BoxError> + Unpin) -> (Vec<u8>, Option<BoxError>) {
        let mut out = Vec::new();
        while let Some(f) = b.frame().await {
            match f {
                Ok(f) => out.extend_from_slice(&f.into_data().unwrap()),
                Err(e) => return (out, Some(e)),
            }
        }
        (out, None)
    }

    fn sha(b: &[u8]) -> [u8; 32] {
        Sha256::digest(b).into()
    }

    #[tokio::test]
    async fn passes_a_matching_body_through_in_order() {
        let counter = Counter::default();
        let body = ClientBody::new(parts(&[b"abc", b"def", b"g"]), Some(sha(b"abcdefg")), Some(7), counter.clone());
        assert_eq!(drain(body).await.0, b"abcdefg");
        assert_eq!(counter.get(), 7);
        let unsigned = ClientBody::new(parts(&[b"abc", b"def"]), None, Some(6), counter);
        assert_eq!(drain(unsigned).await.0, b"abcdef");
    }

    #[tokio::test]
    async fn never_delivers_the_last_bytes_of_a_body_that_does_not_match() {
        let body = ClientBody::new(parts(&[b"abc", b"def", b"g"]), Some(sha(b"abcdefX")), Some(7), Counter::default());
        let (data, err) = drain(body).await;
        assert_eq!(data, b"abcdef", "everything but the last frame");
        assert!(err.unwrap().is::<PayloadMismatch>());
        let fault = Fault::default();
        let one = ClientBody::new(parts(&[b"abcdefg"]), Some(sha(b"other")), Some(7), Counter::default())
            .report_to(fault.clone());
        let (data, err) = drain(one).await;
        assert!(data.is_empty());
        assert!(err.unwrap().is::<PayloadMismatch>());
        assert_eq!(fault.get().unwrap().code, "XAmzContentSHA256Mismatch");
    }
}
