//! Who a request is, from its bearer token, and what it may do. Tokens are
//! configured as SHA-256 hashes with roles. Every `GET /v1/*` (and `/metrics`
//! with `api.metrics_require_token`) needs a token of any role
//! ([`read_gate`]); the other endpoints name their roles with the
//! [`Authorized`] extractor. Both go through [`authorize`]: a missing or
//! unknown token is 401, a token without the role 403 naming the roles
//! needed.

use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cutover_core::config::TokenRole;
use http::request::Parts;
use http::{HeaderMap, Method};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::wiring::Shared;

/// A caller allowed in.
#[derive(Debug)]
pub struct Caller {
    pub name: String,
    pub role: TokenRole,
    /// An agent token's vantage.
    pub vantage: Option<String>,
}

/// The roles that may use an endpoint.
pub trait Roles {
    const ALLOWED: &'static [TokenRole];
}

/// Reads: any configured token.
#[derive(Debug)]
pub enum AnyRole {}
/// Evidence: agents and admins.
#[derive(Debug)]
pub enum Agents {}
/// Verdicts on incidents: approvers and admins.
#[derive(Debug)]
pub enum Approvers {}
/// Forced failover: admins.
#[derive(Debug)]
pub enum Admins {}

impl Roles for AnyRole {
    const ALLOWED: &'static [TokenRole] = &[TokenRole::Viewer, TokenRole::Agent, TokenRole::Approver, TokenRole::Admin];
}
impl Roles for Agents {
    const ALLOWED: &'static [TokenRole] = &[TokenRole::Agent, TokenRole::Admin];
}
impl Roles for Approvers {
    const ALLOWED: &'static [TokenRole] = &[TokenRole::Approver, TokenRole::Admin];
}
impl Roles for Admins {
    const ALLOWED: &'static [TokenRole] = &[TokenRole::Admin];
}

/// A caller whose role is one of `R::ALLOWED`.
#[derive(Debug)]
pub struct Authorized<R> {
    caller: Caller,
    roles: PhantomData<R>,
}

impl<R> Deref for Authorized<R> {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        &self.caller
    }
}

impl<R: Roles> FromRequestParts<Arc<Shared>> for Authorized<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Self, ApiError> {
        let caller = authorize(&parts.headers, shared, R::ALLOWED)?;
        Ok(Self { caller, roles: PhantomData })
    }
}

/// Checks the caller's bearer token against the roles allowed.
pub fn authorize(headers: &HeaderMap, shared: &Shared, allowed: &[TokenRole]) -> Result<Caller, ApiError> {
    let auth = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or(ApiError::NoToken)?;
    let token = auth.strip_prefix("Bearer ").ok_or(ApiError::UnknownToken)?;
    let t = token_caller(shared, token).ok_or(ApiError::UnknownToken)?;
    if !allowed.contains(&t.role) {
        let needed: Vec<&str> = allowed.iter().map(|r| role_name(*r)).collect();
        return Err(ApiError::Role { actor: t.name, needed: needed.join(" or ") });
    }
    Ok(t)
}

/// The configured token whose SHA-256 is that of `token` (compared in
/// constant time), whatever its role: the API and the console's sign-in.
pub fn token_caller(shared: &Shared, token: &str) -> Option<Caller> {
    let digest = hex::encode(Sha256::digest(token.trim().as_bytes()));
    let tokens = shared.config.api.as_ref().map(|a| a.tokens.as_slice()).unwrap_or(&[]);
    let t = tokens.iter().find(|t| cutover_s3::sigv4::signatures_equal(&t.sha256, &digest))?;
    Some(Caller { name: t.name.clone(), role: t.role, vantage: t.vantage.clone() })
}

fn role_name(r: TokenRole) -> &'static str {
    match r {
        TokenRole::Viewer => "viewer",
        TokenRole::Agent => "agent",
        TokenRole::Approver => "approver",
        TokenRole::Admin => "admin",
    }
}

/// Middleware: a `GET` of anything under `/v1` (of `/metrics` too with
/// `api.metrics_require_token`), known endpoint or not, needs a token of
/// any role before anything else is looked at.
pub async fn read_gate(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let metrics_need_token = shared.config.api.as_ref().is_some_and(|a| a.metrics_require_token);
    let reads = path == "/v1" || path.starts_with("/v1/") || (metrics_need_token && path == "/metrics");
    if req.method() == Method::GET
        && reads
        && let Err(e) = authorize(req.headers(), &shared, AnyRole::ALLOWED)
    {
        return e.into_response();
    }
    next.run(req).await
}
