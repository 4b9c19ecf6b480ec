//! One backend as the gateway sends to it: requests re-signed with the
//! backend's credentials (payload `UNSIGNED-PAYLOAD`, the body streamed with
//! its Content-Length), over pooled connections with `TCP_NODELAY` and
//! `TCP_QUICKACK` (see `cutover_s3::http`).

use std::time::Duration;

use cutover_core::Outcome;
use cutover_core::config::BackendConfig;
use cutover_s3::Credentials;
use cutover_s3::http::{Connector, TransportError, classify};
use cutover_s3::sigv4::{self, AmzDate, CanonicalRequest, UNSIGNED_PAYLOAD};
use http::{HeaderName, HeaderValue, Method, Request, Response};
use hyper::body::Incoming;

use crate::body::{Body, empty};
use crate::error::GatewayError;

/// A request to one backend, before signing. Key and query are decoded.
#[derive(Debug)]
pub struct UpRequest {
    pub method: Method,
    pub key: Option<String>,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Body,
    pub content_length: Option<u64>,
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
        }
    }
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
}

impl Upstream {
    pub fn new(b: &BackendConfig, connect_timeout: Duration) -> Result<Self, GatewayError> {
        let creds = cutover_s3::resolve_credentials(b)
            .map_err(|e| GatewayError::Secret { what: format!("backend {}", b.name), detail: e.to_string() })?;
        Ok(Self {
            name: b.name.clone(),
            bucket: b.bucket.clone(),
            region: b.region.clone(),
            path_style: b.path_style,
            creds,
            conn: Connector::new(b.endpoint.clone(), connect_timeout, true),
        })
    }

    /// (Host header, host to connect to, encoded path).
    fn locate(&self, key: Option<&str>) -> (String, String, String) {
        let ep = self.conn.endpoint();
        let key_path = key.map(|k| sigv4::uri_encode(k, true)).unwrap_or_default();
        if self.path_style {
            let path = if key.is_some() { format!("/{}/{key_path}", self.bucket) } else { format!("/{}", self.bucket) };
            (ep.authority(), ep.host.clone(), path)
        } else {
            (
                format!("{}.{}", self.bucket, ep.authority()),
                format!("{}.{}", self.bucket, ep.host),
                format!("/{key_path}"),
            )
        }
    }

    fn build(&self, req: &UpRequest, body: Body) -> Result<(Request<Body>, String), TransportError> {
        let (authority, connect_host, path) = self.locate(req.key.as_deref());
        let date = AmzDate::now();
        let mut signed: Vec<(String, String)> = vec![
            ("host".into(), authority.clone()),
            ("x-amz-date".into(), date.datetime.clone()),
            ("x-amz-content-sha256".into(), UNSIGNED_PAYLOAD.into()),
        ];
        if let Some(t) = &self.creds.session_token {
            signed.push(("x-amz-security-token".into(), t.expose().to_string()));
        }
        let mut unsigned: Vec<(HeaderName, HeaderValue)> = Vec::new();
        for (k, v) in &req.headers {
            let n = k.as_str();
            let sign = n.starts_with("x-amz-") || n == "content-type" || n == "content-md5";
            match v.to_str() {
                Ok(s) if sign => signed.push((n.to_string(), s.to_string())),
                _ => unsigned.push((k.clone(), v.clone())),
            }
        }
        let canonical = CanonicalRequest {
            method: req.method.as_str(),
            encoded_path: &path,
            query: &req.query,
            headers: &signed,
            payload_hash: UNSIGNED_PAYLOAD,
        };
        let auth = sigv4::authorization(
            &self.creds.access_key_id,
            self.creds.secret_access_key.expose(),
            &self.region,
            &date,
            &canonical,
        );
        let query: Vec<String> = req
            .query
            .iter()
            .map(|(k, v)| format!("{}={}", sigv4::uri_encode(k, false), sigv4::uri_encode(v, false)))
            .collect();
        let uri = if query.is_empty() { path } else { format!("{path}?{}", query.join("&")) };
        let mut b = Request::builder().method(req.method.clone()).uri(uri);
        for (k, v) in &signed {
            b = b.header(k.as_str(), v.as_str());
        }
        for (k, v) in unsigned {
            b = b.header(k, v);
        }
        b = b.header("authorization", auth);
        if let Some(n) = req.content_length {
            b = b.header("content-length", n);
        } else if matches!(req.method, Method::PUT | Method::POST) {
            b = b.header("content-length", 0);
        }
        let request = b.body(body).map_err(|e| TransportError {
            outcome: Outcome::Protocol(e.to_string()),
            detail: format!("building the request to {}: {e}", self.name),
        })?;
        Ok((request, connect_host))
    }

    /// Sends a request and returns the answer with its body still streaming.
    /// `header_timeout` bounds the wait for the answer's headers (use it for
    /// requests without a body; with a body the wait includes the upload).
    pub async fn send(
        &self,
        req: UpRequest,
        header_timeout: Option<Duration>,
    ) -> Result<Response<Incoming>, TransportError> {
        let bodyless = req.content_length.unwrap_or(0) == 0 && !matches!(req.method, Method::PUT | Method::POST);
        let mut req = req;
        let mut body = Some(std::mem::replace(&mut req.body, empty()));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let b = body.take().unwrap_or_else(empty);
            let (request, host) = self.build(&req, b)?;
            let work = async {
                let mut sender = self.conn.checkout(&host).await?;
                let resp = sender.send_request(request).await.map_err(|e| classify(&e))?;
                self.conn.checkin_when_ready(sender);
                Ok::<_, TransportError>(resp)
            };
            let r = match header_timeout {
                None => work.await,
                Some(t) => match tokio::time::timeout(t, work).await {
                    Ok(r) => r,
                    Err(_) => Err(TransportError {
                        outcome: Outcome::Timeout,
                        detail: format!("{}: no answer within {t:?}", self.name),
                    }),
                },
            };
            match r {
                // A pooled connection the backend had closed: retry once
                // when there is no body to resend.
                Err(e) if bodyless && attempt == 1 && e.outcome == Outcome::ConnectionReset => continue,
                Err(e) => {
                    return Err(TransportError { detail: format!("{}: {}", self.name, e.detail), ..e });
                }
                Ok(resp) => return Ok(resp),
            }
        }
    }
}
