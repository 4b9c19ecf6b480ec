//! The fencing token a write carries. In HA a controller holds a leader key
//! in etcd; every write that must come from the leader alone (step intents
//! and results, run state changes, incident state changes, the active
//! backend, audit appends) carries the revision of that key, and the store
//! refuses a write whose fence is stale ([`crate::StoreError::Fenced`]), so
//! that a deposed leader that has not noticed yet cannot write.

/// Proof that the writer may write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The leader key's revision, or `None` in embedded mode.
    revision: Option<i64>,
}

impl Fence {
    /// The fence of the one embedded controller: it always holds.
    pub fn local() -> Self {
        Self { revision: None }
    }

    /// The fence of a leader elected at `revision` of its leader key.
    pub fn leader(revision: i64) -> Self {
        Self { revision: Some(revision) }
    }

    /// The leader key's revision, or `None` for [`Fence::local`].
    pub fn revision(&self) -> Option<i64> {
        self.revision
    }
}
