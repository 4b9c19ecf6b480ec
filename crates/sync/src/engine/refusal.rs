//! The safety rules for deletes (mirror mode): when a run refuses to delete.

use serde::Serialize;

use super::options::SyncOptions;

/// Why deletes were not done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum DeleteRefusal {
    /// The source listing is empty (use `--allow-empty-source`).
    EmptySource { would_delete: u64 },
    /// More deletes than `--max-delete`.
    MaxDelete { would_delete: u64, max: u64 },
    /// More than 10 % of the destination (use `--force`).
    TooManyDeletes { would_delete: u64, destination_objects: u64 },
    /// Some copies failed; deletes wait for a clean run.
    CopiesFailed { failed: u64 },
}

impl std::fmt::Display for DeleteRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeleteRefusal::EmptySource { would_delete } => write!(
                f,
                "refusing to delete {would_delete} objects: the source listing is empty (use --allow-empty-source)"
            ),
            DeleteRefusal::MaxDelete { would_delete, max } => {
                write!(f, "refusing to delete {would_delete} objects: more than --max-delete {max}")
            }
            DeleteRefusal::TooManyDeletes { would_delete, destination_objects } => write!(
                f,
                "refusing to delete {would_delete} of {destination_objects} destination objects (more than 10%; use --force)"
            ),
            DeleteRefusal::CopiesFailed { failed } => write!(f, "not deleting anything: {failed} copies failed"),
        }
    }
}

/// What the rules look at when a run is about to delete.
#[derive(Debug, Clone, Copy)]
pub(super) struct DeletePlan {
    /// Destination objects the source does not have.
    pub would_delete: u64,
    /// Copies (or compares) that failed in this run.
    pub failed: u64,
    pub source_objects: u64,
    pub destination_objects: u64,
}

impl DeletePlan {
    /// The first rule that forbids the deletes, if any (checked in this
    /// order: failed copies, an empty source, `max_delete`, the 10 % rule).
    pub fn refusal(&self, opts: &SyncOptions) -> Option<DeleteRefusal> {
        let n = self.would_delete;
        if self.failed > 0 {
            Some(DeleteRefusal::CopiesFailed { failed: self.failed })
        } else if self.source_objects == 0 && !opts.allow_empty_source {
            Some(DeleteRefusal::EmptySource { would_delete: n })
        } else if let Some(max) = opts.max_delete.filter(|m| n > *m) {
            Some(DeleteRefusal::MaxDelete { would_delete: n, max })
        } else if !opts.force && n * 10 > self.destination_objects {
            Some(DeleteRefusal::TooManyDeletes { would_delete: n, destination_objects: self.destination_objects })
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(would_delete: u64, failed: u64, source_objects: u64, destination_objects: u64) -> DeletePlan {
        DeletePlan { would_delete, failed, source_objects, destination_objects }
    }

    #[test]
    fn the_rules_apply_in_order() {
        let opts = SyncOptions { max_delete: Some(5), ..SyncOptions::default() };
        assert_eq!(plan(1, 2, 0, 100).refusal(&opts), Some(DeleteRefusal::CopiesFailed { failed: 2 }));
        assert_eq!(plan(1, 0, 0, 100).refusal(&opts), Some(DeleteRefusal::EmptySource { would_delete: 1 }));
        assert_eq!(plan(6, 0, 1, 100).refusal(&opts), Some(DeleteRefusal::MaxDelete { would_delete: 6, max: 5 }));
        assert_eq!(
            plan(5, 0, 1, 40).refusal(&opts),
            Some(DeleteRefusal::TooManyDeletes { would_delete: 5, destination_objects: 40 })
        );
        assert_eq!(plan(5, 0, 1, 50).refusal(&opts), None);
    }

    #[test]
    fn the_overrides_lift_their_rule_only() {
        let opts = SyncOptions { allow_empty_source: true, force: true, ..SyncOptions::default() };
        assert_eq!(plan(10, 0, 0, 10).refusal(&opts), None);
        assert_eq!(plan(10, 1, 0, 10).refusal(&opts), Some(DeleteRefusal::CopiesFailed { failed: 1 }));
    }
}
