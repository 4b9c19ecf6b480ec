//! A test [`Store`]: SQLite behind a fence check, as etcd would do it. A
//! write commits only when its fence is the one it was last told is
//! current ([`FencingStore::elect`]); any other is refused with
//! [`StoreError::Fenced`] (SQLite's own check always passes).

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use cutover_core::domain::Health;
use cutover_store::prelude::*;
use cutover_store::{
    Approval, AuditEntry, AuditError, AuditRow, Fence, HealthRecord, Incident, RunRecord, Segment, SegmentError,
    SqliteStore, StepRecord, StoreError, TimelineEvent, VerifyReport,
};

#[derive(Debug, Clone)]
pub struct FencingStore {
    inner: SqliteStore,
    /// The revision of the current leader's fence.
    current: Arc<Mutex<Option<i64>>>,
}

impl FencingStore {
    pub fn new(inner: SqliteStore) -> Self {
        Self { inner, current: Arc::new(Mutex::new(None)) }
    }

    /// From now on only `Fence::leader(revision)` holds.
    pub fn elect(&self, revision: i64) {
        *self.current.lock().unwrap() = Some(revision);
    }

    fn check(&self, fence: &Fence) -> Result<(), StoreError> {
        let current = *self.current.lock().unwrap();
        if fence.revision().is_some() && fence.revision() == current {
            Ok(())
        } else {
            Err(StoreError::Fenced { location: self.inner.location().to_string(), revision: fence.revision() })
        }
    }
}

impl Store for FencingStore {
    fn atomically(
        &self,
        fence: &Fence,
        f: &mut dyn FnMut(&dyn Tx) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.check(fence)?;
        self.inner.atomically(fence, f)
    }

    fn location(&self) -> &str {
        self.inner.location()
    }
}

impl Incidents for FencingStore {
    fn incident(&self, id: &str) -> Result<Option<Incident>, StoreError> {
        self.inner.incident(id)
    }
    fn incidents(&self) -> Result<Vec<Incident>, StoreError> {
        self.inner.incidents()
    }
    fn open_incidents(&self) -> Result<Vec<Incident>, StoreError> {
        self.inner.open_incidents()
    }
    fn open_incident_for(&self, backend: &str) -> Result<Option<Incident>, StoreError> {
        self.inner.open_incident_for(backend)
    }
    fn timeline(&self, incident: &str) -> Result<Vec<TimelineEvent>, StoreError> {
        self.inner.timeline(incident)
    }
    fn failovers_since(&self, since: SystemTime) -> Result<u32, StoreError> {
        self.inner.failovers_since(since)
    }
}

impl Runs for FencingStore {
    fn run(&self, id: i64) -> Result<Option<RunRecord>, StoreError> {
        self.inner.run(id)
    }
    fn unfinished_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        self.inner.unfinished_runs()
    }
    fn runs_for(&self, incident: &str) -> Result<Vec<RunRecord>, StoreError> {
        self.inner.runs_for(incident)
    }
    fn steps(&self, run: i64) -> Result<Vec<StepRecord>, StoreError> {
        self.inner.steps(run)
    }
}

impl Approvals for FencingStore {
    fn approval_after(&self, incident: &str, after: i64) -> Result<Option<Approval>, StoreError> {
        self.inner.approval_after(incident, after)
    }
    fn last_approval_id(&self) -> Result<i64, StoreError> {
        self.inner.last_approval_id()
    }
}

impl AuditLog for FencingStore {
    fn audit_entries(&self) -> Result<Vec<AuditEntry>, StoreError> {
        self.inner.audit_entries()
    }
    fn audit_rows_after(&self, after: i64, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
        self.inner.audit_rows_after(after, limit)
    }
    fn audit_head(&self) -> Result<Option<(i64, String, String)>, StoreError> {
        self.inner.audit_head()
    }
    fn audit_keyed(&self) -> bool {
        self.inner.audit_keyed()
    }
    fn mark_keyed(&self, fence: &Fence, at: SystemTime) -> Result<Option<i64>, StoreError> {
        self.check(fence)?;
        self.inner.mark_keyed(fence, at)
    }
    fn verify_audit(&self) -> Result<Result<usize, AuditError>, StoreError> {
        self.inner.verify_audit()
    }
    fn verify_with_export(
        &self,
        export: Option<&[(String, Result<Segment, SegmentError>)]>,
    ) -> Result<VerifyReport, StoreError> {
        self.inner.verify_with_export(export)
    }
}

impl ActiveBackend for FencingStore {
    fn active_backend(&self) -> Result<Option<String>, StoreError> {
        self.inner.active_backend()
    }
    fn set_active_backend(&self, fence: &Fence, name: &str) -> Result<(), StoreError> {
        self.check(fence)?;
        self.inner.set_active_backend(fence, name)
    }
    fn watch_active_backend(&self) -> tokio::sync::watch::Receiver<Option<String>> {
        self.inner.watch_active_backend()
    }
}

impl HealthHistory for FencingStore {
    fn record_health(
        &self,
        at: SystemTime,
        backend: &str,
        vantage: &str,
        from: Health,
        to: Health,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.inner.record_health(at, backend, vantage, from, to, reason)
    }
    fn last_health(&self) -> Result<Vec<HealthRecord>, StoreError> {
        self.inner.last_health()
    }
}
