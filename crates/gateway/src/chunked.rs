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
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use cutover_s3::sigv4::{self, EMPTY_SHA256};
use http::{HeaderMap, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use prometheus_client::metrics::counter::Counter;
use sha2::{Digest, Sha256};

use crate::auth::{Payload, Seed, Verified};
use crate::body::{Body, BoxError, ClientBody, Fault, S3Refusal};
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
    counter: Counter,
    fault: &Fault,
) -> Result<Forward, S3Refusal> {
    let invalid = |msg: String| S3Refusal::bad_request("InvalidRequest", msg);
    let decoded = || {
        headers
            .get(crate::amz::X_AMZ_DECODED_CONTENT_LENGTH)
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
            return Ok(Forward { body, len, payload: UpPayload::Sha256(sigv4::hex_lower(h)) });
        }
        Payload::StreamingUnsignedTrailer => Form::UnsignedTrailer(announced_trailer(headers)?),
        Payload::StreamingSigned { trailer: false } => {
            if headers.contains_key(crate::amz::X_AMZ_TRAILER) {
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
pub fn declared_length(n: u64) -> Result<u64, S3Refusal> {
    if n > MAX_DECODED_LEN {
        return Err(S3Refusal::bad_request(
            "EntityTooLarge",
            format!("x-amz-decoded-content-length {n} exceeds the maximum object size ({MAX_DECODED_LEN} bytes)"),
        ));
    }
    Ok(n)
}

/// The checksum `x-amz-trailer` announces, if any.
fn announced_trailer(headers: &HeaderMap) -> Result<Option<Algorithm>, S3Refusal> {
    let invalid = |msg: String| S3Refusal::bad_request("InvalidRequest", msg);
    let mut names = Vec::new();
    for v in headers.get_all(crate::amz::X_AMZ_TRAILER) {
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
        let sig = sigv4::hex_lower(&sigv4::hmac(&self.key, sts.as_bytes()));
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
            sigv4::hex_lower(&Sha256::digest(canonical).into())
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

/// Where the decoder is in the aws-chunked framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Header,
    Data { remaining: u64 },
    DataEnd,
    Trailer,
    Done,
}

/// What the decoder has next.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Decoded bytes.
    Data(Bytes),
    /// Nothing until more input arrives (or the input ends).
    NeedInput,
    /// The body ended and every check passed.
    End,
}

fn malformed(msg: impl Into<String>) -> S3Refusal {
    S3Refusal::bad_request("InvalidRequest", format!("aws-chunked body: {}", msg.into()))
}

fn incomplete() -> S3Refusal {
    S3Refusal::bad_request("IncompleteBody", "the aws-chunked body ended before x-amz-decoded-content-length bytes")
}

fn bad_signature(what: &str) -> S3Refusal {
    S3Refusal::new(
        StatusCode::FORBIDDEN,
        "SignatureDoesNotMatch",
        format!("the {what} signature does not match the signature computed with the client's secret"),
    )
}

fn malformed_trailer(msg: impl Into<String>) -> S3Refusal {
    S3Refusal::bad_request(
        "MalformedTrailerError",
        format!("the trailer of the aws-chunked body is not well formed: {}", msg.into()),
    )
}

/// The aws-chunked framing as a state machine over the bytes pushed into
/// it; verifies as it decodes. Knows nothing of hyper.
#[derive(Debug)]
pub struct Decoder {
    buf: BytesMut,
    st: Stage,
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
            st: Stage::Header,
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
    fn line(&mut self, what: &str) -> Result<Option<String>, S3Refusal> {
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
    pub fn next_event(&mut self) -> Result<Decoded, S3Refusal> {
        loop {
            match self.st {
                // Nothing may follow the end, however the input is cut.
                Stage::Done if !self.buf.is_empty() => return Err(malformed("data after the end of the body")),
                Stage::Done => return Ok(if self.eof { Decoded::End } else { Decoded::NeedInput }),
                Stage::Header => {
                    let Some(line) = self.line("chunk header")? else {
                        return if self.eof { Err(incomplete()) } else { Ok(Decoded::NeedInput) };
                    };
                    self.header(&line)?;
                }
                Stage::Data { remaining } => {
                    if self.buf.is_empty() {
                        return if self.eof { Err(incomplete()) } else { Ok(Decoded::NeedInput) };
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
                        self.st = Stage::DataEnd;
                        if let Some(s) = &mut self.signer {
                            let h = sigv4::hex_lower(&std::mem::take(&mut self.chunk_hash).finalize().into());
                            if !s.check(&h, &self.claimed) {
                                return Err(bad_signature("chunk"));
                            }
                        }
                    } else {
                        self.st = Stage::Data { remaining: remaining - n };
                    }
                    return Ok(Decoded::Data(data));
                }
                Stage::DataEnd => {
                    if self.buf.len() < 2 {
                        return if self.eof { Err(incomplete()) } else { Ok(Decoded::NeedInput) };
                    }
                    if &self.buf[..2] != b"\r\n" {
                        return Err(malformed("chunk data not followed by CRLF"));
                    }
                    self.buf.advance(2);
                    self.st = Stage::Header;
                }
                Stage::Trailer => match self.line("trailer line")? {
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
                    None => return Ok(Decoded::NeedInput),
                },
            }
        }
    }

    /// `size[;chunk-signature=sig]`.
    fn header(&mut self, line: &str) -> Result<(), S3Refusal> {
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
            self.st = Stage::Data { remaining: size };
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
        self.st = Stage::Trailer;
        Ok(())
    }

    fn trailer_line(&mut self, line: &str) -> Result<(), S3Refusal> {
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
    fn finish(&mut self) -> Result<(), S3Refusal> {
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
                S3Refusal::bad_request("InvalidRequest", format!("the value of the {} trailer is invalid", a.header()))
            })?;
            let computed = c.finish();
            if claimed != computed {
                return Err(S3Refusal::bad_request(
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
        self.st = Stage::Done;
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
    counter: Counter,
    fault: Option<Fault>,
    finished: bool,
}

impl<B> std::fmt::Debug for AwsChunked<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsChunked").field("dec", &self.dec).finish()
    }
}

impl<B> AwsChunked<B> {
    pub fn new(inner: B, dec: Decoder, counter: Counter) -> Self {
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

    fn fail(&mut self, r: S3Refusal) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
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
                Ok(Decoded::End) => {
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
                Ok(Decoded::Data(d)) => {
                    this.counter.inc_by(d.len() as u64);
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
                Ok(Decoded::NeedInput) => match Pin::new(&mut this.inner).poll_frame(cx) {
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
#[path = "chunked_tests.rs"]
mod tests;
