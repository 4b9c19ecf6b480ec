//! AWS Signature Version 4 for S3: header signing, presigned URLs, and the
//! pieces (canonical request, signing key) that the gateway reuses to verify
//! its own clients.
//!
//! Written here rather than taken from the AWS SDK so that the gateway, the
//! sync engine and the probes share one small, fully controlled signer.

use std::borrow::Cow;
use std::cell::RefCell;
use std::ops::Range;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cutover_core::time::{civil_from_days, days_from_civil};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use smallvec::SmallVec;

/// The payload hash of an empty body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// The payload hash for bodies that are not signed (streamed uploads).
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex_lower(&sha256(data))
}

/// SHA-256 of `data`. Never inlined, as [`signature_hex_with_mac`].
#[inline(never)]
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// The lower-case hex digits of a 32-byte hash or signature, as SigV4
/// writes them: a table lookup per half byte (the `hex` crate's encoder,
/// an iterator of chars, was about 4 % of a small gateway PUT's
/// instructions outside SHA-256, counted by callgrind).
pub fn hex32(bytes: &[u8; 32]) -> [u8; 64] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 15)];
    }
    out
}

/// [`hex32`] as a string.
pub fn hex_lower(bytes: &[u8; 32]) -> String {
    hex_str(&hex32(bytes)).to_owned()
}

/// [`hex32`]'s digits as text, borrowed.
pub fn hex_str(hex: &[u8; 64]) -> &str {
    // The digits are ASCII: the check cannot fail (nor cost more than a
    // pass over 64 bytes).
    std::str::from_utf8(hex).unwrap_or_default()
}

/// HMAC-SHA256 of `data` under `key`.
pub fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any size");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Percent-encodes per SigV4: unreserved characters stay, everything else is
/// `%XX`; `/` stays when `keep_slash` (object keys in paths).
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    push_uri_encoded(&mut out, s, keep_slash);
    out
}

/// [`uri_encode`] appended to `out`: runs of characters that stay are
/// copied at once.
pub fn push_uri_encoded(out: &mut String, s: &str, keep_slash: bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    // A table, not range comparisons: most names and values are shorter
    // than a vector, and a byte's lookup is one load.
    let stays = if keep_slash { &STAYS_WITH_SLASH } else { &STAYS };
    let bytes = s.as_bytes();
    // Most names and values stay whole: copied at once.
    let Some(first) = bytes.iter().position(|&b| !stays[usize::from(b)]) else {
        out.push_str(s);
        return;
    };
    out.reserve(bytes.len());
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate().skip(first) {
        if stays[usize::from(b)] {
            continue;
        }
        if run < i {
            // ASCII characters that stay: both ends are char boundaries.
            out.push_str(&s[run..i]);
        }
        out.push('%');
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
        run = i + 1;
    }
    out.push_str(&s[run..]);
}

/// The bytes [`push_uri_encoded`] leaves as they are: the unreserved
/// characters (`A-Z a-z 0-9 - . _ ~`), and `/` too in the second table.
static STAYS: [bool; 256] = stays(false);
static STAYS_WITH_SLASH: [bool; 256] = stays(true);

const fn stays(keep_slash: bool) -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') || (keep_slash && c == b'/');
        b += 1;
    }
    t
}

/// A UTC timestamp in the two forms SigV4 uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmzDate {
    /// `20130524T000000Z`
    pub datetime: String,
    /// `20130524`
    pub date: String,
}

impl AmzDate {
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now())
    }

    pub fn from_system_time(t: SystemTime) -> Self {
        let secs = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs();
        let (y, m, d) = civil_from_days((secs / 86_400) as i64);
        let rem = secs % 86_400;
        let date = format!("{y:04}{m:02}{d:02}");
        let datetime = format!("{date}T{:02}{:02}{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60);
        Self { datetime, date }
    }

    /// The day of a [`AmzDate::datetime`] text (its [`AmzDate::date`]: what
    /// comes before the `T`).
    pub fn day_of(datetime: &str) -> &str {
        datetime.split_once('T').map_or(datetime, |(day, _)| day)
    }

    /// Parses `YYYYMMDDTHHMMSSZ`.
    pub fn parse(s: &str) -> Option<SystemTime> {
        let b = s.as_bytes();
        if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u64>().ok();
        let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
        let (h, mi, se) = (num(9..11)?, num(11..13)?, num(13..15)?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
            return None;
        }
        let days = days_from_civil(y as i64, mo as u32, d as u32);
        let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + mi * 60 + se;
        Some(UNIX_EPOCH + Duration::from_secs(secs))
    }
}

/// Buffers of [`CanonicalRequest::render_into`]: the encoded query, its
/// pairs' ranges in it, the canonical request text, the signed headers.
#[derive(Debug, Default)]
struct Scratch {
    enc: String,
    q: Vec<(Range<usize>, Range<usize>)>,
    text: String,
    signed: String,
}

/// Room a thread keeps for rendering canonical requests (more is let go).
const SCRATCH_KEPT: usize = 64 << 10;

/// The query of a request that has none, for [`CanonicalRequest::query`].
pub const NO_QUERY: &[(String, String)] = &[];

/// The parts of a request that SigV4 signs.
#[derive(Debug, Clone)]
pub struct CanonicalRequest<'a, H = String, Q = String> {
    pub method: &'a str,
    /// The path exactly as sent on the wire (already URI-encoded).
    pub encoded_path: &'a str,
    /// Query parameters, decoded (owned or borrowed strings); they are
    /// encoded and sorted here.
    pub query: &'a [(Q, Q)],
    /// Headers to sign (names in any case); must include `host`.
    pub headers: &'a [(H, H)],
    pub payload_hash: &'a str,
}

impl<H: AsRef<str>, Q: AsRef<str>> CanonicalRequest<'_, H, Q> {
    /// Returns (canonical request text, signed header list).
    ///
    /// Query pairs are encoded and sorted; header names lowercased, values
    /// trimmed with inner whitespace runs collapsed to one space, pairs
    /// sorted, and repeated headers joined with commas (per the
    /// specification). Written into one buffer: it runs twice per gateway
    /// request.
    pub fn render(&self) -> (String, String) {
        self.render_except(None)
    }

    /// [`Self::render`] without the query parameter named `skip` (exactly):
    /// a presigned URL's own `X-Amz-Signature`, which it does not sign.
    ///
    /// The encoded query goes into one buffer and is sorted by ranges into
    /// it; header names and values are copied only when they need
    /// lowercasing or whitespace collapsing.
    pub fn render_except(&self, skip: Option<&str>) -> (String, String) {
        let mut scratch = Scratch::default();
        self.render_into(skip, &mut scratch);
        (scratch.text, scratch.signed)
    }

    /// Runs `f` with [`Self::render_except`]'s (canonical request text,
    /// signed header list), rendered into buffers this thread keeps from
    /// call to call: a request's rendering allocates nothing once they are
    /// large enough.
    pub fn with_rendered<R>(&self, skip: Option<&str>, f: impl FnOnce(&str, &str) -> R) -> R {
        thread_local! {
            static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
        }
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => {
                self.render_into(skip, &mut scratch);
                let out = f(&scratch.text, &scratch.signed);
                // A huge request's room is not kept.
                if scratch.text.capacity() + scratch.enc.capacity() > SCRATCH_KEPT {
                    *scratch = Scratch::default();
                }
                out
            }
            // Called from inside `f`: buffers of its own.
            Err(_) => {
                let mut scratch = Scratch::default();
                self.render_into(skip, &mut scratch);
                f(&scratch.text, &scratch.signed)
            }
        })
    }

    /// Renders into `scratch` (its buffers cleared first).
    fn render_into(&self, skip: Option<&str>, scratch: &mut Scratch) {
        let Scratch { enc, q, text, signed } = scratch;
        enc.clear();
        q.clear();
        text.clear();
        signed.clear();
        enc.reserve(self.query.iter().map(|(k, v)| k.as_ref().len() + v.as_ref().len()).sum::<usize>() * 3 / 2);
        q.reserve(self.query.len());
        for (k, v) in self.query {
            let (k, v) = (k.as_ref(), v.as_ref());
            if skip == Some(k) {
                continue;
            }
            let k0 = enc.len();
            push_uri_encoded(enc, k, false);
            let v0 = enc.len();
            push_uri_encoded(enc, v, false);
            q.push((k0..v0, v0..enc.len()));
        }
        // On the stack for the usual few.
        let mut h: SmallVec<[(Cow<'_, str>, Cow<'_, str>); 8]> =
            self.headers.iter().map(|(k, v)| (lowercase(k.as_ref()), collapse_whitespace(v.as_ref()))).collect();
        write_canonical([self.method, self.encoded_path, self.payload_hash], enc, q, &mut h, text, signed);
    }
}

/// The canonical request's text and signed header list, from its method,
/// encoded path and payload hash line, its encoded query (`q`: ranges of
/// `enc`) and its headers (lowercase, collapsed). Apart from
/// [`CanonicalRequest::render_into`], which is made once per pair of
/// header and query types: one copy of this serves them all.
fn write_canonical(
    [method, encoded_path, payload_hash]: [&str; 3],
    enc: &str,
    q: &mut [(Range<usize>, Range<usize>)],
    h: &mut [(Cow<'_, str>, Cow<'_, str>)],
    text: &mut String,
    signed: &mut String,
) {
    q.sort_unstable_by(|(ka, va), (kb, vb)| {
        (&enc[ka.clone()], &enc[va.clone()]).cmp(&(&enc[kb.clone()], &enc[vb.clone()]))
    });
    h.sort_unstable();
    let len = method.len()
        + encoded_path.len()
        + enc.len()
        + 2 * q.len()
        + h.iter().map(|(k, v)| 2 * k.len() + v.len() + 3).sum::<usize>()
        + payload_hash.len()
        + 8;
    text.reserve(len);
    text.push_str(method);
    text.push('\n');
    text.push_str(encoded_path);
    text.push('\n');
    for (i, (k, v)) in q.iter().enumerate() {
        if i > 0 {
            text.push('&');
        }
        text.push_str(&enc[k.clone()]);
        text.push('=');
        text.push_str(&enc[v.clone()]);
    }
    text.push('\n');
    let mut i = 0;
    while i < h.len() {
        let name = &h[i].0;
        text.push_str(name);
        text.push(':');
        text.push_str(&h[i].1);
        i += 1;
        while i < h.len() && h[i].0 == *name {
            text.push(',');
            text.push_str(&h[i].1);
            i += 1;
        }
        text.push('\n');
        if !signed.is_empty() {
            signed.push(';');
        }
        signed.push_str(name);
    }
    text.push('\n');
    text.push_str(signed);
    text.push('\n');
    text.push_str(payload_hash);
}

/// `k` lowercased, copied only when it has an uppercase letter.
fn lowercase(k: &str) -> Cow<'_, str> {
    if k.bytes().any(|b| b.is_ascii_uppercase()) { Cow::Owned(k.to_ascii_lowercase()) } else { Cow::Borrowed(k) }
}

/// `v` trimmed, with each inner run of whitespace replaced by one space;
/// copied only when that changes it.
fn collapse_whitespace(v: &str) -> Cow<'_, str> {
    if collapsed(v) {
        return Cow::Borrowed(v);
    }
    let mut out = String::with_capacity(v.len());
    for (i, w) in v.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(w);
    }
    Cow::Owned(out)
}

/// Is `v` trimmed, with no whitespace but single spaces between words?
/// (Byte by byte for ASCII, as header values are; by char otherwise.)
fn collapsed(v: &str) -> bool {
    // Most values (a host, a date, a hash) have no space or control
    // character at all: checked without a branch per byte.
    if v.bytes().fold(true, |ok, b| ok & (b.wrapping_sub(0x21) < 0x5e)) {
        return true;
    }
    let mut prev_space = true;
    if v.is_ascii() {
        for &b in v.as_bytes() {
            // The ASCII characters `char::is_whitespace` takes.
            if matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
                if prev_space || b != b' ' {
                    return false;
                }
                prev_space = true;
            } else {
                prev_space = false;
            }
        }
    } else {
        for c in v.chars() {
            if c.is_whitespace() {
                if prev_space || c != ' ' {
                    return false;
                }
                prev_space = true;
            } else {
                prev_space = false;
            }
        }
    }
    !prev_space || v.is_empty()
}

/// The credential scope `date/region/service/aws4_request`.
pub fn scope(date: &str, region: &str, service: &str) -> String {
    format!("{date}/{region}/{service}/aws4_request")
}

/// The SigV4 signing key: the HMAC chain of `AWS4{secret}`, date, region,
/// service and `aws4_request`. It depends on nothing else, so callers that
/// sign often may keep it for the day (the gateway does).
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let mut k = Vec::with_capacity(4 + secret.len());
    k.extend_from_slice(b"AWS4");
    k.extend_from_slice(secret.as_bytes());
    let k_date = hmac(&k, date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// The signature of a canonical request text with an already derived key
/// and its credential scope (`scope` of the same date, region and service).
pub fn signature_with_key(key: &[u8; 32], date: &AmzDate, scope: &str, canonical: &str) -> String {
    signature_with_mac(&keyed(key), date, scope, canonical)
}

/// HMAC-SHA256 state keyed with a derived signing key ([`keyed`]).
pub type KeyedMac = Hmac<Sha256>;

/// HMAC-SHA256 keyed with a derived signing key, ready to be cloned for
/// each string to sign: the key's two padded blocks are hashed once.
pub fn keyed(key: &[u8; 32]) -> KeyedMac {
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any size")
}

/// [`signature_with_key`] with the key's HMAC state ([`keyed`]): the
/// string to sign goes into the MAC piece by piece, not through a buffer.
pub fn signature_with_mac(mac: &KeyedMac, date: &AmzDate, scope: &str, canonical: &str) -> String {
    hex_str(&signature_hex_with_mac(mac, &date.datetime, scope, canonical)).to_owned()
}

/// [`signature_with_mac`]'s hex digits, not copied into a string
/// (`datetime`: the date's [`AmzDate::datetime`]).
///
/// Never inlined: a gateway request verifies one signature and makes
/// another, and one copy of SHA-256 (both its SHA-NI and portable code) in
/// the instruction cache serves both.
#[inline(never)]
pub fn signature_hex_with_mac(mac: &KeyedMac, datetime: &str, scope: &str, canonical: &str) -> [u8; 64] {
    let hash_hex = hex32(&sha256(canonical.as_bytes()));
    let mut mac = mac.clone();
    for piece in [b"AWS4-HMAC-SHA256\n".as_slice(), datetime.as_bytes(), b"\n", scope.as_bytes(), b"\n", &hash_hex] {
        mac.update(piece);
    }
    hex32(&mac.finalize().into_bytes().into())
}

/// The SigV4 signature of a canonical request text.
pub fn signature(secret: &str, date: &AmzDate, region: &str, service: &str, canonical: &str) -> String {
    let key = signing_key(secret, &date.date, region, service);
    signature_with_key(&key, date, &scope(&date.date, region, service), canonical)
}

/// Constant-time comparison of two signatures (hex strings).
pub fn signatures_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Signs a request for the `Authorization` header. `headers` must already
/// contain `host`, `x-amz-date` and `x-amz-content-sha256` (and the security
/// token, if any). Returns the header value.
pub fn authorization<H: AsRef<str>>(
    access_key_id: &str,
    secret: &str,
    region: &str,
    date: &AmzDate,
    req: &CanonicalRequest<'_, H>,
) -> String {
    let (canonical, signed) = req.render();
    let scope = scope(&date.date, region, "s3");
    let sig = signature_with_key(&signing_key(secret, &date.date, region, "s3"), date, &scope, &canonical);
    authorization_value(access_key_id, &scope, &signed, &sig)
}

/// The `Authorization` header value from its parts.
pub fn authorization_value(access_key_id: &str, scope: &str, signed_headers: &str, signature: &str) -> String {
    let pieces = authorization_pieces(access_key_id, scope, signed_headers, signature);
    // Exactly as long as the value: its bytes can become a header value's
    // without a copy or a second allocation.
    let mut out = String::with_capacity(pieces.iter().map(|p| p.len()).sum());
    for p in pieces {
        out.push_str(p);
    }
    out
}

/// The `Authorization` header value as the pieces it is written from, in
/// order (for writing it where it goes without a string of its own).
pub fn authorization_pieces<'a>(
    access_key_id: &'a str,
    scope: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
) -> [&'a str; 8] {
    [
        "AWS4-HMAC-SHA256 Credential=",
        access_key_id,
        "/",
        scope,
        ", SignedHeaders=",
        signed_headers,
        ", Signature=",
        signature,
    ]
}

/// Builds the query string of a presigned URL (the part after `?`), signing
/// only the `host` header with an unsigned payload.
#[allow(clippy::too_many_arguments)]
pub fn presign_query(
    method: &str,
    host: &str,
    encoded_path: &str,
    access_key_id: &str,
    secret: &str,
    session_token: Option<&str>,
    region: &str,
    date: &AmzDate,
    expires: Duration,
) -> String {
    let mut query = vec![
        ("X-Amz-Algorithm".to_string(), "AWS4-HMAC-SHA256".to_string()),
        ("X-Amz-Credential".to_string(), format!("{access_key_id}/{}", scope(&date.date, region, "s3"))),
        ("X-Amz-Date".to_string(), date.datetime.clone()),
        ("X-Amz-Expires".to_string(), expires.as_secs().to_string()),
        ("X-Amz-SignedHeaders".to_string(), "host".to_string()),
    ];
    if let Some(t) = session_token {
        query.push(("X-Amz-Security-Token".to_string(), t.to_string()));
    }
    let headers = [("host".to_string(), host.to_string())];
    let req =
        CanonicalRequest { method, encoded_path, query: &query, headers: &headers, payload_hash: UNSIGNED_PAYLOAD };
    let (canonical, _) = req.render();
    let sig = signature(secret, date, region, "s3", &canonical);
    query.push(("X-Amz-Signature".to_string(), sig));
    query
        .iter()
        .map(|(k, v)| format!("{}={}", uri_encode(k, false), uri_encode(v, false)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    #[test]
    fn whitespace_is_collapsed_alike_for_ascii_and_other_text() {
        // The definition: trimmed, words joined by one space.
        let by_words = |v: &str| v.split_whitespace().collect::<Vec<_>>().join(" ");
        let ws = [" ", "\t", "\n", "\u{b}", "\u{c}", "\r", "\u{85}", "\u{a0}", "\u{2003}"];
        let mut cases: Vec<String> = vec![
            String::new(),
            "a".into(),
            "a b".into(),
            "UNSIGNED-PAYLOAD".into(),
            "é b".into(),
            "!~".into(),
            "a\u{7f}b".into(),
            "a\u{1f}b".into(),
        ];
        for w in ws {
            for text in ["{w}a", "a{w}", "a{w}b", "a {w}b", "é{w}b", "{w}", "a{w}{w}b"] {
                cases.push(text.replace("{w}", w));
            }
        }
        for v in &cases {
            let got = collapse_whitespace(v);
            assert_eq!(got, by_words(v), "{v:?}");
            assert_eq!(matches!(got, Cow::Borrowed(_)), by_words(v) == *v, "copied or not: {v:?}");
        }
    }

    #[test]
    fn hex_digits_are_lower_case_and_in_order() {
        assert_eq!(sha256_hex(b""), EMPTY_SHA256);
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37) ^ 0xa5;
        }
        let want: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex_lower(&bytes), want);
        assert_eq!(&hex32(&[0xff; 32])[..4], b"ffff");
        assert_eq!(&hex32(&[0x0f; 32])[..4], b"0f0f");
    }

    fn example_date() -> AmzDate {
        AmzDate { datetime: "20130524T000000Z".into(), date: "20130524".into() }
    }

    /// The GET Object example of the S3 SigV4 documentation
    /// ("Signature Calculations for the Authorization Header").
    #[test]
    fn matches_the_documented_get_object_signature() {
        let headers = vec![
            ("Host".to_string(), "examplebucket.s3.amazonaws.com".to_string()),
            ("Range".to_string(), "bytes=0-9".to_string()),
            ("x-amz-content-sha256".to_string(), EMPTY_SHA256.to_string()),
            ("x-amz-date".to_string(), "20130524T000000Z".to_string()),
        ];
        let req = CanonicalRequest {
            method: "GET",
            encoded_path: "/test.txt",
            query: NO_QUERY,
            headers: &headers,
            payload_hash: EMPTY_SHA256,
        };
        let auth = authorization("AKIAIOSFODNN7EXAMPLE", SECRET, "us-east-1", &example_date(), &req);
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    /// The presigned-URL example of the S3 SigV4 documentation.
    #[test]
    fn matches_the_documented_presigned_url() {
        let q = presign_query(
            "GET",
            "examplebucket.s3.amazonaws.com",
            "/test.txt",
            "AKIAIOSFODNN7EXAMPLE",
            SECRET,
            None,
            "us-east-1",
            &example_date(),
            Duration::from_secs(86_400),
        );
        assert!(q.ends_with("X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"), "{q}");
        assert!(q.contains("X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"));
    }

    #[test]
    fn dates_round_trip_through_the_calendar() {
        let t = UNIX_EPOCH + Duration::from_secs(1_369_353_600); // 2013-05-24T00:00:00Z
        assert_eq!(AmzDate::from_system_time(t), example_date());
        assert_eq!(AmzDate::parse("20130524T000000Z"), Some(t));
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3661); // 2000-02-29T01:01:01Z
        assert_eq!(AmzDate::from_system_time(leap).datetime, "20000229T010101Z");
        assert_eq!(AmzDate::parse("20000229T010101Z"), Some(leap));
        assert_eq!(AmzDate::parse("2000-02-29T01"), None);
        for d in [
            example_date(),
            AmzDate::from_system_time(leap),
            AmzDate::from_system_time(UNIX_EPOCH + Duration::from_secs(253_402_300_800)),
        ] {
            assert_eq!(AmzDate::day_of(&d.datetime), d.date, "{d:?}");
        }
    }

    #[test]
    fn encodes_keys_as_s3_expects() {
        assert_eq!(uri_encode("a b/c+d~é", true), "a%20b/c%2Bd~%C3%A9");
        assert_eq!(uri_encode("a/b", false), "a%2Fb");
    }

    /// Byte by byte, as first written: the reference for the run-copying encoder.
    fn encode_reference(s: &str, keep_slash: bool) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                b'/' if keep_slash => "/".to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    }

    #[test]
    fn run_copying_encoder_matches_the_byte_by_byte_one_on_any_text() {
        let pieces = ["", "a", "Z9", "-_.~", "/", " ", "+", "%", "é", "日本", "\u{1F600}", "\0", "\u{7f}", "a/b c"];
        // Every sequence of up to three pieces, with and without slashes kept.
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let s = format!("{a}{b}{c}");
                    for keep in [true, false] {
                        assert_eq!(uri_encode(&s, keep), encode_reference(&s, keep), "{s:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn every_character_is_encoded_as_the_reference_encodes_it_wherever_it_is() {
        // Every ASCII character and a few others, alone, first, last and
        // inside a run that stays.
        let chars = (0u8..128).map(char::from).chain(['é', '\u{80}', '\u{10FFFF}']);
        for c in chars {
            for s in [format!("{c}"), format!("{c}ab"), format!("ab{c}"), format!("abc{c}def-{c}")] {
                for keep in [true, false] {
                    assert_eq!(uri_encode(&s, keep), encode_reference(&s, keep), "{s:?}");
                }
            }
        }
    }

    /// The canonical request as first written (allocation per piece), kept
    /// as the reference the buffer-writing `render` must match.
    fn render_reference(r: &CanonicalRequest<'_>) -> (String, String) {
        let enc = |s: &str| encode_reference(s, false);
        let mut q: Vec<(String, String)> = r.query.iter().map(|(k, v)| (enc(k), enc(v))).collect();
        q.sort();
        let query = q.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
        let mut h: Vec<(String, String)> = r
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.split_whitespace().collect::<Vec<_>>().join(" ")))
            .collect();
        h.sort();
        let mut merged: Vec<(String, String)> = Vec::with_capacity(h.len());
        for (k, v) in h {
            match merged.last_mut() {
                Some((lk, lv)) if *lk == k => {
                    lv.push(',');
                    lv.push_str(&v);
                }
                _ => merged.push((k, v)),
            }
        }
        let canonical_headers: String = merged.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
        let signed = merged.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(";");
        let text = format!(
            "{}\n{}\n{}\n{}\n{}\n{}",
            r.method, r.encoded_path, query, canonical_headers, signed, r.payload_hash
        );
        (text, signed)
    }

    #[test]
    fn renders_canonical_requests_exactly_as_the_reference() {
        let mut rng = fastrand::Rng::with_seed(7);
        let alphabet: Vec<char> = "aZ09-_.~ /%+=&;:,\t\u{a0}\u{e9}\u{1F600}X".chars().collect();
        let word = |rng: &mut fastrand::Rng, max: usize| -> String {
            (0..rng.usize(0..=max)).map(|_| alphabet[rng.usize(..alphabet.len())]).collect()
        };
        let names = ["Host", "x-amz-date", "X-Amz-Meta-A", "x-amz-meta-a", "content-type", "Range", "x-amz-meta-b"];
        for _ in 0..3000 {
            let query: Vec<(String, String)> =
                (0..rng.usize(0..6)).map(|_| (word(&mut rng, 6), word(&mut rng, 8))).collect();
            let headers: Vec<(String, String)> = (0..rng.usize(0..6))
                .map(|_| (names[rng.usize(..names.len())].to_string(), word(&mut rng, 10)))
                .collect();
            let req = CanonicalRequest {
                method: "PUT",
                encoded_path: "/b/k%20x",
                query: &query,
                headers: &headers,
                payload_hash: UNSIGNED_PAYLOAD,
            };
            assert_eq!(req.render(), render_reference(&req), "{query:?} {headers:?}");
            if let Some((skip, _)) = query.first() {
                let kept: Vec<(String, String)> = query.iter().filter(|(k, _)| k != skip).cloned().collect();
                let without = CanonicalRequest { query: &kept, ..req.clone() };
                assert_eq!(req.render_except(Some(skip)), render_reference(&without), "{query:?} without {skip:?}");
            }
            // The thread's kept buffers, after requests longer and shorter
            // than this one, render it alike; so does a call from inside.
            let kept = req.with_rendered(None, |text, signed| {
                let inner = req.with_rendered(None, |t, s| (t.to_string(), s.to_string()));
                assert_eq!((text, signed), (inner.0.as_str(), inner.1.as_str()), "a nested rendering differs");
                (text.to_string(), signed.to_string())
            });
            assert_eq!(kept, render_reference(&req), "{query:?} {headers:?}");
            for (k, _) in &query {
                let reference: String = k
                    .bytes()
                    .map(|b| match b {
                        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                            (b as char).to_string()
                        }
                        _ => format!("%{b:02X}"),
                    })
                    .collect();
                assert_eq!(uri_encode(k, true), reference);
            }
        }
    }

    #[test]
    fn an_authorization_value_is_allocated_exactly_as_long_as_it_is() {
        let v = authorization_value("AKID", "20130524/us-east-1/s3/aws4_request", "host;x-amz-date", "abcd");
        assert_eq!(
            v,
            "AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=abcd"
        );
        assert_eq!(v.capacity(), v.len());
    }

    #[test]
    fn compares_signatures_in_constant_time_shape() {
        assert!(signatures_equal("abc", "abc"));
        assert!(!signatures_equal("abc", "abd"));
        assert!(!signatures_equal("abc", "ab"));
    }
}
