//! `GET /metrics`: the process's one registry (the controller's families
//! and the in-process gateway's).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::HeaderValue;
use http::header::CONTENT_TYPE;

use crate::wiring::Shared;

/// The handler: Prometheus text format.
pub async fn handler(State(shared): State<Arc<Shared>>) -> Response {
    let text = render_metrics(&shared).await;
    let mut resp = Response::new(Body::from(text));
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    resp
}

/// The registry's text. The controller task keeps its status gauges
/// current itself; the denial log's counters are copied in here.
async fn render_metrics(shared: &Shared) -> String {
    let d = shared.denials.stats();
    shared.telemetry.metrics().set_denials(
        d.failed.load(Ordering::Relaxed),
        d.dropped.load(Ordering::Relaxed),
        d.written.load(Ordering::Relaxed),
    );
    if let Some(gw) = &shared.gateway {
        gw.refresh_metrics().await;
    }
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut text, &shared.registry) {
        tracing::error!(error = %e, "encoding the metrics registry failed");
    }
    text
}
