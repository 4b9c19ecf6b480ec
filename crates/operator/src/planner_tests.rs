//! The planner's unit and property tests.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use proptest::prelude::*;

use super::*;
use crate::crd::{AppSecret, Condition, RolloutSpec, SecretKeys, ValidationSpec};

const GEN: i64 = 7;

fn spec(percent: u32, validation: bool) -> StorageBackendSpec {
    StorageBackendSpec {
        provider: "new-provider".into(),
        endpoint: "https://s3.example.test".into(),
        region: Some("eu-west-1".into()),
        bucket: "b".into(),
        credentials_secret: "creds".into(),
        path_style: false,
        secret: Some(AppSecret { name: "app-s3".into(), keys: SecretKeys::default() }),
        config_maps: Vec::new(),
        storage_class: None,
        rollout: Some(RolloutSpec {
            selector: LabelSelector::default(),
            batch_percent: percent,
            batch_timeout: "10m".into(),
        }),
        validation: validation.then(|| ValidationSpec {
            template: Default::default(),
            active_deadline_seconds: None,
            ttl_seconds_after_finished: None,
        }),
    }
}

fn desired() -> Rendered {
    Rendered {
        provider: "new-provider".into(),
        hash: "new".into(),
        secret: Some(("app-s3".into(), BTreeMap::from([("AWS_ENDPOINT_URL_S3".into(), "https://new".into())]))),
        config_maps: BTreeMap::new(),
        storage_class: None,
    }
}

fn old_data() -> AppData {
    AppData {
        secrets: BTreeMap::from([(
            "app-s3".to_string(),
            Some(BTreeMap::from([("AWS_ENDPOINT_URL_S3".to_string(), "https://old".to_string())])),
        )]),
        ..AppData::default()
    }
}

fn deployment(i: usize) -> DeploymentView {
    DeploymentView {
        name: format!("app-{i:02}"),
        hash: Some("old".into()),
        generation: 2,
        observed_generation: 2,
        replicas: 2,
        status_replicas: 2,
        updated_replicas: 2,
        ready_replicas: 2,
        available_replicas: 2,
        progress_deadline_exceeded: false,
    }
}

fn settled_status() -> StorageBackendStatus {
    StorageBackendStatus {
        observed_generation: Some(GEN - 1),
        active_provider: Some("old-provider".into()),
        rollout: Some(RolloutStatus {
            provider: "old-provider".into(),
            hash: "old".into(),
            phase: Phase::Complete,
            batch: 1,
            batches: 1,
            total: 0,
            updated: 0,
            batch_started_at: None,
            validation_job: None,
            retry: None,
            generation: GEN - 1,
            failure: None,
            restoring: Vec::new(),
        }),
        ..StorageBackendStatus::default()
    }
}

/// A small model of the cluster that carries out plans.
struct Model {
    spec: StorageBackendSpec,
    desired: Rendered,
    deployments: Vec<DeploymentView>,
    jobs: Vec<JobView>,
    status: StorageBackendStatus,
    snapshot: Option<Snapshot>,
    current: AppData,
    now: Timestamp,
    /// Deployment name → how many times it was rolled to the desired hash.
    rolled_to_desired: BTreeMap<String, u32>,
    steps: usize,
    /// The bad Deployment reports `ProgressDeadlineExceeded` (else it just
    /// never becomes ready).
    deadline: bool,
}

impl Model {
    fn new(count: usize, percent: u32, validation: bool) -> Self {
        Self {
            spec: spec(percent, validation),
            desired: desired(),
            deployments: (0..count).map(deployment).collect(),
            jobs: Vec::new(),
            status: settled_status(),
            snapshot: None,
            current: old_data(),
            now: Timestamp::from_second(1_800_000_000).unwrap(),
            rolled_to_desired: BTreeMap::new(),
            steps: 0,
            deadline: false,
        }
    }

    fn plan(&self) -> Plan {
        plan(&Input {
            name: "app-storage",
            generation: GEN,
            retry: None,
            spec: &self.spec,
            status: &self.status,
            desired: &self.desired,
            current: &self.current,
            snapshot: self.snapshot.as_ref(),
            deployments: &self.deployments,
            jobs: &self.jobs,
            now: self.now,
        })
    }

    /// Carries out the first `upto` actions, and the status when all ran.
    fn apply(&mut self, plan: &Plan, upto: usize) {
        for action in plan.actions.iter().take(upto) {
            match action {
                Action::SaveSnapshot(s) => self.snapshot = Some(s.clone()),
                Action::ApplySecret { name, data } => {
                    self.current.secrets.insert(name.clone(), Some(data.clone()));
                }
                Action::DeleteSecret { name } => {
                    self.current.secrets.insert(name.clone(), None);
                }
                Action::ApplyConfigMap { name, data } => {
                    self.current.config_maps.insert(name.clone(), Some(data.clone()));
                }
                Action::DeleteConfigMap { name } => {
                    self.current.config_maps.insert(name.clone(), None);
                }
                Action::ApplyStorageClass { name, provisioner, parameters } => {
                    self.current.storage_classes.insert(name.clone(), Some((provisioner.clone(), parameters.clone())));
                }
                Action::DeleteStorageClass { name } => {
                    self.current.storage_classes.insert(name.clone(), None);
                }
                Action::Roll { deployments, .. } => {
                    for (name, value) in deployments {
                        let d = self.deployments.iter_mut().find(|d| &d.name == name).unwrap();
                        if d.hash != *value {
                            d.hash = value.clone();
                            d.generation += 1;
                            d.updated_replicas = 0;
                            d.available_replicas = 0;
                            d.ready_replicas = 0;
                            d.progress_deadline_exceeded = false;
                            if value.as_deref() == Some("new") {
                                *self.rolled_to_desired.entry(name.clone()).or_default() += 1;
                            }
                        }
                    }
                }
                Action::RunValidation { job, .. } => {
                    if !self.jobs.iter().any(|j| &j.name == job) {
                        self.jobs.push(JobView { name: job.clone(), state: JobState::Running });
                    }
                }
                Action::Event { .. } => {}
            }
        }
        if upto >= plan.actions.len() {
            self.status = plan.status.clone();
        }
    }

    /// The Deployment and Job controllers.
    fn step(&mut self, ready: &[bool], bad: Option<usize>, canary_fails: bool, final_fails: bool) {
        let deadline = self.deadline;
        for (i, d) in self.deployments.iter_mut().enumerate() {
            if d.generation > d.observed_generation {
                d.observed_generation = d.generation;
            }
            let is_bad = bad == Some(i) && d.hash.as_deref() == Some("new");
            d.progress_deadline_exceeded |= is_bad && deadline;
            let ready_now = ready.is_empty() || ready[(i + self.steps) % ready.len()];
            if !is_bad && ready_now {
                d.updated_replicas = d.replicas;
                d.available_replicas = d.replicas;
                d.ready_replicas = d.replicas;
            }
        }
        for j in &mut self.jobs {
            if j.state == JobState::Running {
                let fails = if j.name.contains("-canary-") { canary_fails } else { final_fails };
                j.state = if fails { JobState::Failed } else { JobState::Succeeded };
            }
        }
        self.now += Duration::from_secs(20);
        self.steps += 1;
    }
}

#[test]
fn batch_sizes_follow_the_formula() {
    assert_eq!(batch_size(10, 30), 3);
    assert_eq!(batch_size(10, 10), 1);
    assert_eq!(batch_size(1, 10), 1);
    assert_eq!(batch_size(3, 50), 2);
    assert_eq!(batch_size(10, 100), 10);
    assert_eq!(batches(&(0..10).map(deployment).collect::<Vec<_>>(), 30).len(), 4);
}

#[test]
fn a_new_provider_snapshots_writes_and_rolls_the_first_batch_only() {
    let model = Model::new(10, 30, true);
    let plan = model.plan();
    let Action::SaveSnapshot(s) = &plan.actions[0] else { panic!("first the snapshot: {:?}", plan.actions) };
    assert_eq!(s.data, old_data());
    assert_eq!(s.provider.as_deref(), Some("old-provider"));
    assert!(matches!(&plan.actions[1], Action::ApplySecret { name, .. } if name == "app-s3"));
    let rolls: Vec<_> = plan.actions.iter().filter(|a| matches!(a, Action::Roll { .. })).collect();
    assert_eq!(rolls.len(), 1);
    let Action::Roll { batch: Some(1), deployments } = rolls[0] else { panic!("{rolls:?}") };
    let names: Vec<&str> = deployments.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["app-00", "app-01", "app-02"]);
    let rollout = plan.status.rollout.as_ref().unwrap();
    assert_eq!((rollout.phase, rollout.batch, rollout.batches), (Phase::RollingBatch, 1, 4));
    let progressing = conditions::get(&plan.status.conditions, PROGRESSING).unwrap();
    assert_eq!((progressing.status.as_str(), progressing.reason.as_str()), ("True", "RollingBatch"));
    assert_eq!(plan.status.observed_generation, Some(GEN));
}

#[test]
fn an_unfinished_batch_is_waited_for() {
    let mut model = Model::new(10, 30, false);
    let first = model.plan();
    model.apply(&first, usize::MAX);
    let plan = model.plan();
    assert!(!plan.actions.iter().any(|a| matches!(a, Action::Roll { .. })), "{:?}", plan.actions);
    assert_eq!(plan.requeue, Some(POLL));
}

#[test]
fn a_canary_validation_follows_the_first_batch() {
    let mut model = Model::new(10, 30, true);
    let first = model.plan();
    model.apply(&first, usize::MAX);
    model.step(&[], None, false, false);
    let plan = model.plan();
    assert!(
        plan.actions.iter().any(|a| matches!(a, Action::RunValidation { stage: Stage::Canary, .. })),
        "{:?}",
        plan.actions
    );
    assert!(!plan.actions.iter().any(|a| matches!(a, Action::Roll { .. })));
    assert_eq!(plan.status.rollout.as_ref().unwrap().phase, Phase::Validating);
}

#[test]
fn a_bad_batch_timeout_is_reported_in_status() {
    let mut model = Model::new(2, 50, false);
    model.spec.rollout.as_mut().unwrap().batch_timeout = "soon".into();
    let plan = model.plan();
    assert!(!plan.actions.iter().any(|a| matches!(a, Action::Roll { .. } | Action::ApplySecret { .. })));
    let degraded = conditions::get(&plan.status.conditions, DEGRADED).unwrap();
    assert_eq!(degraded.reason, "InvalidSpec");
    assert!(degraded.message.starts_with("spec.rollout.batchTimeout:"), "{}", degraded.message);
}

#[test]
fn after_a_rollback_nothing_is_retried_until_the_retry_annotation_changes() {
    let mut model = Model::new(4, 50, true);
    for _ in 0..20 {
        let plan = model.plan();
        model.apply(&plan, usize::MAX);
        model.step(&[], None, true, false);
    }
    assert_eq!(model.status.rollout.as_ref().unwrap().phase, Phase::RolledBack);
    let plan = model.plan();
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    assert_eq!(plan.requeue, None);
    let retried = plan_with_retry(&model, Some("1"));
    assert!(retried.actions.iter().any(|a| matches!(a, Action::Roll { batch: Some(1), .. })));
    // The new attempt first clears the last one's rollback intent.
    assert!(model.snapshot.as_ref().unwrap().rollback.is_some());
    let Some(Action::SaveSnapshot(cleared)) = retried.actions.first() else { panic!("{:?}", retried.actions) };
    assert_eq!(cleared.rollback, None);
    assert_eq!(cleared.deployments, model.snapshot.as_ref().unwrap().deployments);
}

/// Plays plans and controller steps (the canary failing) until the rollout
/// is rolling back.
fn rolling_back(model: &mut Model) {
    for _ in 0..20 {
        let plan = model.plan();
        model.apply(&plan, usize::MAX);
        if model.status.rollout.as_ref().is_some_and(|r| r.phase == Phase::RollingBack) {
            return;
        }
        model.step(&[], None, true, false);
    }
    panic!("never rolled back: {:?}", model.status.rollout);
}

#[test]
fn a_snapshot_saved_before_rollback_intents_existed_still_reads() {
    let json = r#"{"for_hash":"new","provider":null,"data":{"secrets":{},"config_maps":{},"storage_classes":{}},"deployments":{"app-00":"old"}}"#;
    let snapshot: Snapshot = serde_json::from_str(json).unwrap();
    assert_eq!(snapshot.rollback, None);
    assert!(!serde_json::to_string(&snapshot).unwrap().contains("rollback"));
}

#[test]
fn a_pass_replayed_after_restoring_a_deadline_exceeded_batch_goes_on_rolling_back() {
    let mut model = Model::new(4, 50, false);
    model.deadline = true;
    // Batch 1 (app-00, app-01) is rolled; app-01 reports ProgressDeadlineExceeded.
    let mut plan = model.plan();
    for _ in 0..20 {
        if plan.actions.iter().any(|a| matches!(a, Action::Roll { batch: None, .. })) {
            break;
        }
        model.apply(&plan, usize::MAX);
        model.step(&[], Some(1), false, false);
        plan = model.plan();
    }
    // The rollback is decided and saved before anything is restored.
    let Some(Action::SaveSnapshot(saved)) = plan.actions.first() else { panic!("{:?}", plan.actions) };
    let intent = saved.rollback.clone().expect("the rollback intent");
    assert_eq!((intent.cause, intent.hash.as_str()), (FailureCause::RolloutFailed, "new"));
    assert!(intent.message.contains("app-01"), "{}", intent.message);
    // Killed after the Deployments are restored, before the status.
    let restored = plan.actions.iter().position(|a| matches!(a, Action::Roll { batch: None, .. })).unwrap();
    model.apply(&plan, restored + 1);
    assert_eq!(model.status.rollout.as_ref().unwrap().phase, Phase::RollingBatch);
    assert!(model.deployments.iter().all(|d| d.hash.as_deref() == Some("old")));
    // The replayed pass continues the rollback: no roll forward.
    let replayed = model.plan();
    let forward: Vec<_> = replayed.actions.iter().filter(|a| matches!(a, Action::Roll { .. })).collect();
    assert!(forward.is_empty(), "{forward:?}");
    let rollout = replayed.status.rollout.clone().unwrap();
    assert_eq!(rollout.phase, Phase::RollingBack);
    assert_eq!(rollout.restoring, ["app-00", "app-01"]);
    assert!(rollout.failure.unwrap().contains("app-01"));
    model.apply(&replayed, usize::MAX);
    for _ in 0..5 {
        model.step(&[], Some(1), false, false);
        let plan = model.plan();
        model.apply(&plan, usize::MAX);
    }
    assert_eq!(model.status.rollout.as_ref().unwrap().phase, Phase::RolledBack);
    assert!(model.rolled_to_desired.values().all(|n| *n == 1), "{:?}", model.rolled_to_desired);
}

#[test]
fn a_rollback_is_progressing_until_the_restored_deployments_are_rolled_out() {
    let mut model = Model::new(4, 50, true);
    rolling_back(&mut model);
    // The data is back, the canary batch re-rolled to its old template.
    assert_eq!(model.current, old_data());
    let rollout = model.status.rollout.clone().unwrap();
    assert_eq!(rollout.restoring, ["app-00", "app-01"]);
    assert!(model.deployments[..2].iter().all(|d| d.hash.as_deref() == Some("old")));
    let c = &model.status.conditions;
    let progressing = conditions::get(c, PROGRESSING).unwrap();
    assert_eq!((progressing.status.as_str(), progressing.reason.as_str()), ("True", "RollingBack"));
    assert_eq!(conditions::get(c, READY).unwrap().reason, "RollingBack");
    assert!(!conditions::is_true(c, DEGRADED));

    // Not rolled out yet: still RollingBack, nothing re-rolled again.
    let plan = model.plan();
    assert!(!plan.actions.iter().any(|a| matches!(a, Action::Roll { .. })), "{:?}", plan.actions);
    assert_eq!(plan.status.rollout.as_ref().unwrap().phase, Phase::RollingBack);
    assert!(plan.requeue.is_some());

    // Rolled out: Degraded/RolledBack, and it stays there.
    model.step(&[], None, true, false);
    let plan = model.plan();
    model.apply(&plan, usize::MAX);
    assert_eq!(model.status.rollout.as_ref().unwrap().phase, Phase::RolledBack);
    let degraded = conditions::get(&model.status.conditions, DEGRADED).unwrap();
    assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", "RolledBack"));
    assert!(degraded.message.contains("2 Deployment(s) re-rolled"), "{}", degraded.message);
    assert!(!conditions::is_true(&model.status.conditions, PROGRESSING));
    assert!(plan.actions.iter().any(|a| matches!(a, Action::Event { reason: "RolledBack", .. })));
    assert_eq!(plan.requeue, None);
}

#[test]
fn a_rollback_not_rolled_out_within_the_batch_timeout_is_rollback_failed() {
    let mut model = Model::new(4, 50, true);
    rolling_back(&mut model);
    model.now += Duration::from_secs(11 * 60);
    let plan = model.plan();
    model.apply(&plan, usize::MAX);
    assert_eq!(model.status.rollout.as_ref().unwrap().phase, Phase::Failed);
    let degraded = conditions::get(&model.status.conditions, DEGRADED).unwrap();
    assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", "RollbackFailed"));
    assert!(degraded.message.contains("the rollback did not complete"), "{}", degraded.message);
    assert!(degraded.message.contains("app-00"), "{}", degraded.message);
    // Not retried until the generation or the retry annotation changes.
    let again = model.plan();
    assert!(again.actions.is_empty(), "{:?}", again.actions);
    assert_eq!(conditions::get(&again.status.conditions, DEGRADED).unwrap().reason, "RollbackFailed");
}

fn plan_with_retry(model: &Model, retry: Option<&str>) -> Plan {
    plan(&Input {
        name: "app-storage",
        generation: GEN,
        retry,
        spec: &model.spec,
        status: &model.status,
        desired: &model.desired,
        current: &model.current,
        snapshot: model.snapshot.as_ref(),
        deployments: &model.deployments,
        jobs: &model.jobs,
        now: model.now,
    })
}

fn in_batch(batches: &[Vec<String>], name: &str) -> usize {
    batches.iter().position(|b| b.iter().any(|d| d == name)).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random fleets, readiness, validation outcomes and crashes mid-plan:
    /// one batch in flight at most, no batch before the previous one is
    /// complete, every status stamped with the generation, a rollback
    /// restores exactly the snapshot, nothing is rolled twice, and after a
    /// rollback began no Deployment gets the new data's hash again.
    #[test]
    fn rollouts_keep_their_invariants(
        count in 0usize..12,
        percent in 1u32..=100,
        validation in any::<bool>(),
        bad in proptest::option::weighted(0.3, 0usize..12),
        deadline in any::<bool>(),
        canary_fails in proptest::bool::weighted(0.2),
        final_fails in proptest::bool::weighted(0.2),
        ready in proptest::collection::vec(proptest::bool::weighted(0.7), 12),
        crashes in proptest::collection::vec(proptest::option::weighted(0.3, 0usize..12), 1..30),
    ) {
        prop_assume!(ready.iter().any(|r| *r));
        let mut model = Model::new(count, percent, validation);
        model.deadline = deadline;
        let mut rolled_back_while_progressing = false;
        let snapshot_data = model.current.clone();
        let before: BTreeMap<String, Option<String>> =
            model.deployments.iter().map(|d| (d.name.clone(), d.hash.clone())).collect();
        for i in 0..400 {
            let plan = model.plan();
            prop_assert_eq!(plan.status.observed_generation, Some(GEN));
            for c in &plan.status.conditions {
                prop_assert_eq!(c.observed_generation, GEN, "{:?}", c);
            }
            let sorted: Vec<Vec<String>> = batches(&model.deployments, percent)
                .iter()
                .map(|b| b.iter().map(|d| d.name.clone()).collect())
                .collect();
            let forward: Vec<&Action> = plan.actions.iter().filter(|a| matches!(a, Action::Roll { batch: Some(_), .. })).collect();
            prop_assert!(forward.len() <= 1, "{:?}", forward);
            if let Some(Action::Roll { deployments, .. }) = forward.first() {
                let ks: Vec<usize> = deployments.iter().map(|(n, _)| in_batch(&sorted, n)).collect();
                prop_assert!(ks.windows(2).all(|w| w[0] == w[1]), "one batch per roll: {:?}", ks);
                let k = ks[0];
                for earlier in &sorted[..k] {
                    for name in earlier {
                        let d = model.deployments.iter().find(|d| &d.name == name).unwrap();
                        prop_assert_eq!(d.hash.as_deref(), Some("new"));
                        prop_assert_eq!(d.rollout_state(), RolloutState::Complete, "{} before batch {}", d.name, k + 1);
                    }
                }
            }
            if model.snapshot.as_ref().is_some_and(|s| s.rollback.is_some()) {
                for action in &plan.actions {
                    if let Action::Roll { deployments, .. } = action {
                        let forward: Vec<_> = deployments.iter().filter(|(_, v)| v.as_deref() == Some("new")).collect();
                        prop_assert!(forward.is_empty(), "rolled forward after a rollback began: {:?}", forward);
                    }
                }
            }
            // Crashes in the first passes only: an operator that always dies never finishes.
            let crash = crashes.get(i).copied().flatten();
            model.apply(&plan, crash.unwrap_or(usize::MAX));
            // In flight: updated but not complete; all in one batch.
            let in_flight: Vec<usize> = model
                .deployments
                .iter()
                .filter(|d| d.hash.as_deref() == Some("new") && d.rollout_state() != RolloutState::Complete)
                .map(|d| in_batch(&sorted, &d.name))
                .collect();
            let phase = model.status.rollout.as_ref().map(|r| r.phase);
            if phase != Some(Phase::RolledBack) {
                prop_assert!(in_flight.windows(2).all(|w| w[0] == w[1]), "in flight: {:?}", in_flight);
            }
            if phase == Some(Phase::RollingBack) {
                // The data is back at once; the Deployments roll back; it is
                // Progressing, not yet Degraded.
                prop_assert_eq!(&model.current, &snapshot_data);
                prop_assert!(in_flight.is_empty(), "rolling forward while rolling back: {:?}", in_flight);
                prop_assert!(conditions::is_true(&model.status.conditions, PROGRESSING));
                prop_assert!(!conditions::is_true(&model.status.conditions, DEGRADED));
                rolled_back_while_progressing |= !model.status.rollout.as_ref().unwrap().restoring.is_empty();
            }
            if phase == Some(Phase::RolledBack) {
                prop_assert_eq!(&model.current, &snapshot_data);
                let now: BTreeMap<String, Option<String>> =
                    model.deployments.iter().map(|d| (d.name.clone(), d.hash.clone())).collect();
                prop_assert_eq!(&now, &before);
                prop_assert!(conditions::is_true(&model.status.conditions, DEGRADED));
                // Every re-rolled Deployment is rolled out before RolledBack.
                for name in &model.status.rollout.as_ref().unwrap().restoring {
                    let d = model.deployments.iter().find(|d| &d.name == name).unwrap();
                    prop_assert_eq!(d.rollout_state(), RolloutState::Complete, "{} not rolled back yet", name);
                }
                prop_assert!(
                    model.status.rollout.as_ref().unwrap().restoring.is_empty() || rolled_back_while_progressing,
                    "RolledBack without waiting"
                );
                break;
            }
            let settled_on_new = model.status.rollout.as_ref().is_some_and(|r| r.hash == "new");
            if phase == Some(Phase::Complete) && settled_on_new {
                break;
            }
            model.step(&ready, bad, canary_fails, final_fails);
        }
        for (name, n) in &model.rolled_to_desired {
            prop_assert!(*n <= 1, "{} rolled {} times", name, n);
        }
        let phase = model.status.rollout.as_ref().map(|r| r.phase);
        let fails = (validation && (canary_fails || final_fails)) || bad.is_some_and(|b| b < count);
        if !fails {
            prop_assert_eq!(phase, Some(Phase::Complete));
            prop_assert!(model.deployments.iter().all(|d| d.hash.as_deref() == Some("new")));
            prop_assert!(conditions::is_true(&model.status.conditions, READY));
        } else {
            prop_assert!(phase == Some(Phase::RolledBack) || phase == Some(Phase::Complete), "{:?}", phase);
        }
    }
}

#[test]
fn conditions_keep_their_transition_time_while_rolling() {
    let mut model = Model::new(10, 30, false);
    let first = model.plan();
    model.apply(&first, usize::MAX);
    let t0: Vec<Condition> = model.status.conditions.clone();
    model.now += Duration::from_secs(5);
    let plan = model.plan();
    for c in &plan.status.conditions {
        let before = t0.iter().find(|b| b.type_ == c.type_).unwrap();
        assert_eq!(c.last_transition_time, before.last_transition_time, "{}", c.type_);
    }
}
