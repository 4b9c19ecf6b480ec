//! The etcd v3 client over etcd's JSON gateway: every call is one
//! `POST /v3/<service>/<method>` with a JSON body on a fresh HTTP/1.1
//! connection (keys and values base64, int64s as JSON strings).
//!
//! # Guarantees
//! - Each attempt on one endpoint is bounded by the request timeout
//!   (connect, send, and the whole answer).
//! - Reads and idempotent calls fail over to the next endpoint on a
//!   transport error or an "unavailable" answer. A transaction fails over
//!   only when it was certainly not applied (the connection was never
//!   made, or etcd said it has no leader): a lost answer is returned as a
//!   transport error, never retried blindly.
//! - With a username, the client authenticates (`/v3/auth/authenticate`)
//!   and sends the token in `Authorization`; an expired token is renewed
//!   once per call. The password is never logged nor put in an error.
//!
//! # Caveats
//! No connection is kept between calls (simple and fail-over friendly;
//! fine at the rate of leases and controller writes). Watches hold one
//! streamed connection each ([`crate::watch`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cutover_core::Secret;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::net::TcpStream;

use crate::error::{EtcdError, TransportError};
use crate::tls::TlsFiles;

/// How to reach etcd.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `http://host:port` or `https://host:port`, tried in order.
    pub endpoints: Vec<String>,
    /// The bound on one attempt of one request on one endpoint.
    pub request_timeout: Duration,
    /// TLS files for `https://` endpoints.
    pub tls: TlsFiles,
    /// etcd user (with `password`).
    pub username: Option<String>,
    pub password: Option<Secret>,
}

impl ClientOptions {
    /// Plain endpoints, no TLS, no authentication.
    pub fn new(endpoints: Vec<String>, request_timeout: Duration) -> Self {
        Self { endpoints, request_timeout, tls: TlsFiles::default(), username: None, password: None }
    }
}

/// A handle on etcd; cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    endpoints: Vec<Endpoint>,
    /// The endpoint that answered last; calls start there.
    preferred: AtomicUsize,
    tls: Option<tokio_rustls::TlsConnector>,
    timeout: Duration,
    auth: Option<Auth>,
}

struct Auth {
    user: String,
    password: Secret,
    token: Mutex<Option<String>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub url: String,
    host: String,
    port: u16,
    https: bool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoints", &self.inner.endpoints.iter().map(|e| &e.url).collect::<Vec<_>>())
            .field("timeout", &self.inner.timeout)
            .field("user", &self.inner.auth.as_ref().map(|a| &a.user))
            .finish_non_exhaustive()
    }
}

fn parse_endpoint(url: &str) -> Result<Endpoint, EtcdError> {
    let bad = || EtcdError::Endpoint { endpoint: url.to_string() };
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(bad());
    };
    let authority = rest.trim_end_matches('/');
    let (host, port) = authority.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || authority.contains('/') {
        return Err(bad());
    }
    Ok(Endpoint { url: url.trim_end_matches('/').to_string(), host: host.to_string(), port, https })
}

/// The body of an answer, and its HTTP status.
type Answer = (u16, Bytes);

impl Client {
    /// A client for `options` (no connection is made yet).
    pub fn new(options: &ClientOptions) -> Result<Self, EtcdError> {
        let endpoints = options.endpoints.iter().map(|e| parse_endpoint(e)).collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err(EtcdError::NoEndpoints);
        }
        let tls = if endpoints.iter().any(|e| e.https) {
            Some(tokio_rustls::TlsConnector::from(options.tls.client_config().map_err(EtcdError::Tls)?))
        } else {
            None
        };
        let auth = match (&options.username, &options.password) {
            (Some(user), password) => Some(Auth {
                user: user.clone(),
                password: password.clone().unwrap_or_else(|| Secret::new("")),
                token: Mutex::new(None),
            }),
            _ => None,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                endpoints,
                preferred: AtomicUsize::new(0),
                tls,
                timeout: options.request_timeout,
                auth,
            }),
        })
    }

    /// The request timeout (per attempt).
    pub fn request_timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// The endpoints, as given.
    pub fn endpoints(&self) -> Vec<String> {
        self.inner.endpoints.iter().map(|e| e.url.clone()).collect()
    }

    pub(crate) fn endpoint_count(&self) -> usize {
        self.inner.endpoints.len()
    }

    pub(crate) fn endpoint(&self, i: usize) -> &Endpoint {
        &self.inner.endpoints[i % self.inner.endpoints.len()]
    }

    pub(crate) fn preferred(&self) -> usize {
        self.inner.preferred.load(Ordering::Relaxed)
    }

    /// Opens an HTTP/1.1 connection to endpoint `ep`.
    async fn connect(&self, ep: &Endpoint) -> Result<SendRequest<Full<Bytes>>, TransportError> {
        let tcp = TcpStream::connect((ep.host.as_str(), ep.port)).await.map_err(TransportError::Connect)?;
        let _ = tcp.set_nodelay(true); // latency only
        match (&self.inner.tls, ep.https) {
            (Some(tls), true) => {
                let name = rustls::pki_types::ServerName::try_from(ep.host.clone())
                    .map_err(|_| TransportError::ServerName(ep.host.clone()))?;
                let stream = tls.connect(name, tcp).await.map_err(TransportError::Handshake)?;
                handshake(stream).await
            }
            _ => handshake(tcp).await,
        }
    }

    /// Sends one POST to endpoint `i`; the answer's headers (the body is
    /// left to the caller). Bounded by the request timeout.
    pub(crate) async fn open(
        &self,
        i: usize,
        path: &'static str,
        body: Bytes,
        token: Option<&str>,
    ) -> Result<(u16, Incoming), EtcdError> {
        let ep = self.endpoint(i);
        let t = self.inner.timeout;
        let transport = |source| EtcdError::Transport { endpoint: ep.url.clone(), source };
        let mut send = tokio::time::timeout(t, self.connect(ep))
            .await
            .map_err(|_| transport(TransportError::ConnectTimeout(t)))?
            .map_err(transport)?;
        let mut req = http::Request::post(path)
            .header(http::header::HOST, format!("{}:{}", ep.host, ep.port))
            .header(http::header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            req = req.header(http::header::AUTHORIZATION, token);
        }
        let req = req.body(Full::new(body)).expect("a valid request");
        let resp = tokio::time::timeout(t, send.send_request(req))
            .await
            .map_err(|_| transport(TransportError::Timeout(t)))?
            .map_err(|e| transport(TransportError::Http(e)))?;
        Ok((resp.status().as_u16(), resp.into_body()))
    }

    /// One POST to endpoint `i`, with the whole answer within the timeout.
    async fn post(&self, i: usize, path: &'static str, body: Bytes, token: Option<&str>) -> Result<Answer, EtcdError> {
        let t = self.inner.timeout;
        let url = self.endpoint(i).url.clone();
        let transport = |source| EtcdError::Transport { endpoint: url.clone(), source };
        let work = async {
            let (status, body) = self.open(i, path, body, token).await?;
            let bytes = body.collect().await.map_err(|e| transport(TransportError::Http(e)))?.to_bytes();
            Ok((status, bytes))
        };
        tokio::time::timeout(t, work).await.map_err(|_| transport(TransportError::Timeout(t)))?
    }

    /// The token to send to endpoint `i` (authenticating when needed).
    pub(crate) async fn token(&self, i: usize) -> Result<Option<String>, EtcdError> {
        let Some(auth) = &self.inner.auth else { return Ok(None) };
        if let Some(t) = auth.token.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Ok(Some(t));
        }
        let body = json!({"name": auth.user, "password": auth.password.expose()});
        let (status, bytes) = self.post(i, "/v3/auth/authenticate", Bytes::from(body.to_string()), None).await?;
        if status != 200 {
            let (_, message) = error_of(&bytes);
            return Err(EtcdError::Auth { user: auth.user.clone(), message });
        }
        #[derive(serde::Deserialize)]
        struct Token {
            #[serde(default)]
            token: String,
        }
        let t: Token = decode(&self.endpoint(i).url, "/v3/auth/authenticate", &bytes)?;
        *auth.token.lock().unwrap_or_else(|e| e.into_inner()) = Some(t.token.clone());
        Ok(Some(t.token))
    }

    fn forget_token(&self) {
        if let Some(auth) = &self.inner.auth {
            *auth.token.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    /// One call on endpoint `i`: the decoded answer or etcd's error.
    async fn call_on<T: DeserializeOwned>(&self, i: usize, path: &'static str, body: &Bytes) -> Result<T, EtcdError> {
        for attempt in 0..2 {
            let token = self.token(i).await?;
            let (status, bytes) = self.post(i, path, body.clone(), token.as_deref()).await?;
            if status == 200 {
                return decode(&self.endpoint(i).url, path, &bytes);
            }
            let (code, message) = error_of(&bytes);
            let expired = code == 16 || message.contains("invalid auth token");
            if expired && attempt == 0 && self.inner.auth.is_some() {
                self.forget_token();
                continue;
            }
            return Err(EtcdError::Status {
                endpoint: self.endpoint(i).url.clone(),
                path,
                http: status,
                code,
                message,
            });
        }
        unreachable!("the loop returns on its second attempt")
    }

    /// A call with fail-over across the endpoints, starting with the one
    /// that answered last. `idempotent`: any transport error may be retried
    /// elsewhere; otherwise only one that certainly did not apply.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        path: &'static str,
        req: &Value,
        idempotent: bool,
    ) -> Result<T, EtcdError> {
        let body = Bytes::from(req.to_string());
        let n = self.inner.endpoints.len();
        let first = self.preferred();
        let mut last = None;
        for k in 0..n {
            let i = (first + k) % n;
            match self.call_on(i, path, &body).await {
                Ok(v) => {
                    self.inner.preferred.store(i, Ordering::Relaxed);
                    return Ok(v);
                }
                Err(e) if e.not_applied() || (idempotent && e.try_elsewhere()) => {
                    tracing::debug!(endpoint = %self.endpoint(i).url, error = %e, "etcd: trying the next endpoint");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(EtcdError::Unavailable { tried: n, last: Box::new(last.expect("at least one endpoint")) })
    }
}

async fn handshake<S>(io: S) -> Result<SendRequest<Full<Bytes>>, TransportError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(TransportError::Http)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::trace!(error = %e, "etcd connection ended");
        }
    });
    Ok(send)
}

pub(crate) fn decode<T: DeserializeOwned>(endpoint: &str, path: &'static str, bytes: &[u8]) -> Result<T, EtcdError> {
    serde_json::from_slice(bytes).map_err(|source| EtcdError::Decode { endpoint: endpoint.to_string(), path, source })
}

/// The gRPC code and message of an error answer (`{"error", "message", "code"}`).
pub(crate) fn error_of(bytes: &[u8]) -> (i32, String) {
    #[derive(serde::Deserialize, Default)]
    struct Err {
        #[serde(default)]
        code: i32,
        #[serde(default)]
        message: String,
        #[serde(default)]
        error: String,
    }
    let e: Err = serde_json::from_slice(bytes).unwrap_or_default();
    let message = if !e.message.is_empty() {
        e.message
    } else if !e.error.is_empty() {
        e.error
    } else {
        String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).trim().to_string()
    };
    (e.code, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        let e = parse_endpoint("https://etcd-1.example:2379/").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.https, e.url.as_str()),
            ("etcd-1.example", 2379, true, "https://etcd-1.example:2379")
        );
        let e = parse_endpoint("http://[::1]:2379").unwrap();
        assert_eq!((e.host.as_str(), e.https), ("::1", false));
        for bad in ["127.0.0.1:2379", "http://host", "http://:2379", "http://h:2379/x", "ftp://h:1"] {
            assert!(parse_endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn error_answers_give_code_and_message() {
        let (code, m) = error_of(br#"{"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5}"#);
        assert_eq!((code, m.as_str()), (5, "etcdserver: requested lease not found"));
        assert_eq!(error_of(b"Not Found").1, "Not Found");
    }
}
