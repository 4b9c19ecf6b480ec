//! Whether the controller acts. In HA every `cutover run` probes and
//! evaluates health (a hot standby: a takeover does not restart detection),
//! but only the leader writes shared state: incidents, decisions, timeline
//! and audit entries, the active backend. Embedded (no `[ha]`), the one
//! controller leads with [`Fence::local`].
//!
//! # Guarantees
//! - A standby writes no shared state: [`Controller::evaluate`] and the
//!   fallback check do nothing on it, and mutating requests answer
//!   [`RequestError::NotLeader`]. Health history (node-local) is still
//!   recorded.
//! - [`Controller::lead`] re-reads from the store what a restarted
//!   controller reads at start ([`Controller::reload`]), then acts with the
//!   given fence; the health trackers are kept, so a backend the standby
//!   already saw down gets its incident at the next tick.
//! - [`Controller::stand_by`] and a write refused with
//!   [`StoreError::Fenced`] stop the acting at once: no further write is
//!   attempted with the old fence.
//!
//! # Caveats
//! - Who leads is the caller's business (the etcd election in the binary):
//!   the controller only stands by by itself when the store refuses its
//!   fence, and does not lead again until told to.

use cutover_store::prelude::*;
use cutover_store::{Fence, StoreError};
use serde::Serialize;

use super::{Controller, Event, RequestError};
use crate::policy::Policy;
use cutover_core::Config;
use std::sync::Arc;
use std::time::Instant;

/// The node that leads, as a standby knows it (for a 503 that names it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leader {
    pub node: String,
    /// Its `advertise_api`.
    pub api: String,
}

/// The controller's role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leadership {
    /// Acts: every write of shared state carries this fence.
    Leading(Fence),
    /// Probes and evaluates, writes nothing shared; `leader` is who leads,
    /// when known.
    Standby { leader: Option<Leader> },
}

impl Leadership {
    /// The fence writes carry, while leading.
    pub fn fence(&self) -> Option<&Fence> {
        match self {
            Leadership::Leading(fence) => Some(fence),
            Leadership::Standby { .. } => None,
        }
    }

    pub fn is_leading(&self) -> bool {
        matches!(self, Leadership::Leading(_))
    }

    /// The fencing token while leading in HA (`None` embedded or standing by).
    pub fn token(&self) -> Option<i64> {
        self.fence().and_then(Fence::revision)
    }

    /// The event that reports this role.
    fn event(&self) -> Event {
        let leader = match self {
            Leadership::Leading(_) => None,
            Leadership::Standby { leader } => leader.clone(),
        };
        Event::LeadershipChanged { leading: self.is_leading(), token: self.token(), leader }
    }
}

impl Controller {
    /// Builds the controller as a hot standby: it probes and evaluates but
    /// writes nothing, not even the active backend when the store has none
    /// (it assumes the primary until a leader sets one).
    pub fn standby(
        config: Config,
        policy: Policy,
        store: Arc<dyn Store>,
        now: Instant,
        leader: Option<Leader>,
    ) -> Result<Self, StoreError> {
        Self::build(config, policy, store, now, Leadership::Standby { leader })
    }

    pub fn leadership(&self) -> &Leadership {
        &self.role
    }

    pub fn is_leading(&self) -> bool {
        self.role.is_leading()
    }

    /// Becomes the leader: re-reads the open incidents and the active
    /// backend as a restarted controller does, then acts with `fence`.
    /// Returns [`Event::LeadershipChanged`] (also emitted) when the role or
    /// the token changed.
    ///
    /// # Errors
    /// The store could not be read (or the active backend, never set, could
    /// not be set): the controller stays a standby.
    pub fn lead(&mut self, fence: Fence) -> Result<Option<Event>, StoreError> {
        let before = std::mem::replace(&mut self.role, Leadership::Leading(fence));
        if let Err(e) = self.reload() {
            self.role = match before {
                Leadership::Standby { leader } => Leadership::Standby { leader },
                Leadership::Leading(_) => Leadership::Standby { leader: None },
            };
            if let StoreError::Fenced { revision, .. } = &e {
                self.emit(Event::WriteFenced { op: "lead".into(), revision: *revision });
            }
            return Err(e);
        }
        Ok(self.role_changed(&before))
    }

    /// Stops acting at once (no further write is attempted with the old
    /// fence); `leader` is who leads now, when known. Returns
    /// [`Event::LeadershipChanged`] (also emitted) when it was leading.
    pub fn stand_by(&mut self, leader: Option<Leader>) -> Option<Event> {
        let before = std::mem::replace(&mut self.role, Leadership::Standby { leader });
        self.role_changed(&before)
    }

    /// The leadership change the controller made by itself (a fenced
    /// write), once.
    pub fn take_role_change(&mut self) -> Option<Event> {
        self.role_change.take()
    }

    /// The fence of the controller's writes, or why it may not write.
    pub(super) fn acting(&self) -> Result<Fence, RequestError> {
        match &self.role {
            Leadership::Leading(fence) => Ok(fence.clone()),
            Leadership::Standby { leader } => Err(RequestError::NotLeader { leader: leader.clone() }),
        }
    }

    /// A write refused because the fence no longer holds (a deposed leader
    /// racing its deadline): counted and logged once, and the controller
    /// stands by.
    pub(super) fn fenced_out(&mut self, op: &'static str, revision: Option<i64>) {
        self.emit(Event::WriteFenced { op: op.to_string(), revision });
        if self.is_leading() {
            let before = std::mem::replace(&mut self.role, Leadership::Standby { leader: None });
            self.role_change = self.role_changed(&before);
        }
    }

    /// The error a request gets when its write failed.
    pub(super) fn refused(&mut self, op: &'static str, e: StoreError) -> RequestError {
        self.store_failed(op, &e);
        match e {
            StoreError::Fenced { .. } => RequestError::NotLeader { leader: None },
            e => RequestError::Store(e),
        }
    }

    /// Emits the new role when it differs from `before` (or the token did).
    fn role_changed(&mut self, before: &Leadership) -> Option<Event> {
        if before.is_leading() == self.role.is_leading() && before.token() == self.role.token() {
            return None;
        }
        Some(self.emit(self.role.event()))
    }

    /// While standing by, follows the active backend the leader sets.
    pub(super) fn follow_active(&mut self) {
        if self.is_leading() || !self.active_watch.has_changed().unwrap_or(false) {
            return;
        }
        let seen = self.active_watch.borrow_and_update().clone();
        if let Some(active) = seen.filter(|a| self.config.backend(a).is_some()) {
            self.active = active;
        }
    }
}

#[cfg(test)]
#[path = "leadership_tests.rs"]
mod tests;
