//! Which `StorageBackend`s to reconcile when: watch triggers, requeues and the
//! periodic resync. No I/O; the time is an input.
//!
//! # Guarantees
//! - A trigger makes its `StorageBackend`s due at once; a status-only change
//!   of a `StorageBackend` (same generation and retry annotation as last seen)
//!   does not, so the operator's own status writes do not loop.
//! - A full resync is due at most `resync` after the last one.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use tokio::time::Instant;

use crate::selector;
use crate::watch::{Key, Trigger};

/// What the loop knows about one `StorageBackend` from its last list.
#[derive(Debug, Clone, Default)]
pub struct Known {
    pub selector: Option<LabelSelector>,
    pub generation: Option<i64>,
    pub retry: Option<String>,
}

/// The reconcile schedule.
#[derive(Debug)]
pub struct Schedule {
    resync: Duration,
    next_resync: Instant,
    due: BTreeMap<Key, Instant>,
    known: BTreeMap<Key, Known>,
}

impl Schedule {
    /// A schedule whose first full resync is due at `now`.
    pub fn new(resync: Duration, now: Instant) -> Self {
        Self { resync, next_resync: now, due: BTreeMap::new(), known: BTreeMap::new() }
    }

    /// Applies a watch trigger.
    pub fn trigger(&mut self, trigger: Trigger, now: Instant) {
        match trigger {
            Trigger::Resync => self.next_resync = now,
            Trigger::Backend { key, generation, retry } => {
                let known = self.known.entry(key.clone()).or_default();
                if known.generation != generation || known.retry != retry || generation.is_none() {
                    known.generation = generation;
                    known.retry = retry;
                    self.due.insert(key, now);
                }
            }
            Trigger::Deployment { namespace, labels } => {
                let matching: Vec<Key> = self
                    .known
                    .iter()
                    .filter(|((ns, _), k)| {
                        *ns == namespace && k.selector.as_ref().is_some_and(|s| selector::matches(s, &labels))
                    })
                    .map(|(key, _)| key.clone())
                    .collect();
                for key in matching {
                    self.due.insert(key, now);
                }
            }
            Trigger::Job(key) => {
                self.due.insert(key, now);
            }
        }
    }

    /// Whether a full resync is due.
    pub fn resync_due(&self, now: Instant) -> bool {
        now >= self.next_resync
    }

    /// The `StorageBackend`s due now.
    pub fn due(&self, now: Instant) -> BTreeSet<Key> {
        self.due.iter().filter(|(_, at)| **at <= now).map(|(k, _)| k.clone()).collect()
    }

    /// Records a list of every `StorageBackend`: forgets those that are gone
    /// and, after a full resync (`full`), schedules the next one.
    pub fn listed(&mut self, all: BTreeMap<Key, Known>, full: bool, now: Instant) {
        if full {
            self.next_resync = now + self.resync;
        }
        self.due.retain(|k, _| all.contains_key(k));
        self.known = all;
    }

    /// Records a reconcile of `key`: look again after `requeue` (`None`: on a
    /// change only).
    pub fn reconciled(&mut self, key: &Key, requeue: Option<Duration>, now: Instant) {
        match requeue {
            Some(after) => {
                self.due.insert(key.clone(), now + after);
            }
            None => {
                self.due.remove(key);
            }
        }
    }

    /// The list of `StorageBackend`s failed: try what was due (and the
    /// resync, when it was due) again after `after`, not in a tight loop.
    pub fn list_failed(&mut self, after: Duration, now: Instant) {
        if self.resync_due(now) {
            self.next_resync = now + after;
        }
        for at in self.due.values_mut().filter(|at| **at <= now) {
            *at = now + after;
        }
    }

    /// When the loop must wake next (at the latest).
    pub fn next_wake(&self) -> Instant {
        self.due.values().copied().chain([self.next_resync]).min().unwrap_or(self.next_resync)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Key {
        ("prod".into(), name.into())
    }

    fn known(app: &str, generation: i64) -> Known {
        Known {
            selector: Some(LabelSelector {
                match_labels: Some([("app".to_string(), app.to_string())].into()),
                ..LabelSelector::default()
            }),
            generation: Some(generation),
            retry: None,
        }
    }

    #[test]
    fn triggers_make_the_owning_backends_due_and_status_writes_do_not() {
        let t0 = Instant::now();
        let mut s = Schedule::new(Duration::from_secs(60), t0);
        s.listed([(key("a"), known("web", 1)), (key("b"), known("api", 1))].into(), true, t0);
        assert!(!s.resync_due(t0));
        assert!(s.due(t0).is_empty());
        assert_eq!(s.next_wake(), t0 + Duration::from_secs(60));

        // A status write: same generation, no retry: nothing.
        s.trigger(Trigger::Backend { key: key("a"), generation: Some(1), retry: None }, t0);
        assert!(s.due(t0).is_empty());
        // A spec change.
        s.trigger(Trigger::Backend { key: key("a"), generation: Some(2), retry: None }, t0);
        assert_eq!(s.due(t0), [key("a")].into());
        s.reconciled(&key("a"), None, t0);
        // A retry annotation bump.
        s.trigger(Trigger::Backend { key: key("a"), generation: Some(2), retry: Some("1".into()) }, t0);
        assert_eq!(s.due(t0), [key("a")].into());
        s.reconciled(&key("a"), None, t0);

        // A Deployment labelled app=api in prod: b only; in another namespace: none.
        let labels: BTreeMap<String, String> = [("app".to_string(), "api".to_string())].into();
        s.trigger(Trigger::Deployment { namespace: "prod".into(), labels: labels.clone() }, t0);
        assert_eq!(s.due(t0), [key("b")].into());
        s.reconciled(&key("b"), Some(Duration::from_secs(5)), t0);
        assert!(s.due(t0).is_empty());
        assert_eq!(s.next_wake(), t0 + Duration::from_secs(5));
        s.trigger(Trigger::Deployment { namespace: "dev".into(), labels }, t0);
        assert!(s.due(t0).is_empty());

        // A Job owned by a; a re-list makes a full resync due.
        s.trigger(Trigger::Job(key("a")), t0);
        assert_eq!(s.due(t0), [key("a")].into());
        s.trigger(Trigger::Resync, t0);
        assert!(s.resync_due(t0));
        // A failed list: everything due is tried again later, not at once.
        s.list_failed(Duration::from_secs(5), t0);
        assert!(!s.resync_due(t0) && s.due(t0).is_empty());
        assert_eq!(s.next_wake(), t0 + Duration::from_secs(5));
        let t1 = t0 + Duration::from_secs(5);
        assert!(s.resync_due(t1));
        // a (the Job's trigger) and b (its 5 s requeue).
        assert_eq!(s.due(t1), [key("a"), key("b")].into());
        // A backend gone from the list is forgotten; the next resync is an
        // interval away.
        s.listed([(key("b"), known("api", 1))].into(), true, t1);
        assert_eq!(s.due(t1), [key("b")].into());
        assert!(!s.resync_due(t1));
    }
}
