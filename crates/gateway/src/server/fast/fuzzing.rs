//! The fast path's wire parsers and writers for [`crate::fuzzing`] (which
//! re-exports them), with their results as plain types.

use super::wire::{self, Framing, Parsed};

/// A client's request head as the fast path reads it
/// (`server/fast/wire.rs`, `client_head`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientHead {
    /// Not a whole head yet.
    Partial,
    /// Not the fast path's: hyper reads the connection from its start.
    Hyper,
    /// The fast path takes it.
    Taken(TakenHead),
}

/// A request head the fast path takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakenHead {
    pub method: String,
    pub path: String,
    /// After the `?`, when there is one.
    pub query: Option<String>,
    /// The body's length.
    pub len: usize,
    pub close: bool,
    pub expect: bool,
    /// Bytes of the head, blank line included.
    pub head_len: usize,
    /// The header fields, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// A backend's answer head as the fast path reads it
/// (`server/fast/wire.rs`, `backend_head`), and the head it writes for the
/// client (`relayed_head`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerHead {
    /// Bytes of informational (1xx) heads before it.
    pub skipped: usize,
    pub status: u16,
    /// Its header fields (names and values as sent), in order.
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
    /// Bytes of the head, blank line included (after `skipped`).
    pub head_len: usize,
    /// The body's length when the head gives it (0: no body).
    pub length: Option<usize>,
    pub chunked: bool,
    /// The body ends when the backend closes the connection.
    pub until_close: bool,
    pub reusable: bool,
    /// The answer's head as written to the client.
    pub relayed: Vec<u8>,
}

/// Reads a client's request head from `buf` as the fast path does
/// (`wire::client_head`).
pub fn client_head(buf: &[u8], max_body: usize) -> ClientHead {
    let mut headers = http::HeaderMap::new();
    match wire::client_head(buf, max_body, &mut headers) {
        Parsed::Partial => ClientHead::Partial,
        Parsed::Hyper => ClientHead::Hyper,
        Parsed::Head(h) => {
            let (path, query) = h.path_and_query(buf);
            ClientHead::Taken(TakenHead {
                method: h.method.as_str().to_string(),
                path: path.to_string(),
                query: h.question.is_some().then(|| query.to_string()),
                len: h.len,
                close: h.close,
                expect: h.expect,
                head_len: h.head_len,
                headers: headers.iter().map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec())).collect(),
            })
        }
    }
}

/// Reads a backend's answer head from `buf` as the fast path does
/// (`wire::backend_head`; `Ok(None)`: not whole yet; `head`: the request
/// was a HEAD; `limit`: the largest body taken), with the head written for
/// the client as coming from `backend` (`wire::relayed_head`;
/// `body_len`: the body's length, none for a HEAD).
pub fn backend_head(
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

/// Decodes a backend's chunked answer body as the fast path does
/// (`wire::dechunk`): the body and the bytes it took once whole
/// (`Ok(None)`: not whole yet).
pub fn dechunk(buf: &[u8], limit: usize) -> Result<Option<(Vec<u8>, usize)>, String> {
    Ok(wire::dechunk(buf, limit).map_err(|m| m.0)?.map(|(body, used)| (body.to_vec(), used)))
}
