//! Status conditions by the Kubernetes API conventions (metav1.Condition).

use crate::crd::Condition;

/// Condition types.
pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";

/// Sets condition `type_` in `conditions`, keeping its `lastTransitionTime`
/// unless `status` changes, and stamping `generation`.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: i64,
    now: &str,
) {
    let status = if status { "True" } else { "False" };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = now.to_string();
            }
            c.status = status.to_string();
            c.reason = reason.to_string();
            c.message = message;
            c.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message,
            observed_generation: generation,
            last_transition_time: now.to_string(),
        }),
    }
}

/// The condition `type_`, if present.
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether condition `type_` is `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    get(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_changes_only_with_the_status() {
        let mut c = Vec::new();
        set(&mut c, READY, false, "RollingOut", "batch 1".into(), 1, "t1");
        set(&mut c, READY, false, "RollingOut", "batch 2".into(), 2, "t2");
        assert_eq!(c[0].last_transition_time, "t1");
        assert_eq!(c[0].message, "batch 2");
        assert_eq!(c[0].observed_generation, 2);
        set(&mut c, READY, true, "RolloutComplete", "done".into(), 2, "t3");
        assert_eq!(c[0].last_transition_time, "t3");
        assert!(is_true(&c, READY));
        assert_eq!(c.len(), 1);
    }
}
