//! The closed sets of cutover's domain: backend health, incident states,
//! run kinds and states, how a run ended, step phases and states, approval
//! verdicts and decision actions. Each is an enum whose string form (JSON through serde,
//! [`std::fmt::Display`], `as_str()`, and with the `sqlite` feature the TEXT
//! stored in SQLite) is the snake_case word the API, the CLI, the audit log
//! and existing databases already use (see CONTRACT.md).

#[cfg(feature = "sqlite")]
mod sqlite;

use serde::{Deserialize, Serialize};

/// A string that names no member of a closed set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct UnknownValue {
    /// Which set (for example `incident state`).
    pub what: &'static str,
    /// The string that was given.
    pub value: String,
}

/// Defines `as_str`, `ALL`, `Display` and `FromStr` of a field-less enum from
/// one table of (variant, string); serde uses the same strings through
/// `rename_all = "snake_case"` (a test checks that they agree).
macro_rules! closed_set {
    ($ty:ident, $what:literal, { $($variant:ident => $s:literal),+ $(,)? }) => {
        impl $ty {
            /// Every member, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The stored and serialised form.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $s),+
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = UnknownValue;

            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                match s {
                    $($s => Ok($ty::$variant),)+
                    _ => Err(UnknownValue { what: $what, value: s.to_string() }),
                }
            }
        }

        #[cfg(feature = "sqlite")]
        impl rusqlite::types::ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(rusqlite::types::ToSqlOutput::from(self.as_str()))
            }
        }

        #[cfg(feature = "sqlite")]
        impl rusqlite::types::FromSql for $ty {
            fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
                sqlite::parse(value)
            }
        }
    };
}

/// The health of a backend as seen from one vantage, or over all of them
/// (`health` in `/v1/status`; `from_state` and `to_state` in the health
/// history).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Healthy,
    Suspect,
    Down,
    Recovering,
    /// No recent evidence (an agent that stopped reporting).
    Unknown,
}

closed_set!(Health, "health", {
    Healthy => "healthy",
    Suspect => "suspect",
    Down => "down",
    Recovering => "recovering",
    Unknown => "unknown",
});

/// Where an incident is (see docs/api.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    /// Opened; no decision yet.
    Open,
    /// The policy said hold.
    Held,
    /// The policy asks a human to approve its failover.
    AwaitingApproval,
    /// A human rejected the failover.
    Rejected,
    /// The failover runbook is running.
    FailingOver,
    /// The failover completed; traffic is on the target.
    FailedOver,
    /// The failover runbook failed and could not be rolled back.
    FailoverFailed,
    /// The failover runbook failed and was rolled back.
    RolledBack,
    /// The fallback runbook is running.
    FallingBack,
    /// The approved rollback of a held run is running.
    RollingBack,
    /// Closed: healthy again, or fallen back.
    Resolved,
}

closed_set!(IncidentState, "incident state", {
    Open => "open",
    Held => "held",
    AwaitingApproval => "awaiting_approval",
    Rejected => "rejected",
    FailingOver => "failing_over",
    FailedOver => "failed_over",
    FailoverFailed => "failover_failed",
    RolledBack => "rolled_back",
    FallingBack => "falling_back",
    RollingBack => "rolling_back",
    Resolved => "resolved",
});

impl IncidentState {
    /// A runbook is running, or has moved traffic: the controller does not
    /// decide again.
    pub fn busy(self) -> bool {
        matches!(
            self,
            Self::FailingOver | Self::FailedOver | Self::FallingBack | Self::FailoverFailed | Self::RollingBack
        )
    }

    /// A runbook of the incident is running.
    pub fn running_runbook(self) -> bool {
        matches!(self, Self::FailingOver | Self::FallingBack | Self::RollingBack)
    }
}

/// What a runbook run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// Away from the failed backend.
    Failover,
    /// Back to it once it is stable.
    Fallback,
    /// The approved rollback of a run whose rollback was held (it runs the
    /// held run's undo steps; no new run is journaled).
    Rollback,
}

closed_set!(RunKind, "run kind", {
    Failover => "failover",
    Fallback => "fallback",
    Rollback => "rollback",
});

/// Where a run is, as journaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Its steps are running.
    Running,
    /// A step failed; the completed steps are being undone.
    RollingBack,
    /// A rollback waits for a human (issue 18's rollback guard).
    RollbackHeld,
    /// Every step succeeded.
    Completed,
    /// A step failed and the completed steps were undone.
    RolledBack,
    /// A step failed and an undo failed too.
    Failed,
    /// A held rollback was rejected: the run's steps stay done.
    RollbackRejected,
}

closed_set!(RunState, "run state", {
    Running => "running",
    RollingBack => "rolling_back",
    RollbackHeld => "rollback_held",
    Completed => "completed",
    RolledBack => "rolled_back",
    Failed => "failed",
    RollbackRejected => "rollback_rejected",
});

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// Every step succeeded (or failed with `on_failure = "continue"`).
    Completed,
    /// A step failed; the completed steps were undone.
    RolledBack { step: String, error: String },
    /// A step failed and an undo failed too: a human must look.
    Failed { step: String, error: String },
    /// A step failed, and the rollback would move traffic back onto a
    /// backend that may not take it: nothing was undone, a human decides.
    RollbackHeld { step: String, error: String, reason: String },
}

impl RunOutcome {
    /// The run state it leaves.
    pub fn state(&self) -> RunState {
        match self {
            RunOutcome::Completed => RunState::Completed,
            RunOutcome::RolledBack { .. } => RunState::RolledBack,
            RunOutcome::Failed { .. } => RunState::Failed,
            RunOutcome::RollbackHeld { .. } => RunState::RollbackHeld,
        }
    }

    /// `completed`, `rolled_back` or `failed`.
    pub fn as_str(&self) -> &'static str {
        self.state().as_str()
    }
}

/// Doing a step, or undoing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepPhase {
    Do,
    Undo,
}

closed_set!(StepPhase, "step phase", {
    Do => "do",
    Undo => "undo",
});

/// Where a step (or its undo) is, as journaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Its intent is written; it runs (or the process died while it ran).
    Started,
    Ok,
    Failed,
}

closed_set!(StepState, "step state", {
    Started => "started",
    Ok => "ok",
    Failed => "failed",
});

/// A human's verdict on an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Approve,
    Reject,
}

closed_set!(Verdict, "verdict", {
    Approve => "approve",
    Reject => "reject",
});

impl Verdict {
    /// `approved` or `rejected`.
    pub fn past(self) -> &'static str {
        match self {
            Verdict::Approve => "approved",
            Verdict::Reject => "rejected",
        }
    }
}

/// What a decision (the policy's, or a forced one) says to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionAction {
    Failover,
    AwaitApproval,
    Hold,
}

closed_set!(DecisionAction, "decision action", {
    Failover => "failover",
    AwaitApproval => "await_approval",
    Hold => "hold",
});

#[cfg(test)]
#[path = "domain/tests.rs"]
mod tests;
