//! The HTTP/1.1 transport under the S3 client: our own connector (DNS, TCP
//! with `TCP_NODELAY`, optional TLS) so that every failure is classified into a
//! typed [`Outcome`] at the place it happens, plus a small connection pool.
//!
//! Every TCP socket gets `TCP_NODELAY`, and on Linux `TCP_QUICKACK` re-armed
//! after each read and write ([`QuickAck`]): servers such as Garage write the
//! response headers and a small body in two segments without `TCP_NODELAY`,
//! so on a reused connection the body would otherwise wait ~40 ms for our
//! delayed ACK.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cutover_core::config::BackendConfig;
use cutover_core::{Endpoint, Outcome};
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::tls::TlsError;

pub type BoxError = Box<dyn StdError + Send + Sync>;
/// The request body type: a whole buffer or a stream.
pub type Body = BoxBody<Bytes, BoxError>;

/// A body from bytes in memory.
pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into()).map_err(|never| match never {}).boxed()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A transport failure: the typed outcome and a description without secrets.
#[derive(Debug, Clone)]
pub struct TransportError {
    pub outcome: Outcome,
    pub detail: String,
}

impl TransportError {
    pub fn new(outcome: Outcome, detail: impl Into<String>) -> Self {
        Self { outcome, detail: detail.into() }
    }
}

/// Classifies an error from the connection or hyper by walking its sources.
///
/// An I/O error anywhere in the chain decides. Otherwise a hyper error
/// saying the connection closed, broke mid-answer or was gone before the
/// request could be sent is `ConnectionReset`, whatever its source says.
pub fn classify(err: &(dyn StdError + 'static)) -> TransportError {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    let mut broken = false;
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            let outcome = match io.kind() {
                io::ErrorKind::ConnectionRefused => Outcome::ConnectRefused,
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof => Outcome::ConnectionReset,
                io::ErrorKind::TimedOut => Outcome::Timeout,
                _ if io.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) => Outcome::Tls,
                _ => Outcome::Io(io.kind().to_string()),
            };
            return TransportError::new(outcome, err.to_string());
        }
        if e.is::<rustls::Error>() {
            return TransportError::new(Outcome::Tls, err.to_string());
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>()
            && (h.is_closed() || h.is_incomplete_message() || h.is_canceled())
        {
            broken = true;
        }
        cur = e.source();
    }
    let outcome = if broken { Outcome::ConnectionReset } else { Outcome::Io(err.to_string()) };
    TransportError::new(outcome, err.to_string())
}

/// Opens HTTP/1.1 connections to one endpoint and keeps idle ones for reuse.
///
/// # Guarantees
/// - The pool is keyed by host: a connection opened for one virtual-host
///   bucket name (TLS SNI and certificate included) only ever carries
///   requests for that host.
/// - An idle connection older than the idle limit ([`IDLE_TIMEOUT`] unless
///   set with [`Connector::idle_timeout`]) is closed instead of reused, so a
///   request never goes out on a socket the server is about to close after
///   its own keep-alive timeout; at most [`MAX_IDLE_PER_HOST`] idle
///   connections are kept per host.
/// - With a `ca_file` that cannot be used, every connection attempt to an
///   `https` endpoint fails with outcome `Tls` and a message naming the
///   file: never a silent fallback to the public roots.
#[derive(Clone)]
pub struct Connector {
    endpoint: Endpoint,
    connect_timeout: Duration,
    tls: Option<Result<tokio_rustls::TlsConnector, TlsError>>,
    /// `None`: every request opens a fresh connection (probes).
    pool: Option<Arc<Pool>>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("endpoint", &self.endpoint.to_string())
            .field("pooled", &self.pool.is_some())
            .finish()
    }
}

/// A connection checked out of a [`Connector`], for one host.
pub struct Pooled {
    host: String,
    sender: SendRequest<Body>,
}

impl std::fmt::Debug for Pooled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pooled").field("host", &self.host).finish_non_exhaustive()
    }
}

impl std::ops::Deref for Pooled {
    type Target = SendRequest<Body>;
    fn deref(&self) -> &Self::Target {
        &self.sender
    }
}

impl std::ops::DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.sender
    }
}

/// How long an idle pooled connection may wait for its next request: below
/// the keep-alive timeouts of common servers (nginx 75 s, AWS S3 and Ceph
/// RGW about a minute), so that cutover closes first.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The most idle connections kept per host.
pub const MAX_IDLE_PER_HOST: usize = 64;

/// An idle connection and the moment it became idle.
type Idle = (Instant, SendRequest<Body>);

/// Idle connections by host, oldest first.
struct Pool {
    idle: Mutex<HashMap<String, Vec<Idle>>>,
    idle_timeout: Duration,
}

impl Pool {
    fn new(idle_timeout: Duration) -> Self {
        Self { idle: Mutex::new(HashMap::new()), idle_timeout }
    }

    /// The most recently used idle connection to `host` that is still fresh
    /// and ready; expired and closed ones are dropped (closing them).
    fn take(&self, host: &str) -> Option<SendRequest<Body>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(host)?;
        let now = Instant::now();
        list.retain(|(since, s)| now.duration_since(*since) < self.idle_timeout && !s.is_closed());
        let found = std::iter::from_fn(|| list.pop()).find(|(_, s)| s.is_ready()).map(|(_, s)| s);
        if list.is_empty() {
            idle.remove(host);
        }
        found
    }

    fn put(&self, host: String, sender: SendRequest<Body>) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let list = idle.entry(host).or_default();
        list.retain(|(since, s)| now.duration_since(*since) < self.idle_timeout && !s.is_closed());
        if list.len() < MAX_IDLE_PER_HOST {
            list.push((now, sender));
        }
    }
}

impl Connector {
    /// A connector trusting the public (webpki) roots for `https`.
    pub fn new(endpoint: Endpoint, connect_timeout: Duration, pooled: bool) -> Self {
        Self::with_ca_file(endpoint, connect_timeout, pooled, None)
    }

    /// A connector that also trusts the certificates of `ca_file` (see
    /// [`crate::tls`]). A file that cannot be used fails every connection
    /// attempt with outcome `Tls`; `cutover` checks the file when it loads
    /// its configuration, so this is the case of a file broken since.
    pub fn with_ca_file(endpoint: Endpoint, connect_timeout: Duration, pooled: bool, ca_file: Option<&Path>) -> Self {
        let tls = endpoint.tls.then(|| crate::tls::client_config(ca_file).map(tokio_rustls::TlsConnector::from));
        let pool = pooled.then(|| Arc::new(Pool::new(IDLE_TIMEOUT)));
        Self { endpoint, connect_timeout, tls, pool }
    }

    /// The connector of a backend: its endpoint and `ca_file`.
    pub fn for_backend(backend: &BackendConfig, connect_timeout: Duration, pooled: bool) -> Self {
        Self::with_ca_file(backend.endpoint.clone(), connect_timeout, pooled, backend.ca_file.as_deref())
    }

    /// Sets how long a pooled connection may stay idle and still be reused
    /// (default [`IDLE_TIMEOUT`]). Connections already idle are dropped.
    pub fn idle_timeout(mut self, limit: Duration) -> Self {
        if self.pool.is_some() {
            self.pool = Some(Arc::new(Pool::new(limit)));
        }
        self
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// A ready connection to `host` (the virtual-host name or the
    /// endpoint's host): a fresh idle pooled one, or a new one. It derefs to
    /// hyper's `SendRequest` and remembers its host for [`Self::checkin`].
    pub async fn checkout(&self, host: &str) -> Result<Pooled, TransportError> {
        let sender = match self.pool.as_ref().and_then(|pool| pool.take(host)) {
            Some(s) => s,
            None => self.connect(host).await?,
        };
        Ok(Pooled { host: host.to_string(), sender })
    }

    /// Returns a connection to the pool of its host as soon as it can take
    /// another request, that is once the response body handed out by
    /// `send_request` has been read to its end. For streamed responses:
    /// call it right after `send_request` and give the body away; a body
    /// dropped unread closes the connection instead.
    pub fn checkin_when_ready(&self, conn: Pooled) {
        if let Some(pool) = self.pool.clone() {
            let Pooled { host, mut sender } = conn;
            tokio::spawn(async move {
                if sender.ready().await.is_ok() {
                    pool.put(host, sender);
                }
            });
        }
    }

    /// Returns a connection for reuse once its response has been read.
    pub fn checkin(&self, conn: Pooled) {
        if let Some(pool) = &self.pool
            && !conn.sender.is_closed()
        {
            pool.put(conn.host, conn.sender);
        }
    }

    async fn connect(&self, host: &str) -> Result<SendRequest<Body>, TransportError> {
        if let Some(Err(e)) = &self.tls {
            return Err(tls_setup_error(e));
        }
        let stream = self.connect_tcp(host).await?;
        self.handshake(QuickAck::new(stream), host).await
    }

    /// A new TCP connection to `host` (resolved within the connect timeout)
    /// on the endpoint's port, with `TCP_NODELAY`; no TLS, no HTTP.
    pub async fn connect_tcp(&self, host: &str) -> Result<TcpStream, TransportError> {
        let port = self.endpoint.port;
        let addrs: Vec<SocketAddr> = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => match tokio::time::timeout(self.connect_timeout, tokio::net::lookup_host((host, port))).await {
                Err(_) => return Err(TransportError::new(Outcome::Dns, format!("resolving {host} timed out"))),
                Ok(Err(e)) => return Err(TransportError::new(Outcome::Dns, format!("resolving {host}: {e}"))),
                Ok(Ok(a)) => a.collect(),
            },
        };
        if addrs.is_empty() {
            return Err(TransportError::new(Outcome::Dns, format!("{host} has no address")));
        }
        let mut last = None;
        for addr in addrs {
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                Err(_) => last = Some(TransportError::new(Outcome::Timeout, format!("connecting to {addr} timed out"))),
                Ok(Err(e)) => {
                    last = Some(TransportError { detail: format!("connecting to {addr}: {e}"), ..classify(&e) })
                }
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(stream);
                }
            }
        }
        Err(last.expect("at least one address"))
    }

    async fn handshake(&self, stream: QuickAck, host: &str) -> Result<SendRequest<Body>, TransportError> {
        match &self.tls {
            None => spawn_http1(stream).await,
            Some(Err(e)) => Err(tls_setup_error(e)),
            Some(Ok(tls)) => {
                let name = rustls::pki_types::ServerName::try_from(host.to_string())
                    .map_err(|e| TransportError::new(Outcome::Tls, format!("{host}: {e}")))?;
                let stream = tokio::time::timeout(self.connect_timeout, tls.connect(name, stream))
                    .await
                    .map_err(|_| TransportError::new(Outcome::Timeout, format!("TLS handshake with {host} timed out")))?
                    .map_err(|e| TransportError { outcome: Outcome::Tls, detail: handshake_error(host, &e) })?;
                spawn_http1(stream).await
            }
        }
    }
}

/// A failed handshake in words; an unknown issuer gets the hint that a
/// private CA is trusted with `ca_file`.
fn handshake_error(host: &str, e: &io::Error) -> String {
    let unknown_issuer = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| matches!(r, rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)));
    let hint = if unknown_issuer { " (signed by a private CA? trust it with ca_file)" } else { "" };
    format!("TLS handshake with {host}: {e}{hint}")
}

fn tls_setup_error(e: &TlsError) -> TransportError {
    TransportError::new(Outcome::Tls, format!("ca_file {e}"))
}

async fn spawn_http1<T>(io: T) -> Result<SendRequest<Body>, TransportError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(|e| classify(&e))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "backend connection ended");
        }
    });
    Ok(sender)
}

/// A TCP stream that re-arms `TCP_QUICKACK` after every read and write (the
/// kernel leaves quick-ACK mode again on its own). Elsewhere than Linux it is
/// a plain stream.
#[derive(Debug)]
pub struct QuickAck {
    inner: TcpStream,
}

impl QuickAck {
    pub fn new(inner: TcpStream) -> Self {
        let s = Self { inner };
        s.arm();
        s
    }

    fn arm(&self) {
        quickack(&self.inner);
    }
}

/// Asks for the next segments received on `s` to be acknowledged at once
/// (Linux leaves quick-ACK mode again on its own); elsewhere nothing.
pub fn quickack(s: &TcpStream) {
    #[cfg(target_os = "linux")]
    {
        let _ = socket2::SockRef::from(s).set_tcp_quickack(true);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = s;
}

impl AsyncRead for QuickAck {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if r.is_ready() {
            self.arm();
        }
        r
    }
}

impl AsyncWrite for QuickAck {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if r.is_ready() {
            self.arm();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if r.is_ready() {
            self.arm();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// What broke: a server that reset the connection right after accepting
    /// it (a chaos proxy with `reset`) made hyper answer "operation was
    /// canceled" ("connection was not ready") when the reset arrived before
    /// the request was sent, and that was classified `Io`, not `ConnectionReset`.
    #[tokio::test]
    async fn regression_a_reset_before_the_request_was_sent_was_io_not_connection_reset() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // The reset waits until the connection is checked out: a reset while
        // connecting is a connect error, not what this test is about.
        let (checked_out, reset) = std::sync::mpsc::channel::<()>();
        let server = std::thread::spawn(move || {
            let (socket, _) = listener.accept().unwrap();
            reset.recv().unwrap();
            socket2::SockRef::from(&socket).set_linger(Some(Duration::ZERO)).unwrap();
        });
        let endpoint = Endpoint::parse(&format!("http://{addr}")).unwrap();
        let mut sender = Connector::new(endpoint, Duration::from_secs(10), false).checkout("127.0.0.1").await.unwrap();
        checked_out.send(()).unwrap();
        server.join().unwrap();
        while !sender.is_closed() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let request = http::Request::builder().uri("/").header("host", "x").body(empty()).unwrap();
        let err = sender.send_request(request).await.unwrap_err();
        assert!(err.is_canceled(), "{err:?}");
        assert_eq!(classify(&err).outcome, Outcome::ConnectionReset, "{err:?}");
    }
}
