//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz): thin wrappers
//! over private modules. Not an API: hidden from the documentation, and
//! they change with the code they reach.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use cutover_core::Secret;
use cutover_s3::sigv4::AmzDate;
use http::StatusCode;
use http_body::{Body as HttpBody, Frame};
use prometheus_client::metrics::counter::Counter;

use crate::auth::Seed;
use crate::body::{BoxError, S3Refusal};
use crate::checksum::Algorithm;
use crate::chunked::{AwsChunked, ChunkSigner, Decoded, Decoder, Form, declared_length};
use crate::reframe::TrailerFraming;

/// The secret of the S3 documentation's examples (`AKIAIOSFODNN7EXAMPLE`).
pub const DOC_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
/// The request date of those examples.
pub const DOC_DATETIME: &str = "20130524T000000Z";

/// An aws-chunked upload as `x-amz-content-sha256` and `x-amz-trailer`
/// announce it.
#[derive(Debug, Clone, Copy)]
pub struct ChunkedForm {
    /// Chunk signatures chained from the seed signature (signed with
    /// [`DOC_SECRET`], [`DOC_DATETIME`], `us-east-1`).
    pub signed: bool,
    /// A trailer section (`-TRAILER`); always true when not signed.
    pub trailer: bool,
    /// The announced trailing checksum, an index into crc32, crc32c,
    /// crc64nvme, sha1, sha256 (ignored without a trailer).
    pub checksum: Option<usize>,
}

impl ChunkedForm {
    fn algorithm(&self) -> Option<Algorithm> {
        self.checksum.and_then(|i| Algorithm::ALL.get(i).copied()).filter(|_| self.trailer || !self.signed)
    }

    fn form(&self, seed_signature: &str) -> Form {
        let signer = || {
            ChunkSigner::new(&Seed {
                signature: seed_signature.to_string(),
                date: AmzDate { datetime: DOC_DATETIME.into(), date: DOC_DATETIME[..8].into() },
                region: "us-east-1".into(),
                secret: Secret::new(DOC_SECRET),
            })
        };
        match (self.signed, self.trailer) {
            (true, false) => Form::Signed(signer()),
            (true, true) => Form::SignedTrailer(signer(), self.algorithm()),
            (false, _) => Form::UnsignedTrailer(self.algorithm()),
        }
    }
}

/// A refusal as the client would see it: status and S3 error code.
pub type Refused = (StatusCode, &'static str);

/// Decodes an aws-chunked body given in `pieces` (as the network cut it)
/// with the gateway's decoder: the decoded bytes, or the refusal.
pub fn decode_aws_chunked(
    form: ChunkedForm,
    seed_signature: &str,
    declared: u64,
    pieces: &[&[u8]],
) -> Result<Vec<u8>, Refused> {
    let mut dec = Decoder::new(form.form(seed_signature), declared);
    let mut pieces = pieces.iter();
    let mut out = Vec::new();
    let mut ended = false;
    loop {
        match dec.next_event() {
            Ok(Decoded::Data(d)) => out.extend_from_slice(&d),
            Ok(Decoded::End) => return Ok(out),
            Ok(Decoded::NeedInput) => match pieces.next() {
                Some(p) => dec.push(p),
                None => {
                    assert!(!ended, "the decoder asked for more input after the end of the input");
                    ended = true;
                    dec.end_of_input();
                }
            },
            Err(r) => return Err((r.status, r.code)),
        }
    }
}

/// What the upstream request receives from the client's aws-chunked body,
/// as [`crate::chunked::client_body`] builds it.
#[derive(Debug)]
pub struct Forwarded {
    /// The upstream Content-Length.
    pub len: u64,
    /// The bytes forwarded before the body ended or failed.
    pub bytes: Vec<u8>,
    /// Why the body failed, if it did.
    pub refused: Option<Refused>,
}

/// The same body through the hyper body the gateway forwards upstream
/// (re-framed with its checksum trailer when one is announced), or the
/// refusal of its declared length.
pub fn forward_aws_chunked(
    form: ChunkedForm,
    seed_signature: &str,
    declared: u64,
    pieces: &[&[u8]],
) -> Result<Forwarded, Refused> {
    let declared = declared_length(declared).map_err(|r| (r.status, r.code))?;
    let inner = Pieces(pieces.iter().map(|p| Bytes::copy_from_slice(p)).collect());
    let body = AwsChunked::new(inner, Decoder::new(form.form(seed_signature), declared), Counter::default());
    let (mut body, len) = match form.algorithm() {
        Some(a) => {
            let framing = TrailerFraming::new(a, declared);
            let len = framing.encoded_len();
            (body.forward_trailer(framing), len)
        }
        None => (body, declared),
    };
    let mut cx = Context::from_waker(Waker::noop());
    let mut bytes = Vec::new();
    loop {
        match Pin::new(&mut body).poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(f))) => {
                if let Ok(d) = f.into_data() {
                    bytes.extend_from_slice(&d);
                }
            }
            Poll::Ready(Some(Err(e))) => {
                let refused = e.downcast_ref::<S3Refusal>().map(|r| (r.status, r.code));
                return Ok(Forwarded { len, bytes, refused: Some(refused.expect("the body fails with a S3Refusal")) });
            }
            Poll::Ready(None) => return Ok(Forwarded { len, bytes, refused: None }),
            Poll::Pending => unreachable!("every piece is ready"),
        }
    }
}

/// A request body whose frames are all there.
struct Pieces(VecDeque<Bytes>);

impl HttpBody for Pieces {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

/// The `<Key>` values of a DeleteObjects request body (none when the
/// gateway refuses the body as `MalformedXML`).
pub fn delete_keys(body: &[u8]) -> Vec<String> {
    crate::xmlbody::parse_delete(body).map(|r| r.objects.into_iter().map(|o| o.key).collect()).unwrap_or_default()
}

/// The `<Code>` of an error document (a copy or CompleteMultipartUpload
/// answered 200 with an error body).
pub fn error_code(body: &[u8]) -> Option<String> {
    crate::s3xml::error_code(body)
}

/// A listing or multipart answer with the backend's bucket name replaced.
pub fn rename_bucket(body: &[u8], backend_bucket: &str, client_bucket: &str) -> Bytes {
    crate::s3xml::rename_bucket(body, backend_bucket, client_bucket)
}

/// Escapes text for an XML element, as the gateway's documents do.
pub use cutover_s3::xml::escape;

/// The fast path's own HTTP/1.1 (`server/fast/wire.rs`): a client's
/// request head, a backend's answer head with the head relayed for the
/// client, a chunked answer body.
pub use crate::server::fast_fuzzing::{
    AnswerHead, ClientHead, TakenHead, backend_head as fast_answer_head, client_head as fast_client_head,
    dechunk as fast_dechunk,
};
