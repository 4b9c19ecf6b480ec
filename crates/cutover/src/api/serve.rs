//! Serving the router: the shared accept loop (a cap on connections, a
//! header-read timeout), the path made canonical before routing, and a
//! graceful stop (no new connections; requests in progress finish, for at
//! most [`DRAIN`]).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::response::Response;
use cutover_control::telemetry::Event;
use http::Request;
use http::uri::{PathAndQuery, Uri};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower_service::Service;

use crate::listen::{Limits, accept_loop, http1};
use crate::wiring::Shared;

/// Concurrent API connections; more are closed at once and counted.
const MAX_CONNECTIONS: usize = 256;
/// A client has this long to send a request's headers (and an idle
/// keep-alive connection is closed after it).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// After the stop, how long requests in progress may take to finish.
const DRAIN: Duration = Duration::from_secs(10);

/// The path as the client sent it, less trailing slashes (for the 404's
/// message).
#[derive(Debug, Clone)]
pub struct RequestedPath(pub String);

/// Serves the API on `listener` until `shutdown` completes, then stops
/// accepting and lets the requests in progress finish (at most [`DRAIN`]).
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, shutdown: impl Future<Output = ()>) {
    let limits = Limits { max_connections: MAX_CONNECTIONS, header_timeout: HEADER_READ_TIMEOUT };
    let counter = shared.clone();
    let refused = move || {
        counter.telemetry.emit(&Event::ConnectionRefused { listener: "api".into() });
    };
    let console = shared.clone();
    let app = super::routes::router(shared);
    // Each connection holds a receiver: the sender sees them all gone.
    let (stop_tx, stop_rx) = watch::channel(false);
    let accept = accept_loop(listener, "API", limits, refused, move |socket| {
        serve_connection(app.clone(), socket, limits, stop_rx.clone())
    });
    tokio::select! {
        _ = accept => {}
        _ = shutdown => {}
    }
    // The accept loop is dropped: the listener is closed; the console's
    // live streams end so that they do not hold up the drain.
    crate::console::stop(&console);
    stop_tx.send_replace(true);
    if tokio::time::timeout(DRAIN, stop_tx.closed()).await.is_err() {
        tracing::warn!("API requests still in progress after {DRAIN:?}: leaving them");
    }
}

/// HTTP/1.1 on one connection; after `stop`, the request in progress
/// finishes and the connection closes.
async fn serve_connection(app: Router, socket: TcpStream, limits: Limits, mut stop: watch::Receiver<bool>) {
    let svc = service_fn(move |req| handle(app.clone(), req));
    let conn = http1(limits).serve_connection(TokioIo::new(socket), svc);
    tokio::pin!(conn);
    let served = tokio::select! {
        r = conn.as_mut() => r,
        _ = async { drop(stop.wait_for(|s| *s).await) } => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = served {
        tracing::debug!(error = %e, "API connection ended");
    }
}

async fn handle(mut app: Router, req: Request<Incoming>) -> Result<Response, Infallible> {
    // A `Router` is always ready: no `poll_ready` needed.
    app.call(canonical(req)).await
}

/// Routes see the path without empty segments (`//v1/status/` is
/// `/v1/status`), as the API always accepted it.
fn canonical<B>(mut req: Request<B>) -> Request<B> {
    let path = req.uri().path();
    let requested = RequestedPath(path.trim_end_matches('/').to_string());
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let clean = format!("/{}", segments.join("/"));
    if clean != path {
        let with_query = match req.uri().query() {
            Some(q) => format!("{clean}?{q}"),
            None => clean,
        };
        let mut parts = req.uri().clone().into_parts();
        if let Ok(pq) = PathAndQuery::try_from(with_query) {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
    req.extensions_mut().insert(requested);
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical_of(uri: &str) -> (String, String) {
        let req = canonical(Request::builder().uri(uri).body(()).unwrap());
        let requested = req.extensions().get::<RequestedPath>().unwrap().0.clone();
        (req.uri().to_string(), requested)
    }

    #[test]
    fn empty_segments_and_trailing_slashes_are_dropped_before_routing() {
        assert_eq!(canonical_of("/v1/status"), ("/v1/status".into(), "/v1/status".into()));
        assert_eq!(canonical_of("//v1//status/"), ("/v1/status".into(), "//v1//status".into()));
        assert_eq!(canonical_of("/v1/incidents/x/?a=1"), ("/v1/incidents/x?a=1".into(), "/v1/incidents/x".into()));
        assert_eq!(canonical_of("/"), ("/".into(), "".into()));
    }
}
