//! Probe samples (node-local, like the health history): one row per probe
//! cycle of a backend at a vantage, for the incident chart of the console
//! and of `cutover incidents report`, which reads them from the file.
//!
//! # Guarantees
//! - A batch ([`SqliteStore::insert_probe_samples`]) commits in one
//!   transaction, with its pruning.
//! - Retention, applied on each write: samples older than
//!   [`PROBE_RETENTION`] (before the newest of the batch) are deleted, and
//!   at most [`PROBE_ROW_CAP`] rows are kept (the oldest go first).
//!
//! # Caveats
//! - Times are stored as milliseconds since the epoch (`at_ms`), indexed,
//!   so that a window is one range scan.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::params;

use crate::{SqliteStore, StoreError};

/// How long samples are kept (7 days).
pub const PROBE_RETENTION: Duration = Duration::from_secs(7 * 86_400);
/// The most rows kept: two backends probed every second for 7 days, with room.
pub const PROBE_ROW_CAP: i64 = 1_500_000;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS probe_samples (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, backend TEXT NOT NULL,
    vantage TEXT NOT NULL, latency_ms REAL NOT NULL, outcome TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS probe_samples_at ON probe_samples(at_ms);
";

/// How a probe cycle ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeOutcome {
    Ok,
    Failed,
}

impl ProbeOutcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
        }
    }
}

/// One probe cycle of a backend at a vantage.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeSample {
    pub backend: String,
    pub vantage: String,
    /// When the cycle started.
    pub at: SystemTime,
    /// The cycle's total latency, in milliseconds.
    pub latency_ms: f64,
    pub outcome: ProbeOutcome,
}

fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl SqliteStore {
    /// Stores `samples` in one transaction and applies the retention.
    pub(crate) fn insert_probe_samples(&self, samples: &[ProbeSample]) -> Result<(), StoreError> {
        self.insert_probe_samples_capped(samples, PROBE_ROW_CAP)
    }

    /// [`Self::insert_probe_samples`], keeping at most `cap` rows.
    fn insert_probe_samples_capped(&self, samples: &[ProbeSample], cap: i64) -> Result<(), StoreError> {
        let Some(newest) = samples.iter().map(|s| s.at).max() else { return Ok(()) };
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.err())?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO probe_samples (at_ms, backend, vantage, latency_ms, outcome) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(self.err())?;
            for s in samples {
                let latency = if s.latency_ms.is_finite() { s.latency_ms.max(0.0) } else { 0.0 };
                insert
                    .execute(params![millis(s.at), s.backend, s.vantage, latency, s.outcome.as_str()])
                    .map_err(self.err())?;
            }
        }
        let cutoff = millis(newest.checked_sub(PROBE_RETENTION).unwrap_or(UNIX_EPOCH));
        tx.execute("DELETE FROM probe_samples WHERE at_ms < ?1", [cutoff]).map_err(self.err())?;
        tx.execute("DELETE FROM probe_samples WHERE id <= (SELECT MAX(id) FROM probe_samples) - ?1", [cap])
            .map_err(self.err())?;
        tx.commit().map_err(self.err())
    }

    /// The samples from `from` to `to` (inclusive), oldest first.
    pub(crate) fn query_probe_samples(&self, from: SystemTime, to: SystemTime) -> Result<Vec<ProbeSample>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT backend, vantage, at_ms, latency_ms, outcome FROM probe_samples
                 WHERE at_ms BETWEEN ?1 AND ?2 ORDER BY at_ms, id",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([millis(from), millis(to)], |r| {
                let at_ms: i64 = r.get(2)?;
                let outcome: String = r.get(4)?;
                Ok(ProbeSample {
                    backend: r.get(0)?,
                    vantage: r.get(1)?,
                    at: UNIX_EPOCH + Duration::from_millis(at_ms.max(0) as u64),
                    latency_ms: r.get(3)?,
                    outcome: if outcome == "ok" { ProbeOutcome::Ok } else { ProbeOutcome::Failed },
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }
}

#[cfg(test)]
#[path = "probes_tests.rs"]
mod tests;
