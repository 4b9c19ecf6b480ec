use std::time::SystemTime;

use serde_json::json;

use cutover_core::domain::{DecisionAction, Health, IncidentState};

use super::*;

fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("state.db")).unwrap();
    (dir, s)
}

#[test]
fn the_active_backend_survives_a_reopen() {
    let (dir, s) = store();
    assert_eq!(s.active_backend().unwrap(), None);
    s.set_active_backend(&Fence::local(), "secondary").unwrap();
    drop(s);
    let s = SqliteStore::open(&dir.path().join("state.db")).unwrap();
    assert_eq!(s.active_backend().unwrap().as_deref(), Some("secondary"));
}

#[test]
fn the_last_health_of_each_vantage_comes_back_typed() {
    let (_dir, s) = store();
    let now = SystemTime::now();
    s.record_health(now, "primary", "local", Health::Unknown, Health::Healthy, "a probe succeeded").unwrap();
    s.record_health(now, "primary", "local", Health::Healthy, Health::Suspect, "a probe failed").unwrap();
    s.record_health(now, "primary", "eu-west", Health::Unknown, Health::Down, "resumed").unwrap();
    let last: Vec<(String, Health)> = s.last_health().unwrap().into_iter().map(|r| (r.vantage, r.health)).collect();
    assert_eq!(last, [("eu-west".to_string(), Health::Down), ("local".to_string(), Health::Suspect)]);
    let from: String =
        s.conn().query_row("SELECT from_state FROM health_history ORDER BY id DESC LIMIT 1", [], |r| r.get(0)).unwrap();
    assert_eq!(from, "unknown", "stored as the word the API uses");
}

#[test]
fn health_changes_come_back_for_a_window_oldest_first() {
    let (_dir, s) = store();
    let t0 = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
    let at = |secs: u64| t0 + std::time::Duration::from_secs(secs);
    s.record_health(at(0), "primary", "local", Health::Unknown, Health::Healthy, "a probe succeeded").unwrap();
    s.record_health(at(10), "primary", "local", Health::Healthy, Health::Suspect, "a probe failed").unwrap();
    s.record_health(at(10), "primary", "eu-west", Health::Healthy, Health::Suspect, "agent").unwrap();
    s.record_health(at(12), "primary", "local", Health::Suspect, Health::Down, "confirmed").unwrap();
    s.record_health(at(100), "primary", "local", Health::Down, Health::Healthy, "recovered").unwrap();
    let got: Vec<(String, Health, String)> =
        s.health_changes(at(5), at(12)).unwrap().into_iter().map(|r| (r.vantage, r.health, r.at)).collect();
    assert_eq!(
        got,
        [
            ("local".to_string(), Health::Suspect, cutover_core::time::rfc3339(at(10))),
            ("eu-west".to_string(), Health::Suspect, cutover_core::time::rfc3339(at(10))),
            ("local".to_string(), Health::Down, cutover_core::time::rfc3339(at(12))),
        ],
        "inclusive bounds, oldest first, in the order recorded"
    );
    assert!(s.health_changes(at(13), at(99)).unwrap().is_empty());
}

#[test]
fn a_health_history_row_with_an_unknown_state_is_an_error_naming_it() {
    let (_dir, s) = store();
    s.conn()
        .execute(
            "INSERT INTO health_history (at, backend, vantage, from_state, to_state, reason) VALUES ('', 'primary', 'local', 'up', 'sideways', '')",
            [],
        )
        .unwrap();
    let e = s.last_health().unwrap_err();
    assert!(e.to_string().contains("sideways"), "{e}");
}

#[test]
fn incidents_keep_their_timeline_and_decision() {
    let (_dir, s) = store();
    let now = SystemTime::now();
    let id = s.open_incident(&Fence::local(), "primary", now).unwrap();
    assert!(id.starts_with("inc-"));
    s.add_event(&Fence::local(), &id, now, "health", &json!({"to": "down"})).unwrap();
    let input = json!({"backend": "primary"});
    let d = DecisionRecord {
        incident: &id,
        action: DecisionAction::Failover,
        target: Some("secondary"),
        reason: "confirmed",
        policy_sha256: "abc",
        input: &input,
    };
    s.record_decision(&Fence::local(), &d, now).unwrap();
    let inc = s.open_incident_for("primary").unwrap().unwrap();
    assert_eq!(inc.decision, json!({"action": "failover", "target": "secondary", "reason": "confirmed"}));
    assert_eq!(s.timeline(&id).unwrap()[0].kind, "health");
    assert_eq!(s.failovers_since(now - std::time::Duration::from_secs(60)).unwrap(), 1);
    s.set_incident_state(&Fence::local(), &id, IncidentState::Resolved, Some(now)).unwrap();
    assert!(s.open_incident_for("primary").unwrap().is_none());
    assert_eq!(s.incident(&id).unwrap().unwrap().state, IncidentState::Resolved);
}

#[test]
fn an_intact_audit_chain_verifies() {
    let (_dir, s) = store();
    for i in 0..5 {
        s.audit(&Fence::local(), SystemTime::now(), "controller", "probe", &json!({"i": i})).unwrap();
    }
    assert_eq!(s.verify_audit().unwrap(), Ok(5));
}

#[test]
fn a_modified_audit_entry_is_named() {
    let (_dir, s) = store();
    for i in 0..5 {
        s.audit(&Fence::local(), SystemTime::now(), "oncall", "approve", &json!({"i": i})).unwrap();
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
        s.audit(&Fence::local(), SystemTime::now(), "controller", "x", &json!({"i": i})).unwrap();
    }
    s.conn().execute("DELETE FROM audit WHERE seq = 2", []).unwrap();
    assert_eq!(s.verify_audit().unwrap().unwrap_err().seq, 3);
}

#[test]
fn a_rehashed_entry_still_breaks_the_next_link() {
    // An attacker who edits entry 2 and recomputes its hash breaks entry 3's link.
    let (_dir, s) = store();
    for i in 0..3 {
        s.audit(&Fence::local(), SystemTime::now(), "controller", "x", &json!({"i": i})).unwrap();
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

fn keyed_store(key: &str) -> (tempfile::TempDir, SqliteStore) {
    let (dir, s) = store();
    (dir, s.with_audit_key(Some(cutover_core::Secret::new(key))))
}

fn fill(s: &SqliteStore, n: usize) {
    for i in 0..n {
        s.audit(&Fence::local(), SystemTime::now(), "controller", "x", &json!({"i": i})).unwrap();
    }
}

/// Recomputes every hash from `from` on, as someone with write access to
/// the database (and, for a keyed chain, the key) would to hide an edit.
fn rehash_from(s: &SqliteStore, key: Option<&str>, from: i64) {
    let rows = s.audit_rows_after(from - 1, i64::MAX).unwrap();
    let mut prev = rows[0].prev_hash.clone();
    for r in rows {
        let h = super::audit::entry_hash(key.map(str::as_bytes), &prev, r.seq, &r.at, &r.actor, &r.action, &r.detail);
        s.conn()
            .execute("UPDATE audit SET prev_hash = ?1, hash = ?2 WHERE seq = ?3", rusqlite::params![prev, h, r.seq])
            .unwrap();
        prev = h;
    }
}

fn export_of(s: &SqliteStore, chunk: usize) -> Vec<(String, Result<Segment, SegmentError>)> {
    let rows = s.audit_rows_after(0, i64::MAX).unwrap();
    rows.chunks(chunk)
        .map(|c| {
            let seg = Segment::from_rows(c.to_vec(), SystemTime::now()).unwrap();
            (seg.key("cutover/"), Ok(seg))
        })
        .collect()
}

#[test]
fn a_failed_write_in_a_transaction_leaves_nothing_behind() {
    let (_dir, s) = store();
    s.conn()
        .execute_batch(
            "CREATE TRIGGER no_audit BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'audit refused'); END;",
        )
        .unwrap();
    let r = s.atomic(&Fence::local(), |tx| {
        let id = tx.open_incident("primary", SystemTime::now())?;
        tx.add_event(&id, SystemTime::now(), "incident.opened", &json!({}))?;
        tx.audit(SystemTime::now(), "controller", "incident.open", &json!({"incident": id}))
    });
    assert!(r.unwrap_err().to_string().contains("audit refused"));
    assert!(s.incidents().unwrap().is_empty(), "the incident was opened without its audit entry");
}

#[test]
fn a_keyed_chain_verifies_only_with_its_key() {
    let (dir, s) = keyed_store("k3y-k3y-k3y-k3y-k3y");
    fill(&s, 3);
    assert_eq!(s.verify_audit().unwrap(), Ok(3));
    assert_eq!(s.audit_rows_after(0, 10).unwrap()[0].alg, KEYED);
    let other = SqliteStore::open(&dir.path().join("state.db")).unwrap();
    assert!(other.verify_audit().unwrap().unwrap_err().problem.contains("hmac_key_env"));
    let wrong = other.with_audit_key(Some(cutover_core::Secret::new("wrong")));
    assert_eq!(wrong.verify_audit().unwrap().unwrap_err().seq, 1);
}

#[test]
fn a_keyed_chain_rewritten_without_the_key_is_named() {
    let (_dir, s) = keyed_store("k3y-k3y-k3y-k3y-k3y");
    fill(&s, 5);
    s.conn().execute("UPDATE audit SET detail = '{\"i\":99}' WHERE seq = 3", []).unwrap();
    // Without the key, the forger can only use plain hashes.
    rehash_from(&s, None, 3);
    s.conn().execute("UPDATE audit SET alg = 'sha256' WHERE seq >= 3", []).unwrap();
    let e = s.verify_audit().unwrap().unwrap_err();
    assert_eq!(e.seq, 3, "{e}");
    assert!(e.problem.contains("without the HMAC key"), "{e}");
}

#[test]
fn an_unkeyed_chain_gets_a_keyed_marker_when_the_key_arrives() {
    let (dir, s) = store();
    fill(&s, 2);
    let s =
        SqliteStore::open(&dir.path().join("state.db")).unwrap().with_audit_key(Some(cutover_core::Secret::new("k")));
    assert_eq!(s.mark_keyed(&Fence::local(), SystemTime::now()).unwrap(), Some(3));
    assert_eq!(s.mark_keyed(&Fence::local(), SystemTime::now()).unwrap(), None, "already keyed");
    assert_eq!(s.verify_audit().unwrap(), Ok(3));
}

#[test]
fn verify_with_an_intact_export_is_clean() {
    let (_dir, s) = store();
    fill(&s, 10);
    let export = export_of(&s, 4);
    assert_eq!(export[0].0, "cutover/audit/000000000001-000000000004.json");
    fill(&s, 2); // not exported yet: fine
    let r = s.verify_with_export(Some(&export)).unwrap();
    assert!(r.ok(), "{r:?}");
    assert_eq!((r.entries, r.segments, r.exported_through), (12, Some(3), Some(10)));
}

#[test]
fn verify_with_export_names_removed_trailing_entries() {
    let (_dir, s) = store();
    fill(&s, 10);
    let export = export_of(&s, 4);
    s.conn().execute("DELETE FROM audit WHERE seq > 7", []).unwrap();
    assert_eq!(s.verify_audit().unwrap(), Ok(7), "the local chain alone cannot tell");
    let r = s.verify_with_export(Some(&export)).unwrap();
    let f = r.first().unwrap();
    assert_eq!((f.seq, f.kind), (8, FindingKind::Removed), "{r:?}");
    assert!(f.problem.contains("8..10"), "{f}");
}

#[test]
fn verify_with_export_names_a_rewritten_chain() {
    let (_dir, s) = store();
    fill(&s, 10);
    let export = export_of(&s, 5);
    s.conn().execute("UPDATE audit SET actor = 'mallory' WHERE seq = 6", []).unwrap();
    rehash_from(&s, None, 6);
    assert_eq!(s.verify_audit().unwrap(), Ok(10), "the local chain alone cannot tell");
    let r = s.verify_with_export(Some(&export)).unwrap();
    let f = r.first().unwrap();
    assert_eq!((f.seq, f.kind), (6, FindingKind::Rewritten), "{r:?}");
    assert!(f.problem.contains("actor"), "{f}");
}

#[test]
fn verify_with_export_names_an_edited_row_and_a_damaged_export() {
    let (_dir, s) = store();
    fill(&s, 6);
    let mut export = export_of(&s, 3);
    s.conn().execute("UPDATE audit SET detail = '{\"i\":42}' WHERE seq = 2", []).unwrap();
    let r = s.verify_with_export(Some(&export)).unwrap();
    assert!(r.findings.iter().all(|f| f.seq == 2 && f.kind == FindingKind::Edited), "{r:?}");
    assert_eq!(r.findings.len(), 2, "{r:?}");
    // A segment missing from the export is named too.
    export.remove(0).1.unwrap();
    let r = s.verify_with_export(Some(&export)).unwrap();
    assert!(r.findings.iter().any(|f| f.kind == FindingKind::Export && f.seq == 1), "{r:?}");
}

#[test]
fn a_flood_of_denials_writes_a_handful_of_rows_on_its_own_connection() {
    let (dir, s) = store();
    let log =
        DenialLog::start(SqliteStore::open(&dir.path().join("state.db")).unwrap(), std::time::Duration::from_secs(60));
    // Four clients flood; `record` never waits for the writer.
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..2500 {
                    log.record(Denial {
                        actor: if i % 2 == 0 { "anonymous".into() } else { format!("token-{t}") },
                        route: "/v1/status".into(),
                        method: "GET".into(),
                        status: 401,
                        why: "a bearer token is required".into(),
                    });
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    drop(log); // the writer drains what is pending and stops
    let start = std::time::Instant::now();
    let counted = || -> (i64, i64) {
        s.conn()
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(json_extract(detail, '$.count')), 0) FROM audit WHERE action = 'api.denied'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    };
    while counted().1 < 10_000 && start.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (rows, total) = counted();
    assert_eq!(total, 10_000, "every refusal is counted");
    assert!(rows <= 12, "{rows} rows for 10,000 refusals");
    assert_eq!(s.verify_audit().unwrap().map(|n| n as i64), Ok(rows));
}
