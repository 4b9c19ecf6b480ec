//! `kubernetes.patch` in the engine: dispatched to the host with its
//! rendered parameters, undone with `{{ source }}` on a rollback, and a
//! refusal (the operator reports Degraded) is not retried.

mod engine_support;

use cutover_orchestrate::engine::RunOutcome;
use engine_support::bench;

const PATCH: &str = r#"
[[steps]]
name = "repoint the cluster"
uses = "kubernetes.patch"
with = { namespace = "prod", name = "app-storage", provider = "{{ target }}" }
retries = 2
undo = { uses = "kubernetes.patch", with = { namespace = "prod", name = "app-storage", provider = "{{ source }}" } }
"#;

#[tokio::test]
async fn a_failed_validation_undoes_the_patch_with_the_source() {
    let b = bench(&[]);
    let job = b.job("secondary", "primary down");
    let text =
        format!("{PATCH}\n[[steps]]\nname = \"smoke\"\nuses = \"validate\"\nwith = {{ backend = \"broken\" }}\n");
    let outcome = b.run(&job, &text).await;
    assert!(matches!(outcome, RunOutcome::RolledBack { .. }), "{outcome:?}");
    let calls = b.host.calls.lock().unwrap().clone();
    assert_eq!(calls[0], "kubernetes.patch prod/app-storage secondary");
    assert_eq!(calls[1], "validate broken");
    assert_eq!(calls[2..], ["kubernetes.patch prod/app-storage primary".to_string()]);
}

#[tokio::test]
async fn a_degraded_storage_backend_fails_the_step_without_retries() {
    let b = bench(&[]);
    let job = b.job("degraded", "primary down");
    let outcome = b.run(&job, PATCH).await;
    assert!(!matches!(outcome, RunOutcome::Completed), "{outcome:?}");
    let calls = b.host.calls.lock().unwrap().clone();
    let patches = calls.iter().filter(|c| c.ends_with(" degraded")).count();
    assert_eq!(patches, 1, "retried a refusal: {calls:?}");
}
