//! `cutover replicate --metrics-listen ADDR`: `GET /metrics` serves the
//! replication lag in the Prometheus text format (`GET /healthz` → ok).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use cutover_sync::ReplicationMetrics;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

fn answer(req: &Request<Incoming>, metrics: &ReplicationMetrics) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => (StatusCode::OK, "text/plain; version=0.0.4", metrics.render(SystemTime::now())),
        (&Method::GET, "/healthz") => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        (_, "/metrics" | "/healthz") => (StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n".to_string()),
        _ => (StatusCode::NOT_FOUND, "text/plain", "not found\n".to_string()),
    };
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

/// Serves until the runtime stops (at most 64 connections at once; a
/// request head must arrive within 10 s).
pub async fn serve(listener: TcpListener, metrics: Arc<ReplicationMetrics>) {
    let limits = crate::listen::Limits { max_connections: 64, header_timeout: std::time::Duration::from_secs(10) };
    let refused = || tracing::warn!("replication metrics: too many connections; one refused");
    crate::listen::accept_loop(listener, "replication metrics", limits, refused, move |socket| {
        let metrics = metrics.clone();
        async move {
            let svc = service_fn(move |req| {
                let resp = answer(&req, &metrics);
                async move { Ok::<_, Infallible>(resp) }
            });
            let _ = crate::listen::http1(limits).serve_connection(TokioIo::new(socket), svc).await;
        }
    })
    .await
}
