//! The interface of cutover's state, which the controller, the runbook
//! engine and the API use: SQLite ([`crate::SqliteStore`]) implements it for
//! one process; an etcd implementation can stand behind it for HA.
//!
//! Every method is synchronous (SQLite blocks): async callers run them off
//! their workers. Every write of shared state goes through a [`Tx`] in
//! [`Store::atomically`] (or its one-write forms in [`StoreExt`]) and takes a
//! [`Fence`]: in HA only the leader's writes commit. Reads and node-local
//! data (health history, the denial log) take none.

use std::time::SystemTime;

use cutover_core::domain::{Health, IncidentState, RunState, StepState, Verdict};
use serde_json::Value;

use crate::{
    Approval, AuditEntry, AuditError, AuditRow, ClientCount, DecisionRecord, Fence, HealthRecord, Incident, NewRun,
    ProbeSample, RunRecord, Segment, SegmentError, StepRecord, StepRef, StoreError, TimelineEvent, VerifyReport,
};

/// The writes of shared state, made together in one [`Store::atomically`].
///
/// # Guarantees
/// Every write is fenced by the fence given to [`Store::atomically`]: in HA
/// a deposed leader's transaction is refused whole ([`StoreError::Fenced`]).
/// The store-level forms of these writes are [`StoreExt`]'s.
pub trait Tx {
    /// Opens an incident (state `open`); returns its id.
    fn open_incident(&self, backend: &str, at: SystemTime) -> Result<String, StoreError>;

    /// Sets an incident's state; `closed` closes it.
    fn set_incident_state(&self, id: &str, state: IncidentState, closed: Option<SystemTime>) -> Result<(), StoreError>;

    /// Appends an event to an incident's timeline.
    fn add_event(&self, incident: &str, at: SystemTime, kind: &str, detail: &Value) -> Result<(), StoreError>;

    /// Records a decision (with the full policy input as evidence) and makes
    /// it the incident's current decision.
    fn record_decision(&self, d: &DecisionRecord<'_>, at: SystemTime) -> Result<(), StoreError>;

    /// Records an approval or rejection; returns its id.
    fn record_approval(
        &self,
        incident: &str,
        verdict: Verdict,
        actor: &str,
        comment: &str,
        at: SystemTime,
    ) -> Result<i64, StoreError>;

    /// Appends an audit entry, chained to the previous one; returns its seq.
    /// `detail` must already have secrets redacted.
    fn audit(&self, at: SystemTime, actor: &str, action: &str, detail: &Value) -> Result<i64, StoreError>;

    /// Records the start of a run (state `running`); returns its id.
    /// Approvals recorded before it do not count for its `approval` steps
    /// ([`RunRecord::approval_base`]).
    fn begin_run(&self, run: &NewRun<'_>, at: SystemTime) -> Result<i64, StoreError>;

    /// Sets a run's state (and its detail, when given); `ended` closes it.
    fn set_run_state(
        &self,
        id: i64,
        state: RunState,
        detail: Option<&Value>,
        ended: Option<SystemTime>,
    ) -> Result<(), StoreError>;

    /// Write-ahead: records that a step (or its undo) is about to run,
    /// counting the attempt. Durable when the transaction commits: a step
    /// runs only after its intent is stored.
    fn step_intent(
        &self,
        step: StepRef,
        name: &str,
        uses: &str,
        intent: &Value,
        at: SystemTime,
    ) -> Result<(), StoreError>;

    /// Records how a step (or its undo) ended.
    fn step_result(&self, step: StepRef, state: StepState, result: &Value, at: SystemTime) -> Result<(), StoreError>;
}

/// Incidents, their timelines and decisions (reads; the writes are
/// [`Tx`]'s and [`StoreExt`]'s).
pub trait Incidents {
    /// One incident.
    fn incident(&self, id: &str) -> Result<Option<Incident>, StoreError>;

    /// Every incident, newest first.
    fn incidents(&self) -> Result<Vec<Incident>, StoreError>;

    /// The incidents not closed, newest first.
    fn open_incidents(&self) -> Result<Vec<Incident>, StoreError>;

    /// The open (not closed) incident of a backend, if any.
    fn open_incident_for(&self, backend: &str) -> Result<Option<Incident>, StoreError>;

    /// An incident's timeline, oldest first.
    fn timeline(&self, incident: &str) -> Result<Vec<TimelineEvent>, StoreError>;

    /// Number of `failover` decisions since `since`.
    fn failovers_since(&self, since: SystemTime) -> Result<u32, StoreError>;

    /// The policy input of the incident's latest decision (the evidence per
    /// vantage it decided on), if any. The default keeps none.
    fn decision_input(&self, incident: &str) -> Result<Option<Value>, StoreError> {
        let _ = incident;
        Ok(None)
    }
}

/// The runbook journal (write-ahead): runs and their steps (reads; the
/// writes are [`Tx`]'s and [`StoreExt`]'s).
pub trait Runs {
    /// One run.
    fn run(&self, id: i64) -> Result<Option<RunRecord>, StoreError>;

    /// Runs that were interrupted (the process died while they ran), oldest first.
    fn unfinished_runs(&self) -> Result<Vec<RunRecord>, StoreError>;

    /// The runs of an incident, oldest first.
    fn runs_for(&self, incident: &str) -> Result<Vec<RunRecord>, StoreError>;

    /// The journal of a run, in order of steps (do before undo).
    fn steps(&self, run: i64) -> Result<Vec<StepRecord>, StoreError>;
}

/// Approvals and rejections of incidents (reads; the writes are [`Tx`]'s
/// and [`StoreExt`]'s).
pub trait Approvals {
    /// The first verdict on `incident` recorded after the one with id
    /// `after` (0: any).
    fn approval_after(&self, incident: &str, after: i64) -> Result<Option<Approval>, StoreError>;

    /// The id of the latest verdict (0 when none).
    fn last_approval_id(&self) -> Result<i64, StoreError>;
}

/// The hash-chained audit log (reads, and [`AuditLog::mark_keyed`]; appends
/// are [`Tx::audit`] and [`StoreExt::audit`]).
pub trait AuditLog {
    /// Every entry, in order (the rows, their details parsed).
    fn audit_entries(&self) -> Result<Vec<AuditEntry>, StoreError> {
        Ok(self.audit_rows_after(0, i64::MAX)?.into_iter().map(AuditEntry::from).collect())
    }

    /// Up to `limit` rows with a seq above `after`, in order, as stored.
    fn audit_rows_after(&self, after: i64, limit: i64) -> Result<Vec<AuditRow>, StoreError>;

    /// The newest entry's (seq, hash, alg), if any.
    fn audit_head(&self) -> Result<Option<(i64, String, String)>, StoreError>;

    /// Whether new entries are keyed (HMAC).
    fn audit_keyed(&self) -> bool;

    /// With a key: when the newest entry is not keyed, appends an
    /// `audit.keyed` entry so that the chain ends keyed. Returns its seq
    /// when one was written.
    ///
    /// # Guarantees
    /// Fenced (it appends).
    fn mark_keyed(&self, fence: &Fence, at: SystemTime) -> Result<Option<i64>, StoreError>;

    /// Checks the whole chain. `Ok(n)`: n entries, all intact. The error
    /// names the first bad entry.
    fn verify_audit(&self) -> Result<Result<usize, AuditError>, StoreError>;

    /// Verifies the chain and, when `export` is given (every segment read
    /// from the export, by object key), the export's chain and that every
    /// exported entry is in the store unchanged.
    fn verify_with_export(
        &self,
        export: Option<&[(String, Result<Segment, SegmentError>)]>,
    ) -> Result<VerifyReport, StoreError>;
}

/// The backend that receives traffic.
pub trait ActiveBackend {
    /// The active backend, if one was ever set.
    fn active_backend(&self) -> Result<Option<String>, StoreError>;

    /// Makes `name` the active backend.
    ///
    /// # Guarantees
    /// Fenced. Once it returns `Ok`, every [`ActiveBackend::watch_active_backend`]
    /// receiver sees `Some(name)`.
    fn set_active_backend(&self, fence: &Fence, name: &str) -> Result<(), StoreError>;

    /// A receiver of the active backend that changes when
    /// [`ActiveBackend::set_active_backend`] commits.
    ///
    /// # Caveats
    /// The SQLite store sees only the sets made through this handle (and its
    /// clones): another process writing the same file is not seen (the
    /// standalone gateway polls the file instead).
    fn watch_active_backend(&self) -> tokio::sync::watch::Receiver<Option<String>>;
}

/// Node-local health history (not replicated, not fenced).
pub trait HealthHistory {
    /// Records one health change of (backend, vantage).
    fn record_health(
        &self,
        at: SystemTime,
        backend: &str,
        vantage: &str,
        from: Health,
        to: Health,
        reason: &str,
    ) -> Result<(), StoreError>;

    /// The last recorded health change of every (backend, vantage).
    fn last_health(&self) -> Result<Vec<HealthRecord>, StoreError>;

    /// The health changes recorded from `from` to `to` (inclusive), oldest
    /// first (the incident chart's `suspect` marker). The default keeps none.
    fn health_changes(&self, from: SystemTime, to: SystemTime) -> Result<Vec<HealthRecord>, StoreError> {
        let _ = (from, to);
        Ok(Vec::new())
    }

    /// Records a batch of probe samples (one transaction), pruning the
    /// samples past the retention. The default keeps none.
    fn record_probe_samples(&self, samples: &[ProbeSample]) -> Result<(), StoreError> {
        let _ = samples;
        Ok(())
    }

    /// The probe samples from `from` to `to` (inclusive), oldest first.
    /// The default keeps none.
    fn probe_samples(&self, from: SystemTime, to: SystemTime) -> Result<Vec<ProbeSample>, StoreError> {
        let _ = (from, to);
        Ok(Vec::new())
    }

    /// Records the gateway's answers per second (one transaction), pruning
    /// past the retention. The default keeps none.
    fn record_client_counts(&self, counts: &[ClientCount]) -> Result<(), StoreError> {
        let _ = counts;
        Ok(())
    }

    /// The gateway's answers per second from `from` to `to` (inclusive),
    /// oldest first. The default keeps none.
    fn client_counts(&self, from: SystemTime, to: SystemTime) -> Result<Vec<ClientCount>, StoreError> {
        let _ = (from, to);
        Ok(Vec::new())
    }
}

/// cutover's state, as one object (`Arc<dyn Store>`).
pub trait Store:
    Incidents + Runs + Approvals + AuditLog + ActiveBackend + HealthHistory + std::fmt::Debug + Send + Sync
{
    /// Runs `f` with a [`Tx`] whose writes commit together, or not at all,
    /// fenced by `fence`.
    ///
    /// # Guarantees
    /// When `f` or the commit fails, nothing `f` wrote is stored, and the
    /// error is returned. When `fence` no longer holds (in HA: another
    /// controller leads since), nothing is stored and the error is
    /// [`StoreError::Fenced`].
    ///
    /// # Caveats
    /// An implementation may call `f` more than once (an optimistic
    /// transaction that lost a race retries): `f` must only write through
    /// the `Tx` and keep no other effect.
    fn atomically(&self, fence: &Fence, f: &mut dyn FnMut(&dyn Tx) -> Result<(), StoreError>)
    -> Result<(), StoreError>;

    /// Where the state is, for messages (a path, or endpoints).
    fn location(&self) -> &str;
}

/// [`Store::atomically`] with a result, and each write of [`Tx`] on its own
/// (one transaction each), fenced.
pub trait StoreExt: Store {
    /// Like [`Store::atomically`], returning what the last call of `f` returned.
    fn atomic<T>(&self, fence: &Fence, mut f: impl FnMut(&dyn Tx) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut out = None;
        self.atomically(fence, &mut |tx| {
            out = Some(f(tx)?);
            Ok(())
        })?;
        out.ok_or(StoreError::Incomplete)
    }

    /// [`Tx::open_incident`] alone.
    fn open_incident(&self, fence: &Fence, backend: &str, at: SystemTime) -> Result<String, StoreError> {
        self.atomic(fence, |tx| tx.open_incident(backend, at))
    }

    /// [`Tx::set_incident_state`] alone.
    fn set_incident_state(
        &self,
        fence: &Fence,
        id: &str,
        state: IncidentState,
        closed: Option<SystemTime>,
    ) -> Result<(), StoreError> {
        self.atomic(fence, |tx| tx.set_incident_state(id, state, closed))
    }

    /// [`Tx::add_event`] alone.
    fn add_event(
        &self,
        fence: &Fence,
        incident: &str,
        at: SystemTime,
        kind: &str,
        detail: &Value,
    ) -> Result<(), StoreError> {
        self.atomic(fence, |tx| tx.add_event(incident, at, kind, detail))
    }

    /// [`Tx::record_decision`] alone.
    fn record_decision(&self, fence: &Fence, d: &DecisionRecord<'_>, at: SystemTime) -> Result<(), StoreError> {
        self.atomic(fence, |tx| tx.record_decision(d, at))
    }

    /// [`Tx::record_approval`] alone.
    fn record_approval(
        &self,
        fence: &Fence,
        incident: &str,
        verdict: Verdict,
        actor: &str,
        comment: &str,
        at: SystemTime,
    ) -> Result<i64, StoreError> {
        self.atomic(fence, |tx| tx.record_approval(incident, verdict, actor, comment, at))
    }

    /// [`Tx::audit`] alone.
    fn audit(
        &self,
        fence: &Fence,
        at: SystemTime,
        actor: &str,
        action: &str,
        detail: &Value,
    ) -> Result<i64, StoreError> {
        self.atomic(fence, |tx| tx.audit(at, actor, action, detail))
    }

    /// [`Tx::begin_run`] alone.
    fn begin_run(&self, fence: &Fence, run: &NewRun<'_>, at: SystemTime) -> Result<i64, StoreError> {
        self.atomic(fence, |tx| tx.begin_run(run, at))
    }

    /// [`Tx::set_run_state`] alone.
    fn set_run_state(
        &self,
        fence: &Fence,
        id: i64,
        state: RunState,
        detail: Option<&Value>,
        ended: Option<SystemTime>,
    ) -> Result<(), StoreError> {
        self.atomic(fence, |tx| tx.set_run_state(id, state, detail, ended))
    }

    /// [`Tx::step_intent`] alone.
    fn step_intent(
        &self,
        fence: &Fence,
        step: StepRef,
        name: &str,
        uses: &str,
        intent: &Value,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        self.atomic(fence, |tx| tx.step_intent(step, name, uses, intent, at))
    }

    /// [`Tx::step_result`] alone.
    fn step_result(
        &self,
        fence: &Fence,
        step: StepRef,
        state: StepState,
        result: &Value,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        self.atomic(fence, |tx| tx.step_result(step, state, result, at))
    }
}

impl<S: Store + ?Sized> StoreExt for S {}

#[cfg(test)]
#[path = "interface/tests.rs"]
mod tests;
