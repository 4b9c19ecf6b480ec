//! The client's request body as the backends get it: the payload hash
//! verified while streaming, aws-chunked framing removed.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use http::HeaderMap;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::auth::{Payload, Verified};
use crate::body::{Body, ClientBody};

/// The body to forward and its length, or why the request is refused.
pub fn client_body(
    body: Incoming,
    v: &Verified,
    headers: &HeaderMap,
    len: Option<u64>,
    counter: Arc<AtomicU64>,
) -> Result<(Body, Option<u64>), String> {
    match &v.payload {
        Payload::Unsigned => Ok((ClientBody::new(body, None, len, counter).boxed(), len)),
        Payload::Sha256(h) => Ok((ClientBody::new(body, Some(*h), len, counter).boxed(), len)),
        Payload::StreamingUnsignedTrailer | Payload::StreamingSigned { .. } => {
            let _ = headers;
            Err("aws-chunked uploads are not supported by this gateway yet; set AWS_REQUEST_CHECKSUM_CALCULATION=when_required".into())
        }
    }
}
