//! The `cutover_store` interface on [`EtcdStore`]: reads are ranges under
//! the prefix; writes go through [`EtcdStore::transact`].

use std::time::SystemTime;

use cutover_core::domain::{DecisionAction, Health, IncidentState, RunState, StepState, Verdict};
use cutover_core::time::rfc3339;
use cutover_store::{
    ActiveBackend, Approval, Approvals, AuditError, AuditLog, AuditRow, DecisionRecord, Fence, GENESIS, HealthHistory,
    HealthRecord, Incident, Incidents, KEYED, NewRun, RunRecord, Runs, Segment, SegmentError, StepRecord, StepRef,
    Store, StoreError, StoreExt, TimelineEvent, Tx, VerifyReport, check_rows,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::tx::{Decision, Head};
use super::{EtcdStore, EtcdTx, seq};

impl EtcdStore {
    fn get_json<T: DeserializeOwned>(&self, key: &str, what: &'static str) -> Result<Option<T>, StoreError> {
        let (_, kv) = self.block_on(self.client().get(key.as_bytes())).map_err(self.remote("read"))?;
        kv.map(|kv| serde_json::from_slice(&kv.value).map_err(self.json_err(what))).transpose()
    }

    /// The values in `[from, end of prefix)`, in key order.
    fn list_from<T: DeserializeOwned>(
        &self,
        prefix: &str,
        from: &str,
        what: &'static str,
    ) -> Result<Vec<T>, StoreError> {
        let end = crate::prefix_end(prefix.as_bytes());
        let r = self.block_on(self.client().range(from.as_bytes(), &end)).map_err(self.remote("read"))?;
        r.kvs.iter().map(|kv| serde_json::from_slice(&kv.value).map_err(self.json_err(what))).collect()
    }

    fn list<T: DeserializeOwned>(&self, prefix: &str, what: &'static str) -> Result<Vec<T>, StoreError> {
        self.list_from(prefix, prefix, what)
    }

    fn counter(&self, name: &str) -> Result<i64, StoreError> {
        let (_, kv) =
            self.block_on(self.client().get(self.keys().counter(name).as_bytes())).map_err(self.remote("read"))?;
        Ok(kv.and_then(|kv| String::from_utf8(kv.value).ok()).and_then(|s| s.parse().ok()).unwrap_or(0))
    }

    /// Every incident, newest first (by opening time).
    fn all_incidents(&self) -> Result<Vec<Incident>, StoreError> {
        let mut all: Vec<Incident> = self.list(&self.keys().incidents(), "incident")?;
        all.sort_by(|a, b| b.opened_at.cmp(&a.opened_at));
        Ok(all)
    }

    fn fenced_tx<T>(
        &self,
        fence: &Fence,
        mut f: impl FnMut(&EtcdTx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut out = None;
        self.transact(fence, &mut |tx| {
            out = Some(f(tx)?);
            Ok(())
        })?;
        out.ok_or(StoreError::Incomplete)
    }
}

impl Store for EtcdStore {
    fn atomically(
        &self,
        fence: &Fence,
        f: &mut dyn FnMut(&dyn Tx) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.transact(fence, &mut |tx| f(tx))
    }

    fn location(&self) -> &str {
        &self.inner.location
    }
}

impl Tx for EtcdTx<'_> {
    fn open_incident(&self, backend: &str, at: SystemTime) -> Result<String, StoreError> {
        EtcdTx::open_incident(self, backend, at)
    }

    fn set_incident_state(&self, id: &str, state: IncidentState, closed: Option<SystemTime>) -> Result<(), StoreError> {
        EtcdTx::set_incident_state(self, id, state, closed)
    }

    fn add_event(&self, incident: &str, at: SystemTime, kind: &str, detail: &Value) -> Result<(), StoreError> {
        EtcdTx::add_event(self, incident, at, kind, detail)
    }

    fn record_decision(&self, d: &DecisionRecord<'_>, at: SystemTime) -> Result<(), StoreError> {
        EtcdTx::record_decision(self, d, at)
    }

    fn record_approval(
        &self,
        incident: &str,
        verdict: Verdict,
        actor: &str,
        comment: &str,
        at: SystemTime,
    ) -> Result<i64, StoreError> {
        EtcdTx::record_approval(self, incident, verdict, actor, comment, at)
    }

    fn audit(&self, at: SystemTime, actor: &str, action: &str, detail: &Value) -> Result<i64, StoreError> {
        EtcdTx::audit(self, at, actor, action, detail)
    }

    fn begin_run(&self, run: &NewRun<'_>, at: SystemTime) -> Result<i64, StoreError> {
        EtcdTx::begin_run(self, run, at)
    }

    fn set_run_state(
        &self,
        id: i64,
        state: RunState,
        detail: Option<&Value>,
        ended: Option<SystemTime>,
    ) -> Result<(), StoreError> {
        EtcdTx::set_run_state(self, id, state, detail, ended)
    }

    fn step_intent(
        &self,
        step: StepRef,
        name: &str,
        uses: &str,
        intent: &Value,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        EtcdTx::step_intent(self, step, name, uses, intent, at)
    }

    fn step_result(&self, step: StepRef, state: StepState, result: &Value, at: SystemTime) -> Result<(), StoreError> {
        EtcdTx::step_result(self, step, state, result, at)
    }
}

impl Incidents for EtcdStore {
    fn incident(&self, id: &str) -> Result<Option<Incident>, StoreError> {
        self.get_json(&self.keys().incident(id), "incident")
    }

    fn incidents(&self) -> Result<Vec<Incident>, StoreError> {
        self.all_incidents()
    }

    fn open_incidents(&self) -> Result<Vec<Incident>, StoreError> {
        Ok(self.all_incidents()?.into_iter().filter(|i| i.closed_at.is_none()).collect())
    }

    fn open_incident_for(&self, backend: &str) -> Result<Option<Incident>, StoreError> {
        Ok(self.all_incidents()?.into_iter().find(|i| i.closed_at.is_none() && i.backend == backend))
    }

    fn timeline(&self, incident: &str) -> Result<Vec<TimelineEvent>, StoreError> {
        self.list(&self.keys().timeline(incident), "timeline event")
    }

    fn failovers_since(&self, since: SystemTime) -> Result<u32, StoreError> {
        let since = rfc3339(since);
        let all: Vec<Decision> = self.list(&self.keys().decisions(), "decision")?;
        Ok(all.iter().filter(|d| d.action == DecisionAction::Failover && d.at >= since).count() as u32)
    }

    fn decision_input(&self, incident: &str) -> Result<Option<Value>, StoreError> {
        let all: Vec<Decision> = self.list(&self.keys().decisions(), "decision")?;
        Ok(all.into_iter().rev().find(|d| d.incident == incident).map(|d| d.input))
    }
}

impl Runs for EtcdStore {
    fn run(&self, id: i64) -> Result<Option<RunRecord>, StoreError> {
        self.get_json(&format!("{}{}", self.keys().runs(), seq(id)), "run")
    }

    fn unfinished_runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let all: Vec<RunRecord> = self.list(&self.keys().runs(), "run")?;
        Ok(all.into_iter().filter(|r| r.ended_at.is_none()).collect())
    }

    fn runs_for(&self, incident: &str) -> Result<Vec<RunRecord>, StoreError> {
        let all: Vec<RunRecord> = self.list(&self.keys().runs(), "run")?;
        Ok(all.into_iter().filter(|r| r.incident == incident).collect())
    }

    fn steps(&self, run: i64) -> Result<Vec<StepRecord>, StoreError> {
        self.list(&self.keys().steps(run), "step")
    }
}

impl Approvals for EtcdStore {
    fn approval_after(&self, incident: &str, after: i64) -> Result<Option<Approval>, StoreError> {
        let prefix = self.keys().approvals();
        let from = format!("{prefix}{}", seq(after.saturating_add(1).max(0)));
        let all: Vec<Approval> = self.list_from(&prefix, &from, "approval")?;
        Ok(all.into_iter().find(|a| a.incident == incident))
    }

    fn last_approval_id(&self) -> Result<i64, StoreError> {
        self.counter("approvals")
    }
}

impl AuditLog for EtcdStore {
    fn audit_rows_after(&self, after: i64, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
        let prefix = self.keys().audit();
        let from = format!("{prefix}{}", seq(after.saturating_add(1).max(0)));
        let mut rows: Vec<AuditRow> = self.list_from(&prefix, &from, "audit row")?;
        rows.truncate(usize::try_from(limit.max(0)).unwrap_or(usize::MAX));
        Ok(rows)
    }

    fn audit_head(&self) -> Result<Option<(i64, String, String)>, StoreError> {
        Ok(self.get_json::<Head>(&self.keys().audit_head(), "audit head")?.map(|h| (h.seq, h.hash, h.alg)))
    }

    fn audit_keyed(&self) -> bool {
        self.audit_key.is_some()
    }

    fn mark_keyed(&self, fence: &Fence, at: SystemTime) -> Result<Option<i64>, StoreError> {
        if self.audit_key.is_none() {
            return Ok(None);
        }
        match self.audit_head()? {
            Some((seq, _, alg)) if alg != KEYED => StoreExt::audit(
                self,
                fence,
                at,
                "controller",
                "audit.keyed",
                &serde_json::json!({"keyed_after": seq, "alg": KEYED}),
            )
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
        cutover_store::verify_with_export(self, self.key_bytes(), export)
    }
}

impl ActiveBackend for EtcdStore {
    fn active_backend(&self) -> Result<Option<String>, StoreError> {
        let (_, kv) = self.block_on(self.client().get(self.keys().active().as_bytes())).map_err(self.remote("read"))?;
        Ok(kv.and_then(|kv| String::from_utf8(kv.value).ok()))
    }

    fn set_active_backend(&self, fence: &Fence, name: &str) -> Result<(), StoreError> {
        self.fenced_tx(fence, |tx| tx.set_active_backend(name))
    }

    fn watch_active_backend(&self) -> tokio::sync::watch::Receiver<Option<String>> {
        self.inner.active.subscribe()
    }
}

impl HealthHistory for EtcdStore {
    fn record_health(
        &self,
        at: SystemTime,
        backend: &str,
        vantage: &str,
        from: Health,
        to: Health,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.local().record_health(at, backend, vantage, from, to, reason)
    }

    fn last_health(&self) -> Result<Vec<HealthRecord>, StoreError> {
        self.local().last_health()
    }

    fn health_changes(&self, from: SystemTime, to: SystemTime) -> Result<Vec<HealthRecord>, StoreError> {
        self.local().health_changes(from, to)
    }

    fn record_client_counts(&self, counts: &[cutover_store::ClientCount]) -> Result<(), StoreError> {
        self.local().record_client_counts(counts)
    }

    fn client_counts(&self, from: SystemTime, to: SystemTime) -> Result<Vec<cutover_store::ClientCount>, StoreError> {
        self.local().client_counts(from, to)
    }

    fn record_probe_samples(&self, samples: &[cutover_store::ProbeSample]) -> Result<(), StoreError> {
        self.local().record_probe_samples(samples)
    }

    fn probe_samples(&self, from: SystemTime, to: SystemTime) -> Result<Vec<cutover_store::ProbeSample>, StoreError> {
        self.local().probe_samples(from, to)
    }
}
