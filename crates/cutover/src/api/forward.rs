//! With `[ha]`, a mutating request (approve, reject, failover) that reaches
//! a standby is forwarded once to the leader's API (`advertise_api`), so
//! that the nodes' APIs behave as one behind a load balancer. The caller's
//! `Authorization` goes with it (the leader checks it and audits the
//! actor), and the answer comes back as the leader gave it, with
//! `X-Cutover-Forwarded-To: <leader node>`.
//!
//! # Guarantees
//! - At most one hop: a forwarded request carries
//!   `X-Cutover-Forwarded-By: <node>` and is never forwarded again.
//! - When the leader cannot be reached (or none is known, or this node
//!   leads), the request is handled here as before: a standby answers 503
//!   naming the leader (`{"leader": {"node", "api"}}`), which the CLI
//!   follows once. When it was sent but got no answer it may have been
//!   applied there: 502 saying so (never a 503 that invites a second send).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cutover_core::Endpoint;
use cutover_etcd::Role;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use http::{Method, StatusCode};

use crate::wiring::Shared;

/// Names the node that forwarded a request.
pub const FORWARDED_BY: &str = "x-cutover-forwarded-by";
/// Names the leader that answered a forwarded request.
pub const FORWARDED_TO: &str = "x-cutover-forwarded-to";
/// The largest body forwarded (the API's own bodies are at most 64 KiB).
const BODY_LIMIT: usize = 1 << 16;

/// The middleware of the mutating routes.
pub async fn to_leader(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let Some(ha) = shared.ha.as_ref() else { return next.run(req).await };
    if req.method() != Method::POST || req.headers().contains_key(FORWARDED_BY) {
        return next.run(req).await;
    }
    let leader = match &ha.status.borrow().role {
        Role::Standby { leader: Some(l) } if l.node != ha.node && !l.api.is_empty() => Some(l.clone()),
        _ => None,
    };
    let Some(leader) = leader else { return next.run(req).await };
    let Ok(endpoint) = Endpoint::parse(&leader.api) else { return next.run(req).await };
    let (parts, body) = req.into_parts();
    // Read as the handler would (its limit, its deadline, its refusals).
    let bytes = match super::body::read(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let path = parts.uri.path_and_query().map_or(parts.uri.path(), |p| p.as_str()).to_string();
    let authorization = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let sent = crate::client::send(
        &endpoint,
        Method::POST,
        &path,
        &authorization,
        &[(FORWARDED_BY, ha.node.as_str())],
        bytes.clone(),
    )
    .await;
    match sent {
        Ok((status, text)) => {
            tracing::info!(leader = %leader.node, %path, status, "a mutating request on this standby was forwarded to the leader");
            let mut r = Response::new(Body::from(text));
            *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            if let Ok(v) = HeaderValue::from_str(&leader.node) {
                r.headers_mut().insert(FORWARDED_TO, v);
            }
            r
        }
        Err(e @ crate::client::ClientError::Connect(_)) => {
            // Not sent: handled here (a 503 naming the leader).
            tracing::warn!(leader = %leader.node, api = %leader.api, error = %e, "the leader could not be reached to forward a request; answering here");
            next.run(Request::from_parts(parts, Body::from(bytes))).await
        }
        Err(e) => {
            // Sent, but no answer: it may have been applied there, so it
            // is not answered in a way that invites sending it again.
            tracing::warn!(leader = %leader.node, api = %leader.api, error = %e, "a request forwarded to the leader got no answer");
            let body = serde_json::json!({
                "error": format!("forwarded to the leader {} at {}, which gave no answer ({e}); it may have been applied there: check /v1/incidents", leader.node, leader.api),
                "leader": {"node": leader.node, "api": leader.api},
            });
            super::error::json(StatusCode::BAD_GATEWAY, &body)
        }
    }
}
