//! Every way an API request fails, and its status code, in one place. The
//! body is always `{"error": "<the message>"}`. A refusal (401, 403) also
//! carries a [`Refusal`] in the response's extensions, which
//! [`super::denials::record`] writes to the denial log.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use cutover_control::controller::RequestError;
use cutover_store::StoreError;
use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderValue, StatusCode};
use serde_json::{Value, json};

use super::body::BODY_READ_TIMEOUT;
use super::evidence::EvidenceError;

/// Why a request was not served.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: no `Authorization` header.
    #[error("a bearer token is required")]
    NoToken,
    /// 401: not a bearer token, or not a configured one.
    #[error("unknown bearer token")]
    UnknownToken,
    /// 403: the token's role may not use this endpoint; `needed` names the roles that may.
    #[error("this token's role may not do that (needs {needed})")]
    Role { actor: String, needed: String },
    /// 403: an agent token posting evidence for another vantage.
    #[error("this token speaks for vantage {own:?} only, not {asked:?}")]
    OtherVantage { actor: String, own: String, asked: String },
    /// 403: evidence for a vantage no agent token has.
    #[error("{asked:?} is not the vantage of any agent token")]
    UnknownVantage { actor: String, asked: String },
    /// 400: the body broke off or is over its limit.
    #[error("reading the body: {0}")]
    BodyRead(#[source] axum::BoxError),
    /// 408: the body was too slow.
    #[error("the body did not arrive within {BODY_READ_TIMEOUT:?}")]
    BodyTimeout,
    /// 400: the body is not JSON of the expected shape.
    #[error("bad body: {0}")]
    BadJson(#[source] serde_json::Error),
    /// 400: a free-text field is too long.
    #[error("\"{field}\" is longer than {max} characters")]
    TooLong { field: &'static str, max: usize },
    /// 400: a free-text field has control characters.
    #[error("\"{field}\" contains control characters")]
    ControlCharacters { field: &'static str },
    /// 400: evidence that fails its checks.
    #[error(transparent)]
    Evidence(#[from] EvidenceError),
    /// 404: no such incident.
    #[error("no incident {0:?}")]
    NoIncident(String),
    /// 404: no such path.
    #[error("no such endpoint: {0}")]
    NoEndpoint(String),
    /// 405; `allow` lists the methods the endpoint answers (the `Allow` header).
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    /// 404, 409, 500 or 503 (stopping): the controller refused or failed the request.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// 500: the state store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// 500: the read of the state store did not finish (its thread panicked).
    #[error("reading the state store failed")]
    StoreRead(#[source] tokio::task::JoinError),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NoToken | Self::UnknownToken => StatusCode::UNAUTHORIZED,
            Self::Role { .. } | Self::OtherVantage { .. } | Self::UnknownVantage { .. } => StatusCode::FORBIDDEN,
            Self::BodyRead(_)
            | Self::BadJson(_)
            | Self::TooLong { .. }
            | Self::ControlCharacters { .. }
            | Self::Evidence(_) => StatusCode::BAD_REQUEST,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::NoIncident(_) | Self::NoEndpoint(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Request(RequestError::NotFound(_)) => StatusCode::NOT_FOUND,
            Self::Request(RequestError::Conflict(_)) => StatusCode::CONFLICT,
            Self::Request(RequestError::Store(_)) | Self::Store(_) | Self::StoreRead(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Self::Request(RequestError::Stopped) | Self::Request(RequestError::NotLeader { .. }) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// Who was refused, for a refusal that goes to the denial log.
    fn actor(&self) -> Option<&str> {
        match self {
            Self::NoToken => Some("anonymous"),
            Self::UnknownToken => Some("unknown-token"),
            Self::Role { actor, .. } | Self::OtherVantage { actor, .. } | Self::UnknownVantage { actor, .. } => {
                Some(actor)
            }
            _ => None,
        }
    }
}

/// A refused request, left in the response's extensions for the denial log.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub actor: String,
    pub why: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let why = self.to_string();
        let body = match &self {
            // A standby names the leader, for the CLI to follow (CONTRACT.md).
            Self::Request(RequestError::NotLeader { leader }) => json!({"error": why, "leader": leader}),
            _ => json!({"error": why}),
        };
        let mut resp = json(self.status(), &body);
        if let Self::MethodNotAllowed { allow } = &self {
            resp.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
        }
        if let Some(actor) = self.actor() {
            resp.extensions_mut().insert(Refusal { actor: actor.to_string(), why });
        }
        resp
    }
}

/// A JSON response.
pub fn json(status: StatusCode, v: &Value) -> Response {
    let mut resp = Response::new(Body::from(v.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_carry_their_actor_and_other_errors_do_not() {
        let cases = [
            (ApiError::NoToken, 401, Some("anonymous")),
            (ApiError::UnknownToken, 401, Some("unknown-token")),
            (ApiError::Role { actor: "ci".into(), needed: "admin".into() }, 403, Some("ci")),
            (ApiError::TooLong { field: "reason", max: 4096 }, 400, None),
            (ApiError::NoEndpoint("/x".into()), 404, None),
        ];
        for (e, status, actor) in cases {
            let why = e.to_string();
            let resp = e.into_response();
            assert_eq!(resp.status().as_u16(), status, "{why}");
            assert_eq!(resp.headers()[CONTENT_TYPE], "application/json");
            let refusal = resp.extensions().get::<Refusal>();
            assert_eq!(refusal.map(|r| r.actor.as_str()), actor, "{why}");
            assert!(refusal.is_none_or(|r| r.why == why));
        }
    }

    #[test]
    fn a_405_says_which_method_is_allowed() {
        let resp = ApiError::MethodNotAllowed { allow: "POST" }.into_response();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers()[ALLOW], "POST");
    }
}
