//! The rollback guard: before a rollback moves traffic back onto a backend
//! (the undo of a `state.switch`), the engine asks whether that backend may
//! take traffic. A rollback onto a backend that is down is never done
//! silently: it needs the policy's or a human's say.

use super::BoxFut;

/// What a rollback would do: undo `run` (a `kind` run of `incident`) after
/// `failed_step` failed with `error`, switching traffic back onto `onto`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackRequest<'a> {
    pub run: i64,
    pub incident: &'a str,
    pub kind: cutover_core::domain::RunKind,
    pub failed_step: &'a str,
    pub error: &'a str,
    /// The backend the undo would make active again.
    pub onto: &'a str,
}

/// The guard's answer, with its reason in words for the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackVerdict {
    pub allow: bool,
    /// Why (`alpha healthy`, `alpha is down`, or the policy's reason).
    pub reason: String,
    /// The health of the backend when asked, when the guard knows it.
    pub health: Option<String>,
}

/// Decides whether a rollback may move traffic back onto a backend.
///
/// # Guarantees
/// The engine asks before undoing any step of a run; when one answer is
/// no, it undoes nothing and the run ends `rollback_held` (a human approves
/// or rejects the rollback).
///
/// The answer may take a while (a guard may ask a controller task, which
/// evaluates the policy): the engine awaits it.
pub trait RollbackGuard: Send + Sync {
    fn may_roll_back_onto<'a>(&'a self, request: &'a RollbackRequest<'a>) -> BoxFut<'a, RollbackVerdict>;
}

/// The guard of an engine that was given none: every rollback is allowed.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl RollbackGuard for AllowAll {
    fn may_roll_back_onto<'a>(&'a self, _request: &'a RollbackRequest<'a>) -> BoxFut<'a, RollbackVerdict> {
        Box::pin(async { RollbackVerdict { allow: true, reason: "no rollback guard configured".into(), health: None } })
    }
}
