//! The gateway's tables in the SQLite state file: the write journal
//! (dual-write failures to replay), failback records (objects written to a
//! non-primary backend while it was active), multipart upload owners, and the
//! `kv.active_backend` key the controller writes.
//!
//! The connection runs in WAL mode with `synchronous=FULL`, so a journal
//! entry is on disk when [`State::append`] returns: only then does the
//! client get its answer.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::GatewayError;

/// What a journal entry or failback record asks to do on its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Make the target's copy of the key equal to the source's (copy it, or
    /// delete it if the source no longer has it).
    Put,
    /// Delete the key on the target.
    Delete,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Delete => "delete",
        }
    }

    fn parse(s: &str) -> Op {
        if s == "delete" { Op::Delete } else { Op::Put }
    }
}

/// One pending write that a backend did not take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    pub id: i64,
    /// The client bucket name.
    pub bucket: String,
    pub key: String,
    pub op: Op,
    /// The backend that has the data.
    pub source: String,
    /// The backend that missed the write.
    pub target: String,
    pub created_ms: i64,
    pub attempts: i64,
}

/// An object written to a non-primary backend while it was active.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailbackRecord {
    pub bucket: String,
    pub key: String,
    pub op: Op,
    /// The backend that took the write.
    pub backend: String,
    pub written_ms: i64,
}

/// A handle to the state file (cheap to clone).
#[derive(Debug, Clone)]
pub struct State {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS gateway_journal(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    bucket TEXT NOT NULL, key TEXT NOT NULL, op TEXT NOT NULL,
    source TEXT NOT NULL, target TEXT NOT NULL,
    created_ms INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_ms INTEGER NOT NULL, last_error TEXT);
CREATE INDEX IF NOT EXISTS gateway_journal_next ON gateway_journal(next_ms);
CREATE TABLE IF NOT EXISTS gateway_failback(
    bucket TEXT NOT NULL, key TEXT NOT NULL, op TEXT NOT NULL, backend TEXT NOT NULL,
    written_ms INTEGER NOT NULL, PRIMARY KEY(bucket, key));
CREATE TABLE IF NOT EXISTS gateway_uploads(
    upload_id TEXT PRIMARY KEY, backend TEXT NOT NULL, created_ms INTEGER NOT NULL);
";

/// `kv.active_backend`, if set. Read every `--poll` (200 ms): the
/// statement is prepared once.
fn read_active(c: &mut Connection) -> rusqlite::Result<Option<String>> {
    c.prepare_cached("SELECT value FROM kv WHERE key = 'active_backend'")?.query_row([], |r| r.get(0)).optional()
}

impl State {
    /// Opens (creating if needed) the state file and the gateway's tables.
    pub fn open(path: &Path) -> Result<Self, GatewayError> {
        let err = |op| {
            let p = path.display().to_string();
            move |source| GatewayError::State { path: p.clone(), op, source }
        };
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path).map_err(err("open"))?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(err("busy_timeout"))?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err("journal_mode=WAL"))?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(err("synchronous=FULL"))?;
        conn.execute_batch(SCHEMA).map_err(err("create tables"))?;
        Ok(Self { path: path.to_path_buf(), conn: Arc::new(Mutex::new(conn)) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the connection in a blocking thread.
    async fn with<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, GatewayError> {
        let conn = self.conn.clone();
        let path = self.path.display().to_string();
        tokio::task::spawn_blocking(move || {
            let mut c = conn.lock().expect("state lock");
            f(&mut c).map_err(|source| GatewayError::State { path, op, source })
        })
        .await
        .map_err(|e| GatewayError::Task { detail: e.to_string() })?
    }

    /// `kv.active_backend`, if set.
    pub async fn read_active(&self) -> Result<Option<String>, GatewayError> {
        self.with("read kv.active_backend", read_active).await
    }

    /// [`State::read_active`] on the calling thread: it blocks while
    /// another thread holds the connection or SQLite waits for a lock. For
    /// a thread of its own ([`crate::follow_state`]), never a runtime's.
    pub fn read_active_blocking(&self) -> Result<Option<String>, GatewayError> {
        let mut c = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        read_active(&mut c).map_err(|source| GatewayError::State {
            path: self.path.display().to_string(),
            op: "read kv.active_backend",
            source,
        })
    }

    /// Sets `kv.active_backend` (tests and tools; the controller writes it too).
    pub async fn write_active(&self, name: &str) -> Result<(), GatewayError> {
        let name = name.to_string();
        self.with("write kv.active_backend", move |c| {
            c.execute(
                "INSERT INTO kv(key, value) VALUES('active_backend', ?1) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![name],
            )
            .map(|_| ())
        })
        .await
    }

    /// Appends a journal entry; it is on disk (fsynced) when this returns.
    ///
    /// The newest write of a key defines the state both sides must reach, so
    /// the new entry supersedes older entries of the same key: replaying an
    /// old "converge to the then-active backend" entry after a later write
    /// (a client's retry that another backend took) would delete an
    /// acknowledged object.
    pub async fn append(
        &self,
        bucket: &str,
        key: &str,
        op: Op,
        source: &str,
        target: &str,
    ) -> Result<i64, GatewayError> {
        let (b, k, s, t) = (bucket.to_string(), key.to_string(), source.to_string(), target.to_string());
        self.with("append to gateway_journal", move |c| {
            let now = now_ms();
            let tx = c.transaction()?;
            tx.execute("DELETE FROM gateway_journal WHERE bucket = ?1 AND key = ?2", params![b, k])?;
            tx.execute(
                "INSERT INTO gateway_journal(bucket, key, op, source, target, created_ms, next_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                params![b, k, op.as_str(), s, t, now],
            )?;
            let id = tx.last_insert_rowid();
            tx.commit()?;
            Ok(id)
        })
        .await
    }

    /// Appends one entry per key of `keys` (a DeleteObjects request), each
    /// superseding older entries of its key as [`State::append`] does, in
    /// one transaction: one fsync for the request, not one per key.
    pub async fn append_many(
        &self,
        bucket: &str,
        keys: &[String],
        op: Op,
        source: &str,
        target: &str,
    ) -> Result<Vec<i64>, GatewayError> {
        let (b, keys, s, t) = (bucket.to_string(), keys.to_vec(), source.to_string(), target.to_string());
        self.with("append to gateway_journal", move |c| {
            let now = now_ms();
            let tx = c.transaction()?;
            let mut ids = Vec::with_capacity(keys.len());
            {
                let mut del = tx.prepare_cached("DELETE FROM gateway_journal WHERE bucket = ?1 AND key = ?2")?;
                let mut ins = tx.prepare_cached(
                    "INSERT INTO gateway_journal(bucket, key, op, source, target, created_ms, next_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                )?;
                for k in &keys {
                    del.execute(params![b, k])?;
                    ins.execute(params![b, k, op.as_str(), s, t, now])?;
                    ids.push(tx.last_insert_rowid());
                }
            }
            tx.commit()?;
            Ok(ids)
        })
        .await
    }

    /// Entries due for replay, oldest first.
    pub async fn due(&self, limit: usize) -> Result<Vec<JournalEntry>, GatewayError> {
        self.entries(now_ms(), limit).await
    }

    /// Makes every pending entry due now.
    pub async fn all_due_now(&self) -> Result<(), GatewayError> {
        self.with("update gateway_journal", |c| {
            c.execute("UPDATE gateway_journal SET next_ms = ?1", params![now_ms()]).map(|_| ())
        })
        .await
    }

    /// Every pending entry, due or not, oldest first.
    pub async fn pending(&self) -> Result<Vec<JournalEntry>, GatewayError> {
        self.entries(i64::MAX, usize::MAX >> 1).await
    }

    async fn entries(&self, due_by: i64, limit: usize) -> Result<Vec<JournalEntry>, GatewayError> {
        self.with("read gateway_journal", move |c| {
            let mut st = c.prepare(
                "SELECT id, bucket, key, op, source, target, created_ms, attempts FROM gateway_journal \
                 WHERE next_ms <= ?1 ORDER BY id LIMIT ?2",
            )?;
            let rows = st.query_map(params![due_by, limit as i64], |r| {
                Ok(JournalEntry {
                    id: r.get(0)?,
                    bucket: r.get(1)?,
                    key: r.get(2)?,
                    op: Op::parse(&r.get::<_, String>(3)?),
                    source: r.get(4)?,
                    target: r.get(5)?,
                    created_ms: r.get(6)?,
                    attempts: r.get(7)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// When the earliest pending entry is due (ms since the epoch), if any.
    pub async fn next_due_ms(&self) -> Result<Option<i64>, GatewayError> {
        self.with("read gateway_journal", |c| {
            c.prepare_cached("SELECT MIN(next_ms) FROM gateway_journal")?.query_row([], |r| r.get(0))
        })
        .await
    }

    /// Removes a replayed entry.
    pub async fn done(&self, id: i64) -> Result<(), GatewayError> {
        self.with("delete from gateway_journal", move |c| {
            c.execute("DELETE FROM gateway_journal WHERE id = ?1", params![id]).map(|_| ())
        })
        .await
    }

    /// Schedules another attempt of an entry after `delay_ms`.
    pub async fn retry_later(&self, id: i64, delay_ms: i64, error: &str) -> Result<(), GatewayError> {
        let error = error.to_string();
        self.with("update gateway_journal", move |c| {
            c.execute(
                "UPDATE gateway_journal SET attempts = attempts + 1, next_ms = ?2, last_error = ?3 WHERE id = ?1",
                params![id, now_ms() + delay_ms, error],
            )
            .map(|_| ())
        })
        .await
    }

    /// (number of pending entries, creation time of the oldest in ms).
    pub async fn journal_depth(&self) -> Result<(u64, Option<i64>), GatewayError> {
        self.with("count gateway_journal", |c| {
            c.prepare_cached("SELECT COUNT(*), MIN(created_ms) FROM gateway_journal")?
                .query_row([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
        })
        .await
    }

    /// Records that `backend` (not the primary) took a write of `key`.
    pub async fn record_failback(&self, bucket: &str, key: &str, op: Op, backend: &str) -> Result<(), GatewayError> {
        let (b, k, be) = (bucket.to_string(), key.to_string(), backend.to_string());
        self.with("record gateway_failback", move |c| {
            c.execute(
                "INSERT INTO gateway_failback(bucket, key, op, backend, written_ms) VALUES(?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT(bucket, key) DO UPDATE SET op = excluded.op, backend = excluded.backend, \
                 written_ms = MAX(excluded.written_ms, gateway_failback.written_ms + 1)",
                params![b, k, op.as_str(), be, now_ms()],
            )
            .map(|_| ())
        })
        .await
    }

    /// [`State::record_failback`] for every key of `keys`, in one transaction.
    pub async fn record_failback_many(
        &self,
        bucket: &str,
        keys: &[String],
        op: Op,
        backend: &str,
    ) -> Result<(), GatewayError> {
        let (b, keys, be) = (bucket.to_string(), keys.to_vec(), backend.to_string());
        self.with("record gateway_failback", move |c| {
            let now = now_ms();
            let tx = c.transaction()?;
            {
                let mut st = tx.prepare_cached(
                    "INSERT INTO gateway_failback(bucket, key, op, backend, written_ms) VALUES(?1, ?2, ?3, ?4, ?5) \
                     ON CONFLICT(bucket, key) DO UPDATE SET op = excluded.op, backend = excluded.backend, \
                     written_ms = MAX(excluded.written_ms, gateway_failback.written_ms + 1)",
                )?;
                for k in &keys {
                    st.execute(params![b, k, op.as_str(), be, now])?;
                }
            }
            tx.commit()
        })
        .await
    }

    /// Every failback record, oldest first.
    pub async fn failback_records(&self) -> Result<Vec<FailbackRecord>, GatewayError> {
        self.with("read gateway_failback", |c| {
            let mut st =
                c.prepare("SELECT bucket, key, op, backend, written_ms FROM gateway_failback ORDER BY written_ms")?;
            let rows = st.query_map([], |r| {
                Ok(FailbackRecord {
                    bucket: r.get(0)?,
                    key: r.get(1)?,
                    op: Op::parse(&r.get::<_, String>(2)?),
                    backend: r.get(3)?,
                    written_ms: r.get(4)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    /// Removes a failback record if no newer write replaced it meanwhile.
    pub async fn clear_failback(&self, rec: &FailbackRecord) -> Result<bool, GatewayError> {
        let (b, k, w) = (rec.bucket.clone(), rec.key.clone(), rec.written_ms);
        self.with("delete from gateway_failback", move |c| {
            c.execute(
                "DELETE FROM gateway_failback WHERE bucket = ?1 AND key = ?2 AND written_ms = ?3",
                params![b, k, w],
            )
            .map(|n| n > 0)
        })
        .await
    }

    /// Remembers which backend holds a multipart upload.
    pub async fn remember_upload(&self, upload_id: &str, backend: &str) -> Result<(), GatewayError> {
        let (u, b) = (upload_id.to_string(), backend.to_string());
        self.with("record gateway_uploads", move |c| {
            c.execute(
                "INSERT OR REPLACE INTO gateway_uploads(upload_id, backend, created_ms) VALUES(?1, ?2, ?3)",
                params![u, b, now_ms()],
            )
            .map(|_| ())
        })
        .await
    }

    /// The backend holding a multipart upload, if known.
    pub async fn upload_backend(&self, upload_id: &str) -> Result<Option<String>, GatewayError> {
        let u = upload_id.to_string();
        self.with("read gateway_uploads", move |c| {
            c.query_row("SELECT backend FROM gateway_uploads WHERE upload_id = ?1", params![u], |r| r.get(0)).optional()
        })
        .await
    }

    pub async fn forget_upload(&self, upload_id: &str) -> Result<(), GatewayError> {
        let u = upload_id.to_string();
        self.with("delete from gateway_uploads", move |c| {
            c.execute("DELETE FROM gateway_uploads WHERE upload_id = ?1", params![u]).map(|_| ())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the e2e SIGKILL test: a client's PUT failed on the dead
    /// active (journaled "converge the other side to the active"), its retry
    /// was taken by the new active after the switch (journaled the other
    /// way); replaying the first entry deleted the acknowledged object.
    #[tokio::test]
    async fn regression_a_later_write_of_a_key_supersedes_its_older_journal_entry() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(&dir.path().join("state.db")).unwrap();
        state.append("app", "k", Op::Put, "primary", "secondary").await.unwrap();
        state.append("app", "other", Op::Put, "primary", "secondary").await.unwrap();
        let newest = state.append("app", "k", Op::Put, "secondary", "primary").await.unwrap();
        let due = state.due(10).await.unwrap();
        let k: Vec<&JournalEntry> = due.iter().filter(|e| e.key == "k").collect();
        assert_eq!(k.len(), 1, "{due:?}");
        assert_eq!((k[0].id, k[0].source.as_str(), k[0].target.as_str()), (newest, "secondary", "primary"));
        assert_eq!(due.len(), 2, "other keys are untouched");
    }

    /// A DeleteObjects request of many keys was journaled with one
    /// transaction (one fsync) per key.
    #[tokio::test]
    async fn a_delete_objects_request_is_journaled_in_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let state = State::open(&path).unwrap();
        state.append("app", "k7", Op::Put, "secondary", "primary").await.unwrap();
        let wal = dir.path().join("state.db-wal");
        let before = std::fs::metadata(&wal).unwrap().len();
        let keys: Vec<String> = (0..500).map(|i| format!("k{i}")).collect();
        state.append_many("app", &keys, Op::Delete, "primary", "secondary").await.unwrap();
        state.record_failback_many("app", &keys, Op::Put, "secondary").await.unwrap();
        // A commit appends at least one page frame (4 KiB) to the WAL: 1000
        // commits would add megabytes; two transactions add a few pages.
        let grown = std::fs::metadata(&wal).unwrap().len() - before;
        assert!(grown < 64 * 4120, "the WAL grew by {grown} bytes");
        let due = state.due(1000).await.unwrap();
        assert_eq!(due.len(), 500);
        let k7: Vec<&JournalEntry> = due.iter().filter(|e| e.key == "k7").collect();
        assert_eq!((k7.len(), k7[0].op), (1, Op::Delete), "the older entry of k7 is superseded");
        assert_eq!(state.failback_records().await.unwrap().len(), 500);
    }
}
