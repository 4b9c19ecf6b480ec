//! The HTTP API, on axum: `/healthz`, `/v1/status`, `/v1/incidents[/{id}]`,
//! `POST /v1/incidents/{id}/approve|reject` (approver), `POST /v1/failover`
//! (admin), `POST /v1/evidence` (agents), `/metrics`. Bearer tokens are
//! configured as SHA-256 hashes with roles; every `GET /v1/*` needs a token
//! of any role (`/metrics` too with `api.metrics_require_token`), a missing
//! or wrong token gets 401, a token without the role 403, and the attempt is
//! audited. An agent token posts evidence for its own vantage only. Every
//! body is a typed struct checked field by field before the controller sees
//! it.
//!
//! - [`serve`]: the listener, the canonical path, the graceful stop;
//! - `routes`: the router and its thin handlers;
//! - `auth`: tokens and roles; `denials`: the audit of refusals;
//! - `body`, `evidence`: typed bodies and their checks;
//! - `error`: every failure and its status code;
//! - `actions`: what each endpoint asks of the controller;
//! - `metrics`: `GET /metrics`.
//!
//! The console (`/ui/`, [`crate::console`]) is merged into the same router.

mod actions;
mod auth;
mod body;
mod denials;
mod error;
mod evidence;
mod forward;
mod metrics;
mod routes;
mod serve;

pub use actions::{incident_json, status as status_json, verdict};
pub use auth::token_caller as auth_check;
pub use serve::serve;

/// The checks of an approval's comment that `/v1` makes (length, control
/// characters), for the console's form.
pub fn check_comment(comment: &str) -> Result<(), String> {
    body::check_text("comment", comment, 4096).map_err(|e| e.to_string())
}
