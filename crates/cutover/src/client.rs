//! The client of the controller's API used by `approve`, `reject`,
//! `failover`, `status` and `agent`: where the API is, the bearer token, one
//! request, and what a refusal means for the command's exit code.

use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use cutover_core::Endpoint;
use cutover_s3::http::{Connector, TransportError, full};
use http_body_util::BodyExt;
use serde_json::Value;

use crate::cli::Global;
use crate::{Failure, load};

#[derive(Debug, Args)]
pub struct ApiArgs {
    /// The controller's API [default: $CUTOVER_API, else http://<api.listen> from the configuration].
    #[arg(long, value_name = "URL")]
    pub api: Option<String>,
    /// The environment variable holding the bearer token.
    #[arg(long, value_name = "VAR", default_value = "CUTOVER_TOKEN")]
    pub token_env: String,
}

/// Why a request to the API got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No connection to the API.
    #[error("{}", .0.detail)]
    Connect(TransportError),
    /// The request could not be built (a bad path).
    #[error(transparent)]
    Build(#[from] http::Error),
    /// No answer within 10 s.
    #[error("timed out")]
    Timeout,
    /// The connection failed during the exchange.
    #[error(transparent)]
    Send(#[from] hyper::Error),
}

/// The controller's API: `--api`, else `CUTOVER_API`, else `http://<api.listen>`.
pub fn api_url(global: &Global, api: &ApiArgs) -> Result<(String, Endpoint), Failure> {
    let url = match api.api.clone().or_else(|| std::env::var("CUTOVER_API").ok().filter(|u| !u.is_empty())) {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => {
            let config = load::config(global)?;
            let listen = config
                .api
                .as_ref()
                .map(|a| a.listen)
                .ok_or_else(|| Failure::Usage("no [api] in the configuration; give --api URL".into()))?;
            format!("http://{listen}")
        }
    };
    let endpoint = Endpoint::parse(&url).map_err(|e| Failure::Usage(format!("--api: {e}")))?;
    Ok((url, endpoint))
}

/// The bearer token from the environment variable `--token-env` names.
pub fn token(api: &ApiArgs) -> Result<String, Failure> {
    match std::env::var(&api.token_env) {
        Ok(t) if !t.trim().is_empty() => Ok(t),
        Ok(_) => Err(Failure::Usage(format!(
            "--token-env: environment variable {} is set but empty (put the API bearer token in it)",
            api.token_env
        ))),
        Err(_) => Err(Failure::Usage(format!(
            "--token-env: environment variable {} is not set (put the API bearer token in it)",
            api.token_env
        ))),
    }
}

/// What an API refusal means for the command: 401/403/409 and server errors
/// are failed operations (exit 1), with the API's own explanation (a 403
/// names the role needed); 400/404 are usage errors (exit 2).
pub fn refusal(url: &str, path: &str, status: u16, text: &str, token_env: &str) -> Failure {
    let why = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| text.to_string());
    let msg = match status {
        401 => format!("{url}{path}: 401 Unauthorized: {why} (check the token in ${token_env})"),
        403 => format!("{url}{path}: 403 Forbidden: {why}"),
        409 => format!("{url}{path}: 409 Conflict: {why}"),
        400 | 404 => return Failure::Usage(format!("{url}{path}: {status}: {why}")),
        _ => format!("{url}{path}: {status}: {why}"),
    };
    Failure::Error(anyhow::anyhow!(msg))
}

/// POSTs a JSON body with a bearer token; returns the status and the body.
pub async fn post(endpoint: &Endpoint, path: &str, token: &str, body: String) -> Result<(u16, String), ClientError> {
    request(endpoint, http::Method::POST, path, token, body).await
}

/// GETs `path` with a bearer token; returns the status and the body.
pub async fn get(endpoint: &Endpoint, path: &str, token: &str) -> Result<(u16, String), ClientError> {
    request(endpoint, http::Method::GET, path, token, String::new()).await
}

async fn request(
    endpoint: &Endpoint,
    method: http::Method,
    path: &str,
    token: &str,
    body: String,
) -> Result<(u16, String), ClientError> {
    send(endpoint, method, path, &format!("Bearer {token}"), &[], Bytes::from(body)).await
}

/// One request with `authorization` as given (an HA standby forwards its
/// caller's) and `extra` headers; the status and the body.
pub async fn send(
    endpoint: &Endpoint,
    method: http::Method,
    path: &str,
    authorization: &str,
    extra: &[(&str, &str)],
    body: Bytes,
) -> Result<(u16, String), ClientError> {
    let connector = Connector::new(endpoint.clone(), Duration::from_secs(2), false);
    let mut sender = connector.checkout(&endpoint.host).await.map_err(ClientError::Connect)?;
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", endpoint.authority())
        .header("content-type", "application/json")
        .header("content-length", body.len());
    if !authorization.is_empty() {
        req = req.header("authorization", authorization);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let req = req.body(full(body))?;
    let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .map_err(|_| ClientError::Timeout)??;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    Ok((status, String::from_utf8_lossy(&body).trim().to_string()))
}
