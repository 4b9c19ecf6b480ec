//! The console's handlers: each one checks the session (and, for a POST,
//! the `Origin` and the CSRF token), reads or asks what it needs, and
//! renders a view or redirects. A request with `X-Console-Fragment: live`
//! gets the page's live part only (the script swaps it in).

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use cutover_core::config::TokenRole;
use cutover_store::Store;
use http::{HeaderMap, StatusCode};
use serde_json::json;

use super::layout::{self, fragment, page, redirect, refusal};
use super::session::{self, Session, check_csrf, check_origin};
use super::views::{self, AuditFilter, IncidentData, StatusData};
use super::{audit, chart};
use crate::wiring::Shared;

/// Why a request gets no page: not signed in (a GET goes to the sign-in
/// form, a POST is refused), or a forged POST.
#[derive(Debug)]
pub(super) enum NoSession {
    SignIn,
    Expired,
    Forged(session::Forged),
}

impl IntoResponse for NoSession {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn => redirect("/ui/login", None),
            Self::Expired => refusal(StatusCode::FORBIDDEN, "refused: not signed in (or the session expired)", None),
            Self::Forged(f) => f.into_response(),
        }
    }
}

/// The session of a request.
fn signed_in(shared: &Shared, headers: &HeaderMap) -> Result<Session, NoSession> {
    // The script's refresh of an expired session gets a refusal (its banner
    // says so), not the sign-in form swapped into the page.
    let none = if wants_fragment(headers) { NoSession::Expired } else { NoSession::SignIn };
    shared.console.sessions.of(headers).ok_or(none)
}

/// A POST's checks: a session, this console's `Origin`, the session's CSRF token.
pub(super) fn post_checks(shared: &Shared, headers: &HeaderMap, csrf: Option<&str>) -> Result<Session, NoSession> {
    check_origin(headers, public_url(shared)).map_err(NoSession::Forged)?;
    let s = shared.console.sessions.of(headers).ok_or(NoSession::Expired)?;
    check_csrf(csrf, &s.csrf).map_err(NoSession::Forged)?;
    Ok(s)
}

pub(super) fn public_url(shared: &Shared) -> Option<&str> {
    shared.config.api.as_ref().and_then(|a| a.public_url.as_deref())
}

pub(super) fn secure(shared: &Shared) -> bool {
    public_url(shared).is_some_and(|u| u.starts_with("https://"))
}

fn wants_fragment(headers: &HeaderMap) -> bool {
    headers.get("x-console-fragment").is_some_and(|v| v == "live")
}

/// `GET /ui`: the status page.
pub async fn status(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let mut s = match signed_in(&shared, &headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let data = StatusData::read(&shared).await;
    if wants_fragment(&headers) {
        return fragment(views::status_live(&data));
    }
    s.flash = shared.console.sessions.take_flash(&headers);
    page(StatusCode::OK, "status", Some(&s), views::status_page(&s, &data))
}

/// `GET /ui/incidents/{id}`.
pub async fn incident(State(shared): State<Arc<Shared>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let (mut s, data, svg) = match incident_with_chart(&shared, &headers, &id).await {
        Ok(read) => read,
        Err(r) => return r,
    };
    if wants_fragment(&headers) {
        return fragment(views::incident_live(&data, &svg));
    }
    s.flash = shared.console.sessions.take_flash(&headers);
    let title = format!("incident {}", data.incident.id);
    page(StatusCode::OK, &title, Some(&s), views::incident_page(&s, &shared, &data, &svg))
}

/// `GET /ui/incidents/{id}/chart.svg`: the chart alone.
pub async fn chart(State(shared): State<Arc<Shared>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    match incident_with_chart(&shared, &headers, &id).await {
        Ok((_, _, svg)) => layout::with_headers(StatusCode::OK, "image/svg+xml", svg),
        Err(r) => r,
    }
}

/// The session, incident `id` and its chart, or the answer when there is no
/// session (sign in) or no such incident (404).
async fn incident_with_chart(
    shared: &Shared,
    headers: &HeaderMap,
    id: &str,
) -> Result<(Session, IncidentData, String), Response> {
    let s = signed_in(shared, headers).map_err(IntoResponse::into_response)?;
    let Some(data) = IncidentData::read(shared, id).await else {
        return Err(refusal(StatusCode::NOT_FOUND, &format!("no incident {id:?}"), Some(&s)));
    };
    let svg = chart::draw(&chart::ChartInput::from_incident(&data, &shared.console.samples));
    Ok((s, data, svg))
}

#[derive(Debug, serde::Deserialize)]
pub struct DecisionForm {
    csrf: Option<String>,
    #[serde(default)]
    comment: String,
}

/// `POST /ui/incidents/{id}/approve`.
pub async fn approve(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<DecisionForm>,
) -> Response {
    decide(shared, headers, id, true, f).await
}

/// `POST /ui/incidents/{id}/reject`.
pub async fn reject(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<DecisionForm>,
) -> Response {
    decide(shared, headers, id, false, f).await
}

/// A verdict from the console: an approver's, with a comment; audited as
/// `console.approve` / `console.reject`; the outcome (or why not, such as
/// "already decided by X") is shown on the incident's page.
async fn decide(shared: Arc<Shared>, headers: HeaderMap, id: String, approve: bool, f: DecisionForm) -> Response {
    let s = match post_checks(&shared, &headers, f.csrf.as_deref()) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let (verb, done) = if approve { ("approve", "approved") } else { ("reject", "rejected") };
    if !s.may_decide() {
        return refusal(
            StatusCode::FORBIDDEN,
            &format!(
                "refused: {} is a {} and may not {verb} (approvers and admins may)",
                s.name,
                layout::role_name(&s)
            ),
            Some(&s),
        );
    }
    let back = format!("/ui/incidents/{}", views::path_segment(&id));
    let comment = f.comment.trim().to_string();
    let problem = if comment.is_empty() {
        Some("a comment is required".to_string())
    } else {
        crate::api::check_comment(&comment).err()
    };
    if let Some(p) = problem {
        shared.console.sessions.flash(&headers, format!("not sent: {p}"));
        return redirect(&back, None);
    }
    // Under [ha] only the leader acts: a standby's console says who leads.
    if !shared.controller.status().leading {
        let status = crate::api::status_json(&shared);
        let leader = match status["leader"]["node"].as_str() {
            Some(n) => format!("the leader is {n} ({}): decide there", status["leader"]["api"].as_str().unwrap_or("?")),
            None => "no leader is known".into(),
        };
        shared.console.sessions.flash(&headers, format!("not sent: this node is a standby; {leader}"));
        return redirect(&back, None);
    }
    let action = if approve { "console.approve" } else { "console.reject" };
    let detail = json!({"incident": id, "comment": comment});
    if let Err(e) = audit::record(&shared, &s.name, action, detail).await {
        tracing::error!(error = %e, actor = %s.name, "console verdict refused: not audited");
        shared.console.sessions.flash(&headers, "not sent: the verdict could not be audited".into());
        return redirect(&back, None);
    }
    let message = match crate::api::verdict(&shared, &id, approve, &s.name, &comment).await {
        Ok(true) => format!("{done} by {}: the failover starts", s.name),
        Ok(false) => format!("{done} by {}", s.name),
        Err(e) => {
            // The attempt is in the audit log already; so is why it was not recorded.
            let detail = json!({"incident": id, "verb": verb, "why": e.to_string()});
            if let Err(err) = audit::record(&shared, &s.name, "console.verdict_refused", detail).await {
                tracing::warn!(error = %err, actor = %s.name, "a refused console verdict was not audited");
            }
            views::verdict_refused(&e.to_string())
        }
    };
    shared.console.sessions.flash(&headers, message);
    redirect(&back, None)
}

/// `GET /ui/audit`.
pub async fn audit(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(filter): Query<AuditFilter>,
) -> Response {
    let s = match signed_in(&shared, &headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let store = shared.store.clone();
    let read = tokio::task::spawn_blocking(move || (store.audit_entries(), store.verify_audit())).await;
    let (entries, verified) = match read {
        Ok((Ok(e), Ok(v))) => (e, v.map_err(|e| e.to_string())),
        Ok((Err(e), _)) | Ok((_, Err(e))) => {
            return refusal(StatusCode::INTERNAL_SERVER_ERROR, &format!("reading the audit log: {e}"), Some(&s));
        }
        Err(_) => return refusal(StatusCode::INTERNAL_SERVER_ERROR, "reading the audit log failed", Some(&s)),
    };
    let body = views::audit_page(&entries, &verified, &filter);
    if wants_fragment(&headers) {
        return fragment(body);
    }
    page(StatusCode::OK, "audit", Some(&s), body)
}

/// `GET /ui/drills`: the reports of the scheduled drills.
pub async fn drills(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let s = match signed_in(&shared, &headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let dirs: Vec<std::path::PathBuf> = shared.config.drills.iter().map(|d| d.report.clone()).collect();
    let configured = dirs.len();
    let reports = tokio::task::spawn_blocking(move || super::drills::read(&dirs)).await.unwrap_or_default();
    page(StatusCode::OK, "drills", Some(&s), super::drills::page(&reports, configured))
}

/// The configured tokens that may decide, by name.
pub fn deciders(shared: &Shared) -> Vec<String> {
    let tokens = shared.config.api.as_ref().map(|a| a.tokens.as_slice()).unwrap_or(&[]);
    tokens.iter().filter(|t| matches!(t.role, TokenRole::Approver | TokenRole::Admin)).map(|t| t.name.clone()).collect()
}

/// Reads the incident's data off the async workers.
pub async fn read_store<T: Send + 'static>(
    shared: &Shared,
    read: impl FnOnce(&dyn Store) -> T + Send + 'static,
) -> Option<T> {
    let store = shared.store.clone();
    tokio::task::spawn_blocking(move || read(store.as_ref())).await.ok()
}
