//! The append-only audit log. Each entry's hash covers its content and the
//! previous entry's hash, so editing, deleting or reordering any entry breaks
//! the chain from that entry on.

use std::time::SystemTime;

use cutover_core::time::rfc3339;
use rusqlite::params;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{Store, StoreError};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit entry.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub detail: Value,
    pub hash: String,
}

/// The first entry at which the chain breaks.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("audit entry {seq}: {problem}")]
pub struct AuditError {
    pub seq: i64,
    pub problem: String,
}

fn entry_hash(prev: &str, seq: i64, at: &str, actor: &str, action: &str, detail: &str) -> String {
    let mut h = Sha256::new();
    for part in [prev, &seq.to_string(), at, actor, action, detail] {
        h.update(part.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

impl Store {
    /// Appends an entry. `detail` must already have secrets redacted.
    pub fn audit(&self, at: SystemTime, actor: &str, action: &str, detail: &Value) -> Result<i64, StoreError> {
        let conn = self.conn();
        let tx = rusqlite::Transaction::new_unchecked(&conn, rusqlite::TransactionBehavior::Immediate)
            .map_err(self.err())?;
        let (prev_seq, prev_hash): (i64, String) = tx
            .query_row("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap_or((0, GENESIS.to_string()));
        let seq = prev_seq + 1;
        let at = rfc3339(at);
        let detail = detail.to_string();
        let hash = entry_hash(&prev_hash, seq, &at, actor, action, &detail);
        tx.execute(
            "INSERT INTO audit (seq, at, actor, action, detail, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![seq, at, actor, action, detail, prev_hash, hash],
        )
        .map_err(self.err())?;
        tx.commit().map_err(self.err())?;
        Ok(seq)
    }

    /// Every entry, in order.
    pub fn audit_entries(&self) -> Result<Vec<AuditEntry>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT seq, at, actor, action, detail, hash FROM audit ORDER BY seq").map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get::<_, String>(4)?, r.get(5)?)))
            .map_err(self.err())?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, at, actor, action, detail, hash) = row.map_err(self.err())?;
            let detail = serde_json::from_str(&detail).unwrap_or(Value::String(detail));
            out.push(AuditEntry { seq, at, actor, action, detail, hash });
        }
        Ok(out)
    }

    /// Checks the whole chain. `Ok(n)`: n entries, all intact. The error
    /// names the first bad entry.
    pub fn verify_audit(&self) -> Result<Result<usize, AuditError>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT seq, at, actor, action, detail, prev_hash, hash FROM audit ORDER BY seq")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                ))
            })
            .map_err(self.err())?;
        let mut expected_prev = GENESIS.to_string();
        let mut n = 0;
        for (expected_seq, row) in (1i64..).zip(rows) {
            let (seq, at, actor, action, detail, prev, hash) = row.map_err(self.err())?;
            let bad = |problem: &str| Ok(Err(AuditError { seq, problem: problem.to_string() }));
            if seq != expected_seq {
                return bad(&format!("expected entry {expected_seq} here: an entry was deleted or inserted"));
            }
            if prev != expected_prev {
                return bad("its link to the previous entry is broken");
            }
            if entry_hash(&prev, seq, &at, &actor, &action, &detail) != hash {
                return bad("its content does not match its hash (the entry was modified)");
            }
            expected_prev = hash;
            n += 1;
        }
        Ok(Ok(n))
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    pub fn hash(prev: &str, seq: i64, at: &str, actor: &str, action: &str, detail: &str) -> String {
        super::entry_hash(prev, seq, at, actor, action, detail)
    }
}
