//! A Slack incoming-webhook message with Block Kit blocks
//! (<https://api.slack.com/messaging/webhooks>,
//! <https://api.slack.com/reference/block-kit/blocks>): a header, the
//! summary, the decision and the reason as fields, and buttons to the
//! incident; `text` is the fallback for notifications.

use serde_json::{Value, json};

use super::Message;

/// Slack's limit on a section's text (3000) and a header's (150).
const SECTION_MAX: usize = 3000;
const HEADER_MAX: usize = 150;

/// The JSON body to post.
pub fn body(m: &Message<'_>, channel: Option<&str>) -> Value {
    let header = if m.approval {
        format!("cutover {}: approval needed", m.ctx.incident)
    } else {
        format!("cutover {} {}", m.ctx.kind, m.ctx.incident)
    };
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": cut(&header, HEADER_MAX), "emoji": true}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(m.text, SECTION_MAX)}}),
        json!({"type": "section", "fields": [
            {"type": "mrkdwn", "text": format!("*Decision*\n{}", m.decision())},
            {"type": "mrkdwn", "text": format!("*Reason*\n{}", if m.ctx.reason.is_empty() { "-" } else { &m.ctx.reason })},
        ]}),
    ];
    if m.approval {
        let how = match m.link {
            Some(link) => format!(
                "*Waiting for approval.* If approved, cutover runs the {} runbook from *{}* to *{}*. \
                 Approve or reject it at <{link}|incident {}> (`POST {link}/approve`), \
                 or with `cutover approve {}`.",
                m.ctx.kind, m.ctx.source, m.ctx.target, m.ctx.incident, m.ctx.incident
            ),
            None => format!(
                "*Waiting for approval.* If approved, cutover runs the {} runbook from *{}* to *{}*. \
                 Approve or reject it with `cutover approve {}`.",
                m.ctx.kind, m.ctx.source, m.ctx.target, m.ctx.incident
            ),
        };
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(&how, SECTION_MAX)}}));
    }
    if let Some(link) = m.link {
        let label = if m.approval { "Review and approve" } else { "Open the incident" };
        blocks.push(json!({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": label}, "url": link},
        ]}));
    }
    let mut body = json!({"text": m.text, "blocks": blocks});
    if let Some(channel) = channel {
        body["channel"] = json!(channel);
    }
    body
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max { text.to_string() } else { text.chars().take(max - 1).chain(['…']).collect() }
}
