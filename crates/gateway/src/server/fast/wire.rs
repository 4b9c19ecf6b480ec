//! HTTP/1.1 on the wire for the fast path: a client's request head read
//! strictly (anything unusual is left to hyper), an answer written, and a
//! backend's answer read whole.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use cutover_s3::sigv4;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};

use crate::upstream::{HeadOut, Part, push_query};

/// Header lines a head may have on the fast path (more: hyper's).
const MAX_HEADERS: usize = 64;

/// A client's request head the fast path takes (its header fields are in
/// the map given to [`client_head`]).
#[derive(Debug)]
pub(super) struct ClientHead {
    pub method: Method,
    /// Where the request-target (path and query, as sent) lies in the head.
    pub target: Range<usize>,
    /// Where its `?` is, from the target's start.
    pub question: Option<usize>,
    /// The body's length (Content-Length; 0 without it).
    pub len: usize,
    /// The client asked to close the connection after this answer.
    pub close: bool,
    /// The client sent `Expect: 100-continue` and may wait for the interim
    /// answer before it sends the body.
    pub expect: bool,
    /// Bytes of the head, blank line included.
    pub head_len: usize,
}

/// What the bytes read so far hold.
#[derive(Debug)]
pub(super) enum Parsed {
    /// A head the fast path takes.
    Head(ClientHead),
    /// Not a whole head yet.
    Partial,
    /// Not for the fast path (or not valid): hyper serves the connection
    /// from here, and answers an invalid head as it always did.
    Hyper,
}

/// Reads a client's request head from `buf`. The fast path takes only
/// plain requests: HTTP/1.1, `PUT`, `DELETE` or `HEAD` on an origin-form
/// path outside `/-/`, framed by at most one digits-only Content-Length of
/// at most `max_body` bytes (none for `DELETE` and `HEAD`), no
/// Transfer-Encoding or Upgrade, no Expect but `100-continue` on a PUT, no Connection tokens but
/// `keep-alive` and `close`, no aws-chunked body. Everything else, and any
/// head httparse refuses, is [`Parsed::Hyper`]. The header fields go into
/// `headers`, cleared first (its room is kept from request to request).
pub(super) fn client_head(buf: &[u8], max_body: usize, headers: &mut HeaderMap) -> Parsed {
    let mut lines = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut lines);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Hyper,
    };
    let method = match req.method {
        Some("PUT") => Method::PUT,
        Some("DELETE") => Method::DELETE,
        Some("HEAD") => Method::HEAD,
        _ => return Parsed::Hyper,
    };
    let Some(path) = req.path.filter(|p| p.starts_with('/') && !p.starts_with("/-/")) else {
        return Parsed::Hyper;
    };
    if req.version != Some(1) {
        return Parsed::Hyper;
    }
    if !target_taken(path.as_bytes()) {
        return Parsed::Hyper;
    }
    // httparse lends the target from `buf`: where it lies there.
    let start = path.as_ptr() as usize - buf.as_ptr() as usize;
    let (target, question) = (start..start + path.len(), path.find('?'));
    headers.clear();
    headers.reserve(req.headers.len());
    let (mut len, mut close, mut expect) = (None, false, false);
    for h in req.headers.iter() {
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(h.name.as_bytes()), HeaderValue::from_bytes(h.value))
        else {
            return Parsed::Hyper;
        };
        if name == header::CONTENT_LENGTH {
            if len.is_some() {
                return Parsed::Hyper;
            }
            match digits(h.value) {
                Some(n) if n <= max_body => len = Some(n),
                _ => return Parsed::Hyper,
            }
        } else if name == header::EXPECT {
            if expect || method != Method::PUT || !h.value.eq_ignore_ascii_case(b"100-continue") {
                return Parsed::Hyper;
            }
            expect = true;
        } else if name == header::TRANSFER_ENCODING || name == header::UPGRADE {
            return Parsed::Hyper;
        } else if name == header::CONNECTION {
            for token in h.value.split(|b| *b == b',').map(|t| t.trim_ascii()) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if !token.eq_ignore_ascii_case(b"keep-alive") {
                    return Parsed::Hyper;
                }
            }
        } else if (name == crate::amz::X_AMZ_CONTENT_SHA256 && h.value.starts_with(b"STREAMING-"))
            || (name == header::CONTENT_ENCODING && contains_ignore_case(h.value, b"aws-chunked"))
        {
            return Parsed::Hyper;
        }
        headers.append(name, value);
    }
    let len = match len {
        None if method == Method::PUT => return Parsed::Hyper,
        Some(n) if n > 0 && method != Method::PUT => return Parsed::Hyper,
        n => n.unwrap_or(0),
    };
    Parsed::Head(ClientHead { method, target, question, len, close, expect, head_len })
}

impl ClientHead {
    /// The path and the query (empty without one) as sent, from the head's
    /// bytes (`head`: the buffer [`client_head`] read, from its start).
    pub fn path_and_query<'a>(&self, head: &'a [u8]) -> (&'a str, &'a str) {
        // ASCII ([`target_taken`]): the check cannot fail.
        let target = head.get(self.target.clone()).and_then(|t| std::str::from_utf8(t).ok()).unwrap_or("/");
        match self.question {
            Some(q) => (&target[..q], &target[q + 1..]),
            None => (target, ""),
        }
    }
}

/// Does the fast path take a request-target of these bytes? Only RFC
/// 3986's unreserved characters, sub-delimiters, `:`, `@`, `/`, `?` and
/// `%`, which `http::Uri` takes too. A target with any other byte (a
/// fragment, a space, a quote, a brace, text not percent-encoded, ...) is
/// hyper's, as every request was before: taken or refused exactly as then.
///
/// Written as range comparisons folded without an early exit, which the
/// compiler does 16 or 32 bytes at a time (a table lookup per byte cost as
/// much as `http::Uri`'s whole parse).
fn target_taken(t: &[u8]) -> bool {
    // (`|`, not `||`: no branch per byte, so it vectorises.)
    let refused = |b: u8| {
        (b.wrapping_sub(0x21) > 0x7e - 0x21)
            | (b == b'"')
            | (b == b'#')
            | (b == b'<')
            | (b == b'>')
            | (b.wrapping_sub(b'[') <= b'^' - b'[')
            | (b == b'`')
            | (b.wrapping_sub(b'{') <= b'}' - b'{')
    };
    let mut chunks = t.chunks_exact(32);
    for chunk in &mut chunks {
        if chunk.iter().fold(false, |any, &b| any | refused(b)) {
            return false;
        }
    }
    !chunks.remainder().iter().any(|&b| refused(b))
}

/// A decimal number of at most 15 digits and nothing else (no sign, no
/// spaces, no list).
fn digits(v: &[u8]) -> Option<usize> {
    if v.is_empty() || v.len() > 15 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0usize, |n, d| n * 10 + usize::from(d - b'0')))
}

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

/// Writes an answer's head: the status line, `headers`, then Content-Length
/// `len` unless `headers` already carry one (a HEAD answer's), the `date`
/// when `headers` have none, and the blank line.
pub(super) fn answer_head(out: &mut BytesMut, status: StatusCode, headers: &HeaderMap, len: Option<usize>) {
    status_line(out, status);
    put_headers(out, headers);
    end_head(out, len.filter(|_| !headers.contains_key(header::CONTENT_LENGTH)), headers.contains_key(header::DATE));
}

fn status_line(out: &mut BytesMut, status: StatusCode) {
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(status.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.put_slice(b"\r\n");
}

/// The head's end: `content-length: len` when given, the `date` unless
/// `dated`, the blank line.
fn end_head(out: &mut BytesMut, len: Option<usize>, dated: bool) {
    if let Some(len) = len {
        out.put_slice(b"content-length: ");
        out.put_slice(crate::upstream::decimal_digits(len as u64, &mut [0u8; 20]));
        out.put_slice(b"\r\n");
    }
    if !dated {
        out.put_slice(b"date: ");
        with_http_date(|d| out.put_slice(d.as_bytes()));
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"\r\n");
}

/// A request head for a backend written as it goes on the wire, as
/// [`Upstream::sign_into`](crate::upstream::Upstream::sign_into) gives it:
/// `METHOD target HTTP/1.1`, the headers; [`WireHead::end`] adds the blank
/// line.
pub(super) struct WireHead<'a> {
    pub out: &'a mut BytesMut,
    pub method: &'a Method,
}

impl HeadOut for WireHead<'_> {
    fn target(&mut self, path: &str, query: &[(String, String)]) {
        self.out.put_slice(self.method.as_str().as_bytes());
        self.out.put_u8(b' ');
        self.out.put_slice(path.as_bytes());
        if !query.is_empty() {
            let mut q = String::new();
            push_query(&mut q, query);
            self.out.put_slice(q.as_bytes());
        }
        self.out.put_slice(b" HTTP/1.1\r\n");
    }

    fn header(&mut self, part: &Part<'_>) -> bool {
        let out = &mut *self.out;
        let start = out.len();
        out.put_slice(part.name().as_str().as_bytes());
        out.put_slice(b": ");
        let valid = match *part {
            Part::Value(_, v) => {
                out.put_slice(v.as_bytes());
                true
            }
            Part::Text(_, t) => {
                out.put_slice(t.as_bytes());
                value_bytes(t.as_bytes())
            }
            Part::Number(_, n) => {
                out.put_slice(crate::upstream::decimal_digits(n, &mut [0u8; 20]));
                true
            }
            Part::Authorization { key_id, scope, signed, signature } => {
                let from = out.len();
                for p in sigv4::authorization_pieces(key_id, scope, signed, signature) {
                    out.put_slice(p.as_bytes());
                }
                value_bytes(&out[from..])
            }
        };
        if !valid {
            out.truncate(start);
            return false;
        }
        out.put_slice(b"\r\n");
        true
    }
}

impl WireHead<'_> {
    /// The blank line that ends the head.
    pub fn end(self) {
        self.out.put_slice(b"\r\n");
    }
}

/// Are these bytes a header value as `HeaderValue::from_bytes` takes one
/// (no control character but tab)?
fn value_bytes(v: &[u8]) -> bool {
    v.iter().fold(true, |ok, &b| ok & ((b >= 32 && b != 127) | (b == b'\t')))
}

fn put_headers<'a>(out: &mut BytesMut, headers: impl IntoIterator<Item = (&'a HeaderName, &'a HeaderValue)>) {
    for (k, v) in headers {
        out.put_slice(k.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(v.as_bytes());
        out.put_slice(b"\r\n");
    }
}

/// Runs `f` with the HTTP date of now, formatted once per second per thread.
fn with_http_date(f: impl FnOnce(&str)) {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};
    thread_local! {
        static LAST: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    LAST.with(|l| {
        let mut l = l.borrow_mut();
        if l.0 != secs || l.1.is_empty() {
            *l = (secs, httpdate::fmt_http_date(now));
        }
        f(&l.1)
    })
}

/// A backend's answer head.
#[derive(Debug)]
pub(super) struct BackendHead {
    pub status: StatusCode,
    /// Each header's name and value, as ranges of the bytes read (from the
    /// start of the buffer given to [`backend_head`], informational heads
    /// included); httparse took names and values only as `HeaderName` and
    /// `HeaderValue` take them.
    pub fields: Vec<(Range<usize>, Range<usize>)>,
    pub head_len: usize,
    pub framing: Framing,
    /// The connection may carry another request once the body is read.
    pub reusable: bool,
}

/// How a backend's answer body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    None,
    Length(usize),
    Chunked,
    /// Until the backend closes the connection.
    Close,
}

/// Why a backend's answer could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Malformed(pub String);

/// Reads a backend's answer head from `buf` (`Ok(None)`: not whole yet).
/// Informational (1xx) heads before it are skipped: `skipped` is their
/// length, which the caller drops. `head`: the request was a HEAD.
pub(super) fn backend_head(buf: &[u8], head: bool, limit: usize) -> Result<Option<(usize, BackendHead)>, Malformed> {
    let mut at = 0;
    loop {
        let mut lines = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut lines);
        let n = match resp.parse(&buf[at..]) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(Malformed(format!("an invalid answer head: {e}"))),
        };
        let code = resp.code.unwrap_or(0);
        let status = StatusCode::from_u16(code).map_err(|_| Malformed(format!("status {code}")))?;
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(Malformed("101 Switching Protocols to a request that asked for none".into()));
        }
        if status.is_informational() {
            at += n;
            continue;
        }
        let mut fields = Vec::with_capacity(resp.headers.len());
        let (mut len, mut chunked, mut close, mut transfer_encoded) = (None, false, resp.version != Some(1), false);
        for h in resp.headers.iter() {
            // httparse took only names and values that `HeaderName` and
            // `HeaderValue` take (tokens; no control character but tab).
            let name = h.name.as_bytes();
            if name.eq_ignore_ascii_case(b"content-length") {
                let n = digits(h.value).ok_or_else(|| Malformed("an invalid Content-Length".into()))?;
                if len.is_some_and(|l| l != n) {
                    return Err(Malformed("two different Content-Length values".into()));
                }
                len = Some(n);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                transfer_encoded = true;
                let last = h.value.rsplit(|b| *b == b',').next().unwrap_or_default().trim_ascii();
                chunked = last.eq_ignore_ascii_case(b"chunked");
                if !chunked {
                    close = true;
                }
            } else if name.eq_ignore_ascii_case(b"connection") && contains_ignore_case(h.value, b"close") {
                close = true;
            }
            fields.push((range_in(buf, name), range_in(buf, h.value)));
        }
        let framing = if head || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            Framing::None
        } else if transfer_encoded {
            if chunked { Framing::Chunked } else { Framing::Close }
        } else {
            match len {
                Some(0) => Framing::None,
                Some(n) if n > limit => return Err(Malformed(format!("an answer body of {n} bytes"))),
                Some(n) => Framing::Length(n),
                None => {
                    close = true;
                    Framing::Close
                }
            }
        };
        if transfer_encoded && len.is_some() {
            // Both: the body is framed by Transfer-Encoding, and the
            // connection is not trusted for another request.
            close = true;
        }
        return Ok(Some((at, BackendHead { status, fields, head_len: n, framing, reusable: !close })));
    }
}

/// Where `part` (a slice of `buf`) lies in `buf`.
fn range_in(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - buf.as_ptr() as usize;
    start..start + part.len()
}

/// Writes a backend's answer for the client: the status line, the
/// backend's headers but the hop-by-hop ones, its `Content-Length` (a
/// HEAD's) or `body_len`, `x-cutover-backend: backend` in place of any the
/// backend sent, a `date` when it sent none, the blank line. Names are
/// written lowercase, as hyper writes them.
pub(super) fn relayed_head(
    out: &mut BytesMut,
    head: &[u8],
    answer: &BackendHead,
    backend: &str,
    body_len: Option<usize>,
) {
    status_line(out, answer.status);
    let mut dated = false;
    for (name, value) in &answer.fields {
        let (name, value) = (&head[name.clone()], &head[value.clone()]);
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        if super::super::forward::is_hop_by_hop(name)
            || is(super::super::BACKEND_HEADER)
            || (body_len.is_some() && is("content-length"))
        {
            continue;
        }
        dated |= is("date");
        let at = out.len();
        out.put_slice(name);
        out[at..].make_ascii_lowercase();
        out.put_slice(b": ");
        out.put_slice(value);
        out.put_slice(b"\r\n");
    }
    out.put_slice(super::super::BACKEND_HEADER.as_bytes());
    out.put_slice(b": ");
    out.put_slice(backend.as_bytes());
    out.put_slice(b"\r\n");
    end_head(out, body_len, dated);
}

/// Decodes a chunked body from `buf`: `Ok(Some((body, used)))` once the
/// last chunk and the trailer section are in, `Ok(None)` when more is
/// needed. At most `limit` decoded bytes.
pub(super) fn dechunk(buf: &[u8], limit: usize) -> Result<Option<(Bytes, usize)>, Malformed> {
    let mut body = BytesMut::new();
    let mut at = 0;
    loop {
        let Some(eol) = find_crlf(&buf[at..]) else { return Ok(None) };
        let line = &buf[at..at + eol];
        let size_text = line.split(|b| *b == b';').next().unwrap_or_default().trim_ascii();
        if size_text.is_empty() || size_text.len() > 12 || !size_text.iter().all(u8::is_ascii_hexdigit) {
            return Err(Malformed("an invalid chunk size".into()));
        }
        let size = size_text.iter().fold(0usize, |n, d| n * 16 + (*d as char).to_digit(16).unwrap_or(0) as usize);
        at += eol + 2;
        if size == 0 {
            // The trailer section: header lines up to a blank line.
            loop {
                let Some(eol) = find_crlf(&buf[at..]) else { return Ok(None) };
                at += eol + 2;
                if eol == 0 {
                    return Ok(Some((body.freeze(), at)));
                }
            }
        }
        if body.len() + size > limit {
            return Err(Malformed(format!("a chunked answer body over {limit} bytes")));
        }
        if buf.len() < at + size + 2 {
            return Ok(None);
        }
        if &buf[at + size..at + size + 2] != b"\r\n" {
            return Err(Malformed("a chunk not ended by CRLF".into()));
        }
        body.put_slice(&buf[at..at + size]);
        at += size + 2;
    }
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
