//! SigV4 verification of the gateway's own clients: the `Authorization`
//! header form and the presigned-query form.
//!
//! The canonical request is rebuilt from the request as received: the path
//! exactly as sent (S3 does not normalise it), the query decoded and
//! re-encoded, the signed headers by name. The signature is recomputed with
//! the client's secret and compared in constant time.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cutover_core::Secret;
use cutover_s3::sigv4::{self, AmzDate, CanonicalRequest, UNSIGNED_PAYLOAD};
use http::{HeaderMap, StatusCode};

use crate::names::NameMap;
use crate::sign::KeyCache;

/// How far a header-signed request's date may be from now.
const MAX_SKEW: Duration = Duration::from_secs(15 * 60);
/// The longest validity S3 allows a presigned URL.
const MAX_EXPIRES: u64 = 7 * 24 * 3600;

/// The access keys the gateway accepts, with their secrets (and each
/// secret's last derived signing key).
#[derive(Debug, Clone, Default)]
pub struct ClientKeys {
    keys: NameMap<(Secret, Arc<KeyCache>)>,
    /// `gateway.region`: the one region a credential scope may name (`None`: any).
    region: Option<String>,
}

impl ClientKeys {
    pub fn new(keys: impl IntoIterator<Item = (String, Secret)>) -> Self {
        Self { keys: keys.into_iter().map(|(id, s)| (id, (s, Arc::default()))).collect(), region: None }
    }

    /// Accepts only signatures whose credential scope names `region`; any
    /// other is refused as S3 does (400 `AuthorizationHeaderMalformed`,
    /// "the region 'x' is wrong; expecting 'y'"), not as a signature mismatch.
    pub fn with_region(mut self, region: &str) -> Self {
        self.region = Some(region.to_string());
        self
    }

    fn check_region(&self, region: &str) -> Result<(), AuthError> {
        match &self.region {
            Some(expected) if expected != region => Err(AuthError::Malformed(format!(
                "the region '{}' is wrong; expecting '{expected}' (gateway.region)",
                region.escape_default()
            ))),
            _ => Ok(()),
        }
    }

    fn secret(&self, id: &str) -> Option<&(Secret, Arc<KeyCache>)> {
        self.keys.get(id)
    }
}

/// What the signature says about the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// `UNSIGNED-PAYLOAD` (or a presigned URL that pins no hash).
    Unsigned,
    /// The SHA-256 the body must have.
    Sha256([u8; 32]),
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: aws-chunked, no chunk signatures.
    StreamingUnsignedTrailer,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`: aws-chunked with a
    /// signature per chunk, chained from the seed signature.
    StreamingSigned { trailer: bool },
}

/// A request whose signature is valid.
#[derive(Debug, Clone)]
pub struct Verified {
    pub access_key_id: String,
    pub payload: Payload,
    /// What signed streaming chunks need to continue the signature chain.
    pub seed: Option<Seed>,
}

/// The seed signature and its signing context, for aws-chunked bodies.
#[derive(Debug, Clone)]
pub struct Seed {
    pub signature: String,
    pub date: AmzDate,
    pub region: String,
    pub secret: Secret,
}

/// Why a request is refused, with the S3 error code it maps to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No signature at all: the gateway is never an open proxy.
    #[error("anonymous requests are not allowed")]
    Anonymous,
    /// The access key id is not one of `[[gateway.clients]]`.
    #[error("the access key id is not known to this gateway")]
    UnknownKey,
    /// The recomputed signature differs.
    #[error("the request signature does not match the signature computed with the client's secret")]
    Mismatch,
    /// The Authorization header or the presign query is malformed.
    #[error("malformed authorization: {0}")]
    Malformed(String),
    /// The request date is too far from now.
    #[error("the difference between the request time and the server's time is too large")]
    Skewed,
    /// The presigned URL has expired.
    #[error("request has expired")]
    Expired,
    /// An `x-amz-*` header (named here) that the signature does not cover:
    /// the gateway would otherwise sign it upstream on the client's behalf
    /// (a presigned PUT turned into a copy, an ACL or object lock added).
    #[error("There were headers present in the request which were not signed")]
    HeadersNotSigned(String),
}

impl AuthError {
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::Malformed(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::FORBIDDEN,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Anonymous => "AccessDenied",
            AuthError::UnknownKey => "InvalidAccessKeyId",
            AuthError::Mismatch => "SignatureDoesNotMatch",
            AuthError::Malformed(_) => "AuthorizationHeaderMalformed",
            AuthError::Skewed => "RequestTimeTooSkewed",
            AuthError::Expired => "AccessDenied",
            AuthError::HeadersNotSigned(_) => "AccessDenied",
        }
    }
}

/// Percent-decodes a query component (`+` stays `+`, as SigV4 clients
/// encode spaces as `%20`).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let Some(first) = memchr::memchr(b'%', b) else { return s.to_string() };
    let hex = |d: Option<&u8>| match d? {
        d @ b'0'..=b'9' => Some(d - b'0'),
        d @ b'a'..=b'f' => Some(d - b'a' + 10),
        d @ b'A'..=b'F' => Some(d - b'A' + 10),
        _ => None,
    };
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(&b[..first]);
    let mut i = first;
    // `b[i]` is a `%`: with two hex digits it is a byte, else it stays;
    // then the run up to the next `%` is copied as it is.
    while i < b.len() {
        match (hex(b.get(i + 1)), hex(b.get(i + 2))) {
            (Some(hi), Some(lo)) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            _ => {
                out.push(b'%');
                i += 1;
            }
        }
        let next = memchr::memchr(b'%', &b[i..]).map_or(b.len(), |n| i + n);
        out.extend_from_slice(&b[i..next]);
        i = next;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A query parameter's name and value, decoded (borrowed from the raw
/// query unless it had an escape).
pub type QueryPair<'a> = (Cow<'a, str>, Cow<'a, str>);

/// Splits and decodes a raw query string (see [`parse_query_borrowed`]).
pub fn parse_query(raw: &str) -> Vec<(String, String)> {
    parse_query_borrowed(raw).into_iter().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

/// A query's decoded pairs: on the stack for the usual few (a presigned
/// URL has seven).
pub type QueryPairs<'a> = smallvec::SmallVec<[QueryPair<'a>; 8]>;

/// Splits and decodes a raw query string, in one scan of its bytes; a
/// component is copied (and decoded) only when it has a `%`.
pub fn parse_query_borrowed(raw: &str) -> QueryPairs<'_> {
    fn decode(part: &str, escaped: bool) -> Cow<'_, str> {
        if escaped { Cow::Owned(percent_decode(part)) } else { Cow::Borrowed(part) }
    }
    let bytes = raw.as_bytes();
    let mut out = QueryPairs::new();
    let mut i = 0;
    while i <= bytes.len() {
        // One pair, from `start` to the next `&` or the end.
        let start = i;
        let (mut eq, mut key_escaped, mut value_escaped) = (None, false, false);
        loop {
            // The next `&`, `=` or `%` (a presigned URL's query is some 400
            // bytes, most of them in runs without one).
            i = memchr::memchr3(b'&', b'=', b'%', &bytes[i..]).map_or(bytes.len(), |n| i + n);
            match bytes.get(i) {
                Some(b'=') if eq.is_none() => eq = Some(i),
                Some(b'%') if eq.is_none() => key_escaped = true,
                Some(b'%') => value_escaped = true,
                Some(b'=') => {}
                _ => break,
            }
            i += 1;
        }
        // `start..i` lies between ASCII separators (or the ends): a str slice.
        if i > start {
            out.push(match eq {
                Some(e) => (decode(&raw[start..e], key_escaped), decode(&raw[e + 1..i], value_escaped)),
                None => (decode(&raw[start..i], key_escaped), Cow::Borrowed("")),
            });
        }
        i += 1;
    }
    out
}

/// Verifies a request. `raw_path` is the path as sent, `query` the decoded
/// query pairs, owned ([`parse_query`]) or borrowed ([`parse_query_borrowed`]).
pub fn verify<Q: AsRef<str>>(
    keys: &ClientKeys,
    method: &str,
    raw_path: &str,
    query: &[(Q, Q)],
    headers: &HeaderMap,
    now: SystemTime,
) -> Result<Verified, AuthError> {
    if let Some(auth) = headers.get(http::header::AUTHORIZATION) {
        let auth = auth.to_str().map_err(|_| AuthError::Malformed("not ASCII".into()))?;
        return verify_header(keys, method, raw_path, query, headers, auth, now);
    }
    if query.iter().any(|(k, _)| k.as_ref() == "X-Amz-Signature") {
        return verify_presigned(keys, method, raw_path, query, headers, now);
    }
    Err(AuthError::Anonymous)
}

struct Credential<'a> {
    key_id: &'a str,
    date: &'a str,
    region: &'a str,
}

fn parse_credential(c: &str) -> Result<Credential<'_>, AuthError> {
    // Split at `/` in one pass over the bytes (a `str::split` searcher per
    // part cost more than the rest of the parsing).
    let (mut parts, mut n, mut start) = ([""; 4], 0, 0);
    for (i, b) in c.bytes().enumerate() {
        if b == b'/' {
            if let Some(p) = parts.get_mut(n) {
                *p = &c[start..i];
            }
            n += 1;
            start = i + 1;
        }
    }
    match (n, parts, &c[start..]) {
        (4, [key_id, date, region, "s3"], "aws4_request") => Ok(Credential { key_id, date, region }),
        _ => Err(AuthError::Malformed(format!(
            "credential scope must be KEY/DATE/REGION/s3/aws4_request, got {} parts",
            n + 1
        ))),
    }
}

/// A signed header's name (lowercase) and value, as the canonical request has it.
type SignedHeader<'a> = (Cow<'a, str>, Cow<'a, str>);

/// A request's signed headers: on the stack for the usual few.
type SignedHeaders<'a> = smallvec::SmallVec<[SignedHeader<'a>; 8]>;

/// The signed headers as the canonical request lists them: one pair per
/// name, repeated values joined with `,` in the order they were sent
/// (borrowed from the request but for names with capitals and joined values).
fn signed_header_values<'a>(headers: &'a HeaderMap, signed: &'a str) -> Result<SignedHeaders<'a>, AuthError> {
    let mut out = SignedHeaders::new();
    for name in signed.split(';') {
        if name.is_empty() {
            continue;
        }
        let name: Cow<'a, str> =
            if name.bytes().any(|b| b.is_ascii_uppercase()) { name.to_ascii_lowercase().into() } else { name.into() };
        if out.iter().any(|(k, _)| *k == name) {
            continue;
        }
        let mut joined: Option<Cow<'a, str>> = None;
        for v in headers.get_all(name.as_ref()) {
            let v = v.to_str().map_err(|_| AuthError::Malformed(format!("header {name} is not ASCII")))?.trim();
            match &mut joined {
                None => joined = Some(v.into()),
                Some(j) => {
                    let j = j.to_mut();
                    j.push(',');
                    j.push_str(v);
                }
            }
        }
        let Some(joined) = joined else {
            return Err(AuthError::Malformed(format!("signed header {name} is missing")));
        };
        out.push((name, joined));
    }
    if !out.iter().any(|(k, _)| k == "host") {
        return Err(AuthError::Malformed("host must be signed".into()));
    }
    Ok(out)
}

/// `x-amz-*` headers that need not be in SignedHeaders: the signature
/// covers them another way (the date is in the string to sign, the payload
/// hash is the canonical request's last line) and the gateway never forwards
/// them (it sets its own upstream). Everything else `x-amz-*` must be signed,
/// as S3 requires: the gateway signs what it forwards with the backend's key.
const SIGNED_OTHERWISE: [&str; 2] = ["x-amz-date", "x-amz-content-sha256"];

/// Refuses a request carrying an `x-amz-*` header that is not signed.
fn all_amz_headers_signed(headers: &HeaderMap, signed: &[SignedHeader<'_>]) -> Result<(), AuthError> {
    for name in headers.keys() {
        let n = name.as_str();
        if n.starts_with("x-amz-") && !SIGNED_OTHERWISE.contains(&n) && !signed.iter().any(|(k, _)| k == n) {
            return Err(AuthError::HeadersNotSigned(n.to_string()));
        }
    }
    Ok(())
}

fn header_verify_date(date_text: &str, scope_date: &str) -> Result<AmzDate, AuthError> {
    let datetime = verify_datetime(date_text, scope_date)?;
    Ok(AmzDate { date: AmzDate::day_of(&datetime).to_string(), datetime: datetime.into_owned() })
}

/// The request's date as the signature has it ([`AmzDate::datetime`]):
/// borrowed when it is written so, written again otherwise; refused when
/// its day is not the credential scope's.
fn verify_datetime<'a>(date_text: &'a str, scope_date: &str) -> Result<Cow<'a, str>, AuthError> {
    let t = AmzDate::parse(date_text).ok_or_else(|| AuthError::Malformed("bad x-amz-date".into()))?;
    let datetime = if written_as_formatted(date_text) {
        Cow::Borrowed(date_text)
    } else {
        Cow::Owned(AmzDate::from_system_time(t).datetime)
    };
    if AmzDate::day_of(&datetime) != scope_date {
        return Err(AuthError::Malformed("the credential scope's date is not the request's date".into()));
    }
    Ok(datetime)
}

/// Is a date [`AmzDate::parse`] took exactly how `AmzDate::from_system_time`
/// writes the time it stands for? (Digits only, a day that exists in every
/// month, no leap second: formatting it again would give the same text.)
fn written_as_formatted(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b.len() == 16 && digits(0..8) && digits(9..15) && &text[6..8] <= "28" && &text[13..15] <= "59"
}

fn verify_header<Q: AsRef<str>>(
    keys: &ClientKeys,
    method: &str,
    raw_path: &str,
    query: &[(Q, Q)],
    headers: &HeaderMap,
    auth: &str,
    now: SystemTime,
) -> Result<Verified, AuthError> {
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| AuthError::Malformed("only AWS4-HMAC-SHA256 is supported".into()))?;
    let (mut cred, mut signed, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            cred = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            sig = Some(v);
        }
    }
    let (Some(cred), Some(signed), Some(sig)) = (cred, signed, sig) else {
        return Err(AuthError::Malformed("Credential, SignedHeaders and Signature are required".into()));
    };
    let cred = parse_credential(cred)?;
    keys.check_region(cred.region)?;
    let (secret, cache) = keys.secret(cred.key_id).ok_or(AuthError::UnknownKey)?;
    let date_text = headers
        .get(crate::amz::X_AMZ_DATE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| AuthError::Malformed("x-amz-date is required".into()))?;
    let date = header_verify_date(date_text, cred.date)?;
    let t = AmzDate::parse(date_text).expect("parsed above");
    let skew = now.duration_since(t).unwrap_or_else(|e| e.duration());
    if skew > MAX_SKEW {
        return Err(AuthError::Skewed);
    }
    let payload_text = headers
        .get(crate::amz::X_AMZ_CONTENT_SHA256)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| AuthError::Malformed("x-amz-content-sha256 is required".into()))?;
    let payload = match payload_text {
        UNSIGNED_PAYLOAD => Payload::Unsigned,
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER" => Payload::StreamingUnsignedTrailer,
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" => Payload::StreamingSigned { trailer: false },
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" => Payload::StreamingSigned { trailer: true },
        h => {
            let mut out = [0u8; 32];
            hex::decode_to_slice(h, &mut out)
                .map_err(|_| AuthError::Malformed("x-amz-content-sha256 is not a SHA-256".into()))?;
            Payload::Sha256(out)
        }
    };
    let signed_headers = signed_header_values(headers, signed)?;
    let req = CanonicalRequest {
        method,
        encoded_path: raw_path,
        query,
        headers: &signed_headers,
        payload_hash: payload_text,
    };
    let expected =
        req.with_rendered(None, |canonical, _| cache.signature(secret.expose(), &date, cred.region, "s3", canonical));
    if !sigv4::signatures_equal(&expected, sig) {
        return Err(AuthError::Mismatch);
    }
    all_amz_headers_signed(headers, &signed_headers)?;
    let seed = matches!(payload, Payload::StreamingSigned { .. }).then(|| Seed {
        signature: expected,
        date,
        region: cred.region.to_string(),
        secret: secret.clone(),
    });
    Ok(Verified { access_key_id: cred.key_id.to_string(), payload, seed })
}

fn verify_presigned<Q: AsRef<str>>(
    keys: &ClientKeys,
    method: &str,
    raw_path: &str,
    query: &[(Q, Q)],
    headers: &HeaderMap,
    now: SystemTime,
) -> Result<Verified, AuthError> {
    let get = |name: &str| query.iter().find(|(k, _)| k.as_ref() == name).map(|(_, v)| v.as_ref());
    let missing = |n: &str| AuthError::Malformed(format!("presigned URL without {n}"));
    if get("X-Amz-Algorithm") != Some("AWS4-HMAC-SHA256") {
        return Err(AuthError::Malformed("X-Amz-Algorithm must be AWS4-HMAC-SHA256".into()));
    }
    let cred = parse_credential(get("X-Amz-Credential").ok_or_else(|| missing("X-Amz-Credential"))?)?;
    keys.check_region(cred.region)?;
    let (secret, cache) = keys.secret(cred.key_id).ok_or(AuthError::UnknownKey)?;
    let date_text = get("X-Amz-Date").ok_or_else(|| missing("X-Amz-Date"))?;
    let datetime = verify_datetime(date_text, cred.date)?;
    let expires: u64 = get("X-Amz-Expires")
        .ok_or_else(|| missing("X-Amz-Expires"))?
        .parse()
        .map_err(|_| AuthError::Malformed("X-Amz-Expires is not a number".into()))?;
    if expires > MAX_EXPIRES {
        return Err(AuthError::Malformed("X-Amz-Expires is longer than 7 days".into()));
    }
    let t = AmzDate::parse(date_text).expect("parsed above");
    if now > t + Duration::from_secs(expires) {
        return Err(AuthError::Expired);
    }
    if t > now + MAX_SKEW {
        return Err(AuthError::Skewed);
    }
    let signed = get("X-Amz-SignedHeaders").ok_or_else(|| missing("X-Amz-SignedHeaders"))?;
    let sig = get("X-Amz-Signature").expect("checked by the caller");
    let signed_headers = signed_header_values(headers, signed)?;
    // The payload hash line is the header's value (UNSIGNED-PAYLOAD without
    // it), as S3 computes it; a hash in the signed query pins the body too.
    let header_hash = match headers.get(crate::amz::X_AMZ_CONTENT_SHA256) {
        Some(v) => Some(v.to_str().map_err(|_| AuthError::Malformed("x-amz-content-sha256 is not ASCII".into()))?),
        None => None,
    };
    let query_hash =
        query.iter().find(|(k, _)| k.as_ref().eq_ignore_ascii_case("x-amz-content-sha256")).map(|(_, v)| v.as_ref());
    let payload_hash = header_hash.unwrap_or(UNSIGNED_PAYLOAD);
    let req = CanonicalRequest { method, encoded_path: raw_path, query, headers: &signed_headers, payload_hash };
    // The signature is not part of what it signs.
    let expected = req.with_rendered(Some("X-Amz-Signature"), |canonical, _| {
        cache.signature_hex(secret.expose(), &datetime, cred.region, "s3", canonical)
    });
    if !sigv4::signatures_equal(sigv4::hex_str(&expected), sig) {
        return Err(AuthError::Mismatch);
    }
    all_amz_headers_signed(headers, &signed_headers)?;
    let pinned = match (presigned_pin(header_hash)?, presigned_pin(query_hash)?) {
        (Some(a), Some(b)) if a != b => {
            return Err(AuthError::Malformed(
                "the x-amz-content-sha256 header and query parameter name different hashes".into(),
            ));
        }
        (Some(h), _) | (None, Some(h)) => Some(h),
        (None, None) => None,
    };
    let payload = pinned.map_or(Payload::Unsigned, Payload::Sha256);
    Ok(Verified { access_key_id: cred.key_id.to_string(), payload, seed: None })
}

/// The SHA-256 a presigned request's `x-amz-content-sha256` (header or
/// signed query parameter) pins the body to: `None` for `UNSIGNED-PAYLOAD`
/// or no value. Streaming forms are not presigned forms.
fn presigned_pin(value: Option<&str>) -> Result<Option<[u8; 32]>, AuthError> {
    match value {
        None | Some(UNSIGNED_PAYLOAD) => Ok(None),
        Some(h) => {
            let mut out = [0u8; 32];
            hex::decode_to_slice(h, &mut out).map_err(|_| {
                AuthError::Malformed(
                    "x-amz-content-sha256 of a presigned request must be UNSIGNED-PAYLOAD or a hex SHA-256".into(),
                )
            })?;
            Ok(Some(out))
        }
    }
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
