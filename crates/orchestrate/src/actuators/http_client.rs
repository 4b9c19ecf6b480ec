//! One HTTP/1.1 request for the actuators that talk HTTP (`http`, `notify`,
//! `terraform_cloud.run`), over cutover's own connector
//! ([`cutover_s3::http::Connector`]: DNS, TCP, rustls with the webpki roots
//! and, with the `ca_file` parameter, a private CA's certificates as well).
//!
//! # Guarantees
//! - Error messages name the scheme and host of the request at most, never
//!   its path or query (webhook URLs carry secrets there), nor any header.
//! - A fresh connection per request; dropping the future closes it.
//! - A response body is read up to [`MAX_BODY`] bytes; the rest is dropped.
//!
//! # Caveats
//! - Redirects are not followed: a 3xx is returned like any other status.
//! - No proxy support (`HTTPS_PROXY` is ignored).

use std::path::PathBuf;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cutover_core::{Endpoint, Outcome};
use cutover_s3::http::{Connector, TransportError, classify, full};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::BodyExt;

use super::{Kind, ParamSpec, Params, StepError, param};

/// How much of a response body is kept.
pub const MAX_BODY: usize = 1024 * 1024;

/// The connect timeout when the step has none shorter.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a text is not a [`Target`]. The messages never repeat the URL (its
/// path, query or user part may hold a secret).
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// Not an `http` or `https` URL with a host.
    #[error("not an http(s) URL (write e.g. \"https://example.com/hook\")")]
    NotUrl {
        /// Absent when the text is a URI, but not an http(s) one with a host.
        #[source]
        source: Option<http::uri::InvalidUri>,
    },
    /// `user:password@` in the URL.
    #[error("credentials do not belong in the URL; send them in a header (headers_env)")]
    Credentials,
}

/// Where a request goes: a parsed and checked `http(s)://host[:port]/path?query`.
#[derive(Clone)]
pub struct Target {
    endpoint: Endpoint,
    path_and_query: String,
    /// CA certificates trusted in addition to the webpki roots (`ca_file`).
    ca_file: Option<PathBuf>,
}

// Debug shows the origin only: the path may hold a secret.
impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("origin", &self.origin()).finish_non_exhaustive()
    }
}

impl Target {
    /// Parses an `http` or `https` URL. The error does not repeat the URL.
    pub fn parse(url: &str) -> Result<Self, TargetError> {
        let not_url = || TargetError::NotUrl { source: None };
        let uri: Uri = url.parse().map_err(|e| TargetError::NotUrl { source: Some(e) })?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(not_url()),
        };
        let authority = uri.authority().ok_or_else(not_url)?;
        if authority.as_str().contains('@') {
            return Err(TargetError::Credentials);
        }
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_string();
        if host.is_empty() {
            return Err(not_url());
        }
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        let path_and_query = if path_and_query.is_empty() { "/".to_string() } else { path_and_query };
        Ok(Self { endpoint: Endpoint { tls, host, port }, path_and_query, ca_file: None })
    }

    /// Trusts the certificates of `ca_file` too (see [`ca_file`]).
    pub fn with_ca_file(mut self, ca_file: Option<PathBuf>) -> Self {
        self.ca_file = ca_file;
        self
    }

    /// `scheme://host[:port]`, safe to show.
    pub fn origin(&self) -> String {
        self.endpoint.to_string()
    }
}

/// The `ca_file` parameter of the `http`, `notify` and `terraform_cloud.run`
/// steps, declared once.
pub const CA_FILE: ParamSpec = ParamSpec::optional(
    "ca_file",
    Kind::String,
    "a PEM file of CA certificates trusted in addition to the public roots (a private CA)",
);

/// The `ca_file` parameter, read and checked: a PEM bundle of CA
/// certificates ([`cutover_s3::tls`]). `runbook check` resolves a relative
/// path against the runbook's directory; one left relative here is taken
/// from the working directory. A file that cannot be used is a parameter
/// error naming it (not retried).
pub fn ca_file(params: &Params) -> Result<Option<PathBuf>, StepError> {
    let Some(path) = param::opt_str(params, "ca_file")? else { return Ok(None) };
    if path.trim().is_empty() {
        return Err(param::error("ca_file", "must not be empty (the path of a PEM file of CA certificates)"));
    }
    let path = PathBuf::from(path);
    cutover_s3::tls::check_ca_file(&path).map_err(|e| param::error("ca_file", e.to_string()))?;
    Ok(Some(path))
}

/// The connect timeout for a step with timeout `step`: at most 10 s, and no
/// longer than the step may take.
pub fn connect_timeout(step: Duration) -> Duration {
    if step.is_zero() { CONNECT_TIMEOUT } else { step.min(CONNECT_TIMEOUT) }
}

/// Sends one request and reads the answer. `Host`, `Content-Length` and a
/// `User-Agent` are added unless `headers` has them. A transport failure is
/// [`StepError::Failed`] with a message naming `method` and the origin.
pub async fn request(
    method: Method,
    target: &Target,
    headers: HeaderMap,
    body: Bytes,
    connect_timeout: Duration,
) -> Result<(StatusCode, HeaderMap, Bytes), StepError> {
    send(method.clone(), target, headers, body, connect_timeout)
        .await
        .map_err(|e| StepError::Failed(format!("{method} {}: {}", target.origin(), e.detail)))
}

/// [`request`] with the failure typed, for callers that word it themselves.
/// `detail` may name the host and its address, never the path.
pub async fn send(
    method: Method,
    target: &Target,
    mut headers: HeaderMap,
    body: Bytes,
    connect_timeout: Duration,
) -> Result<(StatusCode, HeaderMap, Bytes), TransportError> {
    let protocol = |detail: String| TransportError { outcome: Outcome::Protocol(detail.clone()), detail };
    if !headers.contains_key(header::HOST) {
        let host = HeaderValue::from_str(&target.endpoint.authority()).map_err(|e| protocol(e.to_string()))?;
        headers.insert(header::HOST, host);
    }
    if !headers.contains_key(header::USER_AGENT) {
        headers.insert(header::USER_AGENT, HeaderValue::from_static(concat!("cutover/", env!("CARGO_PKG_VERSION"))));
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));

    let connector = Connector::with_ca_file(target.endpoint.clone(), connect_timeout, false, target.ca_file.as_deref());
    let mut sender = connector.checkout(&target.endpoint.host).await?;
    let mut request = Request::builder()
        .method(method)
        .uri(target.path_and_query.as_str())
        .body(full(body))
        .map_err(|e| protocol(e.to_string()))?;
    *request.headers_mut() = headers;
    let response = sender.send_request(request).await.map_err(|e| classify(&e))?;
    let (parts, mut incoming) = response.into_parts();
    let mut data = BytesMut::new();
    while data.len() < MAX_BODY {
        match incoming.frame().await {
            None => break,
            Some(Err(e)) => {
                let e = classify(&e);
                return Err(TransportError { detail: format!("reading the response: {}", e.detail), ..e });
            }
            Some(Ok(frame)) => {
                if let Ok(chunk) = frame.into_data() {
                    let room = MAX_BODY - data.len();
                    data.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
            }
        }
    }
    Ok((parts.status, parts.headers, data.freeze()))
}

/// A few words for a transport outcome that name no host or address.
pub fn summary(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::ConnectRefused => "connection refused",
        Outcome::ConnectionReset => "connection reset or closed",
        Outcome::Timeout => "timed out",
        Outcome::Dns => "the host name did not resolve",
        Outcome::Tls => "TLS handshake failed",
        Outcome::Protocol(_) => "not a valid HTTP exchange",
        _ => "transport error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_and_keeps_secrets_out_of_errors() {
        let t = Target::parse("https://hooks.example.com/services/T0/B0/s3cr3t?x=1").unwrap();
        assert_eq!(t.origin(), "https://hooks.example.com");
        assert_eq!(t.path_and_query, "/services/T0/B0/s3cr3t?x=1");
        assert!(!format!("{t:?}").contains("s3cr3t"));
        let t = Target::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!((t.origin().as_str(), t.path_and_query.as_str()), ("http://127.0.0.1:8080", "/"));
        let t = Target::parse("http://[::1]:9/x").unwrap();
        assert_eq!(t.endpoint.host, "::1");
        for bad in ["ftp://x/y", "/just/a/path", "http://user:s3cr3t@host/", "not a url s3cr3t"] {
            let e = Target::parse(bad).unwrap_err();
            assert!(!e.to_string().contains("s3cr3t"), "{e}");
            assert!(!format!("{e:?}").contains("s3cr3t"), "{e:?}");
        }
    }

    #[test]
    fn connect_timeout_is_capped_by_the_step() {
        assert_eq!(connect_timeout(Duration::ZERO), CONNECT_TIMEOUT);
        assert_eq!(connect_timeout(Duration::from_secs(2)), Duration::from_secs(2));
        assert_eq!(connect_timeout(Duration::from_secs(600)), CONNECT_TIMEOUT);
    }
}
