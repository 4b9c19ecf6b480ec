//! Client answers per second (node-local, like the probe samples): how
//! many requests the gateway in this process answered each second and how
//! many of them failed (5xx), for the client impact of an incident in the
//! console and in `cutover incidents report`.
//!
//! # Guarantees
//! - A batch ([`SqliteStore::insert_client_counts`]) commits in one
//!   transaction, with its pruning: rows older than [`CLIENT_RETENTION`]
//!   before the newest of the batch are deleted.
//! - Only seconds with at least one answer are written, so an idle
//!   gateway writes nothing.
//!
//! # Caveats
//! - A gateway in another process (`cutover gateway`, or another host
//!   under `[ha]`) writes none here: its clients' failures are in its own
//!   metrics, not in this node's reports.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::params;

use crate::{SqliteStore, StoreError};

/// How long the counts are kept (7 days, as the probe samples).
pub const CLIENT_RETENTION: Duration = Duration::from_secs(7 * 86_400);

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS client_counts (
    at_ms INTEGER NOT NULL, answered INTEGER NOT NULL, failed INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS client_counts_at ON client_counts(at_ms);
";

/// The gateway's answers over one interval (a second) ending at `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCount {
    pub at: SystemTime,
    /// Requests answered.
    pub answered: u64,
    /// Of them, answered with a 5xx status (the gateway's own or a backend's).
    pub failed: u64,
}

fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl SqliteStore {
    /// Writes `counts` in one transaction and prunes past the retention.
    pub(crate) fn insert_client_counts(&self, counts: &[ClientCount]) -> Result<(), StoreError> {
        let Some(newest) = counts.iter().map(|c| c.at).max() else { return Ok(()) };
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.err())?;
        {
            let mut insert = tx
                .prepare_cached("INSERT INTO client_counts (at_ms, answered, failed) VALUES (?1, ?2, ?3)")
                .map_err(self.err())?;
            for c in counts {
                insert.execute(params![millis(c.at), count(c.answered), count(c.failed)]).map_err(self.err())?;
            }
        }
        let cutoff = millis(newest.checked_sub(CLIENT_RETENTION).unwrap_or(UNIX_EPOCH));
        tx.execute("DELETE FROM client_counts WHERE at_ms < ?1", [cutoff]).map_err(self.err())?;
        tx.commit().map_err(self.err())
    }

    /// The counts from `from` to `to` (inclusive), oldest first.
    pub(crate) fn query_client_counts(&self, from: SystemTime, to: SystemTime) -> Result<Vec<ClientCount>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT at_ms, answered, failed FROM client_counts WHERE at_ms BETWEEN ?1 AND ?2 ORDER BY at_ms",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([millis(from), millis(to)], |r| {
                let (at_ms, answered, failed): (i64, i64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
                Ok(ClientCount {
                    at: UNIX_EPOCH + Duration::from_millis(at_ms.max(0) as u64),
                    answered: answered.max(0) as u64,
                    failed: failed.max(0) as u64,
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HealthHistory;

    #[test]
    fn counts_round_trip_within_their_window_and_old_ones_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("state.db")).unwrap();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        let c = |secs: u64, answered: u64, failed: u64| ClientCount { at: at(secs), answered, failed };
        s.record_client_counts(&[c(0, 10, 0), c(1, 12, 3), c(2, 9, 9)]).unwrap();
        assert_eq!(s.client_counts(at(1), at(2)).unwrap(), [c(1, 12, 3), c(2, 9, 9)]);
        // A batch a week and a second later prunes what is older than the
        // retention before it (the second at 0), and keeps the rest.
        let later = 7 * 86_400 + 1;
        s.record_client_counts(&[c(later, 1, 0)]).unwrap();
        assert_eq!(s.client_counts(at(0), at(later)).unwrap(), [c(1, 12, 3), c(2, 9, 9), c(later, 1, 0)]);
        assert_eq!(s.client_counts(at(3), at(later - 1)).unwrap(), []);
    }
}
