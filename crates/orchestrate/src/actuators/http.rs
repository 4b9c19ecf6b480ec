//! `http`: call a webhook.
//!
//! Parameters:
//! - `url`: `http://` or `https://`.
//! - `url_env`: instead of `url`, the environment variable holding the URL
//!   (for URLs with a secret in them). Give exactly one of `url` and `url_env`.
//! - `method`: default `POST`.
//! - `headers`: a table of header values.
//! - `headers_env`: header name → name of the environment variable that
//!   holds its value (for secrets such as `Authorization`).
//! - `body`: a string is sent as it is (labelled `application/json` when it
//!   parses as a JSON object or array, `text/plain` otherwise); a table or an
//!   array is sent as JSON. `headers` may set another `content-type`.
//! - `expect_status`: the status that counts as success; default any 2xx.
//! - `ca_file`: a PEM file of CA certificates trusted in addition to the
//!   public roots (an `https` receiver with a private CA).
//!
//! Result: `{"status": 200, "body": "<the first 512 bytes of the answer>"}`.
//!
//! # Guarantees
//! - Neither the result nor an error repeats a request header, the path or
//!   query of the URL, or the value of an environment variable. With
//!   `url_env`, errors name the variable (`POST $VAR: connection refused`),
//!   never any part of the URL, not even its host.
//! - A variable of `headers_env` or `url_env` that is not set is a parameter
//!   error naming the variable, found before anything is sent.
//!
//! # Caveats
//! - Idempotent only if the receiving end is: the engine may send the request
//!   again (retries, resume after a crash). Put the incident id in the body so
//!   the receiver can de-duplicate.
//! - The answer's body goes into the result: a receiver that echoes request
//!   headers back would leak them there.
//! - Redirects are not followed.

use std::str::FromStr;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::{Value, json};

use super::http_client::{self, Target};
use super::param::{self, error};
use super::text::truncate_lossy;
use super::{Ctx, Kind, ParamSpec, Params, StepError};

pub const PARAMS: &[ParamSpec] = &[
    ParamSpec::optional("url", Kind::String, "the http:// or https:// URL to call"),
    ParamSpec::optional("url_env", Kind::String, "instead of url, the environment variable that holds the URL"),
    ParamSpec::optional("method", Kind::String, "the HTTP method (default POST)"),
    ParamSpec::optional("headers", Kind::StringMap, "request headers"),
    ParamSpec::optional("headers_env", Kind::StringMap, "header name -> environment variable holding its value"),
    ParamSpec::optional("body", Kind::Any, "a string sent as is, or a table/array sent as JSON"),
    ParamSpec::optional("expect_status", Kind::Integer, "the status that counts as success (default any 2xx)"),
    http_client::CA_FILE,
];

/// How much of the answer goes into the result.
const BODY_IN_RESULT: usize = 512;

/// Exactly one of `url` and `url_env`, for `runbook check`.
pub fn check(with: &Params) -> Vec<(String, String)> {
    match (with.contains_key("url"), with.contains_key("url_env")) {
        (true, true) => vec![("url".into(), "give url or url_env, not both".into())],
        (false, false) => {
            vec![("url".into(), "missing required parameter (the http:// or https:// URL to call; or url_env)".into())]
        }
        _ => Vec::new(),
    }
}

/// The URL, and how messages name it: its origin, or `$VAR` with `url_env`.
fn target(params: &Params, ctx: &Ctx) -> Result<(Target, String), StepError> {
    match (param::opt_str(params, "url")?, param::opt_str(params, "url_env")?) {
        (Some(_), Some(_)) => Err(error("url", "give url or url_env, not both")),
        (None, None) => Err(error("url", "is required (or url_env)")),
        (Some(url), None) => {
            let target = Target::parse(url).map_err(|e| error("url", e.to_string()))?;
            let shown = target.origin();
            Ok((target, shown))
        }
        (None, Some(var)) => {
            let url = param::secret_from_env(ctx, "url_env", var)?;
            let target = Target::parse(&url)
                .map_err(|_| error("url_env", format!("the value of {var} is not an http(s) URL")))?;
            Ok((target, format!("${var}")))
        }
    }
}

pub async fn run(params: &Params, ctx: &Ctx) -> Result<Value, StepError> {
    let (target, shown) = target(params, ctx)?;
    let target = target.with_ca_file(http_client::ca_file(params)?);
    let from_env = params.get("url_env").is_some_and(|v| !v.is_null());
    let method = param::opt_str(params, "method")?.unwrap_or("POST");
    let method = Method::from_str(&method.to_ascii_uppercase()).map_err(|_| error("method", "not an HTTP method"))?;
    let expect = match param::opt_int(params, "expect_status")? {
        None => None,
        Some(code) => Some(
            u16::try_from(code)
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .ok_or_else(|| error("expect_status", "must be an HTTP status from 100 to 999"))?,
        ),
    };
    let mut headers = headers(params, ctx)?;
    let body = body(params, &mut headers)?;

    let sent =
        http_client::send(method.clone(), &target, headers, body, http_client::connect_timeout(ctx.timeout)).await;
    let (status, _, answer) = sent.map_err(|e| {
        // The detail may name the host and its address: not for a URL from the environment.
        let detail = if from_env { http_client::summary(&e.outcome).to_string() } else { e.detail };
        StepError::Failed(format!("{method} {shown}: {detail}"))
    })?;
    let text = truncate_lossy(&answer, BODY_IN_RESULT);
    let ok = match expect {
        Some(code) => status == code,
        None => status.is_success(),
    };
    if !ok {
        let wanted = expect.map_or("2xx".to_string(), |c| c.as_u16().to_string());
        return Err(StepError::Failed(format!(
            "{method} {shown} answered {} (expected {wanted}): {text}",
            status.as_u16()
        )));
    }
    Ok(json!({ "status": status.as_u16(), "body": text }))
}

/// `headers` and `headers_env` as one map; values from the environment are
/// marked sensitive.
fn headers(params: &Params, ctx: &Ctx) -> Result<HeaderMap, StepError> {
    let mut map = HeaderMap::new();
    let name = |field: &str, k: &str| {
        HeaderName::from_str(k).map_err(|_| error(format!("{field}.{k}"), "not a valid header name"))
    };
    for (k, v) in param::string_map(params, "headers")? {
        let value = HeaderValue::from_str(&v).map_err(|_| error(format!("headers.{k}"), "not a valid header value"))?;
        map.append(name("headers", &k)?, value);
    }
    for (k, var) in param::string_map(params, "headers_env")? {
        let field = format!("headers_env.{k}");
        let secret = param::secret_from_env(ctx, &field, &var)?;
        let mut value = HeaderValue::from_str(&secret)
            .map_err(|_| error(&field, format!("the value of {var} is not a valid header value")))?;
        value.set_sensitive(true);
        map.insert(name("headers_env", &k)?, value);
    }
    Ok(map)
}

/// The request body, setting `content-type` when `headers` did not.
fn body(params: &Params, headers: &mut HeaderMap) -> Result<Bytes, StepError> {
    let (bytes, content_type) = match params.get("body") {
        None | Some(Value::Null) => return Ok(Bytes::new()),
        Some(Value::String(s)) => {
            let json_like = matches!(serde_json::from_str::<Value>(s), Ok(Value::Object(_) | Value::Array(_)));
            (Bytes::from(s.clone()), if json_like { "application/json" } else { "text/plain; charset=utf-8" })
        }
        Some(other) => {
            let text = serde_json::to_vec(other).map_err(|e| error("body", e.to_string()))?;
            (Bytes::from(text), "application/json")
        }
    };
    if !headers.contains_key(CONTENT_TYPE) {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    Ok(bytes)
}
