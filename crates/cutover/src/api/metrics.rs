//! `GET /metrics`: the controller's metrics, then the in-process gateway's.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use cutover_control::metrics;
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

async fn render_metrics(shared: &Shared) -> String {
    let mut text = render_controller_metrics(shared);
    if let Some(gw) = &shared.gateway {
        gw.refresh_metrics().await;
    }
    // The same text format (0.0.4) as the controller's lines above.
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut text, &shared.registry) {
        tracing::error!(error = %e, "encoding the metrics registry failed");
    }
    text
}

fn render_controller_metrics(shared: &Shared) -> String {
    let status = shared.controller.status();
    let mut gauges = Vec::new();
    for b in &status.backends {
        for state in ["healthy", "suspect", "down", "recovering", "unknown"] {
            let v = if b.health.as_str() == state { 1.0 } else { 0.0 };
            gauges.push((metrics::BACKEND_HEALTH, vec![("backend", b.name.clone()), ("state", state.to_string())], v));
        }
    }
    gauges.push((metrics::OPEN_INCIDENTS, vec![], status.open_incidents as f64));
    let store_errors: Vec<(&'static str, u64)> = status.store_errors.iter().map(|(k, v)| (*k, *v)).collect();
    let mut m = shared.metrics.lock().unwrap();
    for (op, n) in store_errors {
        m.set_counter(metrics::STORE_ERRORS, vec![("op", op.to_string())], n);
    }
    let d = shared.denials.stats();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    m.set_counter(metrics::STORE_ERRORS, vec![("op", "audit.denied".into())], load(&d.failed));
    m.set_counter(metrics::AUDIT_DENIALS_QUEUE_FULL, vec![], load(&d.dropped));
    m.set_counter(metrics::AUDIT_DENIAL_ENTRIES, vec![], load(&d.written));
    m.render(&gauges)
}
