//! The audit chain's export (`[audit] export`): `cutover run` uploads new
//! entries as segments to a bucket of a configured backend, with S3 Object
//! Lock when asked for and supported; `cutover audit verify` reads them back
//! and compares. The segment format and the comparison are in
//! `cutover_store` (no I/O there); this module does the S3 side.
//!
//! # Guarantees
//! - A segment is uploaded only with consecutive entries following the last
//!   one already in the export (found by listing the export at start and
//!   after any failed upload), so a restart neither duplicates nor skips.
//! - A backend that refuses or ignores Object Lock gets plain PUTs, with one
//!   warning in the log (Garage, for one, has no Object Lock).
//!
//! # Caveats
//! - Entries written since the last upload (at most `interval` worth) are
//!   not in the export yet; removing them from the database is not detected.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use bytes::Bytes;
use cutover_control::telemetry::Event;
use cutover_core::Secret;
use cutover_core::config::{AuditExport, Config};
use cutover_s3::{ClientOptions, S3Client, S3Error};
use cutover_store::prelude::*;
use cutover_store::{Segment, SegmentError, SqliteStore};
use md5::Digest;

use crate::{Failure, load};

/// Entries in one segment at most.
const MAX_SEGMENT: i64 = 1000;

/// The `[audit] hmac_key_env` key, read from the environment.
pub fn audit_key(config: &Config) -> Result<Option<Secret>, Failure> {
    let Some(var) = &config.audit.hmac_key_env else { return Ok(None) };
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok(Some(Secret::new(v))),
        _ => Err(Failure::Usage(format!("audit.hmac_key_env: environment variable {var} is not set"))),
    }
}

/// Opens the state store with the audit key, if one is configured.
pub fn open_store(config: &Config) -> Result<SqliteStore, Failure> {
    let key = audit_key(config)?;
    SqliteStore::open(&config.state.path).map(|s| s.with_audit_key(key)).map_err(|e| Failure::Error(e.into()))
}

/// Object Lock as the exporter found it on the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lock {
    /// Not asked for.
    Off,
    /// Asked for; not known yet whether the backend applies it.
    Untested,
    /// The backend applied it to a segment.
    Applied,
    /// The backend refused or ignored it: plain PUTs from now on.
    Unsupported,
}

/// The export's S3 side.
#[derive(Debug)]
pub struct Export {
    client: S3Client,
    cfg: AuditExport,
    lock: Lock,
}

impl Export {
    /// The export of `config`, if `[audit] export` is set.
    pub fn new(config: &Config) -> Result<Option<Self>, Failure> {
        let Some(cfg) = config.audit.export.clone() else { return Ok(None) };
        let mut backend = config
            .backend(&cfg.backend)
            .ok_or_else(|| Failure::Usage(format!("audit.export.backend: no backend named {:?}", cfg.backend)))?
            .clone();
        backend.bucket = cfg.bucket.clone();
        let opts =
            ClientOptions { timeout: Duration::from_secs(30), connect_timeout: Duration::from_secs(5), pooled: true };
        let client = load::client(&backend, opts)?;
        let lock = if cfg.object_lock.is_some() { Lock::Untested } else { Lock::Off };
        Ok(Some(Self { client, cfg, lock }))
    }

    /// `s3://bucket/prefix` (for messages).
    pub fn location(&self) -> String {
        format!("{} s3://{}/{}", self.cfg.backend, self.cfg.bucket, Segment::folder(&self.cfg.prefix))
    }

    /// Every segment's key and range, in the order of their first entry.
    pub async fn list(&self) -> Result<Vec<(String, (i64, i64))>, S3Error> {
        let folder = Segment::folder(&self.cfg.prefix);
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self.client.list_objects_v2(&folder, token.as_deref(), 1000).await?;
            for o in page.objects {
                if let Some(range) = Segment::parse_key(&self.cfg.prefix, &o.key) {
                    out.push((o.key, range));
                }
            }
            match page.next_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        out.sort_by_key(|(_, r)| *r);
        Ok(out)
    }

    /// The newest entry in the export (0 when empty).
    pub async fn exported_through(&self) -> Result<i64, S3Error> {
        Ok(self.list().await?.iter().map(|(_, (_, last))| *last).max().unwrap_or(0))
    }

    /// Every segment, read and parsed.
    pub async fn read_all(&self) -> Result<Vec<(String, Result<Segment, SegmentError>)>, S3Error> {
        let mut out = Vec::new();
        for (key, _) in self.list().await? {
            let resp = self.client.get_object(&key, &[]).await?;
            let seg = Segment::parse(&key, &resp.body);
            out.push((key, seg));
        }
        Ok(out)
    }

    /// Uploads one segment, with Object Lock while the backend takes it.
    pub async fn upload(&mut self, seg: &Segment) -> Result<(), S3Error> {
        let key = seg.key(&self.cfg.prefix);
        let body = Bytes::from(seg.to_json());
        let plain = [("content-type", "application/json".to_string())];
        let Some(mode) = self.cfg.object_lock.filter(|_| self.lock != Lock::Unsupported) else {
            return self.client.put_object(&key, body, &plain).await.map(|_| ());
        };
        let until = cutover_core::time::rfc3339(SystemTime::now() + self.cfg.retain);
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&body));
        let locked = [
            ("content-type", "application/json".to_string()),
            ("content-md5", md5),
            ("x-amz-object-lock-mode", mode.as_header().to_string()),
            ("x-amz-object-lock-retain-until-date", until),
        ];
        match self.client.put_object(&key, body.clone(), &locked).await {
            Ok(_) if self.lock == Lock::Applied => Ok(()),
            Ok(_) => {
                // Some servers accept the headers and ignore them: look.
                let head = self.client.head_object(&key).await?;
                if head.header("x-amz-object-lock-mode").is_some() {
                    self.lock = Lock::Applied;
                    tracing::info!(export = %self.location(), "audit export: segments are locked ({})", mode.as_header());
                } else {
                    self.unsupported("the backend accepted the Object Lock headers but did not apply them");
                }
                Ok(())
            }
            // 400 InvalidRequest (no Object Lock on the bucket), 501
            // NotImplemented, ...: never credentials (403) or a missing bucket.
            Err(e) if matches!(e.status(), Some(400 | 501)) => {
                self.unsupported(&e.to_string());
                self.client.put_object(&key, body, &plain).await.map(|_| ())
            }
            Err(e) => Err(e),
        }
    }

    fn unsupported(&mut self, why: &str) {
        self.lock = Lock::Unsupported;
        tracing::warn!(
            export = %self.location(),
            "audit export: Object Lock is not available on this backend ({why}); exporting segments without it"
        );
    }
}

/// The exporter task of `cutover run`: every `interval`, uploads the entries
/// written since the last segment. Failures are logged and counted, and
/// retried on the next round.
pub async fn run(mut export: Export, store: Arc<dyn Store>, shared: Arc<crate::wiring::Shared>) {
    let failed = || shared.telemetry.emit(&Event::AuditSegmentExported { last: None });
    let mut tick = tokio::time::interval(export.cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut through: Option<i64> = None;
    loop {
        tick.tick().await;
        let last = match through {
            Some(n) => n,
            None => match export.exported_through().await {
                Ok(n) => {
                    check_head(&store, n).await;
                    through = Some(n);
                    n
                }
                Err(e) => {
                    tracing::error!(export = %export.location(), error = %e, "audit export: listing the export failed");
                    failed();
                    continue;
                }
            },
        };
        let s = store.clone();
        let rows = tokio::task::spawn_blocking(move || s.audit_rows_after(last, MAX_SEGMENT)).await;
        let rows = match rows {
            Ok(Ok(rows)) => rows,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "audit export: reading the audit log failed");
                shared.telemetry.emit(&Event::StoreFailed { op: "audit.export".into(), error: None });
                continue;
            }
            Err(_) => continue,
        };
        let Some(seg) = Segment::from_rows(rows, SystemTime::now()) else { continue };
        match export.upload(&seg).await {
            Ok(()) => {
                through = Some(seg.last);
                shared.telemetry.emit(&Event::AuditSegmentExported { last: Some(seg.last) });
                if seg.last - seg.first + 1 == MAX_SEGMENT {
                    tick.reset_immediately(); // more to catch up on
                }
            }
            Err(e) => {
                tracing::error!(export = %export.location(), segment = %seg.key(&export.cfg.prefix), error = %e, "audit export: upload failed");
                failed();
                through = None; // list again: the upload may have landed
            }
        }
    }
}

/// At start: the database must still hold the export's newest entry
/// unchanged. If not, say so loudly (`cutover audit verify` names it); the
/// exporter goes on with entries after the export's head.
async fn check_head(store: &Arc<dyn Store>, through: i64) {
    if through == 0 {
        return;
    }
    let s = store.clone();
    let head = tokio::task::spawn_blocking(move || s.audit_head()).await;
    if let Ok(Ok(head)) = head {
        let db_last = head.map_or(0, |(seq, _, _)| seq);
        if db_last < through {
            tracing::error!(
                "audit export: the export holds entries up to {through} but the database ends at {db_last}: \
                 entries were removed (run `cutover audit verify`)"
            );
        }
    }
}
