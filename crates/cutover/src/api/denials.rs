//! Every refused request (401, 403) goes to the audit log, from one place:
//! [`record`] sees each response and writes those that carry a
//! [`Refusal`]. The record goes to the denial log's own writer (aggregated
//! per actor, route and status; never blocking, never taking the
//! controller's lock).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::Method;

use super::error::Refusal;
use crate::wiring::Shared;

/// Middleware: records the refusal a response carries, if any.
pub async fn record(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let route = route(req.uri().path());
    let method = method_name(req.method());
    let resp = next.run(req).await;
    if let Some(r) = resp.extensions().get::<Refusal>() {
        shared.denials.record(cutover_store::Denial {
            actor: r.actor.clone(),
            route: route.to_string(),
            method: method.to_string(),
            status: resp.status().as_u16(),
            why: r.why.chars().take(256).collect(),
        });
    }
    resp
}

/// The route template of a path: a bounded set, so that refusals of made-up
/// paths aggregate instead of each becoming a row.
fn route(path: &str) -> &'static str {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["healthz"] => "/healthz",
        ["metrics"] => "/metrics",
        ["v1", "status"] => "/v1/status",
        ["v1", "incidents"] => "/v1/incidents",
        ["v1", "incidents", _] => "/v1/incidents/{id}",
        ["v1", "incidents", _, "approve"] => "/v1/incidents/{id}/approve",
        ["v1", "incidents", _, "reject"] => "/v1/incidents/{id}/reject",
        ["v1", "failover"] => "/v1/failover",
        ["v1", "evidence"] => "/v1/evidence",
        ["v1", ..] => "/v1/*",
        _ => "/*",
    }
}

fn method_name(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}
