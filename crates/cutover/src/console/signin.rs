//! Signing in and out: `GET/POST /ui/login` (an API token, checked
//! against the configured hashes; a double-submit cookie against login
//! CSRF; audited as `console.login`, refusals as `api.denied`) and
//! `POST /ui/logout`.

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use cutover_core::config::TokenRole;
use http::{HeaderMap, StatusCode};
use serde_json::json;

use super::audit;
use super::layout::{page, redirect, refusal};
use super::pages::{post_checks, public_url, secure};
use super::session::{self, COOKIE_NAME, LOGIN_COOKIE, SESSION_TTL, check_csrf, check_origin};
use super::views;
use crate::api::auth_check;
use crate::wiring::Shared;

/// The sign-in form's double-submit cookie lives this long.
const LOGIN_FORM_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// `GET /ui/login`.
pub async fn login_form(State(shared): State<Arc<Shared>>) -> Response {
    let nonce = session::random_token();
    let cookie = session::set_cookie(LOGIN_COOKIE, &nonce, LOGIN_FORM_TTL, secure(&shared));
    let mut resp = page(StatusCode::OK, "sign in", None, views::login(&nonce, None));
    if let Ok(v) = http::HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(http::header::SET_COOKIE, v);
    }
    resp
}

#[derive(Debug, serde::Deserialize)]
pub struct LoginForm {
    token: String,
    csrf: String,
}

/// `POST /ui/login`: the token is checked against the configured hashes;
/// agents may not sign in; the sign-in is audited as `console.login`.
pub async fn login(State(shared): State<Arc<Shared>>, headers: HeaderMap, Form(f): Form<LoginForm>) -> Response {
    if let Err(e) = check_origin(&headers, public_url(&shared)) {
        return e.into_response();
    }
    let nonce = session::cookie(&headers, LOGIN_COOKIE);
    if check_csrf(Some(&f.csrf), nonce.as_deref().unwrap_or("")).is_err() || nonce.is_none() {
        return refusal(StatusCode::FORBIDDEN, "refused: the sign-in form expired; open /ui/login again", None);
    }
    let retry = |msg: &str| {
        let nonce = session::random_token();
        let mut resp = page(StatusCode::UNAUTHORIZED, "sign in", None, views::login(&nonce, Some(msg)));
        let cookie = session::set_cookie(LOGIN_COOKIE, &nonce, LOGIN_FORM_TTL, secure(&shared));
        if let Ok(v) = http::HeaderValue::from_str(&cookie) {
            resp.headers_mut().append(http::header::SET_COOKIE, v);
        }
        resp
    };
    // A refused sign-in goes to the audit log like a refused API request
    // (`api.denied`, aggregated per actor; never the token itself).
    let denied = |actor: &str, why: &str| {
        shared.denials.record(cutover_store::Denial {
            actor: actor.to_string(),
            route: "/ui/login".into(),
            method: "POST".into(),
            status: 401,
            why: why.to_string(),
        });
    };
    let caller = match auth_check(&shared, f.token.trim()) {
        Some(c) => c,
        None => {
            denied("unknown-token", "console sign-in with an unknown token");
            return retry("unknown token");
        }
    };
    if caller.role == TokenRole::Agent {
        denied(&caller.name, "console sign-in with an agent token");
        return retry("agent tokens cannot sign in to the console");
    }
    let detail = json!({"role": role_str(caller.role)});
    if let Err(e) = audit::record(&shared, &caller.name, "console.login", detail).await {
        tracing::error!(error = %e, actor = %caller.name, "console sign-in refused: not audited");
        return refusal(StatusCode::SERVICE_UNAVAILABLE, "sign-in refused: it could not be audited", None);
    }
    let id = shared.console.sessions.open(&caller.name, caller.role);
    let mut resp = redirect("/ui", Some(session::set_cookie(COOKIE_NAME, &id, SESSION_TTL, secure(&shared))));
    let clear = session::set_cookie(LOGIN_COOKIE, "", std::time::Duration::ZERO, secure(&shared));
    if let Ok(v) = http::HeaderValue::from_str(&clear) {
        resp.headers_mut().append(http::header::SET_COOKIE, v);
    }
    resp
}

#[derive(Debug, serde::Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

/// `POST /ui/logout`.
pub async fn logout(State(shared): State<Arc<Shared>>, headers: HeaderMap, Form(f): Form<CsrfForm>) -> Response {
    let s = match post_checks(&shared, &headers, f.csrf.as_deref()) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    if let Err(e) = audit::record(&shared, &s.name, "console.logout", json!({})).await {
        tracing::warn!(error = %e, actor = %s.name, "console sign-out not audited");
    }
    shared.console.sessions.close(&headers);
    redirect("/ui/login", Some(session::set_cookie(COOKIE_NAME, "", std::time::Duration::ZERO, secure(&shared))))
}

fn role_str(r: TokenRole) -> &'static str {
    match r {
        TokenRole::Viewer => "viewer",
        TokenRole::Agent => "agent",
        TokenRole::Approver => "approver",
        TokenRole::Admin => "admin",
    }
}
