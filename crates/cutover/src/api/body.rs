//! Typed request bodies: [`JsonBody<T>`] reads at most `T::LIMIT` bytes
//! within [`BODY_READ_TIMEOUT`] and parses them as `T`, whatever the
//! content type says; the free-text fields are checked by [`check_text`].

use std::time::Duration;

use axum::extract::{FromRequest, Request};
use http_body_util::{BodyExt, Limited};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A whole request body must arrive within this.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A request body type and its bounds.
pub trait RequestBody: DeserializeOwned {
    /// The largest body accepted, in bytes.
    const LIMIT: usize;
    /// Whether an empty (or all-whitespace) body means `{}`.
    const EMPTY_IS_OBJECT: bool = true;
}

/// A JSON request body, parsed as `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: RequestBody, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let body = read(req.into_body(), T::LIMIT).await?;
        let empty = T::EMPTY_IS_OBJECT && body.iter().all(u8::is_ascii_whitespace);
        let text: &[u8] = if empty { b"{}" } else { &body };
        serde_json::from_slice(text).map(JsonBody).map_err(ApiError::BadJson)
    }
}

/// A body of at most `limit` bytes, read within [`BODY_READ_TIMEOUT`].
pub async fn read(body: axum::body::Body, limit: usize) -> Result<bytes::Bytes, ApiError> {
    match tokio::time::timeout(BODY_READ_TIMEOUT, Limited::new(body, limit).collect()).await {
        Ok(Ok(b)) => Ok(b.to_bytes()),
        Ok(Err(e)) => Err(ApiError::BodyRead(e)),
        Err(_) => Err(ApiError::BodyTimeout),
    }
}

/// `POST /v1/incidents/{id}/approve|reject`: `{"comment"}`, optional.
#[derive(Debug, serde::Deserialize)]
pub struct DecisionBody {
    #[serde(default)]
    pub comment: Option<String>,
}

impl RequestBody for DecisionBody {
    const LIMIT: usize = 1 << 16;
}

/// `POST /v1/failover`: `{"target", "reason"}`.
#[derive(Debug, serde::Deserialize)]
pub struct FailoverBody {
    pub target: String,
    pub reason: String,
}

impl RequestBody for FailoverBody {
    const LIMIT: usize = 1 << 16;
}

/// A free-text field: at most `max` characters, no control characters but
/// newlines and tabs.
pub fn check_text(field: &'static str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.chars().count() > max {
        return Err(ApiError::TooLong { field, max });
    }
    if value.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(ApiError::ControlCharacters { field });
    }
    Ok(())
}
