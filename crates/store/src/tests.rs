use std::time::SystemTime;

use serde_json::json;

use super::*;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("state.db")).unwrap();
    (dir, s)
}

#[test]
fn the_active_backend_survives_a_reopen() {
    let (dir, s) = store();
    assert_eq!(s.active_backend().unwrap(), None);
    s.set_active_backend("secondary").unwrap();
    drop(s);
    let s = Store::open(&dir.path().join("state.db")).unwrap();
    assert_eq!(s.active_backend().unwrap().as_deref(), Some("secondary"));
}

#[test]
fn incidents_keep_their_timeline_and_decision() {
    let (_dir, s) = store();
    let now = SystemTime::now();
    let id = s.open_incident("primary", now).unwrap();
    assert!(id.starts_with("inc-"));
    s.add_event(&id, now, "health", &json!({"to": "down"})).unwrap();
    let input = json!({"backend": "primary"});
    let d = DecisionRecord {
        incident: &id,
        action: "failover",
        target: Some("secondary"),
        reason: "confirmed",
        policy_sha256: "abc",
        input: &input,
    };
    s.record_decision(&d, now).unwrap();
    let inc = s.open_incident_for("primary").unwrap().unwrap();
    assert_eq!(inc.decision, json!({"action": "failover", "target": "secondary", "reason": "confirmed"}));
    assert_eq!(s.timeline(&id).unwrap()[0].kind, "health");
    assert_eq!(s.failovers_since(now - std::time::Duration::from_secs(60)).unwrap(), 1);
    s.set_incident_state(&id, "resolved", Some(now)).unwrap();
    assert!(s.open_incident_for("primary").unwrap().is_none());
    assert_eq!(s.incident(&id).unwrap().unwrap().state, "resolved");
}

#[test]
fn an_intact_audit_chain_verifies() {
    let (_dir, s) = store();
    for i in 0..5 {
        s.audit(SystemTime::now(), "controller", "probe", &json!({"i": i})).unwrap();
    }
    assert_eq!(s.verify_audit().unwrap(), Ok(5));
}

#[test]
fn a_modified_audit_entry_is_named() {
    let (_dir, s) = store();
    for i in 0..5 {
        s.audit(SystemTime::now(), "oncall", "approve", &json!({"i": i})).unwrap();
    }
    s.conn().execute("UPDATE audit SET actor = 'mallory' WHERE seq = 3", []).unwrap();
    let e = s.verify_audit().unwrap().unwrap_err();
    assert_eq!(e.seq, 3);
    assert!(e.problem.contains("modified"));
}

#[test]
fn a_deleted_audit_entry_is_named() {
    let (_dir, s) = store();
    for i in 0..4 {
        s.audit(SystemTime::now(), "controller", "x", &json!({"i": i})).unwrap();
    }
    s.conn().execute("DELETE FROM audit WHERE seq = 2", []).unwrap();
    assert_eq!(s.verify_audit().unwrap().unwrap_err().seq, 3);
}

#[test]
fn a_rehashed_entry_still_breaks_the_next_link() {
    // An attacker who edits entry 2 and recomputes its hash breaks entry 3's link.
    let (_dir, s) = store();
    for i in 0..3 {
        s.audit(SystemTime::now(), "controller", "x", &json!({"i": i})).unwrap();
    }
    let (at, prev): (String, String) = s
        .conn()
        .query_row("SELECT at, prev_hash FROM audit WHERE seq = 2", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    let forged = super::audit::tests_support::hash(&prev, 2, &at, "controller", "x", "{\"i\":99}");
    s.conn().execute("UPDATE audit SET detail = '{\"i\":99}', hash = ?1 WHERE seq = 2", [forged]).unwrap();
    let e = s.verify_audit().unwrap().unwrap_err();
    assert_eq!(e.seq, 3);
    assert!(e.problem.contains("link"));
}
