//! The routes and their handlers. Each handler is thin: its extractors
//! authorize the caller and parse the body, it calls one function of
//! [`super::actions`], and it maps the result to a response.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::handler::Handler;
use axum::middleware::from_fn_with_state;
use axum::response::Response;
use axum::routing::{MethodRouter, get, post};
use http::StatusCode;
use http::request::Parts;
use serde_json::json;

use super::actions;
use super::auth::{Admins, Agents, Approvers, Authorized};
use super::body::{DecisionBody, FailoverBody, JsonBody, check_text};
use super::error::{ApiError, json};
use super::evidence::{self, EvidenceBody};
use super::serve::RequestedPath;
use crate::wiring::Shared;

type Result<T, E = ApiError> = std::result::Result<T, E>;

/// The API's router: the read gate and the denial log wrap every route and
/// the fallback.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get_only(healthz))
        .route("/metrics", get_only(super::metrics::handler))
        .route("/v1/status", get_only(status))
        .route("/v1/incidents", get_only(incidents))
        .route("/v1/incidents/{id}", get_only(incident))
        .merge(
            // With [ha], a standby forwards these to the leader.
            Router::new()
                .route("/v1/incidents/{id}/approve", post_only(approve))
                .route("/v1/incidents/{id}/reject", post_only(reject))
                .route("/v1/failover", post_only(failover))
                .route_layer(from_fn_with_state(shared.clone(), super::forward::to_leader)),
        )
        .route("/v1/evidence", post_only(evidence))
        .merge(crate::console::router())
        .fallback(no_endpoint)
        .layer(from_fn_with_state(shared.clone(), super::auth::read_gate))
        .layer(from_fn_with_state(shared.clone(), super::denials::record))
        .with_state(shared)
}

/// A `GET` endpoint; every other method (`HEAD` too) is 405.
fn get_only<H, T>(h: H) -> MethodRouter<Arc<Shared>>
where
    H: Handler<T, Arc<Shared>>,
    T: 'static,
{
    get(h).head(not_allowed("GET")).fallback(not_allowed("GET"))
}

/// A `POST` endpoint; every other method is 405.
fn post_only<H, T>(h: H) -> MethodRouter<Arc<Shared>>
where
    H: Handler<T, Arc<Shared>>,
    T: 'static,
{
    post(h).fallback(not_allowed("POST"))
}

fn not_allowed(allow: &'static str) -> impl Handler<((),), Arc<Shared>> {
    move || async move { ApiError::MethodNotAllowed { allow } }
}

async fn no_endpoint(req: Request) -> ApiError {
    let path = match req.extensions().get::<RequestedPath>() {
        Some(p) => p.0.clone(),
        None => req.uri().path().trim_end_matches('/').to_string(),
    };
    ApiError::NoEndpoint(path)
}

/// The `{id}` of `/v1/incidents/{id}[/verb]` as sent, not percent-decoded
/// (incident ids are plain ASCII; one that is not is not found).
struct IncidentId(String);

impl<S: Send + Sync> FromRequestParts<S> for IncidentId {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        let id = parts.uri.path().split('/').filter(|s| !s.is_empty()).nth(2).unwrap_or_default();
        Ok(Self(id.to_string()))
    }
}

async fn healthz() -> Response {
    Response::new(Body::from("ok\n"))
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    json(StatusCode::OK, &actions::status(&shared))
}

async fn incidents(State(shared): State<Arc<Shared>>) -> Result<Response> {
    Ok(json(StatusCode::OK, &actions::incidents(&shared).await?))
}

async fn incident(State(shared): State<Arc<Shared>>, IncidentId(id): IncidentId) -> Result<Response> {
    let v = actions::incident(&shared, &id).await?.ok_or(ApiError::NoIncident(id))?;
    Ok(json(StatusCode::OK, &v))
}

async fn approve(
    State(shared): State<Arc<Shared>>,
    IncidentId(id): IncidentId,
    who: Authorized<Approvers>,
    JsonBody(body): JsonBody<DecisionBody>,
) -> Result<Response> {
    verdict(&shared, &id, true, &who.name, body).await
}

async fn reject(
    State(shared): State<Arc<Shared>>,
    IncidentId(id): IncidentId,
    who: Authorized<Approvers>,
    JsonBody(body): JsonBody<DecisionBody>,
) -> Result<Response> {
    verdict(&shared, &id, false, &who.name, body).await
}

async fn verdict(shared: &Shared, id: &str, approve: bool, actor: &str, body: DecisionBody) -> Result<Response> {
    let comment = body.comment.unwrap_or_default();
    check_text("comment", &comment, 4096)?;
    let started = actions::verdict(shared, id, approve, actor, &comment).await?;
    let verdict = if approve { cutover_core::domain::Verdict::Approve } else { cutover_core::domain::Verdict::Reject };
    Ok(json(StatusCode::OK, &json!({"incident": id, "verdict": verdict, "by": actor, "failover_started": started})))
}

async fn failover(
    State(shared): State<Arc<Shared>>,
    who: Authorized<Admins>,
    JsonBody(body): JsonBody<FailoverBody>,
) -> Result<Response> {
    check_text("target", &body.target, 64)?;
    check_text("reason", &body.reason, 4096)?;
    let due = actions::force_failover(&shared, &body.target, &body.reason, &who.name).await?;
    let answer = json!({"incident": due.incident, "source": due.source, "target": due.target, "by": who.name});
    Ok(json(StatusCode::ACCEPTED, &answer))
}

async fn evidence(
    State(shared): State<Arc<Shared>>,
    who: Authorized<Agents>,
    JsonBody(doc): JsonBody<EvidenceBody>,
) -> Result<Response> {
    evidence::check_vantage(&shared.config, &who, &doc.vantage)?;
    let now = Instant::now();
    let reports = evidence::check_reports(&doc, &actions::backend_names(&shared), now)?;
    let accepted = reports.len();
    actions::observe(&shared, &doc.vantage, reports).await?;
    Ok(json(StatusCode::OK, &json!({"accepted": accepted, "vantage": doc.vantage, "by": who.name})))
}
