use std::str::FromStr;

use super::*;

/// serde, `Display`, `as_str` and `FromStr` agree for every member.
fn agree<T>(all: &[T])
where
    T: Copy + Serialize + for<'de> Deserialize<'de> + std::fmt::Display + FromStr<Err = UnknownValue> + PartialEq,
    T: std::fmt::Debug,
{
    for &v in all {
        let s = v.to_string();
        assert_eq!(serde_json::to_string(&v).unwrap(), format!("\"{s}\""));
        assert_eq!(serde_json::from_str::<T>(&format!("\"{s}\"")).unwrap(), v);
        assert_eq!(T::from_str(&s).unwrap(), v);
    }
}

#[test]
fn every_form_agrees() {
    agree(Health::ALL);
    agree(IncidentState::ALL);
    agree(RunKind::ALL);
    agree(RunState::ALL);
    agree(StepPhase::ALL);
    agree(StepState::ALL);
    agree(Verdict::ALL);
    agree(DecisionAction::ALL);
}

#[test]
fn the_strings_are_the_old_ones() {
    let health: Vec<&str> = Health::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(health, ["healthy", "suspect", "down", "recovering", "unknown"]);
    let states: Vec<&str> = IncidentState::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        states,
        [
            "open",
            "held",
            "awaiting_approval",
            "rejected",
            "failing_over",
            "failed_over",
            "failover_failed",
            "rolled_back",
            "falling_back",
            "rolling_back",
            "resolved"
        ]
    );
    let runs: Vec<&str> = RunState::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        runs,
        ["running", "rolling_back", "rollback_held", "completed", "rolled_back", "failed", "rollback_rejected"]
    );
    let kinds: Vec<&str> = RunKind::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(kinds, ["failover", "fallback", "rollback"]);
    assert_eq!((StepPhase::Do.as_str(), StepPhase::Undo.as_str()), ("do", "undo"));
    assert_eq!(StepState::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(), ["started", "ok", "failed"]);
    assert_eq!((Verdict::Approve.as_str(), Verdict::Reject.as_str()), ("approve", "reject"));
    assert_eq!(
        DecisionAction::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        ["failover", "await_approval", "hold"]
    );
}

#[test]
fn display_pads_like_a_str() {
    assert_eq!(format!("[{:<8}]", IncidentState::Held), "[held    ]");
}

#[test]
fn an_unknown_word_is_a_typed_error() {
    let e = IncidentState::from_str("exploded").unwrap_err();
    assert_eq!(e, UnknownValue { what: "incident state", value: "exploded".into() });
    assert_eq!(e.to_string(), "unknown incident state \"exploded\"");
}

#[test]
fn outcomes_map_to_run_states() {
    assert_eq!(RunOutcome::Completed.state(), RunState::Completed);
    let (step, error) = ("s".to_string(), "e".to_string());
    assert_eq!(RunOutcome::RolledBack { step: step.clone(), error: error.clone() }.as_str(), "rolled_back");
    assert_eq!(RunOutcome::Failed { step, error }.as_str(), "failed");
}
