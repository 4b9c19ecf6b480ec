//! Checkpoints, open multipart uploads and the latest replication lag, in
//! the state SQLite file (WAL mode). Tables `sync_checkpoints`,
//! `sync_uploads` and `sync_lag` belong to this crate; other tables in the
//! file belong to other components.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Serialize, Serializer};

use crate::SyncError;

/// Progress of one job (a source and destination pair).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Checkpoint {
    /// Every key (relative to the source prefix) up to and including this
    /// one has been copied or found equal.
    pub last_key: Option<String>,
    pub copied: u64,
    pub skipped: u64,
    pub deleted: u64,
    pub failed: u64,
    pub bytes: u64,
    /// The run finished (a later `--resume` starts over).
    pub complete: bool,
}

/// A multipart upload started on the destination and not yet completed or aborted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenUpload {
    pub key: String,
    pub upload_id: String,
}

/// The latest replication lag of one source and destination pair, as
/// `cutover replicate` measured it (the controller's policy input reads it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LagRecord {
    /// `BACKEND[:PREFIX]` of the source and of the destination.
    pub src: String,
    pub dst: String,
    /// Objects and bytes known to differ and not yet copied at `at`: during
    /// a round, what it has found and not copied yet; after a round, what it
    /// could not copy (0 after a clean round).
    pub pending_objects: u64,
    pub pending_bytes: u64,
    /// Age at `at` of the oldest of those (source last-modified); 0 when none.
    pub oldest_pending_seconds: f64,
    /// When this was measured (serialized as Unix seconds).
    #[serde(serialize_with = "unix_seconds")]
    pub at: SystemTime,
    /// The end of the last round that left nothing pending (Unix seconds).
    #[serde(serialize_with = "opt_unix_seconds")]
    pub last_success: Option<SystemTime>,
}

fn unix_seconds<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64())
}

fn opt_unix_seconds<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => unix_seconds(t, s),
        None => s.serialize_none(),
    }
}

fn to_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as i64
}

fn from_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

/// The latest lag record of every pair in the state file at `state_path`
/// (none when the file does not exist yet).
pub fn latest_lag(state_path: &Path) -> Result<Vec<LagRecord>, SyncError> {
    if !state_path.exists() {
        return Ok(Vec::new());
    }
    Store::open(state_path)?.lags()
}

/// The checkpoint store; cheap to clone, safe to share between tasks.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sync_checkpoints (
    job TEXT PRIMARY KEY,
    last_key TEXT,
    copied INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    complete INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sync_uploads (
    job TEXT NOT NULL,
    key TEXT NOT NULL,
    upload_id TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    PRIMARY KEY (job, upload_id)
);
CREATE TABLE IF NOT EXISTS sync_lag (
    src TEXT NOT NULL,
    dst TEXT NOT NULL,
    pending_objects INTEGER NOT NULL,
    pending_bytes INTEGER NOT NULL,
    oldest_pending_seconds REAL NOT NULL,
    at_ms INTEGER NOT NULL,
    last_success_ms INTEGER,
    PRIMARY KEY (src, dst)
);
";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64
}

impl Store {
    /// Opens (creating if needed) the state file and this crate's tables.
    pub fn open(path: &Path) -> Result<Self, SyncError> {
        let err = |source| SyncError::Store { path: path.display().to_string(), source: Box::new(source) };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(Self { path: path.to_path_buf(), conn: Arc::new(Mutex::new(conn)) })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, SyncError> {
        let conn = self.conn.lock().expect("store lock");
        f(&conn).map_err(|source| SyncError::Store { path: self.path.display().to_string(), source: Box::new(source) })
    }

    /// The checkpoint of `job`, if one was saved.
    pub fn load(&self, job: &str) -> Result<Option<Checkpoint>, SyncError> {
        self.with(|c| {
            c.query_row(
                "SELECT last_key, copied, skipped, deleted, failed, bytes, complete FROM sync_checkpoints WHERE job = ?1",
                params![job],
                |r| {
                    Ok(Checkpoint {
                        last_key: r.get(0)?,
                        copied: r.get::<_, i64>(1)? as u64,
                        skipped: r.get::<_, i64>(2)? as u64,
                        deleted: r.get::<_, i64>(3)? as u64,
                        failed: r.get::<_, i64>(4)? as u64,
                        bytes: r.get::<_, i64>(5)? as u64,
                        complete: r.get::<_, i64>(6)? != 0,
                    })
                },
            )
            .optional()
        })
    }

    pub fn save(&self, job: &str, cp: &Checkpoint) -> Result<(), SyncError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO sync_checkpoints (job, last_key, copied, skipped, deleted, failed, bytes, complete, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT(job) DO UPDATE SET last_key = ?2, copied = ?3, skipped = ?4, deleted = ?5,
                   failed = ?6, bytes = ?7, complete = ?8, updated_at = ?9",
                params![
                    job,
                    cp.last_key,
                    cp.copied as i64,
                    cp.skipped as i64,
                    cp.deleted as i64,
                    cp.failed as i64,
                    cp.bytes as i64,
                    cp.complete as i64,
                    now()
                ],
            )
            .map(|_| ())
        })
    }

    /// Records an upload id right after CreateMultipartUpload, before any part.
    pub fn record_upload(&self, job: &str, key: &str, upload_id: &str) -> Result<(), SyncError> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO sync_uploads (job, key, upload_id, started_at) VALUES (?1, ?2, ?3, ?4)",
                params![job, key, upload_id, now()],
            )
            .map(|_| ())
        })
    }

    /// Forgets an upload once it is completed or aborted.
    pub fn forget_upload(&self, job: &str, upload_id: &str) -> Result<(), SyncError> {
        self.with(|c| {
            c.execute("DELETE FROM sync_uploads WHERE job = ?1 AND upload_id = ?2", params![job, upload_id]).map(|_| ())
        })
    }

    /// The uploads of `job` left open by an interrupted run.
    pub fn open_uploads(&self, job: &str) -> Result<Vec<OpenUpload>, SyncError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT key, upload_id FROM sync_uploads WHERE job = ?1 ORDER BY started_at")?;
            let rows = st.query_map(params![job], |r| Ok(OpenUpload { key: r.get(0)?, upload_id: r.get(1)? }))?;
            rows.collect()
        })
    }
}

impl Store {
    /// Replaces the lag record of its (src, dst) pair.
    pub fn save_lag(&self, r: &LagRecord) -> Result<(), SyncError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO sync_lag (src, dst, pending_objects, pending_bytes, oldest_pending_seconds, at_ms, last_success_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(src, dst) DO UPDATE SET pending_objects = ?3, pending_bytes = ?4,
                   oldest_pending_seconds = ?5, at_ms = ?6, last_success_ms = ?7",
                params![
                    r.src,
                    r.dst,
                    r.pending_objects as i64,
                    r.pending_bytes as i64,
                    r.oldest_pending_seconds,
                    to_ms(r.at),
                    r.last_success.map(to_ms),
                ],
            )
            .map(|_| ())
        })
    }

    /// Every pair's latest lag record, by source then destination.
    pub fn lags(&self) -> Result<Vec<LagRecord>, SyncError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT src, dst, pending_objects, pending_bytes, oldest_pending_seconds, at_ms, last_success_ms
                 FROM sync_lag ORDER BY src, dst",
            )?;
            let rows = st.query_map([], |r| {
                Ok(LagRecord {
                    src: r.get(0)?,
                    dst: r.get(1)?,
                    pending_objects: r.get::<_, i64>(2)? as u64,
                    pending_bytes: r.get::<_, i64>(3)? as u64,
                    oldest_pending_seconds: r.get(4)?,
                    at: from_ms(r.get(5)?),
                    last_success: r.get::<_, Option<i64>>(6)?.map(from_ms),
                })
            })?;
            rows.collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_and_uploads_round_trip() {
        let dir = std::env::temp_dir().join(format!("cutover-sync-store-{}", fastrand::u64(..)));
        let store = Store::open(&dir.join("state.db")).unwrap();
        assert_eq!(store.load("a -> b").unwrap(), None);
        let cp = Checkpoint { last_key: Some("k/1".into()), copied: 3, bytes: 99, ..Default::default() };
        store.save("a -> b", &cp).unwrap();
        store.save("a -> b", &cp).unwrap();
        assert_eq!(store.load("a -> b").unwrap(), Some(cp));
        store.record_upload("a -> b", "big", "u1").unwrap();
        assert_eq!(
            store.open_uploads("a -> b").unwrap(),
            vec![OpenUpload { key: "big".into(), upload_id: "u1".into() }]
        );
        store.forget_upload("a -> b", "u1").unwrap();
        assert!(store.open_uploads("a -> b").unwrap().is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_latest_lag_per_pair_replaces_the_one_before() {
        let dir = std::env::temp_dir().join(format!("cutover-sync-lag-{}", fastrand::u64(..)));
        let path = dir.join("state.db");
        assert_eq!(latest_lag(&path).unwrap(), Vec::new(), "no file, no records");
        let store = Store::open(&path).unwrap();
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let mut r = LagRecord {
            src: "a".into(),
            dst: "b:copy/".into(),
            pending_objects: 3,
            pending_bytes: 300,
            oldest_pending_seconds: 12.5,
            at,
            last_success: None,
        };
        store.save_lag(&r).unwrap();
        r.pending_objects = 0;
        r.pending_bytes = 0;
        r.oldest_pending_seconds = 0.0;
        r.last_success = Some(at);
        store.save_lag(&r).unwrap();
        let other = LagRecord { src: "a".into(), dst: "c".into(), ..r.clone() };
        store.save_lag(&other).unwrap();
        assert_eq!(latest_lag(&path).unwrap(), vec![r.clone(), other]);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["at"], 1_700_000_000.123);
        assert_eq!(json["last_success"], 1_700_000_000.123);
        let _ = std::fs::remove_dir_all(dir);
    }
}
