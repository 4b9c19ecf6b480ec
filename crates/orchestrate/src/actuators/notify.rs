//! `notify`: tell people: a Slack-compatible webhook, Slack with Block Kit,
//! PagerDuty (Events API v2), or standard output.
//!
//! Parameters:
//! - `kind`: `webhook` (default: `POST {"text", "channel"?}`, what Slack,
//!   Mattermost and Rocket.Chat take), `slack` (the same with Block Kit
//!   `blocks`: summary, decision, reason, a button to the incident; see
//!   [`slack`]) or `pagerduty` (see [`pagerduty`]).
//! - `url`: the webhook URL; `"-"` prints the message on standard output.
//!   For `pagerduty` the default is `https://events.pagerduty.com/v2/enqueue`.
//! - `url_env`: instead of `url`, the environment variable holding the URL
//!   (Slack webhook URLs are secrets).
//! - `text`: the message (the PagerDuty summary); default
//!   `:rotating_light: cutover {kind} {incident}: {source} → {target}. {reason}`,
//!   or with `approval`, what will happen if approved and where to approve.
//! - `channel`: sent as `channel` when given (webhook and slack).
//! - `approval`: `true` when the incident awaits approval (a step before an
//!   `approval` step): the message says what will happen and links to where
//!   to approve.
//! - `link`: the incident's URL; default its console page with `[api]
//!   public_url`, else the API's `/v1/incidents/{id}` ([`Ctx::incident_url`]).
//!   A webhook's default text ends with it on a line of its own (Slack and
//!   PagerDuty carry it in fields of their own).
//! - `routing_key_env` (pagerduty, required): the environment variable
//!   holding the integration's routing key.
//! - `event` (pagerduty): `trigger`, `acknowledge` or `resolve`; default
//!   `trigger` in a failover run (and whenever `approval`), `resolve` in a
//!   fallback run. Put `event = "acknowledge"` on a step after the failover's
//!   validation (mitigated). The dedup key is the incident id.
//! - `severity` (pagerduty trigger): `critical` (default), `error`,
//!   `warning` or `info`.
//! - `ca_file`: a PEM file of CA certificates trusted in addition to the
//!   public roots (an `https` webhook with a private CA).
//!
//! Without `url` and `url_env`, a webhook or slack message is printed on
//! standard output. A webhook or slack message is delivered on any 2xx; a
//! PagerDuty event on `202 Accepted` only.
//!
//! Result: `{"delivered": true, "to": "webhook", "status": 200}` (`to` is
//! `slack` or `pagerduty` for those kinds; pagerduty adds `event` and
//! `dedup_key`),
//! `{"delivered": true, "to": "stdout"}`, or on a delivery failure
//! `{"delivered": false, "to": "webhook", "error": "..."}`.
//!
//! # Guarantees
//! - A notification never blocks a failover: a failed delivery, and a
//!   destination that cannot be used (both `url` and `url_env`, a variable
//!   that is not set, a value that is not an http(s) URL, a missing routing
//!   key), are a successful step whose result says `"delivered": false` with the reason. The
//!   runbook parser also makes every `notify` step `on_failure = "continue"`,
//!   so not even a timeout rolls a run back.
//! - The routing key is never printed nor shown in a result or error.
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

mod pagerduty;
mod slack;

use std::time::Duration;

use bytes::Bytes;
use cutover_core::Outcome;
use cutover_s3::http::TransportError;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::{Value, json};

use self::pagerduty::Action;
use super::http_client::{self, Target};
use super::param::{self, error};
use super::text::truncate_lossy;
use super::{Ctx, Kind, ParamSpec, Params, StepError};

pub const PARAMS: &[ParamSpec] = &[
    ParamSpec::optional("kind", Kind::String, "webhook (default), slack or pagerduty"),
    ParamSpec::optional("url", Kind::String, "the webhook URL, or \"-\" to print on standard output"),
    ParamSpec::optional("url_env", Kind::String, "the environment variable that holds the webhook URL"),
    ParamSpec::optional("text", Kind::String, "the message (default: what happened, from the incident)"),
    ParamSpec::optional("channel", Kind::String, "the channel to post to"),
    ParamSpec::optional(
        "approval",
        Kind::Bool,
        "the incident awaits approval: say what will happen and where to approve",
    ),
    ParamSpec::optional(
        "link",
        Kind::String,
        "the incident's URL (default: its console page, else the API's /v1/incidents/{id})",
    ),
    ParamSpec::optional("routing_key_env", Kind::String, "pagerduty: the variable holding the routing key"),
    ParamSpec::optional("event", Kind::String, "pagerduty: trigger, acknowledge or resolve (default by run kind)"),
    ParamSpec::optional("severity", Kind::String, "pagerduty: critical (default), error, warning or info"),
    http_client::CA_FILE,
];

/// How long to wait for the webhook when the step has no timeout.
const NO_TIMEOUT_BUDGET: Duration = Duration::from_secs(30);

/// Which service the message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    Webhook,
    Slack,
    PagerDuty,
}

impl Service {
    fn parse(text: Option<&str>) -> Option<Self> {
        match text {
            None | Some("webhook") => Some(Service::Webhook),
            Some("slack") => Some(Service::Slack),
            Some("pagerduty") => Some(Service::PagerDuty),
            Some(_) => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Service::Webhook => "webhook",
            Service::Slack => "slack",
            Service::PagerDuty => "pagerduty",
        }
    }
}

/// What the message is about, for the bodies of each service.
#[derive(Debug)]
pub struct Message<'a> {
    ctx: &'a Ctx,
    text: &'a str,
    /// The incident awaits approval.
    approval: bool,
    /// The incident's URL.
    link: Option<&'a str>,
}

impl Message<'_> {
    /// The decision in a few words: `failover primary → standby`.
    fn decision(&self) -> String {
        let (ctx, arrow) = (self.ctx, '\u{2192}');
        let what = format!("{} {} {arrow} {}", ctx.kind, ctx.source, ctx.target);
        if self.approval { format!("{what}, awaiting approval") } else { what }
    }
}

/// Where the message goes.
enum Destination {
    Stdout,
    Webhook { target: Target, secret_var: Option<String> },
}

/// Checks beyond names and types, for `runbook check`.
pub fn check(with: &Params) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let literal = |k: &str| with.get(k).and_then(Value::as_str).filter(|s| !s.contains("{{"));
    let service = match literal("kind") {
        Some(k) => Service::parse(Some(k)),
        None => Some(Service::Webhook).filter(|_| !with.contains_key("kind")),
    };
    if let Some(k) = literal("kind")
        && service.is_none()
    {
        out.push(("kind".into(), format!("{k:?} is not webhook, slack or pagerduty")));
    }
    let pd_only = ["routing_key_env", "event", "severity"];
    match service {
        Some(Service::PagerDuty) if !with.contains_key("routing_key_env") => {
            out.push(("routing_key_env".into(), "missing required parameter (kind = \"pagerduty\" needs it)".into()));
        }
        Some(Service::Webhook | Service::Slack) => {
            for k in pd_only.iter().filter(|k| with.contains_key(**k)) {
                out.push((k.to_string(), "is only for kind = \"pagerduty\"".into()));
            }
        }
        _ => {}
    }
    if let Some(e) = literal("event")
        && Action::parse(e).is_none()
    {
        out.push(("event".into(), format!("{e:?} is not trigger, acknowledge or resolve")));
    }
    if let Some(sev) = literal("severity")
        && !pagerduty::SEVERITIES.contains(&sev)
    {
        out.push(("severity".into(), format!("{sev:?} is not {}", pagerduty::SEVERITIES.join(", "))));
    }
    out
}

pub async fn run(params: &Params, ctx: &Ctx) -> Result<Value, StepError> {
    let kind = param::opt_str(params, "kind")?;
    let Some(service) = Service::parse(kind) else {
        let error = format!("with.kind: {:?} is not webhook, slack or pagerduty", kind.unwrap_or_default());
        return Ok(not_delivered("webhook", error, ctx));
    };
    let to = service.name();
    let destination = match destination(params, ctx, service) {
        Ok(d) => d,
        // `runbook check` reports these; at run time a notification that
        // cannot be sent is not a reason to undo a failover.
        Err(e) => return Ok(not_delivered(to, e.to_string(), ctx)),
    };
    let approval = param::opt_bool(params, "approval")?.unwrap_or(false);
    let link = param::opt_str(params, "link")?.or(ctx.incident_url.as_deref());
    let text = match param::opt_str(params, "text")? {
        Some(t) => t.to_string(),
        None if approval => approval_text(ctx, link),
        // Slack and PagerDuty carry the link in fields of their own.
        None => default_text(ctx, link.filter(|_| matches!(service, Service::Webhook))),
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
        Err(e) => return Ok(not_delivered(to, e.to_string(), ctx)),
    };

    let m = Message { ctx, text: &text, approval, link };
    let mut delivered = json!({ "delivered": true, "to": to });
    let body = match service {
        Service::Webhook => {
            let mut message = json!({ "text": text });
            if let Some(channel) = channel {
                message["channel"] = json!(channel);
            }
            message
        }
        Service::Slack => slack::body(&m, channel),
        Service::PagerDuty => {
            let event = match pagerduty_event(params, ctx, approval) {
                Ok(e) => e,
                Err(e) => return Ok(not_delivered(to, e.to_string(), ctx)),
            };
            delivered["event"] = json!(event.action.as_str());
            delivered["dedup_key"] = json!(ctx.incident);
            pagerduty::body(&m, &event.routing_key, event.action, &event.severity)
        }
    };
    let accepted = |status: StatusCode| match service {
        Service::PagerDuty => status == StatusCode::ACCEPTED,
        _ => status.is_success(),
    };

    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let body = Bytes::from(body.to_string());
    let budget = if ctx.timeout.is_zero() { NO_TIMEOUT_BUDGET } else { ctx.timeout * 3 / 4 };
    let post = http_client::send(Method::POST, &target, headers, body, http_client::connect_timeout(budget));
    let outcome = tokio::time::timeout(budget, post).await.unwrap_or_else(|_| {
        Err(TransportError { outcome: Outcome::Timeout, detail: format!("no answer within {budget:?}") })
    });
    let error = match (outcome, &secret_var) {
        (Ok((status, _, _)), _) if accepted(status) => {
            delivered["status"] = json!(status.as_u16());
            return Ok(delivered);
        }
        (Ok((status, _, answer)), _) => {
            format!("the {to} endpoint answered {}: {}", status.as_u16(), truncate_lossy(&answer, 256))
        }
        (Err(e), Some(var)) if e.outcome == Outcome::Timeout => format!("POST ${var}: no answer within {budget:?}"),
        (Err(e), Some(var)) => format!("POST ${var}: {}", http_client::summary(&e.outcome)),
        (Err(e), None) => format!("POST {}: {}", target.origin(), e.detail),
    };
    Ok(not_delivered(to, error, ctx))
}

fn not_delivered(to: &str, error: String, ctx: &Ctx) -> Value {
    tracing::warn!(step = %ctx.step, %error, "notification not delivered");
    json!({ "delivered": false, "to": to, "error": error })
}

/// A PagerDuty event's parts from the parameters.
struct PdEvent {
    routing_key: String,
    action: Action,
    severity: String,
}

fn pagerduty_event(params: &Params, ctx: &Ctx, approval: bool) -> Result<PdEvent, StepError> {
    let var = param::opt_str(params, "routing_key_env")?
        .ok_or_else(|| error("routing_key_env", "is required with kind = \"pagerduty\""))?;
    let routing_key = param::secret_from_env(ctx, "routing_key_env", var)?;
    let action = match param::opt_str(params, "event")? {
        None => Action::default_for(&ctx.kind, approval),
        Some(e) => {
            Action::parse(e).ok_or_else(|| error("event", format!("{e:?} is not trigger, acknowledge or resolve")))?
        }
    };
    let severity = param::opt_str(params, "severity")?.unwrap_or("critical");
    if !pagerduty::SEVERITIES.contains(&severity) {
        return Err(error("severity", format!("{severity:?} is not {}", pagerduty::SEVERITIES.join(", "))));
    }
    Ok(PdEvent { routing_key, action, severity: severity.to_string() })
}

fn destination(params: &Params, ctx: &Ctx, service: Service) -> Result<Destination, StepError> {
    match (param::opt_str(params, "url")?, param::opt_str(params, "url_env")?) {
        (Some(_), Some(_)) => Err(error("url", "give url or url_env, not both")),
        (None, None) if service == Service::PagerDuty => Ok(Destination::Webhook {
            target: Target::parse(pagerduty::DEFAULT_URL).map_err(|e| error("url", e.to_string()))?,
            secret_var: None,
        }),
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

/// The message when the step gives no `text`: what happened, then the
/// link to the incident on a line of its own.
pub fn default_text(ctx: &Ctx, link: Option<&str>) -> String {
    let mut text =
        format!(":rotating_light: cutover {} {}: {} \u{2192} {}.", ctx.kind, ctx.incident, ctx.source, ctx.target);
    if !ctx.reason.is_empty() {
        text.push(' ');
        text.push_str(&ctx.reason);
    }
    if let Some(link) = link {
        text.push('\n');
        text.push_str(link);
    }
    text
}

/// The message for an incident that awaits approval, when the step gives
/// no `text`: what will happen, and where to approve.
pub fn approval_text(ctx: &Ctx, link: Option<&str>) -> String {
    let mut text = format!(":hourglass: cutover {} awaits approval", ctx.incident);
    if !ctx.reason.is_empty() {
        text.push_str(&format!(" ({})", ctx.reason));
    }
    text.push_str(&format!(
        ". If approved, cutover runs the {} runbook: {} \u{2192} {}. ",
        ctx.kind, ctx.source, ctx.target
    ));
    match link {
        Some(link) => text.push_str(&format!("Approve or reject: {link} (or `cutover approve {}`)", ctx.incident)),
        None => text.push_str(&format!("Approve or reject with `cutover approve {}`", ctx.incident)),
    }
    text
}
