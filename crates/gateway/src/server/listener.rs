//! Accepting client connections (TLS when configured) and draining them on
//! shutdown, through `cutover-net`.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::BytesMut;
use cutover_net::{Limits, Stopping};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

use super::fast::{self, Next};
use super::lane::Lane;
use super::{Gateway, Inner};
use crate::error::GatewayError;

impl Gateway {
    /// Serves S3 on `listener` until `shutdown` completes, then lets the
    /// requests in progress finish (at most `drain`) and closes the
    /// connections. Dropping the future closes them at once. At most
    /// `max_connections` are served at once (more are closed at once and
    /// counted); accept errors (out of file descriptors) back off.
    ///
    /// Plain connections visit the fast lane while it has room ([`lane`]).
    /// (Tried and measured before it: one single-threaded runtime per CPU,
    /// connections spread over them. It was no faster than tokio's
    /// work-stealing scheduler; docs/bench-gateway.md.)
    pub async fn serve(&self, listener: TcpListener, shutdown: impl Future<Output = ()>) -> Result<(), GatewayError> {
        let opts = &self.inner.opts;
        let limits = Limits { max_connections: opts.max_connections, header_timeout: opts.client_header_timeout };
        let http = Arc::new(cutover_net::http1(limits));
        let lane = match opts.fast_lane.map(|marks| Lane::start(marks, self.inner.metrics.lane.clone())) {
            None => None,
            Some(Ok(lane)) => Some(Arc::new(lane)),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "gateway: the fast lane did not start; every connection is served on the runtime");
                None
            }
        };
        let refused = || {
            self.inner.metrics.connections_refused.inc();
        };
        let serve = |stream: TcpStream, stopping: Stopping| {
            let (inner, http, lane) = (self.inner.clone(), http.clone(), lane.clone());
            async move {
                match &inner.tls {
                    None => home(inner, &http, lane, stream, stopping).await,
                    Some(tls) => {
                        if let Some(stream) = tls.accept(stream, &inner.metrics).await {
                            fast::serve(inner.clone(), &http, stream, BytesMut::new(), stopping).await
                        }
                    }
                }
            }
        };
        cutover_net::serve_until(listener, "gateway", limits, refused, serve, shutdown, opts.drain).await;
        Ok(())
    }
}

/// A plain connection's home task, on the runtime: it visits the fast lane
/// when the lane admits it, and serves the connection here (fast path, then
/// hyper) when it comes back or was not admitted.
async fn home(
    inner: Arc<Inner>,
    http: &http1::Builder,
    lane: Option<Arc<Lane>>,
    stream: TcpStream,
    stopping: Stopping,
) {
    let (stream, buf) = match lane.filter(|l| l.load().admits()) {
        None => (stream, BytesMut::new()),
        Some(lane) => {
            let Ok(socket) = stream.into_std() else { return };
            let load = lane.load().clone();
            let (guest, mut told) = (inner.clone(), stopping.clone());
            let visit = lane.visit(async move {
                let mut io = TcpStream::from_std(socket).ok()?;
                let mut buf = BytesMut::new();
                match fast::requests(&guest, &mut io, &mut buf, &mut told, || load.should_leave()).await {
                    Next::Closed => None,
                    next => Some((io.into_std().ok()?, buf, next)),
                }
            });
            let Some(Some((socket, buf, next))) = visit.await else { return };
            let Ok(stream) = TcpStream::from_std(socket) else { return };
            if next == Next::Hyper {
                return fast::hyper(inner, http, stream, buf, stopping).await;
            }
            (stream, buf)
        }
    };
    fast::serve(inner, http, stream, buf, stopping).await
}

/// HTTP/1.1 on one client connection through hyper (from where the fast
/// path left it, see [`super::fast`]); once the listener stops, the request
/// in progress finishes and the connection closes. A client must send each
/// request head within `client_header_timeout` (hyper's timer starts when it
/// waits for a head, so it also closes idle kept-alive connections).
pub(super) async fn hyper_connection<I>(inner: Arc<Inner>, http: &http1::Builder, io: I, stopping: Stopping)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let inner = inner.clone();
        async move { Ok::<_, Infallible>(inner.handle(req).await) }
    });
    if let Err(e) = cutover_net::serve_http1(http, TokioIo::new(io), svc, stopping).await {
        tracing::debug!(error = %e, "client connection ended");
    }
}
