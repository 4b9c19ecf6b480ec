//! `notify`: post a message to a Slack-compatible incoming webhook, or print
//! it.
//!
//! Parameters:
//! - `url`: the webhook URL; `"-"` prints the message on standard output.
//! - `url_env`: instead of `url`, the environment variable holding the URL
//!   (Slack webhook URLs are secrets).
//! - `text`: the message; default
//!   `:rotating_light: cutover {kind} {incident}: {source} → {target}. {reason}`,
//!   then, with `[api] public_url`, a line with the incident's console page.
//! - `channel`: sent as `channel` when given.
//! - `ca_file`: a PEM file of CA certificates trusted in addition to the
//!   public roots (an `https` webhook with a private CA).
//!
//! Without `url` and `url_env`, the message is printed on standard output.
//! The webhook gets `POST {"text": ..., "channel"?: ...}` as JSON; any 2xx
//! is delivered.
//!
//! Result: `{"delivered": true, "to": "webhook", "status": 200}`,
//! `{"delivered": true, "to": "stdout"}`, or on a delivery failure
//! `{"delivered": false, "to": "webhook", "error": "..."}`.
//!
//! # Guarantees
//! - A notification never blocks a failover: a failed delivery, and a
//!   destination that cannot be used (both `url` and `url_env`, a variable
//!   that is not set, a value that is not an http(s) URL), are a successful
//!   step whose result says `"delivered": false` with the reason. The
//!   runbook parser also makes every `notify` step `on_failure = "continue"`,
//!   so not even a timeout rolls a run back.
//! - With `url_env`, neither the result nor the error shows any part of the
//!   URL, nor the address it resolved to (a failure reads
//!   `POST $VAR: connection refused`); with `url`, messages show its scheme
//!   and host only.
//!
//! # Caveats
//! - Not idempotent: a retried or resumed step posts the message again.
//! - A webhook that does not answer within three quarters of the step's
//!   timeout (30 s without one) is a delivery failure too, so that the
//!   engine's timeout does not fire first.

use std::time::Duration;

use bytes::Bytes;
use cutover_core::Outcome;
use cutover_s3::http::TransportError;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Method};
use serde_json::{Value, json};

use super::http_client::{self, Target};
use super::param::{self, error};
use super::text::truncate_lossy;
use super::{Ctx, Kind, ParamSpec, Params, StepError};

pub const PARAMS: &[ParamSpec] = &[
    ParamSpec::optional("url", Kind::String, "the webhook URL, or \"-\" to print on standard output"),
    ParamSpec::optional("url_env", Kind::String, "the environment variable that holds the webhook URL"),
    ParamSpec::optional("text", Kind::String, "the message (default: what happened, from the incident)"),
    ParamSpec::optional("channel", Kind::String, "the channel to post to"),
    http_client::CA_FILE,
];

/// How long to wait for the webhook when the step has no timeout.
const NO_TIMEOUT_BUDGET: Duration = Duration::from_secs(30);

/// Where the message goes.
enum Destination {
    Stdout,
    Webhook { target: Target, secret_var: Option<String> },
}

pub async fn run(params: &Params, ctx: &Ctx) -> Result<Value, StepError> {
    let destination = match destination(params, ctx) {
        Ok(d) => d,
        // `runbook check` reports these; at run time a notification that
        // cannot be sent is not a reason to undo a failover.
        Err(e) => {
            let error = e.to_string();
            tracing::warn!(step = %ctx.step, %error, "notification not delivered");
            return Ok(json!({ "delivered": false, "to": "webhook", "error": error }));
        }
    };
    let text = match param::opt_str(params, "text")? {
        Some(t) => t.to_string(),
        None => default_text(ctx),
    };
    let channel = param::opt_str(params, "channel")?;
    let (target, secret_var) = match destination {
        Destination::Stdout => {
            println!("{text}");
            return Ok(json!({ "delivered": true, "to": "stdout" }));
        }
        Destination::Webhook { target, secret_var } => (target, secret_var),
    };
    let target = match http_client::ca_file(params) {
        Ok(ca) => target.with_ca_file(ca),
        Err(e) => return Ok(json!({ "delivered": false, "to": "webhook", "error": e.to_string() })),
    };

    let mut message = json!({ "text": text });
    if let Some(channel) = channel {
        message["channel"] = json!(channel);
    }
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let body = Bytes::from(message.to_string());
    let budget = if ctx.timeout.is_zero() { NO_TIMEOUT_BUDGET } else { ctx.timeout * 3 / 4 };
    let post = http_client::send(Method::POST, &target, headers, body, http_client::connect_timeout(budget));
    let outcome = tokio::time::timeout(budget, post).await.unwrap_or_else(|_| {
        Err(TransportError { outcome: Outcome::Timeout, detail: format!("no answer within {budget:?}") })
    });
    let error = match (outcome, &secret_var) {
        (Ok((status, _, _)), _) if status.is_success() => {
            return Ok(json!({ "delivered": true, "to": "webhook", "status": status.as_u16() }));
        }
        (Ok((status, _, answer)), _) => {
            format!("the webhook answered {}: {}", status.as_u16(), truncate_lossy(&answer, 256))
        }
        (Err(e), Some(var)) if e.outcome == Outcome::Timeout => format!("POST ${var}: no answer within {budget:?}"),
        (Err(e), Some(var)) => format!("POST ${var}: {}", http_client::summary(&e.outcome)),
        (Err(e), None) => format!("POST {}: {}", target.origin(), e.detail),
    };
    tracing::warn!(step = %ctx.step, %error, "notification not delivered");
    Ok(json!({ "delivered": false, "to": "webhook", "error": error }))
}

fn destination(params: &Params, ctx: &Ctx) -> Result<Destination, StepError> {
    match (param::opt_str(params, "url")?, param::opt_str(params, "url_env")?) {
        (Some(_), Some(_)) => Err(error("url", "give url or url_env, not both")),
        (None | Some("-"), None) => Ok(Destination::Stdout),
        (Some(url), None) => Ok(Destination::Webhook {
            target: Target::parse(url).map_err(|e| error("url", e.to_string()))?,
            secret_var: None,
        }),
        (None, Some(var)) => {
            let url = param::secret_from_env(ctx, "url_env", var)?;
            let target = Target::parse(&url)
                .map_err(|_| error("url_env", format!("the value of {var} is not an http(s) URL")))?;
            Ok(Destination::Webhook { target, secret_var: Some(var.to_string()) })
        }
    }
}

/// The message when the step gives no `text`.
pub fn default_text(ctx: &Ctx) -> String {
    let mut text =
        format!(":rotating_light: cutover {} {}: {} \u{2192} {}.", ctx.kind, ctx.incident, ctx.source, ctx.target);
    if !ctx.reason.is_empty() {
        text.push(' ');
        text.push_str(&ctx.reason);
    }
    if let Some(url) = &ctx.console_url {
        text.push('\n');
        text.push_str(url);
    }
    text
}
