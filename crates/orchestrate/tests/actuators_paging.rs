//! `notify` for PagerDuty (Events API v2) and Slack (incoming webhook with
//! Block Kit). Neither service can run here: local receivers check each
//! request as the public documentation specifies it (method, path,
//! Content-Type, fields, dedup key) and answer as the service does.

mod actuators_support;

use actuators_support::{Recorded, Server, ctx, params};
use cutover_orchestrate::actuators::{self, Ctx, run_external};
use serde_json::{Value, json};

const ROUTING_KEY: &str = "R0UT1NGKEY0123456789abcdefABCDEF";

/// What <https://developer.pagerduty.com/docs/events-api-v2/trigger-events/>
/// requires of an event; the problems, as PagerDuty's `errors` list.
fn pagerduty_problems(r: &Recorded) -> Vec<String> {
    let mut problems = Vec::new();
    if r.method != "POST" || r.path != "/v2/enqueue" {
        problems.push(format!("{} {} is not POST /v2/enqueue", r.method, r.path));
    }
    if r.header("content-type") != Some("application/json") {
        problems.push("Content-Type must be application/json".into());
    }
    let Ok(body) = serde_json::from_slice::<Value>(&r.body) else { return vec!["body is not JSON".into()] };
    if body["routing_key"].as_str().is_none_or(|k| k.len() != 32) {
        problems.push("'routing_key' must be the 32-character integration key".into());
    }
    let action = body["event_action"].as_str().unwrap_or_default();
    if !["trigger", "acknowledge", "resolve"].contains(&action) {
        problems.push("'event_action' is invalid".into());
    }
    if body["dedup_key"].as_str().is_none_or(|k| k.is_empty() || k.len() > 255) {
        problems.push("'dedup_key' must be 1 to 255 characters".into());
    }
    if action == "trigger" {
        let p = &body["payload"];
        if p["summary"].as_str().is_none_or(|s| s.is_empty() || s.chars().count() > 1024) {
            problems.push("'payload.summary' is required (at most 1024 characters)".into());
        }
        if p["source"].as_str().is_none_or(str::is_empty) {
            problems.push("'payload.source' is required".into());
        }
        if !["critical", "error", "warning", "info"].contains(&p["severity"].as_str().unwrap_or_default()) {
            problems.push("'payload.severity' is invalid".into());
        }
    }
    problems
}

/// A PagerDuty Events API v2 receiver: `202` with the documented success
/// body, or `400` with the documented error body.
async fn pagerduty() -> Server {
    Server::start(|r| {
        let problems = pagerduty_problems(r);
        if problems.is_empty() {
            let dedup = serde_json::from_slice::<Value>(&r.body).unwrap()["dedup_key"].clone();
            (202, json!({"status": "success", "message": "Event processed", "dedup_key": dedup}).to_string())
        } else {
            (
                400,
                json!({"status": "invalid event", "message": "Event object is invalid", "errors": problems})
                    .to_string(),
            )
        }
    })
    .await
}

async fn notify(ctx: &Ctx, with: Value) -> Value {
    run_external("notify", &params(with), ctx).await.unwrap().unwrap()
}

#[tokio::test]
async fn pagerduty_triggers_acknowledges_and_resolves_one_alert_keyed_by_the_incident() {
    let server = pagerduty().await;
    let work = tempfile::tempdir().unwrap();
    let mut ctx = ctx(work.path(), &[("PD_ROUTING_KEY", ROUTING_KEY)]);
    let with = json!({"kind": "pagerduty", "url": server.url("/v2/enqueue"), "routing_key_env": "PD_ROUTING_KEY"});

    let trigger = notify(&ctx, with.clone()).await;
    let mut ack = with.clone();
    ack["event"] = json!("acknowledge");
    let acknowledged = notify(&ctx, ack).await;
    ctx.kind = "fallback".into();
    let resolved = notify(&ctx, with).await;

    for (result, event) in [(&trigger, "trigger"), (&acknowledged, "acknowledge"), (&resolved, "resolve")] {
        let expected =
            json!({"delivered": true, "to": "pagerduty", "status": 202, "event": event, "dedup_key": "inc-42"});
        assert_eq!(result, &expected);
    }
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    for r in &requests {
        assert_eq!(pagerduty_problems(r), Vec::<String>::new());
    }
    let link = "http://127.0.0.1:8080/v1/incidents/inc-42";
    assert_eq!(
        requests[0].json(),
        json!({
            "routing_key": ROUTING_KEY, "event_action": "trigger", "dedup_key": "inc-42",
            "payload": {
                "summary": ":rotating_light: cutover failover inc-42: primary \u{2192} standby. primary unreachable from 3 vantages",
                "source": "primary", "severity": "critical", "component": "s3",
                "custom_details": {"incident": "inc-42", "decision": "failover primary \u{2192} standby",
                                   "reason": "primary unreachable from 3 vantages", "awaiting_approval": false},
            },
            "client": "cutover", "client_url": link,
            "links": [{"href": link, "text": "cutover incident inc-42"}],
        })
    );
    assert_eq!(
        requests[1].json(),
        json!({"routing_key": ROUTING_KEY, "event_action": "acknowledge", "dedup_key": "inc-42"})
    );
    assert_eq!(
        requests[2].json(),
        json!({"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": "inc-42"})
    );
}

#[tokio::test]
async fn pagerduty_needs_a_202_and_a_routing_key_and_never_shows_the_key() {
    let work = tempfile::tempdir().unwrap();
    let ctx = ctx(work.path(), &[("PD_ROUTING_KEY", ROUTING_KEY)]);
    // A 200 is not what the Events API answers to an accepted event.
    let ok_200 = Server::start(|_| (200, "{}".into())).await;
    let with = json!({"kind": "pagerduty", "url": ok_200.url("/v2/enqueue"), "routing_key_env": "PD_ROUTING_KEY"});
    let result = notify(&ctx, with).await;
    assert_eq!(result["delivered"], false, "{result}");
    assert_eq!(result["error"], "the pagerduty endpoint answered 200: {}");

    let server = pagerduty().await;
    let unset = json!({"kind": "pagerduty", "url": server.url("/v2/enqueue"), "routing_key_env": "UNSET_KEY"});
    let result = notify(&ctx, unset).await;
    assert_eq!(
        result,
        json!({"delivered": false, "to": "pagerduty",
        "error": "with.routing_key_env: environment variable UNSET_KEY is not set"})
    );
    assert!(server.requests().is_empty());

    let bad = json!({"kind": "pagerduty", "url": server.url("/v2/enqueue"), "routing_key_env": "PD_ROUTING_KEY", "severity": "page-everyone"});
    let result = notify(&ctx, bad).await;
    assert!(!result.to_string().contains(ROUTING_KEY), "{result}");
    assert_eq!(result["delivered"], false);
}

#[tokio::test]
async fn slack_gets_block_kit_with_the_summary_the_decision_and_a_link_to_the_incident() {
    let server = Server::start(|_| (200, "ok".into())).await;
    let work = tempfile::tempdir().unwrap();
    let ctx = ctx(work.path(), &[]);
    let with = json!({"kind": "slack", "url": server.url("/services/T000/B000/XXXX")});

    let result = notify(&ctx, with).await;

    assert_eq!(result, json!({"delivered": true, "to": "slack", "status": 200}));
    let r = &server.requests()[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/services/T000/B000/XXXX"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let summary =
        ":rotating_light: cutover failover inc-42: primary \u{2192} standby. primary unreachable from 3 vantages";
    assert_eq!(
        r.json(),
        json!({
            "text": summary,
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": "cutover failover inc-42", "emoji": true}},
                {"type": "section", "text": {"type": "mrkdwn", "text": summary}},
                {"type": "section", "fields": [
                    {"type": "mrkdwn", "text": "*Decision*\nfailover primary \u{2192} standby"},
                    {"type": "mrkdwn", "text": "*Reason*\nprimary unreachable from 3 vantages"},
                ]},
                {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open the incident"},
                    "url": "http://127.0.0.1:8080/v1/incidents/inc-42"}]},
            ]
        })
    );
}

#[tokio::test]
async fn a_message_awaiting_approval_says_what_will_happen_and_where_to_approve() {
    let server = Server::start(|_| (200, "ok".into())).await;
    let work = tempfile::tempdir().unwrap();
    let ctx = ctx(work.path(), &[]);
    let link = "https://cutover.example.net/ui/incidents/inc-42";
    let with = json!({"kind": "slack", "url": server.url("/hook"), "approval": true, "link": link});

    notify(&ctx, with).await;

    let body = server.requests()[0].json();
    let text = body["text"].as_str().unwrap();
    assert_eq!(
        text,
        ":hourglass: cutover inc-42 awaits approval (primary unreachable from 3 vantages). If approved, cutover runs \
         the failover runbook: primary \u{2192} standby. Approve or reject: https://cutover.example.net/ui/incidents/inc-42 \
         (or `cutover approve inc-42`)"
    );
    let blocks = body["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["text"]["text"], "cutover inc-42: approval needed");
    assert_eq!(blocks[2]["fields"][0]["text"], "*Decision*\nfailover primary \u{2192} standby, awaiting approval");
    let how = blocks[3]["text"]["text"].as_str().unwrap();
    assert!(how.contains("If approved, cutover runs the failover runbook from *primary* to *standby*"), "{how}");
    assert!(how.contains(&format!("<{link}|incident inc-42>")), "{how}");
    assert_eq!(blocks[4]["elements"][0]["url"], link);
    assert_eq!(blocks[4]["elements"][0]["text"]["text"], "Review and approve");
}

#[test]
fn runbook_check_names_paging_mistakes() {
    let check = |with: Value| actuators::check("notify", &params(with));
    assert_eq!(check(json!({"kind": "pagerduty", "routing_key_env": "K"})), vec![]);
    assert_eq!(
        check(json!({"kind": "pagerduty"})),
        vec![("routing_key_env".to_string(), "missing required parameter (kind = \"pagerduty\" needs it)".to_string())]
    );
    assert_eq!(check(json!({"kind": "slack", "event": "resolve"}))[0].0, "event");
    assert_eq!(
        check(json!({"kind": "pager"}))[0],
        ("kind".into(), "\"pager\" is not webhook, slack or pagerduty".into())
    );
    let e = check(json!({"kind": "pagerduty", "routing_key_env": "K", "event": "close", "severity": "high"}));
    assert_eq!(e.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(), ["event", "severity"]);
}
