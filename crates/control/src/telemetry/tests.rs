use std::sync::{Arc, Mutex};

use serde_json::json;
use tracing::field::{Field, Visit};
use tracing::subscriber::with_default;

use super::*;
use crate::policy::Action;

/// The event lines (target [`EVENTS`]) written while `f` runs: (level,
/// kind, message, fields).
fn lines(f: impl FnOnce()) -> Vec<(String, String, String, Value)> {
    #[derive(Default)]
    struct Seen(Mutex<Vec<(String, String, String, Value)>>);
    struct Sub(Arc<Seen>);
    #[derive(Default)]
    struct Fields(BTreeFields);
    type BTreeFields = std::collections::BTreeMap<String, String>;
    impl Visit for Fields {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.insert(field.name().into(), format!("{value:?}"));
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name().into(), value.into());
        }
    }
    impl tracing::Subscriber for Sub {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, e: &tracing::Event<'_>) {
            if e.metadata().target() != EVENTS {
                return;
            }
            let mut f = Fields::default();
            e.record(&mut f);
            let get = |k: &str| f.0.get(k).cloned().unwrap_or_default();
            let fields = serde_json::from_str(&get("fields")).unwrap_or(Value::Null);
            let line = (e.metadata().level().to_string(), get("event"), get("message"), fields);
            self.0.0.lock().unwrap().push(line);
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }
    let seen = Arc::new(Seen::default());
    with_default(Sub(seen.clone()), f);
    seen.0.lock().unwrap().clone()
}

#[test]
fn one_emit_counts_logs_and_gives_the_timeline_entry() {
    let t = Telemetry::default();
    let decision = Decision { action: Action::Failover, target: Some("b".into()), reason: "a is down".into() };
    let event = Event::Decided { incident: "inc-1".into(), decision, policy_sha256: "abc".into() };
    let mut entry = None;
    let seen = lines(|| entry = t.emit(&event));
    assert_eq!(
        seen,
        vec![(
            "INFO".to_string(),
            "decision".to_string(),
            "decision inc-1: failover b (a is down)".to_string(),
            json!({"incident": "inc-1", "action": "failover", "target": "b", "reason": "a is down"}),
        )]
    );
    let entry = entry.expect("a decision goes into the timeline");
    assert_eq!(entry.incident, "inc-1");
    assert_eq!(entry.kind, "decision");
    assert_eq!(
        entry.detail,
        json!({"action": "failover", "target": "b", "reason": "a is down", "policy_sha256": "abc"})
    );
    assert_eq!(t.metrics().decisions.get_or_create(&crate::metrics::ActionLabel { action: "failover" }).get(), 1);
}

#[test]
fn a_policy_error_is_an_alert_line_and_a_timeline_entry() {
    let t = Telemetry::default();
    let event = Event::PolicyFailed { incident: "inc-2".into(), error: "boom".into() };
    let mut entry = None;
    let seen = lines(|| entry = t.emit(&event));
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0, "ERROR");
    assert_eq!(seen[0].2, "ALERT policy error on inc-2, holding: boom");
    let entry = entry.unwrap();
    assert_eq!((entry.kind, entry.detail), ("policy.error", json!({"error": "boom"})));
}

#[test]
fn probe_cycles_count_without_an_event_line() {
    let t = Telemetry::default();
    let report = cutover_s3::probe::ProbeReport {
        backend: "a".into(),
        ok: false,
        outcome: cutover_core::Outcome::Timeout,
        ops: Vec::new(),
        detail: None,
    };
    let event = Event::ProbeCycle { vantage: "local".into(), report };
    let seen = lines(|| assert!(t.emit(&event).is_none()));
    assert!(seen.is_empty(), "{seen:?}");
}

#[test]
fn leadership_changes_and_fenced_writes_are_event_lines_outside_any_timeline() {
    let t = Telemetry::default();
    let leader = crate::controller::Leader { node: "ctl-b".into(), api: "http://10.0.0.6:8080".into() };
    let events = [
        Event::LeadershipChanged { leading: true, token: Some(9), leader: None },
        Event::WriteFenced { op: "decision".into(), revision: Some(9) },
        Event::LeadershipChanged { leading: false, token: None, leader: Some(leader) },
    ];
    let seen = lines(|| {
        for e in &events {
            assert!(t.emit(e).is_none(), "{e:?} has a timeline entry");
        }
    });
    let kinds: Vec<(&str, &str, &str)> = seen.iter().map(|(l, k, m, _)| (l.as_str(), k.as_str(), m.as_str())).collect();
    assert_eq!(
        kinds,
        vec![
            ("INFO", "ha.leading", "ha: leading with fencing token 9"),
            ("WARN", "ha.fenced", "ha: decision refused: the fence of token 9 no longer holds; standing by"),
            ("WARN", "ha.standby", "ha: standing by; ctl-b (http://10.0.0.6:8080) leads"),
        ]
    );
    assert_eq!(seen[2].3, json!({"leading": false, "leader": {"node": "ctl-b", "api": "http://10.0.0.6:8080"}}));
}
