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

/// A plain connection's home task, on the runtime. Its first request is
/// served here (a connection that closes after one request, or whose first
/// request is hyper's, never moves); then it visits the fast lane if the
/// lane admits it, and is served here again (fast path, then hyper) when it
/// comes back.
async fn home(
    inner: Arc<Inner>,
    http: &http1::Builder,
    lane: Option<Arc<Lane>>,
    mut stream: TcpStream,
    mut stopping: Stopping,
) {
    let mut buf = BytesMut::new();
    let mut first = true;
    let to_lane = || !std::mem::take(&mut first) && lane.as_ref().is_some_and(|l| l.load().admits());
    match fast::requests(&inner, &mut stream, &mut buf, &mut stopping, to_lane).await {
        Next::Closed => return,
        Next::Hyper => return fast::hyper(inner, http, stream, buf, stopping).await,
        Next::Leave => {}
    }
    if let Some(lane) = lane {
        let Ok(socket) = stream.into_std() else { return };
        let load = lane.load().clone();
        let (guest, mut told) = (inner.clone(), stopping.clone());
        let visit = lane.visit(async move {
            let mut io = TcpStream::from_std(socket).ok()?;
            match fast::requests(&guest, &mut io, &mut buf, &mut told, || load.should_leave()).await {
                Next::Closed => None,
                next => Some((io.into_std().ok()?, buf, next)),
            }
        });
        let Some(Some((socket, back, next))) = visit.await else { return };
        let Ok(back_home) = TcpStream::from_std(socket) else { return };
        (stream, buf) = (back_home, back);
        if next == Next::Hyper {
            return fast::hyper(inner, http, stream, buf, stopping).await;
        }
    }
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
