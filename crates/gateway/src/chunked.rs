//! The client's request body as the backends get it: the payload hash
//! verified while streaming, aws-chunked framing removed, chunk signatures,
//! trailing checksums and trailer signatures verified.
//!
//! hyper stops polling a request body once it has written Content-Length
//! bytes, so a check made after the last decoded byte has been handed over
//! never decides anything: the backend has the whole object and commits it.
//! [`AwsChunked`] therefore holds back the frame that completes the decoded
//! length until the rest of the body (the final empty chunk, its signature,
//! the trailer, its checksum and signature) has been read and verified. A
//! body that fails ends with an error instead, which aborts the upstream
//! request short of its Content-Length: nothing is committed, and the
//! refusal left in the [`Fault`] becomes the client's answer.
//!
//! Earlier frames are forwarded as they arrive (a chunk's signature can only
//! be checked at its end); that is safe because the backend cannot commit
//! an object it has not received whole.
//!
//! An upload whose trailer carries a checksum is forwarded with that
//! checksum (see [`crate::reframe`]): the decoded bytes go out as they
//! arrive, re-framed, and the trailer, which ends the upstream body, is
//! produced only once every check has passed. Nothing else needs holding
//! back then: without its trailer the backend never has its Content-Length.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use cutover_s3::sigv4::{self, EMPTY_SHA256};
use http::{HeaderMap, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use sha2::{Digest, Sha256};

use crate::auth::{Payload, Seed, Verified};
use crate::body::{Body, BoxError, ClientBody, Fault, Refusal};
use crate::checksum::{self, Algorithm, Checksum};
use crate::reframe::TrailerFraming;
use crate::upstream::UpPayload;

/// The longest chunk header or trailer line accepted.
const MAX_LINE: usize = 4096;
/// The most trailing header lines accepted (a checksum and a signature are
/// all S3 clients send).
const MAX_TRAILER_LINES: usize = 8;
const TRAILER_SIGNATURE: &str = "x-amz-trailer-signature";

/// The client's body as the backends get it.
#[derive(Debug)]
pub struct Forward {
    pub body: Body,
    /// The upstream Content-Length.
    pub len: Option<u64>,
    /// How the body is signed upstream.
    pub payload: UpPayload,
}

/// The body to forward, or why the request is refused. A body that fails
/// while it streams leaves its refusal in `fault`.
pub fn client_body(
    body: Incoming,
    v: &Verified,
    headers: &HeaderMap,
    len: Option<u64>,
    counter: Arc<AtomicU64>,
    fault: &Fault,
) -> Result<Forward, Refusal> {
    let invalid = |msg: String| Refusal::bad_request("InvalidRequest", msg);
    let decoded = || {
        headers
            .get("x-amz-decoded-content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| invalid("aws-chunked uploads need x-amz-decoded-content-length".into()))
            .and_then(declared_length)
    };
    let seed = || v.seed.as_ref().ok_or_else(|| invalid("signed streaming upload without a seed signature".into()));
    let form = match &v.payload {
        Payload::Unsigned => {
            let body = ClientBody::new(body, None, len, counter).boxed();
            return Ok(Forward { body, len, payload: UpPayload::Unsigned });
        }
        Payload::Sha256(h) => {
            let body = ClientBody::new(body, Some(*h), len, counter).report_to(fault.clone()).boxed();
            return Ok(Forward { body, len, payload: UpPayload::Sha256(hex::encode(h)) });
        }
        Payload::StreamingUnsignedTrailer => Form::UnsignedTrailer(announced_trailer(headers)?),
        Payload::StreamingSigned { trailer: false } => {
            if headers.contains_key("x-amz-trailer") {
                return Err(invalid(
                    "x-amz-trailer needs x-amz-content-sha256 STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER".into(),
                ));
            }
            Form::Signed(ChunkSigner::new(seed()?))
        }
        Payload::StreamingSigned { trailer: true } => {
            Form::SignedTrailer(ChunkSigner::new(seed()?), announced_trailer(headers)?)
        }
    };
    let n = decoded()?;
    let trailer = match &form {
        Form::SignedTrailer(_, a) | Form::UnsignedTrailer(a) => *a,
        Form::Signed(_) => None,
    };
    let body = AwsChunked::new(body, Decoder::new(form, n), counter).report_to(fault.clone());
    Ok(match trailer {
        // The checksum goes on to the backend, which verifies and stores it.
        Some(a) => {
            let framing = TrailerFraming::new(a, n);
            let len = framing.encoded_len();
            let payload = UpPayload::UnsignedTrailer { decoded_len: n, trailer: a };
            Forward { body: body.forward_trailer(framing).boxed(), len: Some(len), payload }
        }
        None => Forward { body: body.boxed(), len: Some(n), payload: UpPayload::Unsigned },
    })
}

/// The largest object S3 stores (5 TiB): a larger decoded length is refused
/// before anything (the upstream length computed from it) can overflow.
pub const MAX_DECODED_LEN: u64 = 5 << 40;

/// `x-amz-decoded-content-length`, or `EntityTooLarge` beyond [`MAX_DECODED_LEN`].
pub fn declared_length(n: u64) -> Result<u64, Refusal> {
    if n > MAX_DECODED_LEN {
        return Err(Refusal::bad_request(
            "EntityTooLarge",
            format!("x-amz-decoded-content-length {n} exceeds the maximum object size ({MAX_DECODED_LEN} bytes)"),
        ));
    }
    Ok(n)
}

/// The checksum `x-amz-trailer` announces, if any.
fn announced_trailer(headers: &HeaderMap) -> Result<Option<Algorithm>, Refusal> {
    let invalid = |msg: String| Refusal::bad_request("InvalidRequest", msg);
    let mut names = Vec::new();
    for v in headers.get_all("x-amz-trailer") {
        let v = v.to_str().map_err(|_| invalid("x-amz-trailer is not ASCII".into()))?;
        names.extend(v.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_string));
    }
    match names.as_slice() {
        [] => Ok(None),
        [name] => Algorithm::from_header(name).map(Some).ok_or_else(|| {
            invalid(format!(
                "the trailing header {name} is not supported; the gateway verifies x-amz-checksum-crc32, \
                 -crc32c, -crc64nvme, -sha1 and -sha256"
            ))
        }),
        _ => Err(invalid("x-amz-trailer names more than one trailing header; only one checksum is supported".into())),
    }
}

/// Continues the signature chain of a signed streaming upload.
#[derive(Debug)]
pub struct ChunkSigner {
    key: [u8; 32],
    datetime: String,
    scope: String,
    prev: String,
}

impl ChunkSigner {
    pub fn new(seed: &Seed) -> Self {
        let key = sigv4::signing_key(seed.secret.expose(), &seed.date.date, &seed.region, "s3");
        Self {
            key,
            datetime: seed.date.datetime.clone(),
            scope: sigv4::scope(&seed.date.date, &seed.region, "s3"),
            prev: seed.signature.clone(),
        }
    }

    fn advance(&mut self, sts: &str, claimed: &str) -> bool {
        let sig = hex::encode(sigv4::hmac(&self.key, sts.as_bytes()));
        let ok = sigv4::signatures_equal(&sig, claimed);
        self.prev = sig;
        ok
    }

    /// Checks one chunk's signature (given its SHA-256) and advances the chain.
    fn check(&mut self, chunk_sha256: &str, claimed: &str) -> bool {
        let sts = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{}\n{EMPTY_SHA256}\n{chunk_sha256}",
            self.datetime, self.scope, self.prev
        );
        self.advance(&sts, claimed)
    }

    /// Checks the trailer signature: `canonical` is the trailing header
    /// lines (the signature's excepted), each `name:value\n`.
    fn check_trailer(&mut self, canonical: &[u8], claimed: &str) -> bool {
        let sts = format!(
            "AWS4-HMAC-SHA256-TRAILER\n{}\n{}\n{}\n{}",
            self.datetime,
            self.scope,
            self.prev,
            hex::encode(Sha256::digest(canonical))
        );
        self.advance(&sts, claimed)
    }
}

/// Which aws-chunked upload a body is.
#[derive(Debug)]
pub enum Form {
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: signed chunks, no trailer.
    Signed(ChunkSigner),
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`: signed chunks, then the
    /// announced checksum (if any) and `x-amz-trailer-signature`.
    SignedTrailer(ChunkSigner, Option<Algorithm>),
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: plain chunks, then the
    /// announced checksum (if any).
    UnsignedTrailer(Option<Algorithm>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Header,
    Data { remaining: u64 },
    DataEnd,
    Trailer,
    Done,
}

/// What the decoder has next.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// Decoded bytes.
    Data(Bytes),
    /// Nothing until more input arrives (or the input ends).
    NeedInput,
    /// The body ended and every check passed.
    End,
}

fn malformed(msg: impl Into<String>) -> Refusal {
    Refusal::bad_request("InvalidRequest", format!("aws-chunked body: {}", msg.into()))
}

fn incomplete() -> Refusal {
    Refusal::bad_request("IncompleteBody", "the aws-chunked body ended before x-amz-decoded-content-length bytes")
}

fn bad_signature(what: &str) -> Refusal {
    Refusal::new(
        StatusCode::FORBIDDEN,
        "SignatureDoesNotMatch",
        format!("the {what} signature does not match the signature computed with the client's secret"),
    )
}

fn malformed_trailer(msg: impl Into<String>) -> Refusal {
    Refusal::bad_request(
        "MalformedTrailerError",
        format!("the trailer of the aws-chunked body is not well formed: {}", msg.into()),
    )
}

/// The aws-chunked framing as a state machine over the bytes pushed into
/// it; verifies as it decodes. Knows nothing of hyper.
#[derive(Debug)]
pub struct Decoder {
    buf: BytesMut,
    st: St,
    signer: Option<ChunkSigner>,
    /// The form has a trailer section (`-TRAILER`), signed or not.
    trailer: bool,
    signed_trailer: bool,
    /// The announced trailing checksum, computed over the decoded bytes.
    checksum: Option<Checksum>,
    /// Its digest once the trailer has matched it.
    verified: Option<Vec<u8>>,
    claimed: String,
    chunk_hash: Sha256,
    declared: u64,
    seen: u64,
    trailer_lines: Vec<(String, String)>,
    eof: bool,
}

impl Decoder {
    /// `declared`: `x-amz-decoded-content-length`.
    pub fn new(form: Form, declared: u64) -> Self {
        let (signer, trailer, signed_trailer, algorithm) = match form {
            Form::Signed(s) => (Some(s), false, false, None),
            Form::SignedTrailer(s, a) => (Some(s), true, true, a),
            Form::UnsignedTrailer(a) => (None, true, false, a),
        };
        Self {
            buf: BytesMut::new(),
            st: St::Header,
            signer,
            trailer,
            signed_trailer,
            checksum: algorithm.map(Algorithm::hasher),
            verified: None,
            claimed: String::new(),
            chunk_hash: Sha256::new(),
            declared,
            seen: 0,
            trailer_lines: Vec::new(),
            eof: false,
        }
    }

    /// More of the encoded body.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The encoded body has no more bytes.
    pub fn end_of_input(&mut self) {
        self.eof = true;
    }

    /// Decoded bytes so far.
    pub fn decoded(&self) -> u64 {
        self.seen
    }

    pub fn declared(&self) -> u64 {
        self.declared
    }

    /// The digest of the announced trailing checksum, once the trailer has
    /// been read and matched it.
    pub fn verified_checksum(&self) -> Option<&[u8]> {
        self.verified.as_deref()
    }

    /// A CRLF-terminated line (without it), None when more input is needed.
    fn line(&mut self, what: &str) -> Result<Option<String>, Refusal> {
        let window = &self.buf[..self.buf.len().min(MAX_LINE + 2)];
        let Some(i) = window.windows(2).position(|w| w == b"\r\n") else {
            if self.buf.len() > MAX_LINE {
                return Err(malformed(format!("{what} longer than {MAX_LINE} bytes")));
            }
            return Ok(None);
        };
        let line = std::str::from_utf8(&self.buf[..i]).map_err(|_| malformed(format!("{what} is not text")))?;
        let line = line.to_string();
        self.buf.advance(i + 2);
        Ok(Some(line))
    }

    /// The next event, or why the body is refused (the decoder is then
    /// finished: do not call it again).
    pub fn next_event(&mut self) -> Result<Event, Refusal> {
        loop {
            match self.st {
                // Nothing may follow the end, however the input is cut.
                St::Done if !self.buf.is_empty() => return Err(malformed("data after the end of the body")),
                St::Done => return Ok(if self.eof { Event::End } else { Event::NeedInput }),
                St::Header => {
                    let Some(line) = self.line("chunk header")? else {
                        return if self.eof { Err(incomplete()) } else { Ok(Event::NeedInput) };
                    };
                    self.header(&line)?;
                }
                St::Data { remaining } => {
                    if self.buf.is_empty() {
                        return if self.eof { Err(incomplete()) } else { Ok(Event::NeedInput) };
                    }
                    let n = remaining.min(self.buf.len() as u64);
                    let data = self.buf.split_to(n as usize).freeze();
                    self.seen += n;
                    if self.signer.is_some() {
                        self.chunk_hash.update(&data);
                    }
                    if let Some(c) = &mut self.checksum {
                        c.update(&data);
                    }
                    if n == remaining {
                        self.st = St::DataEnd;
                        if let Some(s) = &mut self.signer {
                            let h = hex::encode(std::mem::take(&mut self.chunk_hash).finalize());
                            if !s.check(&h, &self.claimed) {
                                return Err(bad_signature("chunk"));
                            }
                        }
                    } else {
                        self.st = St::Data { remaining: remaining - n };
                    }
                    return Ok(Event::Data(data));
                }
                St::DataEnd => {
                    if self.buf.len() < 2 {
                        return if self.eof { Err(incomplete()) } else { Ok(Event::NeedInput) };
                    }
                    if &self.buf[..2] != b"\r\n" {
                        return Err(malformed("chunk data not followed by CRLF"));
                    }
                    self.buf.advance(2);
                    self.st = St::Header;
                }
                St::Trailer => match self.line("trailer line")? {
                    Some(line) if line.is_empty() => self.finish()?,
                    Some(line) => self.trailer_line(&line)?,
                    None if self.eof => {
                        // Some clients end the body without the last CRLF
                        // (or right after the final chunk's header).
                        if !self.buf.is_empty() {
                            let rest = String::from_utf8_lossy(&self.buf).into_owned();
                            self.buf.clear();
                            self.trailer_line(&rest)?;
                        }
                        self.finish()?;
                    }
                    None => return Ok(Event::NeedInput),
                },
            }
        }
    }

    /// `size[;chunk-signature=sig]`.
    fn header(&mut self, line: &str) -> Result<(), Refusal> {
        let (size, ext) = match line.split_once(';') {
            Some((s, e)) => (s, Some(e)),
            None => (line, None),
        };
        if size.is_empty() || size.len() > 16 || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(malformed(format!("bad chunk size {size:?}")));
        }
        let size = u64::from_str_radix(size, 16).map_err(|_| malformed("bad chunk size"))?;
        if self.signer.is_some() {
            let sig = ext.and_then(|e| e.trim().strip_prefix("chunk-signature=")).unwrap_or("");
            if sig.len() != 64 || !sig.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad_signature("chunk (missing or malformed)"));
            }
            self.claimed.clear();
            self.claimed.push_str(sig);
            self.chunk_hash = Sha256::new();
        }
        if size > self.declared - self.seen {
            return Err(malformed("longer than x-amz-decoded-content-length"));
        }
        if size > 0 {
            self.st = St::Data { remaining: size };
            return Ok(());
        }
        if let Some(s) = &mut self.signer
            && !s.check(EMPTY_SHA256, &self.claimed)
        {
            return Err(bad_signature("final chunk"));
        }
        if self.seen != self.declared {
            return Err(incomplete());
        }
        self.st = St::Trailer;
        Ok(())
    }

    fn trailer_line(&mut self, line: &str) -> Result<(), Refusal> {
        if !self.trailer {
            return Err(malformed_trailer(
                "trailing headers need x-amz-content-sha256 STREAMING-UNSIGNED-PAYLOAD-TRAILER or \
                 STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
            ));
        }
        if self.trailer_lines.len() >= MAX_TRAILER_LINES {
            return Err(malformed_trailer("too many trailing headers"));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(malformed_trailer(format!("{line:?} is not name:value")));
        };
        let name = name.trim().to_ascii_lowercase();
        if self.trailer_lines.iter().any(|(n, _)| *n == name) {
            return Err(malformed_trailer(format!("{name} appears twice")));
        }
        self.trailer_lines.push((name, value.trim().to_string()));
        Ok(())
    }

    /// The end of the trailer section: the trailer signature, then the
    /// announced checksum.
    fn finish(&mut self) -> Result<(), Refusal> {
        let lines = std::mem::take(&mut self.trailer_lines);
        let (sigs, headers): (Vec<_>, Vec<_>) = lines.into_iter().partition(|(n, _)| n == TRAILER_SIGNATURE);
        let expected = self.checksum.as_ref().map(Checksum::algorithm);
        for (name, _) in &headers {
            if expected.is_none_or(|a| a.header() != name) {
                return Err(malformed_trailer(format!("{name} was not announced in x-amz-trailer")));
            }
        }
        if self.signed_trailer {
            let Some((_, claimed)) = sigs.first() else {
                return Err(malformed_trailer(format!("{TRAILER_SIGNATURE} is missing")));
            };
            let mut canonical = Vec::new();
            for (n, v) in &headers {
                canonical.extend_from_slice(format!("{n}:{v}\n").as_bytes());
            }
            let signer = self.signer.as_mut().expect("signed");
            if !signer.check_trailer(&canonical, claimed) {
                return Err(bad_signature("trailer"));
            }
        } else if !sigs.is_empty() {
            return Err(malformed_trailer(format!("{TRAILER_SIGNATURE} in an unsigned upload")));
        }
        if let Some(c) = self.checksum.take() {
            let a = c.algorithm();
            let Some((_, value)) = headers.first() else {
                return Err(malformed_trailer(format!("the {} announced in x-amz-trailer is missing", a.header())));
            };
            let claimed = a.parse_value(value).ok_or_else(|| {
                Refusal::bad_request("InvalidRequest", format!("the value of the {} trailer is invalid", a.header()))
            })?;
            let computed = c.finish();
            if claimed != computed {
                return Err(Refusal::bad_request(
                    "BadDigest",
                    format!(
                        "the {} you specified in {} did not match the calculated checksum ({})",
                        a.label(),
                        a.header(),
                        checksum::encode(&computed)
                    ),
                ));
            }
            self.verified = Some(computed);
        }
        if !self.buf.is_empty() {
            return Err(malformed("data after the end of the body"));
        }
        self.st = St::Done;
        Ok(())
    }
}

/// Removes aws-chunked framing with a [`Decoder`]; holds back the frame
/// that completes the decoded length until the whole body has verified.
/// With [`AwsChunked::forward_trailer`], re-frames the decoded bytes for
/// the backend instead and holds back only the trailer that ends them.
pub struct AwsChunked<B> {
    inner: B,
    dec: Decoder,
    held: Option<Bytes>,
    /// Re-framing with the verified checksum as the trailer.
    framing: Option<TrailerFraming>,
    /// Frames of the re-framed body not yet handed over.
    out: VecDeque<Bytes>,
    counter: Arc<AtomicU64>,
    fault: Option<Fault>,
    finished: bool,
}

impl<B> std::fmt::Debug for AwsChunked<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsChunked").field("dec", &self.dec).finish()
    }
}

impl<B> AwsChunked<B> {
    pub fn new(inner: B, dec: Decoder, counter: Arc<AtomicU64>) -> Self {
        Self { inner, dec, held: None, framing: None, out: VecDeque::new(), counter, fault: None, finished: false }
    }

    /// Sends the decoded bytes framed by `framing`, ending with the trailer
    /// checksum the decoder verified (its algorithm must be the one the
    /// decoder checks).
    pub fn forward_trailer(mut self, framing: TrailerFraming) -> Self {
        debug_assert_eq!(self.dec.checksum.as_ref().map(Checksum::algorithm), Some(framing.algorithm()));
        self.framing = Some(framing);
        self
    }

    /// Leaves the refusal in `fault` when the body fails.
    pub fn report_to(mut self, fault: Fault) -> Self {
        self.fault = Some(fault);
        self
    }

    fn fail(&mut self, r: Refusal) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.held = None;
        self.out.clear();
        self.finished = true;
        if let Some(f) = &self.fault {
            let _ = f.set(r.clone());
        }
        Poll::Ready(Some(Err(Box::new(r))))
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
        if let Some(d) = this.out.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(d))));
        }
        if this.finished {
            return Poll::Ready(this.held.take().map(|d| Ok(Frame::data(d))));
        }
        loop {
            match this.dec.next_event() {
                Err(r) => return this.fail(r),
                Ok(Event::End) => {
                    if let Some(f) = &mut this.framing {
                        // Every check has passed: the trailer ends the body.
                        let Some(digest) = this.dec.verified_checksum() else {
                            return this.fail(malformed_trailer("no verified checksum to forward"));
                        };
                        this.held = Some(f.finish(digest));
                    }
                    this.finished = true;
                    return Poll::Ready(this.held.take().map(|d| Ok(Frame::data(d))));
                }
                Ok(Event::Data(d)) => {
                    this.counter.fetch_add(d.len() as u64, Ordering::Relaxed);
                    if let Some(f) = &mut this.framing {
                        f.data(d, &mut this.out);
                        if let Some(d) = this.out.pop_front() {
                            return Poll::Ready(Some(Ok(Frame::data(d))));
                        }
                        continue;
                    }
                    if this.dec.decoded() < this.dec.declared() {
                        return Poll::Ready(Some(Ok(Frame::data(d))));
                    }
                    // The last decoded bytes: released only at the end.
                    this.held = Some(match this.held.take() {
                        None => d,
                        Some(h) => [h, d].concat().into(),
                    });
                }
                Ok(Event::NeedInput) => match Pin::new(&mut this.inner).poll_frame(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(None) => this.dec.end_of_input(),
                    Poll::Ready(Some(Err(e))) => {
                        this.held = None;
                        this.finished = true;
                        return Poll::Ready(Some(Err(e.into())));
                    }
                    Poll::Ready(Some(Ok(f))) => {
                        if let Ok(d) = f.into_data() {
                            this.dec.push(&d);
                        }
                    }
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished && self.held.is_none() && self.out.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.framing.as_ref().map_or(self.dec.declared(), TrailerFraming::encoded_len))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use cutover_core::Secret;
    use cutover_s3::sigv4::AmzDate;

    use super::*;

    const DOC_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn doc_seed(signature: &str) -> Seed {
        Seed {
            signature: signature.into(),
            date: AmzDate { datetime: "20130524T000000Z".into(), date: "20130524".into() },
            region: "us-east-1".into(),
            secret: Secret::new(DOC_SECRET),
        }
    }

    /// The example of the S3 documentation ("Signature Calculations for the
    /// Authorization Header: Transferring Payload in Multiple Chunks"):
    /// 66560 bytes of 'a' in chunks of 65536 and 1024.
    fn doc_body(sig1: &str) -> (Vec<u8>, Seed) {
        let seed = doc_seed("4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9");
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

    /// The example of "Signature calculations for trailing headers (chunked
    /// uploads)": the same data, a CRC32C trailer and its signature.
    fn doc_trailer_body(crc: &str, trailer_sig: &str) -> (Vec<u8>, Seed) {
        let seed = doc_seed("106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e");
        let mut body = Vec::new();
        body.extend_from_slice(
            b"10000;chunk-signature=b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2\r\n",
        );
        body.extend(std::iter::repeat_n(b'a', 65536));
        body.extend_from_slice(
            b"\r\n400;chunk-signature=1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7\r\n",
        );
        body.extend(std::iter::repeat_n(b'a', 1024));
        body.extend_from_slice(
            b"\r\n0;chunk-signature=2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992\r\n",
        );
        body.extend_from_slice(format!("x-amz-checksum-crc32c:{crc}\r\n").as_bytes());
        body.extend_from_slice(format!("x-amz-trailer-signature:{trailer_sig}\r\n\r\n").as_bytes());
        (body, seed)
    }

    const DOC_TRAILER_SIG: &str = "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435";

    /// A body of frames.
    struct Parts(VecDeque<Bytes>);

    impl HttpBody for Parts {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(self.0.pop_front().map(|p| Ok(Frame::data(p))))
        }
    }

    /// `body` cut at `cuts` (sorted positions).
    fn cut(body: &[u8], cuts: &[usize]) -> Parts {
        let mut out = VecDeque::new();
        let mut from = 0;
        for &c in cuts.iter().chain(std::iter::once(&body.len())) {
            out.push_back(Bytes::copy_from_slice(&body[from..c]));
            from = c;
        }
        Parts(out)
    }

    /// `body` in frames of `size` bytes.
    fn frames(body: &[u8], size: usize) -> Parts {
        Parts(body.chunks(size).map(Bytes::copy_from_slice).collect())
    }

    /// Polls the decoded body to its end: (data delivered, refusal at the end).
    async fn drain(parts: Parts, form: Form, declared: u64) -> (Vec<u8>, Option<Refusal>) {
        drain_body(AwsChunked::new(parts, Decoder::new(form, declared), Arc::default())).await
    }

    /// The same, re-framed with the trailer forwarded.
    async fn drain_forwarded(parts: Parts, form: Form, declared: u64) -> (Vec<u8>, Option<Refusal>) {
        let a = match &form {
            Form::SignedTrailer(_, a) | Form::UnsignedTrailer(a) => a.expect("a checksum"),
            Form::Signed(_) => panic!("no trailer"),
        };
        let b = AwsChunked::new(parts, Decoder::new(form, declared), Arc::default())
            .forward_trailer(TrailerFraming::new(a, declared));
        drain_body(b).await
    }

    async fn drain_body(b: AwsChunked<Parts>) -> (Vec<u8>, Option<Refusal>) {
        let fault = Fault::default();
        let mut b = b.report_to(fault.clone());
        let mut out = Vec::new();
        while let Some(f) = b.frame().await {
            match f {
                Ok(f) => out.extend_from_slice(&f.into_data().unwrap()),
                Err(e) => {
                    let r = e.downcast_ref::<Refusal>().cloned().expect("a refusal");
                    assert_eq!(fault.get(), Some(&r), "the refusal is reported");
                    return (out, Some(r));
                }
            }
        }
        assert!(b.is_end_stream());
        (out, None)
    }

    async fn decode(body: &[u8], form: Form, declared: u64) -> Result<Vec<u8>, Refusal> {
        match drain(frames(body, body.len().max(1)), form, declared).await {
            (data, None) => Ok(data),
            (_, Some(r)) => Err(r),
        }
    }

    fn code(r: Result<Vec<u8>, Refusal>) -> &'static str {
        r.expect_err("refused").code
    }

    fn signed(seed: &Seed) -> Form {
        Form::Signed(ChunkSigner::new(seed))
    }

    fn crc32_trailer() -> Form {
        Form::UnsignedTrailer(Some(Algorithm::Crc32))
    }

    /// An unsigned-trailer body of `data` in chunks of `chunk`, ending with `tail`
    /// (after the final chunk's header).
    fn unsigned(data: &[u8], chunk: usize, tail: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for c in data.chunks(chunk) {
            out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            out.extend_from_slice(c);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n");
        out.extend_from_slice(tail.as_bytes());
        out
    }

    /// CRC32 of "hello world".
    const HELLO_CRC32: &str = "DUoRhQ==";

    #[tokio::test]
    async fn verifies_the_documented_signed_chunks_in_frames_of_any_size() {
        let (body, seed) = doc_body("ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648");
        for size in [1, 2, 7, 86, 87, 777, 65536, body.len()] {
            let (out, err) = drain(frames(&body, size), signed(&seed), 66560).await;
            assert!(err.is_none(), "frames of {size}: {err:?}");
            assert_eq!(out, vec![b'a'; 66560]);
        }
    }

    #[tokio::test]
    async fn verifies_the_documented_signed_trailer() {
        let (body, seed) = doc_trailer_body("sOO8/Q==", DOC_TRAILER_SIG);
        let form = || Form::SignedTrailer(ChunkSigner::new(&seed), Some(Algorithm::Crc32c));
        for size in [1, 5, 999, body.len()] {
            let (out, err) = drain(frames(&body, size), form(), 66560).await;
            assert!(err.is_none(), "frames of {size}: {err:?}");
            assert_eq!(out.len(), 66560);
        }
        // The trailer's signature covers the checksum.
        let (body, _) = doc_trailer_body("AAAAAA==", DOC_TRAILER_SIG);
        assert_eq!(code(decode(&body, form(), 66560).await), "SignatureDoesNotMatch");
        let (body, _) = doc_trailer_body("sOO8/Q==", &DOC_TRAILER_SIG.replace('d', "e"));
        let r = decode(&body, form(), 66560).await.unwrap_err();
        assert_eq!((r.status, r.code), (StatusCode::FORBIDDEN, "SignatureDoesNotMatch"));
        // Without its signature line.
        let mut body = doc_trailer_body("sOO8/Q==", DOC_TRAILER_SIG).0;
        let at = body.windows(24).position(|w| w == b"x-amz-trailer-signature:").unwrap();
        body.truncate(at);
        body.extend_from_slice(b"\r\n");
        assert_eq!(code(decode(&body, form(), 66560).await), "MalformedTrailerError");
    }

    /// A signed-trailer body re-signed along the chain (the chain itself is
    /// checked against the documentation above).
    fn resigned_trailer(seed: &Seed, data: &[u8], trailer: &str, spoil_trailer_sig: bool) -> Vec<u8> {
        let mut s = ChunkSigner::new(seed);
        let mut out = Vec::new();
        for c in data.chunks(1000).chain(std::iter::once(&b""[..])) {
            s.check(&hex::encode(Sha256::digest(c)), "");
            out.extend_from_slice(format!("{:x};chunk-signature={}\r\n", c.len(), s.prev).as_bytes());
            if !c.is_empty() {
                out.extend_from_slice(c);
                out.extend_from_slice(b"\r\n");
            }
        }
        let canonical = if trailer.is_empty() { String::new() } else { format!("{trailer}\n") };
        s.check_trailer(canonical.as_bytes(), "");
        let mut sig = s.prev.clone();
        if spoil_trailer_sig {
            sig = sig.replace(|c: char| c.is_ascii_digit(), "a");
        }
        if !trailer.is_empty() {
            out.extend_from_slice(format!("{trailer}\r\n").as_bytes());
        }
        out.extend_from_slice(format!("x-amz-trailer-signature:{sig}\r\n\r\n").as_bytes());
        out
    }

    #[tokio::test]
    async fn a_signed_trailer_with_a_wrong_checksum_is_a_bad_digest() {
        let seed = doc_seed("106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e");
        let data = b"hello world".repeat(300);
        let mut crc = Algorithm::Crc32.hasher();
        crc.update(&data);
        let right = format!("x-amz-checksum-crc32:{}", checksum::encode(&crc.finish()));
        let form = || Form::SignedTrailer(ChunkSigner::new(&seed), Some(Algorithm::Crc32));
        let n = data.len() as u64;
        assert_eq!(decode(&resigned_trailer(&seed, &data, &right, false), form(), n).await.unwrap(), data);
        let r = decode(&resigned_trailer(&seed, &data, "x-amz-checksum-crc32:AAAAAA==", false), form(), n).await;
        let r = r.unwrap_err();
        assert_eq!((r.status, r.code), (StatusCode::BAD_REQUEST, "BadDigest"));
        assert!(r.message.contains("CRC32"), "{r}");
        assert_eq!(
            code(decode(&resigned_trailer(&seed, &data, &right, true), form(), n).await),
            "SignatureDoesNotMatch"
        );
        // No checksum announced: only the signature.
        let bare = Form::SignedTrailer(ChunkSigner::new(&seed), None);
        assert_eq!(decode(&resigned_trailer(&seed, &data, "", false), bare, n).await.unwrap(), data);
    }

    #[tokio::test]
    async fn never_delivers_the_last_byte_of_a_body_that_fails() {
        let seed = doc_seed("4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9");
        let good = "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9";
        let (last_bad, _) = doc_body("ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648");
        let last_bad = String::from_utf8_lossy(&last_bad)
            .replace("0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497", &"0".repeat(64))
            .into_bytes();
        let (final_bad, _) = doc_body("ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648");
        let final_bad = String::from_utf8_lossy(&final_bad).replace(good, &"1".repeat(64)).into_bytes();
        for (what, body) in [("last chunk", last_bad), ("final chunk", final_bad)] {
            for size in [1, 1000, body.len()] {
                let (out, err) = drain(frames(&body, size), signed(&seed), 66560).await;
                assert_eq!(err.map(|r| r.code), Some("SignatureDoesNotMatch"), "{what}");
                assert!(out.len() < 66560, "{what}, frames of {size}: all {} bytes delivered", out.len());
            }
        }
        let data = b"hello world";
        for (tail, want) in [
            ("x-amz-checksum-crc32:AAAAAA==\r\n\r\n", "BadDigest"),
            ("\r\n", "MalformedTrailerError"),
            ("x-amz-checksum-sha1:AAAAAA==\r\n\r\n", "MalformedTrailerError"),
            ("x-amz-checksum-crc32:***\r\n\r\n", "InvalidRequest"),
        ] {
            for size in [1, 4, 1000] {
                let body = unsigned(data, 5, tail);
                let (out, err) = drain(frames(&body, size), crc32_trailer(), 11).await;
                assert_eq!(err.map(|r| r.code), Some(want), "{tail:?}");
                assert!(out.len() < 11, "{tail:?}: the whole body was delivered");
            }
        }
    }

    /// Forwarded, the trailer is the end of the upstream body and comes only
    /// after every check: a failing body stays short of the upstream
    /// Content-Length, whatever fails and however the input is cut.
    #[tokio::test]
    async fn a_forwarded_trailer_comes_only_after_every_check() {
        let data = b"hello world".repeat(300);
        let n = data.len() as u64;
        let crc = || Form::UnsignedTrailer(Some(Algorithm::Crc32));
        let mut c = Algorithm::Crc32.hasher();
        c.update(&data);
        let value = checksum::encode(&c.finish());
        let full = crate::reframe::encoded_len(n, Algorithm::Crc32);
        let right = format!("x-amz-checksum-crc32:{value}");
        let (ok, _) = drain_forwarded(frames(&unsigned(&data, 1000, &format!("{right}\r\n\r\n")), 777), crc(), n).await;
        let mut want = format!("{n:x}\r\n").into_bytes();
        want.extend_from_slice(&data);
        want.extend_from_slice(format!("\r\n0\r\n{right}\r\n\r\n").as_bytes());
        assert_eq!(String::from_utf8(ok).unwrap(), String::from_utf8(want).unwrap());
        for (tail, code) in [
            ("x-amz-checksum-crc32:AAAAAA==\r\n\r\n", "BadDigest"),
            ("\r\n", "MalformedTrailerError"),
            ("x-amz-checksum-sha1:AAAAAA==\r\n\r\n", "MalformedTrailerError"),
            ("x-amz-checksum-crc32:***\r\n\r\n", "InvalidRequest"),
        ] {
            for size in [1, 5, 1000, 5000] {
                let (out, err) = drain_forwarded(frames(&unsigned(&data, 1000, tail), size), crc(), n).await;
                assert_eq!(err.map(|r| r.code), Some(code), "{tail:?}");
                assert!((out.len() as u64) < full, "{tail:?}, frames of {size}: all {full} bytes delivered");
            }
        }
        // Shorter than declared.
        let body = unsigned(&data, 1000, &format!("{right}\r\n\r\n"));
        let (out, err) = drain_forwarded(frames(&body, 100), crc(), n + 1).await;
        assert_eq!(err.map(|r| r.code), Some("IncompleteBody"));
        assert!((out.len() as u64) < crate::reframe::encoded_len(n + 1, Algorithm::Crc32));
        // Signed: the trailer signature, a chunk signature, the checksum.
        let seed = doc_seed("106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e");
        let form = || Form::SignedTrailer(ChunkSigner::new(&seed), Some(Algorithm::Crc32));
        let (out, err) = drain_forwarded(frames(&resigned_trailer(&seed, &data, &right, false), 999), form(), n).await;
        assert!(err.is_none(), "{err:?}");
        assert_eq!(out.len() as u64, full);
        let last_sig = {
            let good = resigned_trailer(&seed, &data, &right, false);
            let text = String::from_utf8_lossy(&good).into_owned();
            let at = text.rfind(";chunk-signature=").unwrap() + 17;
            text.replace(&text[at..at + 64], &"0".repeat(64)).into_bytes()
        };
        for (what, body, code) in [
            ("trailer signature", resigned_trailer(&seed, &data, &right, true), "SignatureDoesNotMatch"),
            ("final chunk signature", last_sig, "SignatureDoesNotMatch"),
            ("checksum", resigned_trailer(&seed, &data, "x-amz-checksum-crc32:AAAAAA==", false), "BadDigest"),
        ] {
            for size in [1, 999, body.len()] {
                let (out, err) = drain_forwarded(frames(&body, size), form(), n).await;
                assert_eq!(err.map(|r| r.code), Some(code), "{what}");
                assert!((out.len() as u64) < full, "{what}, frames of {size}: all {full} bytes delivered");
            }
        }
    }

    #[tokio::test]
    async fn checks_every_trailing_checksum_algorithm() {
        let data: Vec<u8> = (0..70_000u32).map(|i| (i % 253) as u8).collect();
        for a in Algorithm::ALL {
            let mut c = a.hasher();
            c.update(&data);
            let value = checksum::encode(&c.finish());
            let body = unsigned(&data, 65536, &format!("{}:{value}\r\n\r\n", a.header()));
            let out = decode(&body, Form::UnsignedTrailer(Some(a)), data.len() as u64).await;
            assert_eq!(out.unwrap(), data, "{a:?}");
            let mut wrong = data.clone();
            wrong[69_999] ^= 1;
            let body = unsigned(&wrong, 65536, &format!("{}:{value}\r\n\r\n", a.header()));
            let r = decode(&body, Form::UnsignedTrailer(Some(a)), data.len() as u64).await.unwrap_err();
            assert_eq!(r.code, "BadDigest", "{a:?}");
            assert!(r.message.contains(a.header()), "{r}");
        }
    }

    #[tokio::test]
    async fn chunk_headers_and_trailers_split_anywhere() {
        let body = unsigned(b"hello world", 5, &format!("x-amz-checksum-crc32:{HELLO_CRC32}\r\n\r\n"));
        for i in 0..=body.len() {
            for j in i..=body.len() {
                let (out, err) = drain(cut(&body, &[i, j]), crc32_trailer(), 11).await;
                assert!(err.is_none(), "cut at {i}, {j}: {err:?}");
                assert_eq!(out, b"hello world");
            }
        }
    }

    /// Random data, chunk sizes and frame cuts decode to the data (a
    /// deterministic property test).
    #[tokio::test]
    async fn random_bodies_and_cuts_decode_to_their_data() {
        let mut rng = fastrand::Rng::with_seed(0x5eed);
        for _ in 0..200 {
            let data: Vec<u8> = (0..rng.usize(0..3000)).map(|_| rng.u8(..)).collect();
            let chunk = rng.usize(1..1200);
            let mut c = Algorithm::Crc64Nvme.hasher();
            c.update(&data);
            let tail = format!("x-amz-checksum-crc64nvme:{}\r\n\r\n", checksum::encode(&c.finish()));
            let body = unsigned(&data, chunk, &tail);
            let mut cuts: Vec<usize> = (0..rng.usize(0..12)).map(|_| rng.usize(0..=body.len())).collect();
            cuts.sort_unstable();
            let (out, err) =
                drain(cut(&body, &cuts), Form::UnsignedTrailer(Some(Algorithm::Crc64Nvme)), data.len() as u64).await;
            assert!(err.is_none(), "{} bytes in chunks of {chunk}, cuts {cuts:?}: {err:?}", data.len());
            assert_eq!(out, data);
        }
    }

    #[tokio::test]
    async fn framing_errors_are_refused() {
        let ok = format!("x-amz-checksum-crc32:{HELLO_CRC32}\r\n\r\n");
        // Chunk data not followed by CRLF, or bare LF line ends.
        let body = unsigned(b"hello world", 5, &ok)
            .iter()
            .copied()
            .map(|b| if b == b'\r' { b' ' } else { b })
            .collect::<Vec<_>>();
        assert!(decode(&body, crc32_trailer(), 11).await.is_err());
        assert_eq!(code(decode(b"5\r\nhelloXX6\r\n world\r\n0\r\n\r\n", crc32_trailer(), 11).await), "InvalidRequest");
        // Chunk sizes: oversize, longer than declared, not hex.
        assert_eq!(code(decode(b"fffffffffffffffff\r\n", crc32_trailer(), 11).await), "InvalidRequest");
        assert_eq!(code(decode(b"ffffffffffffffff\r\n", crc32_trailer(), 11).await), "InvalidRequest");
        assert_eq!(code(decode(b"c\r\nhello world!\r\n", crc32_trailer(), 11).await), "InvalidRequest");
        assert_eq!(code(decode(b"+5\r\nhello\r\n", crc32_trailer(), 11).await), "InvalidRequest");
        assert_eq!(code(decode(b"\r\nhello\r\n", crc32_trailer(), 11).await), "InvalidRequest");
        // A header line that never ends is refused before it fills memory.
        let endless = vec![b'0'; MAX_LINE + 10];
        let (_, err) = drain(frames(&endless, 100), crc32_trailer(), 11).await;
        assert_eq!(err.unwrap().code, "InvalidRequest");
        // Shorter than declared, truncated anywhere.
        assert_eq!(code(decode(&unsigned(b"hello world", 5, &ok), crc32_trailer(), 12).await), "IncompleteBody");
        let full = unsigned(b"hello world", 5, &ok);
        for end in [0, 2, 5, 8, 11, 14, 19, 22] {
            assert_eq!(code(decode(&full[..end], crc32_trailer(), 11).await), "IncompleteBody", "cut at {end}");
        }
        // Signed chunks need their signature.
        let seed = doc_seed("4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9");
        assert_eq!(code(decode(b"5\r\nhello\r\n", signed(&seed), 5).await), "SignatureDoesNotMatch");
        // Trailing headers without a -TRAILER payload, or not announced.
        let mut s = ChunkSigner::new(&seed);
        s.check(EMPTY_SHA256, "");
        let with_trailer = format!("0;chunk-signature={}\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n", s.prev);
        assert_eq!(code(decode(with_trailer.as_bytes(), signed(&seed), 0).await), "MalformedTrailerError");
        let unannounced = unsigned(b"", 5, "x-amz-checksum-crc32:AAAAAA==\r\n\r\n");
        assert_eq!(code(decode(&unannounced, Form::UnsignedTrailer(None), 0).await), "MalformedTrailerError");
        let unsigned_sig = unsigned(b"", 5, "x-amz-trailer-signature:00\r\n\r\n");
        assert_eq!(code(decode(&unsigned_sig, Form::UnsignedTrailer(None), 0).await), "MalformedTrailerError");
        // Bytes after the end.
        let mut extra = unsigned(b"hello world", 5, &ok);
        extra.extend_from_slice(b"more");
        assert_eq!(code(decode(&extra, crc32_trailer(), 11).await), "InvalidRequest");
    }

    #[tokio::test]
    async fn tolerates_a_missing_final_crlf() {
        let data = b"hello world";
        for tail in [
            format!("x-amz-checksum-crc32:{HELLO_CRC32}\r\n\r\n"),
            format!("x-amz-checksum-crc32:{HELLO_CRC32}\r\n"),
            format!("x-amz-checksum-crc32:{HELLO_CRC32}"),
        ] {
            assert_eq!(decode(&unsigned(data, 5, &tail), crc32_trailer(), 11).await.unwrap(), data, "{tail:?}");
        }
        // No trailer announced: the body may end right after the final chunk.
        for tail in ["\r\n", ""] {
            assert_eq!(decode(&unsigned(data, 4, tail), Form::UnsignedTrailer(None), 11).await.unwrap(), data);
        }
        // Announced but absent.
        assert_eq!(code(decode(&unsigned(data, 5, ""), crc32_trailer(), 11).await), "MalformedTrailerError");
        // The signed form without its last CRLF.
        let (mut body, seed) = doc_body("ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648");
        body.truncate(body.len() - 2);
        assert_eq!(decode(&body, signed(&seed), 66560).await.unwrap().len(), 66560);
    }

    #[tokio::test]
    async fn an_empty_upload_is_verified_too() {
        let seed = doc_seed("4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9");
        let mut s = ChunkSigner::new(&seed);
        s.check(EMPTY_SHA256, "");
        let body = format!("0;chunk-signature={}\r\n\r\n", s.prev);
        assert_eq!(decode(body.as_bytes(), signed(&seed), 0).await.unwrap(), b"");
        let bad = format!("0;chunk-signature={}\r\n\r\n", "2".repeat(64));
        assert_eq!(code(decode(bad.as_bytes(), signed(&seed), 0).await), "SignatureDoesNotMatch");
        let tail = "x-amz-checksum-sha256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\r\n\r\n";
        let sha = || Form::UnsignedTrailer(Some(Algorithm::Sha256));
        assert_eq!(decode(&unsigned(b"", 1, tail), sha(), 0).await.unwrap(), b"");
        let tail = "x-amz-checksum-sha256:57DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\r\n\r\n";
        assert_eq!(code(decode(&unsigned(b"", 1, tail), sha(), 0).await), "BadDigest");
    }

    /// Found by the aws_chunked fuzz target: a huge
    /// x-amz-decoded-content-length with a trailing checksum overflowed the
    /// upstream Content-Length computation (a panic in a debug build, a
    /// wrong length in a release one).
    #[test]
    fn decoded_length_overflow_is_refused_not_a_panic() {
        for n in [MAX_DECODED_LEN + 1, u64::MAX / 2, u64::MAX] {
            let r = declared_length(n).unwrap_err();
            assert_eq!((r.status, r.code), (StatusCode::BAD_REQUEST, "EntityTooLarge"), "{n}");
        }
        assert_eq!(declared_length(MAX_DECODED_LEN).unwrap(), MAX_DECODED_LEN);
        for a in Algorithm::ALL {
            assert!(crate::reframe::encoded_len(MAX_DECODED_LEN, a) > MAX_DECODED_LEN);
        }
    }

    /// Found by the aws_chunked fuzz target: bytes after the end of the
    /// body were refused when they came in the same read as the end, and
    /// ignored (the upload accepted) when they came in a later one.
    #[tokio::test]
    async fn bytes_after_the_end_are_refused_however_the_body_is_cut() {
        let ok = format!("x-amz-checksum-crc32:{HELLO_CRC32}\r\n\r\n");
        let good = unsigned(b"hello world", 5, &ok);
        let mut extra = good.clone();
        extra.extend_from_slice(b"r\r\n1\r\nl\r\n");
        for i in 0..=extra.len() {
            let (out, err) = drain(cut(&extra, &[i]), crc32_trailer(), 11).await;
            assert_eq!(err.map(|r| r.code), Some("InvalidRequest"), "cut at {i}");
            assert!(out.len() < 11, "cut at {i}: the whole body was delivered");
        }
        for i in 0..=good.len() {
            let (out, err) = drain(cut(&good, &[i]), crc32_trailer(), 11).await;
            assert!(err.is_none(), "cut at {i}: {err:?}");
            assert_eq!(out, b"hello world");
        }
    }
}
