//! One backend as the gateway sends to it: requests re-signed with the
//! backend's credentials (the payload's SHA-256 when it is known before
//! sending, the empty body's hash without a body,
//! `STREAMING-UNSIGNED-PAYLOAD-TRAILER` for a body that ends with a
//! checksum, `UNSIGNED-PAYLOAD` for other streamed bodies; the body streamed
//! with its Content-Length), over
//! pooled connections with `TCP_NODELAY` and `TCP_QUICKACK` (see
//! `cutover_s3::http`).

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use cutover_core::Outcome;
use cutover_core::config::BackendConfig;
use cutover_s3::Credentials;
use cutover_s3::http::{Connector, TransportError, classify};
use cutover_s3::sigv4::{self, CanonicalRequest, EMPTY_SHA256, UNSIGNED_PAYLOAD};
use http::header;
use http::{HeaderName, HeaderValue, Method, Request, Response, Uri};
use http_body::Body as _;
use smallvec::SmallVec;

use crate::body::{Body, empty};
use crate::checksum::Algorithm;
use crate::deadline::{Deadlines, IdleBody, Progress, Watched, stalled};
use crate::error::GatewayError;
use crate::sign::KeyCache;

use crate::amz::{X_AMZ_CONTENT_SHA256, X_AMZ_DATE, X_AMZ_DECODED_CONTENT_LENGTH, X_AMZ_SECURITY_TOKEN, X_AMZ_TRAILER};
pub const STREAMING_UNSIGNED_PAYLOAD_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";

/// What the body of an [`UpRequest`] is, as signed in `x-amz-content-sha256`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpPayload {
    /// `UNSIGNED-PAYLOAD`, or the empty body's hash when there is no body.
    Unsigned,
    /// Hex SHA-256 of the body (the backend then verifies it).
    Sha256(String),
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: the body is aws-chunked and
    /// ends with a `trailer` checksum of its `decoded_len` bytes
    /// ([`crate::reframe`]); sent with `content-encoding: aws-chunked`,
    /// `x-amz-decoded-content-length` and `x-amz-trailer` (the backend
    /// verifies and stores the checksum).
    UnsignedTrailer { decoded_len: u64, trailer: Algorithm },
}

/// A request to one backend, before signing. Key and query are decoded.
#[derive(Debug)]
pub struct UpRequest {
    pub method: Method,
    pub key: Option<String>,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Body,
    pub content_length: Option<u64>,
    pub payload: UpPayload,
}

impl UpRequest {
    pub fn new(method: Method, key: Option<&str>) -> Self {
        Self {
            method,
            key: key.map(str::to_string),
            query: Vec::new(),
            headers: Vec::new(),
            body: empty(),
            content_length: None,
            payload: UpPayload::Unsigned,
        }
    }

    /// What [`Upstream::sign_into`] signs of this request, with `body`
    /// (only asked whether it is empty and how long it is).
    pub(crate) fn to_sign<'a>(
        &'a self,
        body: &Body,
    ) -> ToSign<'a, impl Fn() -> std::iter::Map<std::slice::Iter<'a, (HeaderName, HeaderValue)>, PairRef>> {
        ToSign {
            method: &self.method,
            key: self.key.as_deref(),
            query: &self.query,
            headers: || self.headers.iter().map(pair_ref as PairRef),
            payload: &self.payload,
            content_length: self.content_length,
            body_ends: body.is_end_stream(),
            body_empty: body.size_hint().exact() == Some(0),
        }
    }
}

/// A pair of a header list lent as a pair of references (a named fn type:
/// a closure cannot be named in [`UpRequest::to_sign`]'s return type).
type PairRef = for<'p> fn(&'p (HeaderName, HeaderValue)) -> (&'p HeaderName, &'p HeaderValue);

fn pair_ref((k, v): &(HeaderName, HeaderValue)) -> (&HeaderName, &HeaderValue) {
    (k, v)
}

/// A backend: where it is, its bucket, and how to sign for it.
#[derive(Debug)]
pub struct Upstream {
    pub name: String,
    pub bucket: String,
    region: String,
    path_style: bool,
    creds: Credentials,
    conn: Connector,
    /// Plain connections of the gateway's fast path (`server::fast`).
    pub(crate) raw: crate::server::RawPool,
    keys: KeyCache,
    /// The name, for errors raised while an answer streams.
    label: std::sync::Arc<str>,
    /// The Host header and the host to connect to (with the bucket for
    /// virtual-host addressing), made once.
    host_value: HeaderValue,
    connect_host: String,
}

/// A request for a backend, signed: its request target (path and query,
/// encoded) and its headers, in the order they are sent (each name once,
/// but for the client's repeated headers, kept in their order).
#[derive(Debug)]
pub(crate) struct UpHead {
    pub target: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// What [`Upstream::sign_into`] signs: a request for a backend, borrowed.
pub(crate) struct ToSign<'a, F> {
    pub method: &'a Method,
    /// Decoded.
    pub key: Option<&'a str>,
    /// Decoded pairs.
    pub query: &'a [(String, String)],
    /// The headers forwarded from the client, in their order (each call
    /// goes through them from the first).
    pub headers: F,
    pub payload: &'a UpPayload,
    pub content_length: Option<u64>,
    /// The body ends at once (`is_end_stream`).
    pub body_ends: bool,
    /// The body is known to have no bytes (an exact size hint of 0).
    pub body_empty: bool,
}

/// A backend request's signed headers, names and values: borrowed but for
/// repeated headers' joined values; on the stack for the usual few.
type SignedHeaders<'a> = SmallVec<[(Cow<'a, str>, Cow<'a, str>); 8]>;

/// The headers of an aws-chunked body with a trailer, sent upstream.
struct Trailer {
    /// Content-Encoding: the client's encodings, then `aws-chunked`.
    encodings: String,
    /// x-amz-decoded-content-length.
    decoded_len: u64,
    /// x-amz-trailer.
    algorithm: HeaderValue,
}

/// One header of a signed request, as [`Upstream::sign_into`] gives it.
pub(crate) enum Part<'a> {
    /// A value made already.
    Value(&'a HeaderName, &'a HeaderValue),
    /// A value as text, not checked yet.
    Text(&'a HeaderName, &'a str),
    Number(&'a HeaderName, u64),
    /// The `Authorization` value's parts
    /// ([`cutover_s3::sigv4::authorization_value`]).
    Authorization {
        key_id: &'a str,
        scope: &'a str,
        signed: &'a str,
        signature: &'a str,
    },
}

impl Part<'_> {
    pub fn name(&self) -> &HeaderName {
        match self {
            Part::Value(n, _) | Part::Text(n, _) | Part::Number(n, _) => n,
            Part::Authorization { .. } => &header::AUTHORIZATION,
        }
    }
}

/// Where a signed request's head goes: its target, then its headers in
/// the order they are sent.
pub(crate) trait HeadOut {
    /// The encoded path and the decoded query pairs.
    fn target(&mut self, path: &str, query: &[(String, String)]);
    /// `false`: the part is not a valid header value.
    fn header(&mut self, part: &Part<'_>) -> bool;
}

impl HeadOut for UpHead {
    fn target(&mut self, path: &str, query: &[(String, String)]) {
        self.target.reserve(path.len() + query.iter().map(|(k, v)| k.len() + v.len() + 2).sum::<usize>());
        self.target.push_str(path);
        push_query(&mut self.target, query);
    }

    fn header(&mut self, part: &Part<'_>) -> bool {
        let value = match *part {
            Part::Value(_, v) => v.clone(),
            Part::Text(_, t) => match HeaderValue::from_str(t) {
                Ok(v) => v,
                Err(_) => return false,
            },
            Part::Number(_, n) => decimal(n),
            Part::Authorization { key_id, scope, signed, signature } => {
                // The string's bytes become the value's: not copied again.
                let auth = sigv4::authorization_value(key_id, scope, signed, signature);
                match HeaderValue::from_maybe_shared(Bytes::from(auth)) {
                    Ok(v) => v,
                    Err(_) => return false,
                }
            }
        };
        self.headers.push((part.name().clone(), value));
        true
    }
}

/// `?k=v&…`, encoded, after a path (nothing for no pairs).
pub(crate) fn push_query(target: &mut String, query: &[(String, String)]) {
    for (i, (k, v)) in query.iter().enumerate() {
        target.push(if i == 0 { '?' } else { '&' });
        sigv4::push_uri_encoded(target, k, false);
        target.push('=');
        sigv4::push_uri_encoded(target, v, false);
    }
}

impl Upstream {
    pub fn new(b: &BackendConfig, connect_timeout: Duration) -> Result<Self, GatewayError> {
        let creds = cutover_s3::resolve_credentials(b)
            .map_err(|e| GatewayError::Secret { what: format!("backend {}", b.name), detail: e.to_string() })?;
        let (host_header, connect_host) = hosts(&b.endpoint, &b.bucket, b.path_style);
        let host_value = HeaderValue::from_str(&host_header).map_err(|_| GatewayError::Config {
            detail: format!("backend {}: endpoint host {host_header:?} is not a valid Host header", b.name),
        })?;
        Ok(Self {
            name: b.name.clone(),
            bucket: b.bucket.clone(),
            region: b.region.clone(),
            path_style: b.path_style,
            creds,
            conn: Connector::for_backend(b, connect_timeout, true),
            raw: Default::default(),
            keys: KeyCache::default(),
            label: b.name.as_str().into(),
            host_value,
            connect_host,
        })
    }

    /// The encoded path of `key` (of the bucket without one).
    fn path(&self, key: Option<&str>) -> String {
        let mut path = String::with_capacity(2 + self.bucket.len() + key.map_or(0, |k| k.len() * 3 / 2));
        path.push('/');
        if self.path_style {
            path.push_str(&self.bucket);
            if key.is_some() {
                path.push('/');
            }
        }
        if let Some(k) = key {
            sigv4::push_uri_encoded(&mut path, k, true);
        }
        path
    }

    pub(crate) fn connector(&self) -> &Connector {
        &self.conn
    }

    /// The host to connect to (with the bucket for virtual-host addressing).
    pub(crate) fn connect_host(&self) -> &str {
        &self.connect_host
    }

    /// The request for the backend as hyper sends it.
    fn build(&self, req: &UpRequest, body: Body) -> Result<Request<Body>, TransportError> {
        let head = self.sign(req, &body, SystemTime::now())?;
        let uri = Uri::try_from(head.target).map_err(|e| self.invalid("uri", &e))?;
        let mut request = Request::new(body);
        *request.method_mut() = req.method.clone();
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        headers.reserve(head.headers.len());
        for (k, v) in head.headers {
            headers.append(k, v);
        }
        Ok(request)
    }

    fn invalid(&self, what: &str, e: &dyn std::fmt::Display) -> TransportError {
        TransportError {
            outcome: Outcome::Protocol(e.to_string()),
            detail: format!("building the request to {}: {what}: {e}", self.name),
        }
    }

    /// The request for the backend, signed at `now` (`body` is only asked
    /// whether it is empty and how long it is).
    pub(crate) fn sign(&self, req: &UpRequest, body: &Body, now: SystemTime) -> Result<UpHead, TransportError> {
        let mut head = UpHead { target: String::new(), headers: Vec::with_capacity(11 + req.headers.len()) };
        self.sign_into(req.to_sign(body), now, &mut head)?;
        Ok(head)
    }

    /// Signs `req` at `now`, giving its request target and then its headers,
    /// in the order they are sent, to `out` (an [`UpHead`], or the bytes of
    /// the head on the wire).
    pub(crate) fn sign_into<'h, F, I, O>(
        &self,
        req: ToSign<'_, F>,
        now: SystemTime,
        out: &mut O,
    ) -> Result<(), TransportError>
    where
        F: Fn() -> I,
        I: Iterator<Item = (&'h HeaderName, &'h HeaderValue)>,
        O: HeadOut,
    {
        let invalid = |what: &str, e: &dyn std::fmt::Display| self.invalid(what, e);
        let path = self.path(req.key);
        let stamp = crate::sign::amz_at(now);
        let date = &stamp.date;
        // The signed payload line and its header value (the constants' made once).
        let payload_value;
        let (payload, payload_part) = match req.payload {
            UpPayload::Sha256(h) => (h.as_str(), Part::Text(&X_AMZ_CONTENT_SHA256, h)),
            other => {
                let constant = match other {
                    UpPayload::Unsigned if req.content_length.unwrap_or(0) == 0 && req.body_ends => EMPTY_SHA256,
                    UpPayload::Unsigned => UNSIGNED_PAYLOAD,
                    _ => STREAMING_UNSIGNED_PAYLOAD_TRAILER,
                };
                payload_value = HeaderValue::from_static(constant);
                (constant, Part::Value(&X_AMZ_CONTENT_SHA256, &payload_value))
            }
        };
        let mut decoded = [0u8; 20];
        let (signed, trailer) = self.signed_headers(&req, &date.datetime, payload, &mut decoded)?;
        // Never `Content-Length: 0` for a body that has bytes: the backend
        // would store an empty object and answer 200.
        let zero = HeaderValue::from_static("0");
        let length = match req.content_length {
            Some(n) => Some(Part::Number(&header::CONTENT_LENGTH, n)),
            None if !req.body_empty => {
                return Err(invalid("content-length", &"a body of unknown length is never sent upstream"));
            }
            None if matches!(*req.method, Method::PUT | Method::POST) => {
                Some(Part::Value(&header::CONTENT_LENGTH, &zero))
            }
            None => None,
        };
        let canonical = CanonicalRequest {
            method: req.method.as_str(),
            encoded_path: &path,
            query: req.query,
            headers: &signed,
            payload_hash: payload,
        };
        out.target(&path, req.query);
        let put = |out: &mut O, part: Part<'_>| match out.header(&part) {
            true => Ok(()),
            false => Err(invalid(part.name().as_str(), &"failed to parse header value")),
        };
        put(out, Part::Value(&header::HOST, &self.host_value))?;
        put(out, Part::Value(&X_AMZ_DATE, &stamp.header))?;
        put(out, payload_part)?;
        if let Some(t) = &self.creds.session_token {
            put(out, Part::Text(&X_AMZ_SECURITY_TOKEN, t.expose()))?;
        }
        for (k, v) in (req.headers)() {
            if trailer.is_none() || *k != header::CONTENT_ENCODING {
                put(out, Part::Value(k, v))?;
            }
        }
        if let Some(t) = &trailer {
            put(out, Part::Text(&header::CONTENT_ENCODING, &t.encodings))?;
            put(out, Part::Number(&X_AMZ_DECODED_CONTENT_LENGTH, t.decoded_len))?;
            put(out, Part::Value(&X_AMZ_TRAILER, &t.algorithm))?;
        }
        let secret = self.creds.secret_access_key.expose();
        crate::sign::with_authorization(
            &self.keys,
            secret,
            &self.region,
            date,
            &canonical,
            |scope, signed, signature| {
                let auth = Part::Authorization { key_id: &self.creds.access_key_id, scope, signed, signature };
                put(out, auth)
            },
        )?;
        if let Some(length) = length {
            put(out, length)?;
        }
        Ok(())
    }

    /// The headers a backend request signs, in the order the canonical
    /// request lists them before sorting: `host`, the date (`datetime`),
    /// the payload hash (`payload`), the session token, then the client's
    /// `x-amz-*`, `content-type` and `content-md5` (repeated ones joined);
    /// for an aws-chunked body with a trailer, its decoded length (written
    /// into `decoded`) and trailer, and the headers that go with them.
    fn signed_headers<'a, 'h: 'a, F, I>(
        &'a self,
        req: &ToSign<'_, F>,
        datetime: &'a str,
        payload: &'a str,
        decoded: &'a mut [u8; 20],
    ) -> Result<(SignedHeaders<'a>, Option<Trailer>), TransportError>
    where
        F: Fn() -> I,
        I: Iterator<Item = (&'h HeaderName, &'h HeaderValue)>,
    {
        let authority = self.host_value.to_str().map_err(|e| self.invalid("host", &e))?;
        let mut signed = SignedHeaders::new();
        signed.push(("host".into(), authority.into()));
        signed.push(("x-amz-date".into(), datetime.into()));
        signed.push(("x-amz-content-sha256".into(), payload.into()));
        if let Some(t) = &self.creds.session_token {
            signed.push(("x-amz-security-token".into(), t.expose().into()));
        }
        let trailer = match req.payload {
            UpPayload::UnsignedTrailer { decoded_len, trailer } => Some((*decoded_len, *trailer)),
            _ => None,
        };
        let mut encodings = Vec::new();
        for (k, v) in (req.headers)() {
            let n = k.as_str();
            if trailer.is_some() && *k == header::CONTENT_ENCODING {
                encodings.push(v.to_str().map_err(|e| self.invalid("content-encoding", &e))?);
                continue;
            }
            if (n.starts_with("x-amz-") || n == "content-type" || n == "content-md5")
                && let Ok(s) = v.to_str()
            {
                // Repeated values joined in the order they are sent, as
                // the backend reads them (not sorted by value).
                let s = s.trim();
                match signed.iter_mut().find(|(k, _)| k == n) {
                    Some((_, joined)) => {
                        let joined = joined.to_mut();
                        joined.push(',');
                        joined.push_str(s);
                    }
                    None => signed.push((n.into(), s.into())),
                }
            }
        }
        let Some((decoded_len, algorithm)) = trailer else { return Ok((signed, None)) };
        // The other encodings first, as the SDKs send them (aws-chunked was applied last).
        encodings.push("aws-chunked");
        let decoded = std::str::from_utf8(decimal_digits(decoded_len, decoded)).unwrap_or("0");
        signed.push(("x-amz-decoded-content-length".into(), decoded.into()));
        signed.push(("x-amz-trailer".into(), algorithm.header().into()));
        let encodings = encodings.join(",");
        Ok((signed, Some(Trailer { encodings, decoded_len, algorithm: HeaderValue::from_static(algorithm.header()) })))
    }

    /// Sends a request and returns the answer with its body still streaming.
    /// Every phase has a deadline ([`Deadlines`]): the backend must keep
    /// taking the body, answer within `first_byte` of the request's end, and
    /// keep sending its answer; a miss is an [`Outcome::Timeout`] (the
    /// client gets a retryable 503 `SlowDown` at once, not a hung request).
    pub async fn send(&self, req: UpRequest, d: Deadlines) -> Result<Response<Body>, TransportError> {
        let bodyless = req.content_length.unwrap_or(0) == 0 && !matches!(req.method, Method::PUT | Method::POST);
        let mut req = req;
        let mut body = Some(std::mem::replace(&mut req.body, empty()));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let b = body.take().unwrap_or_else(empty);
            let progress = Progress::new(b.is_end_stream() || req.content_length == Some(0));
            let b = Watched::wrap(b, progress.clone(), req.content_length);
            let request = self.build(&req, b)?;
            let work = async {
                let mut sender = self.conn.checkout(&self.connect_host).await?;
                let resp = sender.send_request(request).await.map_err(|e| classify(&e))?;
                // An answer without a body (a PUT's) leaves the connection
                // idle at once: back to the pool without a task to wait.
                if sender.is_ready() {
                    self.conn.checkin(sender);
                } else {
                    self.conn.checkin_when_ready(sender);
                }
                Ok::<_, TransportError>(resp)
            };
            let r = tokio::select! {
                r = work => r,
                why = stalled(&progress, d) => Err(TransportError {
                    outcome: Outcome::Timeout,
                    detail: format!("{}: {why}", self.name),
                }),
            };
            match r {
                // A pooled connection the backend had closed: retry once
                // when there is no body to resend.
                Err(e) if bodyless && attempt == 1 && e.outcome == Outcome::ConnectionReset => continue,
                Err(e) => {
                    return Err(TransportError { detail: format!("{}: {}", self.name, e.detail), ..e });
                }
                Ok(resp) => return Ok(resp.map(|b| IdleBody::wrap(b, d.idle, self.label.clone()))),
            }
        }
    }
}

/// (Host header, host to connect to) of a bucket on `ep`.
fn hosts(ep: &cutover_core::Endpoint, bucket: &str, path_style: bool) -> (String, String) {
    if path_style {
        (ep.authority(), ep.host.clone())
    } else {
        (format!("{bucket}.{}", ep.authority()), format!("{bucket}.{}", ep.host))
    }
}

#[cfg(test)]
impl Upstream {
    /// A backend at 127.0.0.1:3900 (bucket `app-data`, region `garage`,
    /// key `GKTEST`), addressed by path or by virtual host, with a session
    /// token or without.
    pub(crate) fn for_tests(path_style: bool, session_token: Option<&str>) -> Self {
        let endpoint = cutover_core::Endpoint::parse("http://127.0.0.1:3900").expect("an endpoint");
        let (host_header, connect_host) = hosts(&endpoint, "app-data", path_style);
        Upstream {
            name: "primary".into(),
            bucket: "app-data".into(),
            region: "garage".into(),
            path_style,
            creds: Credentials {
                access_key_id: "GKTEST".into(),
                secret_access_key: cutover_core::Secret::new("backend-secret".to_string()),
                session_token: session_token.map(|t| cutover_core::Secret::new(t.to_string())),
            },
            conn: Connector::new(endpoint, Duration::from_secs(1), true),
            raw: Default::default(),
            keys: KeyCache::default(),
            label: "primary".into(),
            host_value: HeaderValue::from_str(&host_header).expect("a host header"),
            connect_host,
        }
    }
}

/// `n` as a header value, in one allocation (`HeaderValue::from(u64)`
/// makes two).
fn decimal(n: u64) -> HeaderValue {
    HeaderValue::from_bytes(decimal_digits(n, &mut [0u8; 20])).expect("decimal digits are a header value")
}

/// `n` in decimal, written at the end of `buf` (a u64 has at most 20 digits).
pub(crate) fn decimal_digits(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

#[cfg(test)]
mod tests {
    use cutover_core::Secret;
    use cutover_s3::sigv4::AmzDate;

    use super::*;
    use crate::body::full;

    #[test]
    fn a_decimal_header_value_is_the_numbers_digits() {
        for n in [0, 7, 10, 4096, 999_999, u64::MAX] {
            assert_eq!(decimal(n), HeaderValue::from(n), "{n}");
        }
    }

    fn upstream() -> Upstream {
        Upstream::for_tests(true, None)
    }

    fn header<'a>(r: &'a Request<Body>, name: &str) -> &'a str {
        r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_else(|| panic!("no {name}"))
    }

    /// Recomputes the Authorization header with the shared signer from
    /// what the request carries.
    fn expected_authorization(r: &Request<Body>, signed_names: &[&str]) -> String {
        let datetime = header(r, "x-amz-date");
        let date = AmzDate { datetime: datetime.to_string(), date: datetime[..8].to_string() };
        let signed: Vec<(String, String)> = signed_names
            .iter()
            .flat_map(|n| r.headers().get_all(*n).iter().map(move |v| (n.to_string(), v.to_str().unwrap().to_string())))
            .collect();
        let query: Vec<(String, String)> = r.uri().query().map(crate::auth::parse_query).unwrap_or_default();
        let canonical = CanonicalRequest {
            method: r.method().as_str(),
            encoded_path: r.uri().path(),
            query: &query,
            headers: &signed,
            payload_hash: header(r, "x-amz-content-sha256"),
        };
        sigv4::authorization("GKTEST", "backend-secret", "garage", &date, &canonical)
    }

    #[test]
    fn signs_a_known_payload_hash_and_forwards_the_headers() {
        let up = upstream();
        let hash = sigv4::sha256_hex(b"abc");
        let mut req = UpRequest::new(Method::PUT, Some("a b/c"));
        req.headers = vec![
            (HeaderName::from_static("x-amz-meta-k"), HeaderValue::from_static("v 1")),
            (HeaderName::from_static("content-type"), HeaderValue::from_static("text/plain")),
            (HeaderName::from_static("cache-control"), HeaderValue::from_static("no-cache")),
        ];
        req.content_length = Some(3);
        req.payload = UpPayload::Sha256(hash.clone());
        req.query = vec![("versionId".into(), "x/y".into())];
        for _ in 0..2 {
            let r = up.build(&req, full("abc")).unwrap();
            assert_eq!(up.connect_host(), "127.0.0.1");
            assert_eq!(r.uri().to_string(), "/app-data/a%20b/c?versionId=x%2Fy");
            assert_eq!(header(&r, "host"), "127.0.0.1:3900");
            assert_eq!(header(&r, "x-amz-content-sha256"), hash);
            assert_eq!(header(&r, "content-length"), "3");
            assert_eq!(header(&r, "cache-control"), "no-cache");
            let names = ["host", "x-amz-date", "x-amz-content-sha256", "x-amz-meta-k", "content-type"];
            assert_eq!(header(&r, "authorization"), expected_authorization(&r, &names));
        }
    }

    #[test]
    fn signs_the_empty_hash_without_a_body_and_unsigned_payload_for_other_streams() {
        let up = upstream();
        let r = up.build(&UpRequest::new(Method::GET, Some("k")), empty()).unwrap();
        assert_eq!(header(&r, "x-amz-content-sha256"), EMPTY_SHA256);
        assert!(r.headers().get("content-length").is_none());
        let names = ["host", "x-amz-date", "x-amz-content-sha256"];
        assert_eq!(header(&r, "authorization"), expected_authorization(&r, &names));

        let (tx, body) = crate::body::channel(1, Some(5));
        drop(tx);
        let mut put = UpRequest::new(Method::PUT, Some("k"));
        put.content_length = Some(5);
        let r = up.build(&put, body).unwrap();
        assert_eq!(header(&r, "x-amz-content-sha256"), UNSIGNED_PAYLOAD);
        assert_eq!(header(&r, "authorization"), expected_authorization(&r, &names));
    }

    #[test]
    fn a_forwarded_trailer_is_signed_as_an_unsigned_trailer_with_its_aws_chunked_headers() {
        let up = upstream();
        let len = crate::reframe::encoded_len(11, Algorithm::Crc64Nvme);
        for (client_encoding, upstream_encoding) in [(None, "aws-chunked"), (Some("gzip"), "gzip,aws-chunked")] {
            let mut put = UpRequest::new(Method::PUT, Some("k"));
            put.content_length = Some(len);
            put.payload = UpPayload::UnsignedTrailer { decoded_len: 11, trailer: Algorithm::Crc64Nvme };
            put.headers = vec![(HeaderName::from_static("x-amz-meta-k"), HeaderValue::from_static("v"))];
            if let Some(e) = client_encoding {
                put.headers.push((header::CONTENT_ENCODING, HeaderValue::from_static(e)));
            }
            let r = up.build(&put, full("x")).unwrap();
            assert_eq!(header(&r, "x-amz-content-sha256"), "STREAMING-UNSIGNED-PAYLOAD-TRAILER");
            assert_eq!(header(&r, "content-length"), len.to_string());
            assert_eq!(header(&r, "x-amz-decoded-content-length"), "11");
            assert_eq!(header(&r, "x-amz-trailer"), "x-amz-checksum-crc64nvme");
            assert_eq!(r.headers().get_all("content-encoding").iter().count(), 1);
            assert_eq!(header(&r, "content-encoding"), upstream_encoding);
            let names = [
                "host",
                "x-amz-date",
                "x-amz-content-sha256",
                "x-amz-meta-k",
                "x-amz-decoded-content-length",
                "x-amz-trailer",
            ];
            assert_eq!(header(&r, "authorization"), expected_authorization(&r, &names));
        }
    }

    #[test]
    fn repeated_forwarded_headers_are_signed_in_the_order_they_are_sent() {
        let up = upstream();
        let mut put = UpRequest::new(Method::PUT, Some("k"));
        put.content_length = Some(1);
        put.headers = vec![
            (HeaderName::from_static("x-amz-meta-k"), HeaderValue::from_static("z")),
            (HeaderName::from_static("x-amz-meta-k"), HeaderValue::from_static("a")),
        ];
        let r = up.build(&put, full("x")).unwrap();
        let sent: Vec<&str> = r.headers().get_all("x-amz-meta-k").iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(sent, ["z", "a"]);
        // The backend joins them in that order (as the gateway's own verifier does).
        let keys = crate::auth::ClientKeys::new([("GKTEST".to_string(), Secret::new("backend-secret".to_string()))]);
        let query: Vec<(String, String)> = r.uri().query().map(crate::auth::parse_query).unwrap_or_default();
        crate::auth::verify(&keys, "PUT", r.uri().path(), &query, r.headers(), std::time::SystemTime::now())
            .expect("the backend accepts the signature");
    }

    #[test]
    fn a_body_of_unknown_length_is_never_sent_as_empty() {
        let up = upstream();
        for method in [Method::PUT, Method::POST] {
            let (tx, body) = crate::body::channel(1, None);
            drop(tx);
            let req = UpRequest::new(method.clone(), Some("k"));
            assert!(up.build(&req, body).is_err(), "{method}");
            // No body at all: Content-Length 0 as before.
            let r = up.build(&req, empty()).unwrap();
            assert_eq!(header(&r, "content-length"), "0");
        }
    }
}
