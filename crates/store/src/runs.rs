//! The runbook journal (write-ahead): one row per run, one row per step and
//! phase, written before a step starts (its intent, with the rendered undo
//! call) and after it ends (its result). A restarted controller reads it to
//! resume an interrupted run or roll it back; a step recorded `ok` is never
//! run again. Approvals are recorded here too.

use std::time::SystemTime;

use cutover_core::domain::{RunKind, RunState, StepPhase, StepState, Verdict};
use cutover_core::time::rfc3339;
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Approvals, Runs, SqliteStore, SqliteTx, StoreError};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, incident TEXT NOT NULL, kind TEXT NOT NULL,
    source TEXT NOT NULL, target TEXT NOT NULL, reason TEXT NOT NULL, actor TEXT NOT NULL,
    runbook TEXT NOT NULL, runbook_sha256 TEXT NOT NULL, state TEXT NOT NULL, approval_base INTEGER NOT NULL,
    started_at TEXT NOT NULL, ended_at TEXT, detail TEXT);
CREATE TABLE IF NOT EXISTS run_steps (
    run INTEGER NOT NULL, idx INTEGER NOT NULL, phase TEXT NOT NULL, name TEXT NOT NULL,
    uses TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL, started_at TEXT NOT NULL,
    ended_at TEXT, intent TEXT NOT NULL, result TEXT, PRIMARY KEY (run, idx, phase));
CREATE TABLE IF NOT EXISTS approvals (
    id INTEGER PRIMARY KEY AUTOINCREMENT, incident TEXT NOT NULL, verdict TEXT NOT NULL,
    actor TEXT NOT NULL, comment TEXT NOT NULL, at TEXT NOT NULL);
";

/// A run to start.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub incident: &'a str,
    pub kind: RunKind,
    pub source: &'a str,
    pub target: &'a str,
    pub reason: &'a str,
    /// Who started it: `controller`, or the name of the token that approved or forced it.
    pub actor: &'a str,
    /// Where the runbook came from (a path, or `built-in failover`).
    pub runbook: &'a str,
    pub runbook_sha256: &'a str,
}

/// A run as recorded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunRecord {
    pub id: i64,
    pub incident: String,
    pub kind: RunKind,
    pub source: String,
    pub target: String,
    pub reason: String,
    pub actor: String,
    pub runbook: String,
    pub runbook_sha256: String,
    pub state: RunState,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub detail: Value,
    /// Approvals recorded before the run started do not count for its `approval` steps.
    pub approval_base: i64,
}

/// One step (or its undo) as recorded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepRecord {
    pub idx: i64,
    pub phase: StepPhase,
    pub name: String,
    pub uses: String,
    pub state: StepState,
    pub attempts: i64,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// The rendered parameters (secrets redacted) and the rendered undo call.
    pub intent: Value,
    pub result: Value,
}

/// Which step of which run, doing or undoing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepRef {
    pub run: i64,
    pub idx: usize,
    pub phase: StepPhase,
}

/// An approval or rejection of an incident.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Approval {
    pub id: i64,
    pub incident: String,
    pub verdict: Verdict,
    pub actor: String,
    pub comment: String,
    pub at: String,
}

fn json_col(s: Option<String>) -> Value {
    s.and_then(|s| serde_json::from_str(&s).ok()).unwrap_or(Value::Null)
}

const RUN_COLS: &str = "id, incident, kind, source, target, reason, actor, runbook, runbook_sha256, state, started_at, ended_at, detail, approval_base";

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        id: r.get(0)?,
        incident: r.get(1)?,
        kind: r.get(2)?,
        source: r.get(3)?,
        target: r.get(4)?,
        reason: r.get(5)?,
        actor: r.get(6)?,
        runbook: r.get(7)?,
        runbook_sha256: r.get(8)?,
        state: r.get(9)?,
        started_at: r.get(10)?,
        ended_at: r.get(11)?,
        detail: json_col(r.get(12)?),
        approval_base: r.get(13)?,
    })
}

impl SqliteStore {
    fn query_runs(&self, tail: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<RunRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("SELECT {RUN_COLS} FROM runs {tail}")).map_err(self.err())?;
        let rows = stmt.query_map(args, run_row).map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }
}

impl SqliteTx<'_> {
    pub(crate) fn insert_run(&self, run: &NewRun<'_>, at: SystemTime) -> Result<i64, StoreError> {
        self.conn
            .execute(
                "INSERT INTO runs (incident, kind, source, target, reason, actor, runbook, runbook_sha256, state, started_at, approval_base)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, (SELECT COALESCE(MAX(id), 0) FROM approvals))",
                params![
                    run.incident,
                    run.kind,
                    run.source,
                    run.target,
                    run.reason,
                    run.actor,
                    run.runbook,
                    run.runbook_sha256,
                    RunState::Running,
                    rfc3339(at)
                ],
            )
            .map_err(self.store.err())?;
        Ok(self.conn.last_insert_rowid())
    }

    pub(crate) fn update_run_state(
        &self,
        id: i64,
        state: RunState,
        detail: Option<&Value>,
        ended: Option<SystemTime>,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE runs SET state = ?2, detail = COALESCE(?3, detail), ended_at = COALESCE(?4, ended_at) WHERE id = ?1",
                params![id, state, detail.map(|d| d.to_string()), ended.map(rfc3339)],
            )
            .map(|_| ())
            .map_err(self.store.err())
    }

    pub(crate) fn upsert_step_intent(
        &self,
        step: StepRef,
        name: &str,
        uses: &str,
        intent: &Value,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO run_steps (run, idx, phase, name, uses, state, attempts, started_at, intent)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?8, 1, ?6, ?7)
                 ON CONFLICT(run, idx, phase) DO UPDATE SET state = ?8, attempts = attempts + 1, intent = ?7",
                params![
                    step.run,
                    step.idx as i64,
                    step.phase,
                    name,
                    uses,
                    rfc3339(at),
                    intent.to_string(),
                    StepState::Started
                ],
            )
            .map(|_| ())
            .map_err(self.store.err())
    }

    pub(crate) fn update_step_result(
        &self,
        step: StepRef,
        state: StepState,
        result: &Value,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE run_steps SET state = ?4, result = ?5, ended_at = ?6 WHERE run = ?1 AND idx = ?2 AND phase = ?3",
                params![step.run, step.idx as i64, step.phase, state, result.to_string(), rfc3339(at)],
            )
            .map(|_| ())
            .map_err(self.store.err())
    }
}

impl Runs for SqliteStore {
    fn run(&self, id: i64) -> Result<Option<RunRecord>, StoreError> {
        self.conn()
            .query_row(&format!("SELECT {RUN_COLS} FROM runs WHERE id = ?1"), [id], run_row)
            .optional()
            .map_err(self.err())
    }

    fn unfinished_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        self.query_runs("WHERE ended_at IS NULL ORDER BY id", &[])
    }

    fn runs_for(&self, incident: &str) -> Result<Vec<RunRecord>, StoreError> {
        self.query_runs("WHERE incident = ?1 ORDER BY id", &[&incident])
    }

    fn steps(&self, run: i64) -> Result<Vec<StepRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT idx, phase, name, uses, state, attempts, started_at, ended_at, intent, result
                 FROM run_steps WHERE run = ?1 ORDER BY idx, phase",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([run], |r| {
                Ok(StepRecord {
                    idx: r.get(0)?,
                    phase: r.get(1)?,
                    name: r.get(2)?,
                    uses: r.get(3)?,
                    state: r.get(4)?,
                    attempts: r.get(5)?,
                    started_at: r.get(6)?,
                    ended_at: r.get(7)?,
                    intent: json_col(r.get(8)?),
                    result: json_col(r.get(9)?),
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }
}

impl Approvals for SqliteStore {
    fn approval_after(&self, incident: &str, after: i64) -> Result<Option<Approval>, StoreError> {
        self.conn()
            .query_row(
                "SELECT id, incident, verdict, actor, comment, at FROM approvals
                 WHERE incident = ?1 AND id > ?2 ORDER BY id LIMIT 1",
                params![incident, after],
                |r| {
                    Ok(Approval {
                        id: r.get(0)?,
                        incident: r.get(1)?,
                        verdict: r.get(2)?,
                        actor: r.get(3)?,
                        comment: r.get(4)?,
                        at: r.get(5)?,
                    })
                },
            )
            .optional()
            .map_err(self.err())
    }

    fn last_approval_id(&self) -> Result<i64, StoreError> {
        self.conn().query_row("SELECT COALESCE(MAX(id), 0) FROM approvals", [], |r| r.get(0)).map_err(self.err())
    }
}

impl SqliteTx<'_> {
    /// Records an approval or rejection; returns its id.
    pub(crate) fn insert_approval(
        &self,
        incident: &str,
        verdict: Verdict,
        actor: &str,
        comment: &str,
        at: SystemTime,
    ) -> Result<i64, StoreError> {
        self.conn
            .execute(
                "INSERT INTO approvals (incident, verdict, actor, comment, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![incident, verdict, actor, comment, rfc3339(at)],
            )
            .map_err(self.store.err())?;
        Ok(self.conn.last_insert_rowid())
    }
}
