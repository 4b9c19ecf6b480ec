//! The gateway's fast path on the wire (crates/gateway/src/server/fast/wire.rs):
//! a client's request head (`client_head`), a backend's answer head
//! (`backend_head`) with the head relayed to the client (`relayed_head`),
//! and a chunked answer body (`dechunk`). Each reads bytes that arrive in
//! pieces and is called again on all the bytes so far.
//!
//! Input: `[mode][limit] bytes`. `mode % 3`: 0 a request head, 1 an answer
//! head (bit 2: to a HEAD; bit 3: relayed with no body length), 2 a chunked
//! body; `limit`: odd, 1 MiB, else 4 × its value (the largest body taken).
//!
//! Checks, besides "no panic":
//! - **however the bytes are cut**: a prefix of a head or body that is
//!   whole reads as "not whole yet" (never as taken, refused or another
//!   head), the bytes up to its end read the same, and a refused input's
//!   prefixes are never taken;
//! - a request head taken is one hyper would read the same way: an
//!   HTTP/1.1 `PUT`, `DELETE` or `HEAD` whose target `http::Uri` takes, with
//!   its body length from its one Content-Length (none but a PUT's), no
//!   Transfer-Encoding, Upgrade or aws-chunked body, every header kept;
//! - an answer head's fields are names and values `http` takes, and the
//!   head relayed to the client is a valid HTTP/1.1 head with the same
//!   status, no hop-by-hop header, one `x-cutover-backend` (the backend's
//!   name) and, when it has a body length, one Content-Length of it;
//! - a chunked body decodes as a plain reference decoder decodes it, within
//!   its limit.
#![no_main]

use std::str::FromStr;
use std::sync::LazyLock;

use cutover_gateway::fuzzing::{AnswerHead, ClientHead, fast_answer_head, fast_client_head, fast_dechunk};
use http::{HeaderName, HeaderValue, Uri};
use libfuzzer_sys::fuzz_target;

/// `FUZZ_SHOW=1`: print what each input read as (to check the seeds are taken).
static SHOW: LazyLock<bool> = LazyLock::new(|| std::env::var_os("FUZZ_SHOW").is_some());

/// The fast path's largest request body.
const MAX_BODY: usize = 64 << 10;

/// The hop-by-hop fields the gateway drops on both of its paths
/// (`server/forward.rs`; `Proxy-Authenticate` is relayed, as hyper's path
/// relays it).
const HOP_BY_HOP: [&str; 7] =
    ["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"];

/// Where to cut `n` bytes: every place for short inputs, 48 spread over
/// longer ones (and the last few).
fn cuts(n: usize) -> Vec<usize> {
    if n <= 400 {
        return (0..n).collect();
    }
    let mut c: Vec<usize> = (0..48).map(|i| i * n / 48).collect();
    c.extend(n.saturating_sub(4)..n);
    c
}

fn request(buf: &[u8]) {
    let whole = fast_client_head(buf, MAX_BODY);
    if *SHOW {
        eprintln!("request: {}", if let ClientHead::Taken(_) = whole { "taken" } else { "not taken" });
    }
    let ClientHead::Taken(t) = &whole else {
        if whole == ClientHead::Hyper {
            for c in cuts(buf.len()) {
                assert!(
                    !matches!(fast_client_head(&buf[..c], MAX_BODY), ClientHead::Taken(_)),
                    "a prefix of {c} bytes of a head left to hyper was taken"
                );
            }
        }
        return;
    };
    assert!(t.head_len <= buf.len());
    assert_eq!(fast_client_head(&buf[..t.head_len], MAX_BODY), whole, "the bytes after the head changed it");
    for c in cuts(t.head_len) {
        assert_eq!(fast_client_head(&buf[..c], MAX_BODY), ClientHead::Partial, "a prefix of {c} bytes was not partial");
    }
    assert!(["PUT", "DELETE", "HEAD"].contains(&t.method.as_str()), "method {}", t.method);
    assert!(t.path.starts_with('/') && !t.path.starts_with("/-/"), "path {}", t.path);
    let target = match &t.query {
        Some(q) => format!("{}?{q}", t.path),
        None => t.path.clone(),
    };
    let uri =
        Uri::from_str(&target).unwrap_or_else(|e| panic!("a target taken that http::Uri refuses: {target:?}: {e}"));
    assert_eq!(uri.path(), t.path);
    assert_eq!(uri.query(), t.query.as_deref());
    // (httparse, and so hyper, skip empty lines before the request line
    // and take a line ended by a bare LF.)
    let start = buf.iter().position(|b| !matches!(b, b'\r' | b'\n')).unwrap_or(buf.len());
    let first_line = buf[start..].split(|b| *b == b'\n').next().unwrap_or_default();
    let first_line = first_line.strip_suffix(b"\r").unwrap_or(first_line);
    assert!(first_line.ends_with(b" HTTP/1.1"), "not an HTTP/1.1 head");
    let lengths: Vec<&[u8]> = t.headers.iter().filter(|(k, _)| k == "content-length").map(|(_, v)| &v[..]).collect();
    match (t.method.as_str(), &lengths[..]) {
        ("PUT", [v]) => assert_eq!(std::str::from_utf8(v).ok().and_then(|v| v.parse().ok()), Some(t.len)),
        (_, [v]) => assert!(t.len == 0 && v.iter().all(|b| *b == b'0')),
        (m, []) => assert!(m != "PUT" && t.len == 0, "a {m} without a Content-Length"),
        (_, more) => panic!("{} Content-Length fields taken", more.len()),
    }
    assert!(t.len <= MAX_BODY);
    for (k, v) in &t.headers {
        assert!(HeaderName::from_bytes(k.as_bytes()).is_ok_and(|n| n.as_str() == k));
        assert!(HeaderValue::from_bytes(v).is_ok());
        assert!(k != "transfer-encoding" && k != "upgrade", "{k} taken");
        if k == "x-amz-content-sha256" {
            assert!(!v.starts_with(b"STREAMING-"), "an aws-chunked body taken");
        }
    }
    // httparse saw as many fields as were kept.
    let mut lines = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut lines);
    assert_eq!(req.parse(buf).ok(), Some(httparse::Status::Complete(t.head_len)));
    assert_eq!(req.headers.len(), t.headers.len(), "a header field was dropped");
    let close = req.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("connection")
            && h.value.split(|b| *b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
    });
    assert_eq!(t.close, close);
}

fn answer(buf: &[u8], head: bool, limit: usize, body_len: Option<usize>) {
    // (Compared without the head written for the client: its date is now's.)
    let read = |b: &[u8]| {
        fast_answer_head(b, head, limit, "backend-b", body_len).map(|a| a.map(|a| AnswerHead { relayed: vec![], ..a }))
    };
    let whole = fast_answer_head(buf, head, limit, "backend-b", body_len);
    if *SHOW {
        eprintln!("answer: {}", if let Ok(Some(_)) = whole { "read" } else { "not read" });
    }
    let (a, relayed) = match whole {
        Ok(Some(a)) => (AnswerHead { relayed: vec![], ..a.clone() }, a.relayed),
        Ok(None) => return,
        Err(_) => {
            for c in cuts(buf.len()) {
                assert!(!matches!(read(&buf[..c]), Ok(Some(_))), "a prefix of {c} bytes of a refused head was taken");
            }
            return;
        }
    };
    let end = a.skipped + a.head_len;
    assert!(end <= buf.len());
    assert_eq!(read(&buf[..end]), Ok(Some(a.clone())), "the bytes after the head changed it");
    for c in cuts(end) {
        assert_eq!(read(&buf[..c]), Ok(None), "a prefix of {c} bytes was not partial");
    }
    assert!((200..1000).contains(&a.status), "status {}", a.status);
    for (k, v) in &a.fields {
        assert!(HeaderName::from_bytes(k).is_ok(), "a field name http refuses: {k:?}");
        assert!(HeaderValue::from_bytes(v).is_ok(), "a field value http refuses: {v:?}");
    }
    if let Some(n) = a.length {
        assert!(n <= limit, "a body of {n} bytes over the limit {limit}");
    }
    assert!(!(a.chunked && a.until_close));
    // The head written for the client.
    let mut lines = [httparse::EMPTY_HEADER; 256];
    let mut resp = httparse::Response::new(&mut lines);
    let parsed = resp.parse(&relayed);
    assert_eq!(
        parsed.as_ref().ok(),
        Some(&httparse::Status::Complete(relayed.len())),
        "the relayed head is not one valid head: {parsed:?} {:?}",
        String::from_utf8_lossy(&relayed)
    );
    assert_eq!(resp.version, Some(1));
    assert_eq!(resp.code, Some(a.status));
    let named = |n: &str| resp.headers.iter().filter(|h| h.name == n).map(|h| h.value).collect::<Vec<_>>();
    assert_eq!(named("x-cutover-backend"), [b"backend-b"]);
    if let Some(n) = body_len {
        assert_eq!(named("content-length"), [n.to_string().as_bytes()]);
    }
    assert!(!named("date").is_empty(), "no date");
    for h in resp.headers.iter() {
        assert!(!HOP_BY_HOP.contains(&h.name), "{} relayed", h.name);
        assert!(h.name.bytes().all(|b| !b.is_ascii_uppercase()), "{} not lowercase", h.name);
    }
}

/// A chunked body, decoded plainly: `size[;ext]CRLF data CRLF` until a size
/// of 0, then trailer lines up to a blank one. `None`: not whole yet;
/// `Some(Err)`: refused.
fn reference_dechunk(buf: &[u8], limit: usize) -> Option<Result<(Vec<u8>, usize), ()>> {
    let line_at = |at: usize| buf.get(at..)?.windows(2).position(|w| w == b"\r\n").map(|n| at + n);
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let eol = line_at(at)?;
        let line = &buf[at..eol];
        let size = match line.iter().position(|b| *b == b';') {
            Some(semi) => &line[..semi],
            None => line,
        };
        let size = std::str::from_utf8(size).ok().map(str::trim_ascii).filter(|s| (1..=12).contains(&s.len()));
        let Some(size) = size.filter(|s| s.bytes().all(|b| b.is_ascii_hexdigit())) else { return Some(Err(())) };
        let size = usize::from_str_radix(size, 16).ok()?;
        at = eol + 2;
        if size == 0 {
            loop {
                let eol = line_at(at)?;
                let blank = eol == at;
                at = eol + 2;
                if blank {
                    return Some(Ok((body, at)));
                }
            }
        }
        if body.len() + size > limit {
            return Some(Err(()));
        }
        let data = buf.get(at..at + size + 2)?;
        if &data[size..] != b"\r\n" {
            return Some(Err(()));
        }
        body.extend_from_slice(&data[..size]);
        at += size + 2;
    }
}

fn chunked(buf: &[u8], limit: usize) {
    let got = fast_dechunk(buf, limit);
    if *SHOW {
        eprintln!("chunked: {}", if let Ok(Some(_)) = got { "decoded" } else { "not decoded" });
    }
    let reference = reference_dechunk(buf, limit);
    match (&got, &reference) {
        (Ok(None), None) => {}
        (Ok(Some((body, used))), Some(Ok((b, u)))) => {
            assert!(body == b && used == u, "decoded otherwise than the reference decoder");
            assert!(body.len() <= limit);
            assert_eq!(fast_dechunk(&buf[..*used], limit), got, "the bytes after the body changed it");
            for c in cuts(*used) {
                assert_eq!(fast_dechunk(&buf[..c], limit), Ok(None), "a prefix of {c} bytes was not partial");
            }
        }
        (Err(_), Some(Err(()))) => {
            for c in cuts(buf.len()) {
                assert!(!matches!(fast_dechunk(&buf[..c], limit), Ok(Some(_))), "a prefix of a refused body was taken");
            }
        }
        _ => panic!("{got:?} where the reference decoder has {reference:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let [mode, limit, bytes @ ..] = data else { return };
    let limit = if limit & 1 == 1 { 1 << 20 } else { usize::from(*limit) * 4 };
    match mode % 3 {
        0 => request(bytes),
        1 => answer(bytes, mode & 4 != 0, limit, (mode & 8 == 0).then_some(bytes.len() % 1000)),
        _ => chunked(bytes, limit),
    }
});
