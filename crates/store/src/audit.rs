//! The append-only audit log. Each entry's hash covers its content and the
//! previous entry's hash, so editing, deleting or reordering any entry breaks
//! the chain from that entry on. With `[audit] hmac_key_env` the hashes are
//! HMAC-SHA256 keyed with a secret that is not in the database, so whoever
//! can write the database but lacks the key cannot rewrite the chain.
//! Removed trailing entries and a chain rewritten with the key are caught by
//! comparing with the export (see `export.rs`).

use std::time::SystemTime;

use cutover_core::time::rfc3339;
use hmac::{Hmac, KeyInit, Mac};
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{AuditLog, Fence, Segment, SegmentError, SqliteStore, SqliteTx, StoreError, StoreExt, VerifyReport};

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// `alg` of an entry hashed with plain SHA-256.
pub const UNKEYED: &str = "sha256";
/// `alg` of an entry hashed with HMAC-SHA256 and the `[audit]` key.
pub const KEYED: &str = "hmac-sha256";

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

impl From<AuditRow> for AuditEntry {
    /// The row with its detail parsed (kept as a string when it is not JSON).
    fn from(r: AuditRow) -> Self {
        Self {
            seq: r.seq,
            at: r.at,
            actor: r.actor,
            action: r.action,
            detail: serde_json::from_str(&r.detail).unwrap_or(Value::String(r.detail)),
            hash: r.hash,
        }
    }
}

/// One audit row exactly as stored (the detail as its JSON text), as the
/// export carries it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditRow {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    /// The detail's JSON text, byte for byte as hashed.
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
    /// [`UNKEYED`] or [`KEYED`].
    pub alg: String,
}

/// The first entry at which the chain breaks.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("audit entry {seq}: {problem}")]
pub struct AuditError {
    pub seq: i64,
    pub problem: String,
}

/// Adds the `alg` column to a database created before keyed hashes.
pub(crate) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let has: i64 =
        conn.query_row("SELECT COUNT(*) FROM pragma_table_info('audit') WHERE name = 'alg'", [], |r| r.get(0))?;
    if has == 0 {
        conn.execute_batch("ALTER TABLE audit ADD COLUMN alg TEXT NOT NULL DEFAULT 'sha256'")?;
    }
    Ok(())
}

/// The hash of one entry: SHA-256 over its fields, or HMAC-SHA256 with `key`.
pub fn entry_hash(
    key: Option<&[u8]>,
    prev: &str,
    seq: i64,
    at: &str,
    actor: &str,
    action: &str,
    detail: &str,
) -> String {
    let seq = seq.to_string();
    let parts = [prev, &seq, at, actor, action, detail];
    match key {
        None => {
            let mut h = Sha256::new();
            for part in parts {
                h.update(part.as_bytes());
                h.update(b"\n");
            }
            hex::encode(h.finalize())
        }
        Some(key) => {
            let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes a key of any length");
            for part in parts {
                m.update(part.as_bytes());
                m.update(b"\n");
            }
            hex::encode(m.finalize().into_bytes())
        }
    }
}

/// Checks a run of rows: consecutive seqs from `first_seq`, each linked to
/// the previous hash (`prev` before the first), each hash recomputed. Keyed
/// rows need `key`; once a keyed row appears every later row must be keyed
/// (an unkeyed row after a keyed one is a rewrite by someone without the
/// key). Returns the hash of the last row.
pub fn check_rows<'a>(
    rows: impl IntoIterator<Item = &'a AuditRow>,
    first_seq: i64,
    prev: &str,
    key: Option<&[u8]>,
) -> Result<String, AuditError> {
    let mut expected_prev = prev.to_string();
    let mut keyed_seen = false;
    for (expected_seq, row) in (first_seq..).zip(rows) {
        let seq = row.seq;
        let bad = |problem: &str| Err(AuditError { seq, problem: problem.to_string() });
        if seq != expected_seq {
            return bad(&format!("expected entry {expected_seq} here: an entry was deleted or inserted"));
        }
        if row.prev_hash != expected_prev {
            return bad("its link to the previous entry is broken");
        }
        let entry_key = match row.alg.as_str() {
            UNKEYED if keyed_seen => {
                return bad(
                    "it is not keyed although an earlier entry is: the chain was rewritten without the HMAC key",
                );
            }
            UNKEYED => None,
            KEYED => {
                keyed_seen = true;
                match key {
                    Some(k) => Some(k),
                    None => return bad("it is keyed (hmac-sha256): set [audit] hmac_key_env to verify it"),
                }
            }
            other => return bad(&format!("unknown hash algorithm {other:?}")),
        };
        if entry_hash(entry_key, &row.prev_hash, seq, &row.at, &row.actor, &row.action, &row.detail) != row.hash {
            return bad(if entry_key.is_some() {
                "its content does not match its keyed hash (the entry was modified, or the chain was rewritten without the HMAC key)"
            } else {
                "its content does not match its hash (the entry was modified)"
            });
        }
        expected_prev = row.hash.clone();
    }
    Ok(expected_prev)
}

impl SqliteStore {
    pub(crate) fn key_bytes(&self) -> Option<&[u8]> {
        self.audit_key.as_deref().map(|k| k.expose().as_bytes())
    }
}

impl AuditLog for SqliteStore {
    fn audit_rows_after(&self, after: i64, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT seq, at, actor, action, detail, prev_hash, hash, alg FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map(params![after, limit], |r| {
                Ok(AuditRow {
                    seq: r.get(0)?,
                    at: r.get(1)?,
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    detail: r.get(4)?,
                    prev_hash: r.get(5)?,
                    hash: r.get(6)?,
                    alg: r.get(7)?,
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.err())
    }

    fn audit_head(&self) -> Result<Option<(i64, String, String)>, StoreError> {
        use rusqlite::OptionalExtension;
        self.conn()
            .query_row("SELECT seq, hash, alg FROM audit ORDER BY seq DESC LIMIT 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
            .map_err(self.err())
    }

    fn audit_keyed(&self) -> bool {
        self.audit_key.is_some()
    }

    /// With a key: when the newest entry is not keyed (the database was
    /// written before `hmac_key_env` was set), appends an `audit.keyed` entry
    /// so that the chain ends keyed. Returns its seq when one was written.
    fn mark_keyed(&self, fence: &Fence, at: SystemTime) -> Result<Option<i64>, StoreError> {
        if self.audit_key.is_none() {
            return Ok(None);
        }
        match self.audit_head()? {
            Some((seq, _, alg)) if alg != KEYED => self
                .audit(fence, at, "controller", "audit.keyed", &serde_json::json!({"keyed_after": seq, "alg": KEYED}))
                .map(Some),
            _ => Ok(None),
        }
    }

    fn verify_audit(&self) -> Result<Result<usize, AuditError>, StoreError> {
        let rows = self.audit_rows_after(0, i64::MAX)?;
        Ok(check_rows(&rows, 1, GENESIS, self.key_bytes()).map(|_| rows.len()))
    }

    fn verify_with_export(
        &self,
        export: Option<&[(String, Result<Segment, SegmentError>)]>,
    ) -> Result<VerifyReport, StoreError> {
        crate::export::verify(self, self.key_bytes(), export)
    }
}

impl SqliteTx<'_> {
    /// Appends an audit entry inside this transaction.
    pub(crate) fn append_audit(
        &self,
        at: SystemTime,
        actor: &str,
        action: &str,
        detail: &Value,
    ) -> Result<i64, StoreError> {
        let (prev_seq, prev_hash): (i64, String) = self
            .conn
            .query_row("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap_or((0, GENESIS.to_string()));
        let seq = prev_seq + 1;
        let at = rfc3339(at);
        let detail = detail.to_string();
        let key = self.store.key_bytes();
        let alg = if key.is_some() { KEYED } else { UNKEYED };
        let hash = entry_hash(key, &prev_hash, seq, &at, actor, action, &detail);
        self.conn
            .execute(
                "INSERT INTO audit (seq, at, actor, action, detail, prev_hash, hash, alg) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![seq, at, actor, action, detail, prev_hash, hash, alg],
            )
            .map_err(self.store.err())?;
        Ok(seq)
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    pub fn hash(prev: &str, seq: i64, at: &str, actor: &str, action: &str, detail: &str) -> String {
        super::entry_hash(None, prev, seq, at, actor, action, detail)
    }
}
