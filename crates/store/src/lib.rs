//! cutover's state in one SQLite file (WAL): the active backend, incidents
//! with their timelines, decisions with the hash of the policy that made
//! them, health history, and an append-only audit log whose entries are
//! hash-chained so that any edit or deletion is detected.
//!
//! Callers use the [`Store`] interface (and its parts [`Incidents`],
//! [`Runs`], [`Approvals`], [`AuditLog`], [`ActiveBackend`],
//! [`HealthHistory`]); [`SqliteStore`] implements it.

mod audit;
mod clients;
mod denials;
mod export;
mod fence;
mod interface;
mod probes;
mod runs;

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use cutover_core::domain::{DecisionAction, Health, IncidentState, RunState, StepState};
use cutover_core::time::rfc3339;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use audit::{AuditEntry, AuditError, AuditRow, GENESIS, KEYED, UNKEYED, check_rows, entry_hash};
pub use clients::{CLIENT_RETENTION, ClientCount};
pub use denials::{Denial, DenialLog, DenialStats};
pub use export::{Finding, FindingKind, Segment, SegmentError, VerifyReport, verify as verify_with_export};
pub use fence::Fence;
pub use interface::{ActiveBackend, Approvals, AuditLog, HealthHistory, Incidents, Runs, Store, StoreExt, Tx};
pub use probes::{PROBE_RETENTION, PROBE_ROW_CAP, ProbeOutcome, ProbeSample};

/// The interface's traits, for `use cutover_store::prelude::*` (calling a
/// method of `dyn Store` needs the part that declares it in scope).
pub mod prelude {
    pub use crate::interface::{
        ActiveBackend, Approvals, AuditLog, HealthHistory, Incidents, Runs, Store, StoreExt, Tx,
    };
}
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
    /// A fenced write carried a fence that no longer holds (another
    /// controller became the leader since); nothing was written.
    #[error("state store {location}: fenced out: the fence of revision {revision:?} no longer holds")]
    Fenced { location: String, revision: Option<i64> },
    /// A remote store (etcd) failed: unreachable, or an answer it could not
    /// use. Whether a write was applied is unknown when the request was sent.
    #[error("state store {location}: {what}: {source}")]
    Remote {
        location: String,
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// [`Store::atomically`] returned without running its transaction (a
    /// defect of the implementation).
    #[error("state store: the transaction returned without running")]
    Incomplete,
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
CREATE INDEX IF NOT EXISTS health_history_at ON health_history(at);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    detail TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL, alg TEXT NOT NULL DEFAULT 'sha256');
";

/// The key of the active backend in `kv`; the gateway reads it too.
pub const ACTIVE_BACKEND: &str = "active_backend";

/// An incident as the API and CLI show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Incident {
    pub id: String,
    pub backend: String,
    pub state: IncidentState,
    pub opened_at: String,
    pub closed_at: Option<String>,
    /// `{"action", "target", "reason"}` of the latest decision, or null.
    pub decision: Value,
}

/// One event in an incident's timeline.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TimelineEvent {
    pub at: String,
    pub kind: String,
    pub detail: Value,
}

/// A decision to record.
#[derive(Debug, Clone)]
pub struct DecisionRecord<'a> {
    pub incident: &'a str,
    pub action: DecisionAction,
    pub target: Option<&'a str>,
    pub reason: &'a str,
    pub policy_sha256: &'a str,
    pub input: &'a Value,
}

/// The state store in one SQLite file. One writer process at a time (the
/// controller); every [`Fence`] holds.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    conn: Arc<std::sync::Mutex<Connection>>,
    path: String,
    /// `[audit] hmac_key_env`: new audit entries are keyed with it, and
    /// verification needs it.
    audit_key: Option<Arc<cutover_core::Secret>>,
    /// The active backend, for [`ActiveBackend::watch_active_backend`].
    active: Arc<tokio::sync::watch::Sender<Option<String>>>,
}

/// Writes that commit together or not at all (one SQLite transaction),
/// from [`Store::atomically`].
#[derive(Debug)]
pub struct SqliteTx<'a> {
    conn: &'a Connection,
    store: &'a SqliteStore,
}

impl SqliteStore {
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
        conn.execute_batch(probes::SCHEMA).map_err(err)?;
        conn.execute_batch(clients::SCHEMA).map_err(err)?;
        audit::migrate(&conn).map_err(err)?;
        let active: Option<String> = conn
            .query_row("SELECT value FROM kv WHERE key = ?1", [ACTIVE_BACKEND], |r| r.get(0))
            .optional()
            .map_err(err)?;
        Ok(Self {
            conn: Arc::new(std::sync::Mutex::new(conn)),
            path: p,
            audit_key: None,
            active: Arc::new(tokio::sync::watch::channel(active).0),
        })
    }

    /// Keys the audit chain with an HMAC-SHA256 secret (`[audit]
    /// hmac_key_env`): new entries are keyed, and verification recomputes
    /// keyed hashes with it. The key is never written anywhere.
    pub fn with_audit_key(mut self, key: Option<cutover_core::Secret>) -> Self {
        self.audit_key = key.map(Arc::new);
        self
    }

    /// The database file.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` in one immediate SQLite transaction: every write it makes
    /// commits together, or (when `f` or the commit fails) none does (the
    /// transaction rolls back when dropped uncommitted).
    fn transaction<T>(&self, f: impl FnOnce(&SqliteTx<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let conn = self.conn();
        let tx = rusqlite::Transaction::new_unchecked(&conn, rusqlite::TransactionBehavior::Immediate)
            .map_err(self.err())?;
        let out = f(&SqliteTx { conn: &tx, store: self })?;
        tx.commit().map_err(self.err())?;
        Ok(out)
    }

    /// Embedded mode has one writer: every fence holds.
    fn check(&self, _fence: &Fence) -> Result<(), StoreError> {
        Ok(())
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |source| StoreError::Sqlite { path: self.path.clone(), source }
    }

    fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn().query_row("SELECT value FROM kv WHERE key = ?1", [key], |r| r.get(0)).optional().map_err(self.err())
    }

    fn set(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO kv (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
                [key, value],
            )
            .map(|_| ())
            .map_err(self.err())
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
}

impl Store for SqliteStore {
    fn atomically(
        &self,
        fence: &Fence,
        f: &mut dyn FnMut(&dyn Tx) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.check(fence)?;
        self.transaction(|tx| f(tx))
    }

    fn location(&self) -> &str {
        &self.path
    }
}

impl ActiveBackend for SqliteStore {
    fn active_backend(&self) -> Result<Option<String>, StoreError> {
        self.get(ACTIVE_BACKEND)
    }

    fn set_active_backend(&self, fence: &Fence, name: &str) -> Result<(), StoreError> {
        self.check(fence)?;
        self.set(ACTIVE_BACKEND, name)?;
        self.active.send_if_modified(|now| {
            let changed = now.as_deref() != Some(name);
            *now = Some(name.to_string());
            changed
        });
        Ok(())
    }

    fn watch_active_backend(&self) -> tokio::sync::watch::Receiver<Option<String>> {
        self.active.subscribe()
    }
}

impl Incidents for SqliteStore {
    fn open_incident_for(&self, backend: &str) -> Result<Option<Incident>, StoreError> {
        let mut all =
            self.query_incidents("WHERE backend = ?1 AND closed_at IS NULL ORDER BY opened_at DESC", &[&backend])?;
        Ok(if all.is_empty() { None } else { Some(all.remove(0)) })
    }

    fn incidents(&self) -> Result<Vec<Incident>, StoreError> {
        self.query_incidents("ORDER BY opened_at DESC", &[])
    }

    fn open_incidents(&self) -> Result<Vec<Incident>, StoreError> {
        self.query_incidents("WHERE closed_at IS NULL ORDER BY opened_at DESC", &[])
    }

    fn incident(&self, id: &str) -> Result<Option<Incident>, StoreError> {
        Ok(self.query_incidents("WHERE id = ?1", &[&id])?.into_iter().next())
    }

    fn timeline(&self, incident: &str) -> Result<Vec<TimelineEvent>, StoreError> {
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

    fn failovers_since(&self, since: SystemTime) -> Result<u32, StoreError> {
        self.conn()
            .query_row(
                "SELECT COUNT(*) FROM decisions WHERE action = ?1 AND at >= ?2",
                params![DecisionAction::Failover, rfc3339(since)],
                |r| r.get(0),
            )
            .map_err(self.err())
    }

    fn decision_input(&self, incident: &str) -> Result<Option<Value>, StoreError> {
        let text: Option<String> = self
            .conn()
            .query_row(
                "SELECT input FROM decisions WHERE incident = ?1 ORDER BY id DESC LIMIT 1",
                params![incident],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err())?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }
}

impl HealthHistory for SqliteStore {
    fn record_health(
        &self,
        at: SystemTime,
        backend: &str,
        vantage: &str,
        from: Health,
        to: Health,
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

    fn last_health(&self) -> Result<Vec<HealthRecord>, StoreError> {
        self.query_last_health()
    }

    fn health_changes(&self, from: SystemTime, to: SystemTime) -> Result<Vec<HealthRecord>, StoreError> {
        self.query_health_changes(from, to)
    }

    fn record_client_counts(&self, counts: &[ClientCount]) -> Result<(), StoreError> {
        self.insert_client_counts(counts)
    }

    fn client_counts(&self, from: SystemTime, to: SystemTime) -> Result<Vec<ClientCount>, StoreError> {
        self.query_client_counts(from, to)
    }

    fn record_probe_samples(&self, samples: &[ProbeSample]) -> Result<(), StoreError> {
        self.insert_probe_samples(samples)
    }

    fn probe_samples(&self, from: SystemTime, to: SystemTime) -> Result<Vec<ProbeSample>, StoreError> {
        self.query_probe_samples(from, to)
    }
}

impl SqliteTx<'_> {
    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        self.store.err()
    }
}

impl Tx for SqliteTx<'_> {
    fn open_incident(&self, backend: &str, at: SystemTime) -> Result<String, StoreError> {
        let ts = rfc3339(at);
        let id = incident_id(at);
        self.conn
            .execute(
                "INSERT INTO incidents (id, backend, state, opened_at) VALUES (?1, ?2, ?3, ?4)",
                params![id, backend, IncidentState::Open, ts],
            )
            .map_err(self.err())?;
        Ok(id)
    }

    fn set_incident_state(&self, id: &str, state: IncidentState, closed: Option<SystemTime>) -> Result<(), StoreError> {
        let closed = closed.map(rfc3339);
        self.conn
            .execute(
                "UPDATE incidents SET state = ?2, closed_at = COALESCE(?3, closed_at) WHERE id = ?1",
                params![id, state, closed],
            )
            .map(|_| ())
            .map_err(self.err())
    }

    fn add_event(&self, incident: &str, at: SystemTime, kind: &str, detail: &Value) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO timeline (incident, at, kind, detail) VALUES (?1, ?2, ?3, ?4)",
                params![incident, rfc3339(at), kind, detail.to_string()],
            )
            .map(|_| ())
            .map_err(self.err())
    }

    fn record_decision(&self, d: &DecisionRecord<'_>, at: SystemTime) -> Result<(), StoreError> {
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

    fn record_approval(
        &self,
        incident: &str,
        verdict: cutover_core::domain::Verdict,
        actor: &str,
        comment: &str,
        at: SystemTime,
    ) -> Result<i64, StoreError> {
        self.insert_approval(incident, verdict, actor, comment, at)
    }

    fn audit(&self, at: SystemTime, actor: &str, action: &str, detail: &Value) -> Result<i64, StoreError> {
        self.append_audit(at, actor, action, detail)
    }

    fn begin_run(&self, run: &NewRun<'_>, at: SystemTime) -> Result<i64, StoreError> {
        self.insert_run(run, at)
    }

    fn set_run_state(
        &self,
        id: i64,
        state: RunState,
        detail: Option<&Value>,
        ended: Option<SystemTime>,
    ) -> Result<(), StoreError> {
        self.update_run_state(id, state, detail, ended)
    }

    fn step_intent(
        &self,
        step: StepRef,
        name: &str,
        uses: &str,
        intent: &Value,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        self.upsert_step_intent(step, name, uses, intent, at)
    }

    fn step_result(&self, step: StepRef, state: StepState, result: &Value, at: SystemTime) -> Result<(), StoreError> {
        self.update_step_result(step, state, result, at)
    }
}

/// The last recorded health of one (backend, vantage).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HealthRecord {
    pub backend: String,
    pub vantage: String,
    pub health: Health,
    pub reason: String,
    pub at: String,
}

impl SqliteStore {
    /// The last recorded health change of every (backend, vantage), by
    /// backend and vantage: what a controller last saw, for `cutover status`
    /// when no controller is reachable.
    fn query_last_health(&self) -> Result<Vec<HealthRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT backend, vantage, to_state, reason, at FROM health_history
                 WHERE id IN (SELECT MAX(id) FROM health_history GROUP BY backend, vantage)
                 ORDER BY backend, vantage",
            )
            .map_err(self.err())?;
        let rows = stmt.query_map([], health_record).map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// The health changes from `from` to `to`, oldest first (`at` is
    /// fixed-width RFC 3339, so text order is time order).
    fn query_health_changes(&self, from: SystemTime, to: SystemTime) -> Result<Vec<HealthRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT backend, vantage, to_state, reason, at FROM health_history
                 WHERE at >= ?1 AND at <= ?2 ORDER BY at, id",
            )
            .map_err(self.err())?;
        let rows = stmt.query_map(params![rfc3339(from), rfc3339(to)], health_record).map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }
}

/// A `health_history` row selected as `backend, vantage, to_state, reason, at`.
fn health_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<HealthRecord> {
    Ok(HealthRecord { backend: r.get(0)?, vantage: r.get(1)?, health: r.get(2)?, reason: r.get(3)?, at: r.get(4)? })
}

/// A new incident id for an incident opened at `at`:
/// `inc-YYYYMMDD-HHMMSS-xxxx` (every store makes them alike).
pub fn incident_id(at: SystemTime) -> String {
    let ts = rfc3339(at);
    format!("inc-{}-{:04x}", ts[..19].replace(['-', ':'], "").replace('T', "-"), fastrand_u16())
}

fn fastrand_u16() -> u16 {
    // Low bits of the clock are enough to tell incidents opened in the same second apart.
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    (n ^ (n >> 16)) as u16
}

#[cfg(test)]
mod tests;
