//! A PagerDuty Events API v2 event
//! (<https://developer.pagerduty.com/docs/events-api-v2/overview/>): `POST
//! https://events.pagerduty.com/v2/enqueue`, JSON, answered `202 Accepted`.
//! The incident id is the `dedup_key`, so that the trigger, the
//! acknowledgement and the resolution are one PagerDuty alert.

use serde_json::{Value, json};

use super::Message;

/// Where events go unless `url` says otherwise.
pub const DEFAULT_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// PagerDuty's limit on `payload.summary`.
const SUMMARY_MAX: usize = 1024;

/// What the event does to the PagerDuty alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Trigger,
    Acknowledge,
    Resolve,
}

impl Action {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "trigger" => Some(Action::Trigger),
            "acknowledge" => Some(Action::Acknowledge),
            "resolve" => Some(Action::Resolve),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Trigger => "trigger",
            Action::Acknowledge => "acknowledge",
            Action::Resolve => "resolve",
        }
    }

    /// Without `event`: a failover run triggers (or, awaiting approval,
    /// too), a fallback run resolves.
    pub fn default_for(kind: &str, approval: bool) -> Self {
        if kind == "fallback" && !approval { Action::Resolve } else { Action::Trigger }
    }
}

/// The severities PagerDuty takes.
pub const SEVERITIES: &[&str] = &["critical", "error", "warning", "info"];

/// The JSON body: `payload` (summary, source, severity) only on a trigger,
/// as the API requires.
pub fn body(m: &Message<'_>, routing_key: &str, action: Action, severity: &str) -> Value {
    let mut event = json!({
        "routing_key": routing_key,
        "event_action": action.as_str(),
        "dedup_key": m.ctx.incident,
    });
    if action == Action::Trigger {
        let summary: String = m.text.chars().take(SUMMARY_MAX).collect();
        event["payload"] = json!({
            "summary": summary,
            "source": m.ctx.source,
            "severity": severity,
            "component": "s3",
            "custom_details": {
                "incident": m.ctx.incident,
                "decision": m.decision(),
                "reason": m.ctx.reason,
                "awaiting_approval": m.approval,
            },
        });
        event["client"] = json!("cutover");
        if let Some(link) = m.link {
            event["client_url"] = json!(link);
            event["links"] = json!([{"href": link, "text": format!("cutover incident {}", m.ctx.incident)}]);
        }
    }
    event
}
