//! [`EtcdTx`]: an optimistic transaction. Reads go to etcd (or see this
//! transaction's own writes) and are remembered with their `mod_revision`;
//! writes are buffered. The commit is one etcd transaction comparing the
//! fence and every remembered revision, then applying every write.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use cutover_core::domain::{IncidentState, RunState, StepPhase, StepState, Verdict};
use cutover_core::time::rfc3339;
use cutover_store::{
    Approval, AuditRow, DecisionRecord, GENESIS, Incident, KEYED, NewRun, RunRecord, StepRecord, StepRef, StoreError,
    TimelineEvent, UNKEYED, entry_hash,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{EtcdStore, seq};

/// How many times a commit without an answer is sent again.
const UNCERTAIN_RETRIES: usize = 5;
use crate::kv::{Cmp, Compare, Op};

/// Writes that commit together, from [`EtcdStore::transact`].
#[derive(Debug)]
pub struct EtcdTx<'a> {
    store: &'a EtcdStore,
    /// The fence's token.
    token: i64,
    /// Keys read, with the `mod_revision` seen (0: absent).
    reads: RefCell<BTreeMap<String, i64>>,
    /// Buffered writes (`None`: delete).
    writes: RefCell<BTreeMap<String, Option<String>>>,
    /// The active backend set, to publish after the commit.
    active: RefCell<Option<String>>,
}

/// The audit head as stored.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Head {
    pub seq: i64,
    pub hash: String,
    pub alg: String,
}

/// A decision as stored.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Decision {
    pub incident: String,
    pub at: String,
    pub action: cutover_core::domain::DecisionAction,
    pub target: Option<String>,
    pub reason: String,
    pub policy_sha256: String,
    pub input: Value,
}

pub(crate) fn phase_word(p: StepPhase) -> String {
    serde_json::to_value(p).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

impl<'a> EtcdTx<'a> {
    pub(crate) fn new(store: &'a EtcdStore, token: i64) -> Self {
        Self { store, token, reads: RefCell::default(), writes: RefCell::default(), active: RefCell::default() }
    }

    /// The value at `key`, as this transaction sees it.
    pub(crate) fn read(&self, key: &str) -> Result<Option<String>, StoreError> {
        if let Some(w) = self.writes.borrow().get(key) {
            return Ok(w.clone());
        }
        let (_, kv) =
            self.store.block_on(self.store.client().get(key.as_bytes())).map_err(self.store.remote("read"))?;
        let rev = kv.as_ref().map_or(0, |kv| kv.mod_revision);
        self.reads.borrow_mut().entry(key.to_string()).or_insert(rev);
        Ok(kv.map(|kv| String::from_utf8_lossy(&kv.value).into_owned()))
    }

    fn read_json<T: DeserializeOwned>(&self, key: &str, what: &'static str) -> Result<Option<T>, StoreError> {
        self.read(key)?.map(|s| serde_json::from_str(&s).map_err(self.store.json_err(what))).transpose()
    }

    fn write(&self, key: String, value: String) {
        self.writes.borrow_mut().insert(key, Some(value));
    }

    fn write_json<T: Serialize>(&self, key: String, value: &T) {
        self.write(key, serde_json::to_string(value).expect("records serialize"));
    }

    /// The next value of counter `name` (written back in this transaction).
    fn next(&self, name: &str) -> Result<i64, StoreError> {
        let key = self.store.keys().counter(name);
        let n = self.read(&key)?.and_then(|s| s.parse::<i64>().ok()).unwrap_or(0) + 1;
        self.write(key, n.to_string());
        Ok(n)
    }

    /// Commits: `Ok(Some(active))` when applied (with the active backend
    /// set, if any), `Ok(None)` when a read went stale (run again).
    pub(crate) fn commit(&self) -> Result<Option<Option<String>>, StoreError> {
        let writes = self.writes.borrow();
        if writes.is_empty() {
            return Ok(Some(None));
        }
        let leader = self.store.keys().leader();
        let mut cmp = vec![Compare::create_revision(leader.as_bytes(), Cmp::Equal, self.token)];
        for (k, rev) in self.reads.borrow().iter() {
            cmp.push(Compare::mod_revision(k.as_bytes(), Cmp::Equal, *rev));
        }
        let ops: Vec<Op> = writes
            .iter()
            .map(|(k, v)| match v {
                Some(v) => Op::put(k.as_bytes(), v.as_bytes()),
                None => Op::Delete { key: k.as_bytes().to_vec() },
            })
            .collect();
        // The failure branch reads the leader key and every key written.
        let mut failure = vec![Op::get(leader)];
        failure.extend(writes.keys().map(|k| Op::get(k.as_bytes())));
        // A lost answer (etcd electing a new raft leader, a member gone) is
        // retried with the very same transaction: its compares let at most
        // one of the copies apply, and the failure branch tells whether one
        // did (every key we write holds what we wrote).
        let mut uncertain = false;
        let mut tries = 0;
        let r = loop {
            match self.store.block_on(self.store.client().txn(&cmp, &ops, &failure)) {
                Ok(r) => break r,
                Err(e) if e.is_transport() && tries < UNCERTAIN_RETRIES => {
                    tracing::debug!(error = %e, "etcd store: commit without an answer; trying it again");
                    tries += 1;
                    uncertain = true;
                    self.store.block_on(async { tokio::time::sleep(Duration::from_millis(200)).await });
                }
                Err(e) => return Err(self.store.remote("commit")(e)),
            }
        };
        if r.succeeded {
            return Ok(Some(self.active.borrow().clone()));
        }
        if r.range(0).first().map(|kv| kv.create_revision) != Some(self.token) {
            return Err(self.store.fenced(Some(self.token)));
        }
        let ours = writes.values().enumerate().all(|(i, v)| match (v, r.range(i + 1).first()) {
            (Some(v), Some(kv)) => kv.value == v.as_bytes(),
            (None, None) => true,
            _ => false,
        });
        if uncertain && ours {
            return Ok(Some(self.active.borrow().clone())); // an earlier copy applied
        }
        Ok(None)
    }

    /// Makes `name` the active backend.
    pub fn set_active_backend(&self, name: &str) -> Result<(), StoreError> {
        self.write(self.store.keys().active(), name.to_string());
        *self.active.borrow_mut() = Some(name.to_string());
        Ok(())
    }

    pub(crate) fn open_incident(&self, backend: &str, at: SystemTime) -> Result<String, StoreError> {
        for _ in 0..8 {
            let id = cutover_store::incident_id(at);
            let key = self.store.keys().incident(&id);
            if self.read(&key)?.is_some() {
                continue; // same second, same low bits: another id
            }
            let inc = Incident {
                id: id.clone(),
                backend: backend.to_string(),
                state: IncidentState::Open,
                opened_at: rfc3339(at),
                closed_at: None,
                decision: Value::Null,
            };
            self.write_json(key, &inc);
            return Ok(id);
        }
        Err(self.store.remote("open incident")(crate::EtcdError::CompareFailed {
            what: "no free incident id in this second".into(),
        }))
    }

    pub(crate) fn set_incident_state(
        &self,
        id: &str,
        state: IncidentState,
        closed: Option<SystemTime>,
    ) -> Result<(), StoreError> {
        let key = self.store.keys().incident(id);
        if let Some(mut inc) = self.read_json::<Incident>(&key, "incident")? {
            inc.state = state;
            if let Some(c) = closed {
                inc.closed_at = Some(rfc3339(c));
            }
            self.write_json(key, &inc);
        }
        Ok(())
    }

    pub(crate) fn add_event(
        &self,
        incident: &str,
        at: SystemTime,
        kind: &str,
        detail: &Value,
    ) -> Result<(), StoreError> {
        let n = self.next("timeline")?;
        let ev = TimelineEvent { at: rfc3339(at), kind: kind.to_string(), detail: detail.clone() };
        self.write_json(format!("{}{}", self.store.keys().timeline(incident), seq(n)), &ev);
        Ok(())
    }

    pub(crate) fn record_decision(&self, d: &DecisionRecord<'_>, at: SystemTime) -> Result<(), StoreError> {
        let n = self.next("decisions")?;
        let rec = Decision {
            incident: d.incident.to_string(),
            at: rfc3339(at),
            action: d.action,
            target: d.target.map(str::to_string),
            reason: d.reason.to_string(),
            policy_sha256: d.policy_sha256.to_string(),
            input: d.input.clone(),
        };
        self.write_json(format!("{}{}", self.store.keys().decisions(), seq(n)), &rec);
        let key = self.store.keys().incident(d.incident);
        if let Some(mut inc) = self.read_json::<Incident>(&key, "incident")? {
            inc.decision = json!({"action": d.action, "target": d.target, "reason": d.reason});
            self.write_json(key, &inc);
        }
        Ok(())
    }

    pub(crate) fn record_approval(
        &self,
        incident: &str,
        verdict: Verdict,
        actor: &str,
        comment: &str,
        at: SystemTime,
    ) -> Result<i64, StoreError> {
        let id = self.next("approvals")?;
        let a = Approval {
            id,
            incident: incident.to_string(),
            verdict,
            actor: actor.to_string(),
            comment: comment.to_string(),
            at: rfc3339(at),
        };
        self.write_json(format!("{}{}", self.store.keys().approvals(), seq(id)), &a);
        Ok(id)
    }

    /// Appends an audit entry chained to the head read in this transaction.
    pub(crate) fn audit(&self, at: SystemTime, actor: &str, action: &str, detail: &Value) -> Result<i64, StoreError> {
        let head_key = self.store.keys().audit_head();
        let (prev_seq, prev_hash) = match self.read_json::<Head>(&head_key, "audit head")? {
            Some(h) => (h.seq, h.hash),
            None => (0, GENESIS.to_string()),
        };
        let seq_n = prev_seq + 1;
        let at = rfc3339(at);
        let detail = detail.to_string();
        let key = self.store.key_bytes();
        let alg = if key.is_some() { KEYED } else { UNKEYED };
        let hash = entry_hash(key, &prev_hash, seq_n, &at, actor, action, &detail);
        let row = AuditRow {
            seq: seq_n,
            at,
            actor: actor.to_string(),
            action: action.to_string(),
            detail,
            prev_hash,
            hash: hash.clone(),
            alg: alg.to_string(),
        };
        self.write_json(format!("{}{}", self.store.keys().audit(), seq(seq_n)), &row);
        self.write_json(head_key, &Head { seq: seq_n, hash, alg: alg.to_string() });
        Ok(seq_n)
    }

    pub(crate) fn begin_run(&self, run: &NewRun<'_>, at: SystemTime) -> Result<i64, StoreError> {
        let id = self.next("runs")?;
        let approval_base =
            self.read(&self.store.keys().counter("approvals"))?.and_then(|s| s.parse().ok()).unwrap_or(0);
        let rec = RunRecord {
            id,
            incident: run.incident.to_string(),
            kind: run.kind,
            source: run.source.to_string(),
            target: run.target.to_string(),
            reason: run.reason.to_string(),
            actor: run.actor.to_string(),
            runbook: run.runbook.to_string(),
            runbook_sha256: run.runbook_sha256.to_string(),
            state: RunState::Running,
            started_at: rfc3339(at),
            ended_at: None,
            detail: Value::Null,
            approval_base,
        };
        self.write_json(format!("{}{}", self.store.keys().runs(), seq(id)), &rec);
        Ok(id)
    }

    pub(crate) fn set_run_state(
        &self,
        id: i64,
        state: RunState,
        detail: Option<&Value>,
        ended: Option<SystemTime>,
    ) -> Result<(), StoreError> {
        let key = format!("{}{}", self.store.keys().runs(), seq(id));
        if let Some(mut run) = self.read_json::<RunRecord>(&key, "run")? {
            run.state = state;
            if let Some(d) = detail {
                run.detail = d.clone();
            }
            if let Some(e) = ended {
                run.ended_at = Some(rfc3339(e));
            }
            self.write_json(key, &run);
        }
        Ok(())
    }

    fn step_key(&self, step: StepRef) -> String {
        format!("{}{:010}/{}", self.store.keys().steps(step.run), step.idx, phase_word(step.phase))
    }

    pub(crate) fn step_intent(
        &self,
        step: StepRef,
        name: &str,
        uses: &str,
        intent: &Value,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        let key = self.step_key(step);
        let rec = match self.read_json::<StepRecord>(&key, "step")? {
            Some(mut s) => {
                s.state = StepState::Started;
                s.attempts += 1;
                s.intent = intent.clone();
                s
            }
            None => StepRecord {
                idx: step.idx as i64,
                phase: step.phase,
                name: name.to_string(),
                uses: uses.to_string(),
                state: StepState::Started,
                attempts: 1,
                started_at: rfc3339(at),
                ended_at: None,
                intent: intent.clone(),
                result: Value::Null,
            },
        };
        self.write_json(key, &rec);
        Ok(())
    }

    pub(crate) fn step_result(
        &self,
        step: StepRef,
        state: StepState,
        result: &Value,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        let key = self.step_key(step);
        if let Some(mut s) = self.read_json::<StepRecord>(&key, "step")? {
            s.state = state;
            s.result = result.clone();
            s.ended_at = Some(rfc3339(at));
            self.write_json(key, &s);
        }
        Ok(())
    }
}
