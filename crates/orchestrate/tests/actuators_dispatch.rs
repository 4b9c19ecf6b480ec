//! The actuator registry the engine and `runbook check` use.

mod actuators_support;

use std::collections::BTreeSet;

use actuators_support::{ctx, params};
use cutover_orchestrate::actuators::{self, Kind};
use serde_json::json;

const EXTERNAL: [&str; 5] = ["git.set", "http", "notify", "terraform_cloud.run", "command"];

#[test]
fn every_external_actuator_lists_unique_parameters() {
    for uses in EXTERNAL {
        let spec = actuators::params(uses).unwrap_or_else(|| panic!("{uses} has no parameters"));
        let names: BTreeSet<_> = spec.iter().map(|p| p.name).collect();
        assert_eq!(names.len(), spec.len(), "{uses} lists a parameter twice");
        assert!(spec.iter().all(|p| !p.help.is_empty()), "{uses}: every parameter has a help line");
    }
    let http = actuators::params("http").unwrap();
    assert!(http.iter().any(|p| p.name == "url" && p.kind == Kind::String));
    assert!(http.iter().any(|p| p.name == "url_env" && p.kind == Kind::String));
    // One of url and url_env is required: the actuator's own check says so.
    let missing = actuators::check("http", &params(json!({"method": "POST"})));
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert!(missing[0].0 == "url" && missing[0].1.starts_with("missing required parameter"), "{missing:?}");
    assert!(actuators::params("state.switch").is_none());
}

#[tokio::test]
async fn names_it_does_not_own_are_left_to_the_engine() {
    let work = tempfile::tempdir().unwrap();
    let ctx = ctx(work.path(), &[]);
    assert!(actuators::run_external("state.switch", &params(json!({"to": "standby"})), &ctx).await.is_none());
    assert!(actuators::run_external("validate", &params(json!({})), &ctx).await.is_none());
}

#[test]
fn a_step_future_can_run_on_another_task() {
    fn assert_send<T: Send + 'static>(_: T) {}
    let work = tempfile::tempdir().unwrap();
    let ctx = ctx(work.path(), &[]);
    assert_send(async move {
        let with = params(json!({"program": "true"}));
        actuators::run_external("command", &with, &ctx).await
    });
}
