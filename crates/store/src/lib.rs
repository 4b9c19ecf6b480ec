//! cutover's state in one SQLite file (WAL): the active backend, incidents
//! with their timelines, decisions with the hash of the policy that made
//! them, health history, and an append-only audit log whose entries are
//! hash-chained so that any edit or deletion is detected.

mod audit;
mod denials;
mod export;
mod runs;

use std::path::Path;
use std::time::SystemTime;

use cutover_core::time::rfc3339;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;

pub use audit::{AuditEntry, AuditError, AuditRow, KEYED, UNKEYED};
pub use denials::{Denial, DenialLog, DenialStats};
pub use export::{Finding, FindingKind, Segment, SegmentError, VerifyReport};
pub use runs::{Approval, NewRun, RunRecord, StepRecord, StepRef};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed (open, schema, query).
    #[error("state store {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    /// A stored JSON document did not parse.
    #[error("state store {path}: corrupt JSON in {what}: {source}")]
    Json {
        path: String,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY, backend TEXT NOT NULL, state TEXT NOT NULL,
    opened_at TEXT NOT NULL, closed_at TEXT, decision TEXT);
CREATE TABLE IF NOT EXISTS timeline (
    id INTEGER PRIMARY KEY AUTOINCREMENT, incident TEXT NOT NULL, at TEXT NOT NULL,
    kind TEXT NOT NULL, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS timeline_incident ON timeline(incident, id);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, incident TEXT NOT NULL, at TEXT NOT NULL,
    action TEXT NOT NULL, target TEXT, reason TEXT NOT NULL, policy_sha256 TEXT NOT NULL, input TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS health_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, backend TEXT NOT NULL, vantage TEXT NOT NULL,
    from_state TEXT NOT NULL, to_state TEXT NOT NULL, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    detail TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL, alg TEXT NOT NULL DEFAULT 'sha256');
";

/// The key of the active backend in `kv`; the gateway reads it too.
pub const ACTIVE_BACKEND: &str = "active_backend";

/// An incident as the API and CLI show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Incident {
    pub id: String,
    pub backend: String,
    pub state: String,
    pub opened_at: String,
    pub closed_at: Option<String>,
    /// `{"action", "target", "reason"}` of the latest decision, or null.
    pub decision: Value,
}

/// One event in an incident's timeline.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TimelineEvent {
    pub at: String,
    pub kind: String,
    pub detail: Value,
}

/// A decision to record.
#[derive(Debug, Clone)]
pub struct DecisionRecord<'a> {
    pub incident: &'a str,
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub reason: &'a str,
    pub policy_sha256: &'a str,
    pub input: &'a Value,
}

/// The state store. One writer process at a time (the controller).
#[derive(Debug, Clone)]
pub struct Store {
    conn: std::sync::Arc<std::sync::Mutex<Connection>>,
    path: String,
    /// `[audit] hmac_key_env`: new audit entries are keyed with it, and
    /// verification needs it.
    audit_key: Option<std::sync::Arc<cutover_core::Secret>>,
}

/// Writes that commit together or not at all (one SQLite transaction),
/// from [`Store::atomically`].
#[derive(Debug)]
pub struct Tx<'a> {
    conn: &'a Connection,
    store: &'a Store,
}

impl Store {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let p = path.display().to_string();
        let err = |source| StoreError::Sqlite { path: p.clone(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        conn.execute_batch(runs::SCHEMA).map_err(err)?;
        audit::migrate(&conn).map_err(err)?;
        Ok(Self { conn: std::sync::Arc::new(std::sync::Mutex::new(conn)), path: p, audit_key: None })
    }

    /// Keys the audit chain with an HMAC-SHA256 secret (`[audit]
    /// hmac_key_env`): new entries are keyed, and verification recomputes
    /// keyed hashes with it. The key is never written anywhere.
    pub fn with_audit_key(mut self, key: Option<cutover_core::Secret>) -> Self {
        self.audit_key = key.map(std::sync::Arc::new);
        self
    }

    /// Whether this store keys audit hashes.
    pub fn audit_keyed(&self) -> bool {
        self.audit_key.is_some()
    }

    /// The database file.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` in one immediate SQLite transaction: every write it makes
    /// commits together, or (when `f` or the commit fails) none does. Use it
    /// to make a change and its audit entry one unit.
    pub fn atomically<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let conn = self.conn();
        let tx = rusqlite::Transaction::new_unchecked(&conn, rusqlite::TransactionBehavior::Immediate)
            .map_err(self.err())?;
        let out = f(&Tx { conn: &tx, store: self })?;
        tx.commit().map_err(self.err())?;
        Ok(out)
    }

    /// Runs `f` on the connection without a transaction of its own.
    fn plain<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let conn = self.conn();
        f(&Tx { conn: &conn, store: self })
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |source| StoreError::Sqlite { path: self.path.clone(), source }
    }

    pub fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn().query_row("SELECT value FROM kv WHERE key = ?1", [key], |r| r.get(0)).optional().map_err(self.err())
    }

    pub fn set(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO kv (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
                [key, value],
            )
            .map(|_| ())
            .map_err(self.err())
    }

    /// Opens an incident; returns its id.
    pub fn open_incident(&self, backend: &str, at: SystemTime) -> Result<String, StoreError> {
        self.plain(|tx| tx.open_incident(backend, at))
    }

    pub fn set_incident_state(&self, id: &str, state: &str, closed: Option<SystemTime>) -> Result<(), StoreError> {
        self.plain(|tx| tx.set_incident_state(id, state, closed))
    }

    /// Appends an event to an incident's timeline.
    pub fn add_event(&self, incident: &str, at: SystemTime, kind: &str, detail: &Value) -> Result<(), StoreError> {
        self.plain(|tx| tx.add_event(incident, at, kind, detail))
    }

    /// Records a decision (with the full policy input as evidence) and makes
    /// it the incident's current decision, in one transaction.
    pub fn record_decision(&self, d: &DecisionRecord<'_>, at: SystemTime) -> Result<(), StoreError> {
        self.atomically(|tx| tx.record_decision(d, at))
    }

    /// The active backend, if one was ever set.
    pub fn active_backend(&self) -> Result<Option<String>, StoreError> {
        self.get(ACTIVE_BACKEND)
    }

    pub fn set_active_backend(&self, name: &str) -> Result<(), StoreError> {
        self.set(ACTIVE_BACKEND, name)
    }

    /// The open (not closed) incident of a backend, if any.
    pub fn open_incident_for(&self, backend: &str) -> Result<Option<Incident>, StoreError> {
        let mut all =
            self.query_incidents("WHERE backend = ?1 AND closed_at IS NULL ORDER BY opened_at DESC", &[&backend])?;
        Ok(if all.is_empty() { None } else { Some(all.remove(0)) })
    }

    pub fn incidents(&self) -> Result<Vec<Incident>, StoreError> {
        self.query_incidents("ORDER BY opened_at DESC", &[])
    }

    pub fn open_incidents(&self) -> Result<Vec<Incident>, StoreError> {
        self.query_incidents("WHERE closed_at IS NULL ORDER BY opened_at DESC", &[])
    }

    pub fn incident(&self, id: &str) -> Result<Option<Incident>, StoreError> {
        Ok(self.query_incidents("WHERE id = ?1", &[&id])?.into_iter().next())
    }

    fn query_incidents(&self, tail: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<Incident>, StoreError> {
        let sql = format!("SELECT id, backend, state, opened_at, closed_at, decision FROM incidents {tail}");
        let conn = self.conn();
        let mut stmt = conn.prepare(&sql).map_err(self.err())?;
        let rows = stmt
            .query_map(args, |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get::<_, Option<String>>(5)?))
            })
            .map_err(self.err())?;
        let mut out = Vec::new();
        for row in rows {
            let (id, backend, state, opened_at, closed_at, decision) = row.map_err(self.err())?;
            let decision = match decision {
                Some(d) => serde_json::from_str(&d).map_err(|source| StoreError::Json {
                    path: self.path.clone(),
                    what: "incidents.decision",
                    source,
                })?,
                None => Value::Null,
            };
            out.push(Incident { id, backend, state, opened_at, closed_at, decision });
        }
        Ok(out)
    }

    pub fn timeline(&self, incident: &str) -> Result<Vec<TimelineEvent>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT at, kind, detail FROM timeline WHERE incident = ?1 ORDER BY id")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([incident], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
            .map_err(self.err())?;
        let mut out = Vec::new();
        for row in rows {
            let (at, kind, detail) = row.map_err(self.err())?;
            let detail = serde_json::from_str(&detail).unwrap_or(Value::String(detail));
            out.push(TimelineEvent { at, kind, detail });
        }
        Ok(out)
    }

    /// Number of `failover` decisions since `since`.
    pub fn failovers_since(&self, since: SystemTime) -> Result<u32, StoreError> {
        self.conn()
            .query_row("SELECT COUNT(*) FROM decisions WHERE action = 'failover' AND at >= ?1", [rfc3339(since)], |r| {
                r.get(0)
            })
            .map_err(self.err())
    }

    pub fn record_health(
        &self,
        at: SystemTime,
        backend: &str,
        vantage: &str,
        from: &str,
        to: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO health_history (at, backend, vantage, from_state, to_state, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![rfc3339(at), backend, vantage, from, to, reason],
            )
            .map(|_| ())
            .map_err(self.err())
    }
}

impl Tx<'_> {
    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        self.store.err()
    }

    /// Opens an incident; returns its id.
    pub fn open_incident(&self, backend: &str, at: SystemTime) -> Result<String, StoreError> {
        let ts = rfc3339(at);
        let id = format!("inc-{}-{:04x}", ts[..19].replace(['-', ':'], "").replace('T', "-"), fastrand_u16());
        self.conn
            .execute(
                "INSERT INTO incidents (id, backend, state, opened_at) VALUES (?1, ?2, 'open', ?3)",
                params![id, backend, ts],
            )
            .map_err(self.err())?;
        Ok(id)
    }

    pub fn set_incident_state(&self, id: &str, state: &str, closed: Option<SystemTime>) -> Result<(), StoreError> {
        let closed = closed.map(rfc3339);
        self.conn
            .execute(
                "UPDATE incidents SET state = ?2, closed_at = COALESCE(?3, closed_at) WHERE id = ?1",
                params![id, state, closed],
            )
            .map(|_| ())
            .map_err(self.err())
    }

    /// Appends an event to an incident's timeline.
    pub fn add_event(&self, incident: &str, at: SystemTime, kind: &str, detail: &Value) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO timeline (incident, at, kind, detail) VALUES (?1, ?2, ?3, ?4)",
                params![incident, rfc3339(at), kind, detail.to_string()],
            )
            .map(|_| ())
            .map_err(self.err())
    }

    /// Records a decision (with the full policy input as evidence) and makes
    /// it the incident's current decision.
    pub fn record_decision(&self, d: &DecisionRecord<'_>, at: SystemTime) -> Result<(), StoreError> {
        let ts = rfc3339(at);
        self.conn
            .execute(
                "INSERT INTO decisions (incident, at, action, target, reason, policy_sha256, input) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![d.incident, ts, d.action, d.target, d.reason, d.policy_sha256, d.input.to_string()],
            )
            .map_err(self.err())?;
        let summary = serde_json::json!({"action": d.action, "target": d.target, "reason": d.reason});
        self.conn
            .execute("UPDATE incidents SET decision = ?2 WHERE id = ?1", params![d.incident, summary.to_string()])
            .map(|_| ())
            .map_err(self.err())
    }
}

/// The last recorded health of one (backend, vantage).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HealthRecord {
    pub backend: String,
    pub vantage: String,
    pub health: String,
    pub reason: String,
    pub at: String,
}

impl Store {
    /// The last recorded health change of every (backend, vantage), by
    /// backend and vantage: what a controller last saw, for `cutover status`
    /// when no controller is reachable.
    pub fn last_health(&self) -> Result<Vec<HealthRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT backend, vantage, to_state, reason, at FROM health_history
                 WHERE id IN (SELECT MAX(id) FROM health_history GROUP BY backend, vantage)
                 ORDER BY backend, vantage",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok(HealthRecord {
                    backend: r.get(0)?,
                    vantage: r.get(1)?,
                    health: r.get(2)?,
                    reason: r.get(3)?,
                    at: r.get(4)?,
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }
}

fn fastrand_u16() -> u16 {
    // Low bits of the clock are enough to tell incidents opened in the same second apart.
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    (n ^ (n >> 16)) as u16
}

#[cfg(test)]
mod tests;
