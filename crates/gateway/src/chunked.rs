//! The client's request body as the backends get it: the payload hash
//! verified while streaming, aws-chunked framing removed (chunk signatures
//! verified for `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`).
//!
//! A chunk is forwarded before its signature can be checked (that needs the
//! whole chunk); a bad signature fails the body stream, which aborts the
//! upstream request short of its Content-Length, so the backend never commits
//! the object.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use cutover_s3::sigv4::{self, EMPTY_SHA256};
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use sha2::{Digest, Sha256};

use crate::auth::{Payload, Seed, Verified};
use crate::body::{Body, BoxError, ClientBody};

/// The body to forward and its length, or why the request is refused.
pub fn client_body(
    body: Incoming,
    v: &Verified,
    headers: &HeaderMap,
    len: Option<u64>,
    counter: Arc<AtomicU64>,
    mismatch: Option<&Arc<AtomicBool>>,
) -> Result<(Body, Option<u64>), String> {
    let decoded = || {
        headers
            .get("x-amz-decoded-content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| "aws-chunked uploads need x-amz-decoded-content-length".to_string())
    };
    match &v.payload {
        Payload::Unsigned => Ok((ClientBody::new(body, None, len, counter).boxed(), len)),
        Payload::Sha256(h) => {
            let b = ClientBody::new(body, Some(*h), len, counter);
            let b = match mismatch {
                Some(f) => b.flag_mismatch(f.clone()),
                None => b,
            };
            Ok((b.boxed(), len))
        }
        Payload::StreamingUnsignedTrailer => {
            let n = decoded()?;
            Ok((AwsChunked::new(body, None, n, counter).boxed(), Some(n)))
        }
        Payload::StreamingSigned { trailer: false } => {
            let n = decoded()?;
            let seed = v.seed.as_ref().ok_or("signed streaming upload without a seed signature")?;
            Ok((AwsChunked::new(body, Some(ChunkSigner::new(seed)), n, counter).boxed(), Some(n)))
        }
        Payload::StreamingSigned { trailer: true } => {
            Err("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER is not supported; use UNSIGNED-PAYLOAD or set AWS_REQUEST_CHECKSUM_CALCULATION=when_required".into())
        }
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any size");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Continues the signature chain of a signed streaming upload.
#[derive(Debug)]
pub struct ChunkSigner {
    key: Vec<u8>,
    datetime: String,
    scope: String,
    prev: String,
}

impl ChunkSigner {
    pub fn new(seed: &Seed) -> Self {
        let key = crate::sign::derive_key(seed.secret.expose(), &seed.date.date, &seed.region, "s3").to_vec();
        Self {
            key,
            datetime: seed.date.datetime.clone(),
            scope: sigv4::scope(&seed.date.date, &seed.region, "s3"),
            prev: seed.signature.clone(),
        }
    }

    /// Checks one chunk's signature (given its SHA-256) and advances the chain.
    fn check(&mut self, chunk_sha256: &str, claimed: &str) -> bool {
        let sts = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{}\n{EMPTY_SHA256}\n{chunk_sha256}",
            self.datetime, self.scope, self.prev
        );
        let sig = hex::encode(hmac(&self.key, sts.as_bytes()));
        let ok = sigv4::signatures_equal(&sig, claimed);
        self.prev = sig;
        ok
    }
}

#[derive(Debug)]
enum St {
    Header,
    Data { remaining: usize },
    DataEnd,
    Trailer,
    Done,
}

/// Removes aws-chunked framing; verifies chunk signatures when signed.
/// Trailing headers (checksums of `STREAMING-UNSIGNED-PAYLOAD-TRAILER`) are
/// read and dropped.
pub struct AwsChunked<B> {
    inner: B,
    buf: BytesMut,
    st: St,
    signer: Option<ChunkSigner>,
    claimed: String,
    hasher: Sha256,
    decoded: u64,
    sent: u64,
    counter: Arc<AtomicU64>,
    eof: bool,
}

impl<B> std::fmt::Debug for AwsChunked<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsChunked").field("st", &self.st).field("sent", &self.sent).finish()
    }
}

fn bad(msg: &str) -> BoxError {
    format!("aws-chunked body: {msg}").into()
}

impl<B> AwsChunked<B> {
    pub fn new(inner: B, signer: Option<ChunkSigner>, decoded: u64, counter: Arc<AtomicU64>) -> Self {
        Self {
            inner,
            buf: BytesMut::new(),
            st: St::Header,
            signer,
            claimed: String::new(),
            hasher: Sha256::new(),
            decoded,
            sent: 0,
            counter,
            eof: false,
        }
    }

    fn line(&mut self) -> Option<String> {
        let i = self.buf.windows(2).position(|w| w == b"\r\n")?;
        let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
        self.buf.advance(i + 2);
        Some(line)
    }

    /// Progress on buffered input: Some(frame or error or end), or None when
    /// more input is needed.
    fn step(&mut self) -> Option<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            match self.st {
                St::Done => return Some(None),
                St::Header => {
                    let line = self.line()?;
                    let (size, sig) = match line.split_once(';') {
                        Some((s, rest)) => (s, rest.trim().strip_prefix("chunk-signature=").unwrap_or("")),
                        None => (line.as_str(), ""),
                    };
                    let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
                        return Some(Some(Err(bad("bad chunk size"))));
                    };
                    if self.signer.is_some() && sig.is_empty() {
                        return Some(Some(Err(bad("chunk without a signature"))));
                    }
                    self.claimed = sig.to_string();
                    self.hasher = Sha256::new();
                    if size == 0 {
                        if let Some(s) = &mut self.signer
                            && !s.check(EMPTY_SHA256, &self.claimed)
                        {
                            return Some(Some(Err(bad("chunk signature does not match"))));
                        }
                        if self.sent != self.decoded {
                            return Some(Some(Err(bad("length differs from x-amz-decoded-content-length"))));
                        }
                        self.st = St::Trailer;
                    } else {
                        self.st = St::Data { remaining: size };
                    }
                }
                St::Data { remaining } => {
                    if self.buf.is_empty() {
                        return None;
                    }
                    let n = remaining.min(self.buf.len());
                    let data = self.buf.split_to(n).freeze();
                    if self.signer.is_some() {
                        self.hasher.update(&data);
                    }
                    self.sent += n as u64;
                    if self.sent > self.decoded {
                        return Some(Some(Err(bad("longer than x-amz-decoded-content-length"))));
                    }
                    self.st = if n == remaining { St::DataEnd } else { St::Data { remaining: remaining - n } };
                    if n == remaining
                        && let Some(s) = &mut self.signer
                    {
                        let h = hex::encode(std::mem::take(&mut self.hasher).finalize());
                        if !s.check(&h, &self.claimed) {
                            return Some(Some(Err(bad("chunk signature does not match"))));
                        }
                    }
                    self.counter.fetch_add(n as u64, Ordering::Relaxed);
                    return Some(Some(Ok(Frame::data(data))));
                }
                St::DataEnd => {
                    if self.buf.len() < 2 {
                        return None;
                    }
                    if &self.buf[..2] != b"\r\n" {
                        return Some(Some(Err(bad("chunk not followed by CRLF"))));
                    }
                    self.buf.advance(2);
                    self.st = St::Header;
                }
                St::Trailer => {
                    let line = self.line()?;
                    if line.is_empty() {
                        self.st = St::Done;
                    }
                }
            }
        }
    }
}

impl<B> HttpBody for AwsChunked<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if let Some(r) = this.step() {
                return Poll::Ready(r);
            }
            if this.eof {
                // Some clients end the body right after the final chunk's CRLF.
                if matches!(this.st, St::Trailer) && this.buf.is_empty() {
                    this.st = St::Done;
                    continue;
                }
                return Poll::Ready(Some(Err(bad("truncated"))));
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => this.eof = true,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(Some(Ok(f))) => {
                    if let Ok(d) = f.into_data() {
                        this.buf.extend_from_slice(&d);
                    }
                }
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.decoded)
    }
}

#[cfg(test)]
mod tests {
    use cutover_core::Secret;
    use cutover_s3::sigv4::AmzDate;
    use http_body_util::Full;

    use super::*;

    /// The example of the S3 documentation ("Signature Calculations for the
    /// Authorization Header: Transferring Payload in Multiple Chunks"):
    /// 66560 bytes of 'a' in chunks of 65536 and 1024.
    fn doc_body(sig1: &str) -> (Vec<u8>, Seed) {
        let seed = Seed {
            signature: "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9".into(),
            date: AmzDate { datetime: "20130524T000000Z".into(), date: "20130524".into() },
            region: "us-east-1".into(),
            secret: Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        };
        let mut body = Vec::new();
        body.extend_from_slice(format!("10000;chunk-signature={sig1}\r\n").as_bytes());
        body.extend(std::iter::repeat_n(b'a', 65536));
        body.extend_from_slice(
            b"\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n",
        );
        body.extend(std::iter::repeat_n(b'a', 1024));
        body.extend_from_slice(
            b"\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n",
        );
        (body, seed)
    }

    async fn decode(body: Vec<u8>, signer: Option<ChunkSigner>, n: u64) -> Result<Bytes, BoxError> {
        let b = AwsChunked::new(Full::new(Bytes::from(body)), signer, n, Arc::default());
        Ok(b.collect().await?.to_bytes())
    }

    #[tokio::test]
    async fn verifies_the_documented_signed_chunks() {
        let (body, seed) = doc_body("ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648");
        let out = decode(body, Some(ChunkSigner::new(&seed)), 66560).await.unwrap();
        assert_eq!(out.len(), 66560);
        assert!(out.iter().all(|b| *b == b'a'));
    }

    #[tokio::test]
    async fn refuses_a_tampered_chunk_signature() {
        let (body, seed) = doc_body("bd80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648");
        assert!(decode(body, Some(ChunkSigner::new(&seed)), 66560).await.is_err());
    }

    #[tokio::test]
    async fn decodes_unsigned_chunks_with_a_trailer() {
        let body = b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n".to_vec();
        assert_eq!(&decode(body.clone(), None, 11).await.unwrap()[..], b"hello world");
        assert!(decode(body, None, 12).await.is_err(), "declared length must match");
        assert!(decode(b"5\r\nhel".to_vec(), None, 5).await.is_err(), "truncated");
    }
}
