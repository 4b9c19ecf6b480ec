//! Accepting client connections (TLS when configured) and draining them on
//! shutdown, through `cutover-net`.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use cutover_net::{Limits, Stopping};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

use super::{Gateway, Inner};
use crate::error::GatewayError;

impl Gateway {
    /// Serves S3 on `listener` until `shutdown` completes, then lets the
    /// requests in progress finish (at most `drain`) and closes the
    /// connections. Dropping the future closes them at once. At most
    /// `max_connections` are served at once (more are closed at once and
    /// counted); accept errors (out of file descriptors) back off.
    ///
    /// (Tried and measured: one single-threaded runtime per CPU accepting
    /// from the same socket, so that a connection and its backend
    /// connections stay on one thread. It was no faster than tokio's
    /// work-stealing scheduler on small PUTs and 8 % slower at 32
    /// connections; docs/bench-gateway.md.)
    pub async fn serve(&self, listener: TcpListener, shutdown: impl Future<Output = ()>) -> Result<(), GatewayError> {
        let opts = &self.inner.opts;
        let limits = Limits { max_connections: opts.max_connections, header_timeout: opts.client_header_timeout };
        let http = Arc::new(cutover_net::http1(limits));
        let refused = || {
            self.inner.metrics.connections_refused.inc();
        };
        let serve = |stream: TcpStream, stopping: Stopping| {
            let (inner, http) = (self.inner.clone(), http.clone());
            async move {
                match &inner.tls {
                    None => super::fast::serve(inner.clone(), &http, stream, stopping).await,
                    Some(tls) => {
                        if let Some(stream) = tls.accept(stream, &inner.metrics).await {
                            super::fast::serve(inner.clone(), &http, stream, stopping).await
                        }
                    }
                }
            }
        };
        cutover_net::serve_until(listener, "gateway", limits, refused, serve, shutdown, opts.drain).await;
        Ok(())
    }
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
