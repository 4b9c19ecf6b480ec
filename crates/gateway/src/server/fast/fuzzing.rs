//! The fast path's wire parsers and writers for [`crate::fuzzing`], with
//! their results as plain types.

use crate::fuzzing::{AnswerHead, ClientHead, TakenHead};

use super::wire::{self, Framing, Parsed};

/// [`wire::client_head`] of `buf`.
pub(crate) fn client_head(buf: &[u8], max_body: usize) -> ClientHead {
    let mut headers = http::HeaderMap::new();
    match wire::client_head(buf, max_body, &mut headers) {
        Parsed::Partial => ClientHead::Partial,
        Parsed::Hyper => ClientHead::Hyper,
        Parsed::Head(h) => {
            let (path, query) = h.path_and_query(buf);
            ClientHead::Taken(TakenHead {
                method: h.method.as_str().to_string(),
                path: path.to_string(),
                query: (h.question.is_some()).then(|| query.to_string()),
                len: h.len,
                close: h.close,
                expect: h.expect,
                head_len: h.head_len,
                headers: headers.iter().map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec())).collect(),
            })
        }
    }
}

/// [`wire::backend_head`] of `buf`, and the head the client gets for it
/// ([`wire::relayed_head`], from backend `backend`, `body_len` when the
/// answer is not a HEAD's).
pub(crate) fn backend_head(
    buf: &[u8],
    head: bool,
    limit: usize,
    backend: &str,
    body_len: Option<usize>,
) -> Result<Option<AnswerHead>, String> {
    let Some((skipped, h)) = wire::backend_head(buf, head, limit).map_err(|m| m.0)? else {
        return Ok(None);
    };
    let mut relayed = bytes::BytesMut::new();
    wire::relayed_head(&mut relayed, buf, &h, backend, body_len);
    Ok(Some(AnswerHead {
        skipped,
        status: h.status.as_u16(),
        fields: h.fields.iter().map(|(n, v)| (buf[n.clone()].to_vec(), buf[v.clone()].to_vec())).collect(),
        head_len: h.head_len,
        length: match h.framing {
            Framing::None => Some(0),
            Framing::Length(n) => Some(n),
            Framing::Chunked | Framing::Close => None,
        },
        chunked: h.framing == Framing::Chunked,
        until_close: h.framing == Framing::Close,
        reusable: h.reusable,
        relayed: relayed.to_vec(),
    }))
}

/// [`wire::dechunk`] of `buf`: the body and the bytes it took.
pub(crate) fn dechunk(buf: &[u8], limit: usize) -> Result<Option<(Vec<u8>, usize)>, String> {
    Ok(wire::dechunk(buf, limit).map_err(|m| m.0)?.map(|(body, used)| (body.to_vec(), used)))
}
