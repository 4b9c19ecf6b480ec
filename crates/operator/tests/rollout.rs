//! Whole rollouts against the in-memory cluster with its scripted Deployment
//! and Job controllers.

mod support;

use cutover_operator::conditions::{self, DEGRADED, PROGRESSING, READY};
use cutover_operator::crd::Phase;
use cutover_operator::memory::Behaviour;
use cutover_operator::view::JobState;
use support::*;

#[tokio::test]
async fn ten_deployments_at_30_percent_roll_in_four_batches_with_a_canary() {
    let cluster = cluster(10, spec("aws-primary", 30, "10m", true), &["aws-primary", "r2"]);
    let (now, err) = drive(&cluster, start(), 200).await;
    assert_eq!(err, None);

    let sb = cluster.storage_backend(NS, NAME).unwrap();
    let status = sb.status.clone().unwrap();
    let rollout = status.rollout.clone().unwrap();
    assert_eq!((rollout.phase, rollout.batches, rollout.updated, rollout.total), (Phase::Complete, 4, 10, 10));
    assert!(conditions::is_true(&status.conditions, READY));
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.active_provider.as_deref(), Some("aws-primary"));
    for (name, r) in &restarts(&cluster) {
        if name == "unrelated" {
            assert!(r.is_empty(), "a Deployment outside the selector was restarted");
        } else {
            assert_eq!(r, &vec![Some(rollout.hash.clone())], "{name}");
        }
    }
    // The order: batch 1, canary, batches 2-4, final validation.
    let reasons = event_reasons(&cluster);
    let kept: Vec<&str> = reasons
        .iter()
        .map(String::as_str)
        .filter(|r| matches!(*r, "BatchStarted" | "BatchComplete" | "ValidationStarted" | "ValidationSucceeded"))
        .collect();
    assert_eq!(
        kept,
        [
            "BatchStarted",
            "BatchComplete",
            "ValidationStarted",
            "ValidationSucceeded",
            "BatchStarted",
            "BatchComplete",
            "BatchStarted",
            "BatchComplete",
            "BatchStarted",
            "BatchComplete",
            "ValidationStarted",
            "ValidationSucceeded",
        ]
    );
    let jobs: Vec<(String, String)> = cluster
        .state()
        .jobs
        .iter()
        .map(|((_, n), j)| {
            let spec = j.job.spec.clone().unwrap();
            assert_eq!(spec.backoff_limit, Some(0));
            assert_eq!(spec.active_deadline_seconds, Some(300));
            assert!(spec.ttl_seconds_after_finished.is_some());
            let pod = spec.template.spec.unwrap();
            assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
            (n.clone(), j.job.metadata.labels.clone().unwrap()["cutover.dev/validation-stage"].clone())
        })
        .collect();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    let app = cluster.state().secrets[&(NS.to_string(), "app-s3".to_string())].clone();
    assert_eq!(app["AWS_ENDPOINT_URL_S3"], "https://aws-primary.s3.example.test");
    assert_eq!(app["AWS_REGION"], "eu-west-1");
    assert_eq!(app["S3_BUCKET"], "app-prod-bucket");
    assert_eq!(app["AWS_ACCESS_KEY_ID"], "AKIA-aws-primary");
    assert_eq!(app["AWS_SECRET_ACCESS_KEY"], format!("{SECRET_KEY}-aws-primary"));
    let config = cluster.state().config_maps[&(NS.to_string(), "app-config".to_string())].clone();
    assert_eq!(config["S3_ENDPOINT"], "https://aws-primary.s3.example.test");

    // A second pass with nothing changed does nothing.
    let writes = cluster.state().status_writes.len();
    let (_, err) = drive(&cluster, now, 5).await;
    assert_eq!(err, None);
    assert_eq!(cluster.state().status_writes.len(), writes);
    assert_eq!(restarts(&cluster)["app-00"].len(), 1);

    // The next provider: a new generation, a new rollout, the previous provider kept.
    change_spec(&cluster, spec("r2", 30, "10m", true));
    let (_, err) = drive(&cluster, now, 200).await;
    assert_eq!(err, None);
    let status = cluster.storage_backend(NS, NAME).unwrap().status.unwrap();
    assert_eq!(status.active_provider.as_deref(), Some("r2"));
    assert_eq!(status.previous_provider.as_deref(), Some("aws-primary"));
    assert_eq!(status.observed_generation, Some(2));
    assert!(status.conditions.iter().all(|c| c.observed_generation == 2));
    assert!(restarts(&cluster).iter().filter(|(n, _)| *n != "unrelated").all(|(_, r)| r.len() == 2));
    assert_no_secret_leaked(&cluster);
}

#[tokio::test]
async fn a_readiness_timeout_in_batch_2_is_rolled_back() {
    let cluster = cluster(10, spec("aws-primary", 30, "2m", true), &["aws-primary"]);
    cluster.state().deployments.get_mut(&(NS.to_string(), "app-04".to_string())).unwrap().behaviour =
        Behaviour::NeverReadyWithNewData;
    let before = cluster.state().secrets[&(NS.to_string(), "app-s3".to_string())].clone();
    // While the restored Deployments roll out: Progressing/RollingBack, the
    // data already back, not yet Degraded.
    let now = until_phase(&cluster, start(), Phase::RollingBack, 300).await;
    let status = cluster.storage_backend(NS, NAME).unwrap().status.unwrap();
    let progressing = conditions::get(&status.conditions, PROGRESSING).unwrap();
    assert_eq!((progressing.status.as_str(), progressing.reason.as_str()), ("True", "RollingBack"));
    assert_eq!(conditions::get(&status.conditions, READY).unwrap().reason, "RollingBack");
    assert!(!conditions::is_true(&status.conditions, DEGRADED));
    assert_eq!(cluster.state().secrets[&(NS.to_string(), "app-s3".to_string())], before);
    let restoring = status.rollout.unwrap().restoring;
    assert_eq!(restoring, (0..6).map(|i| format!("app-{i:02}")).collect::<Vec<_>>());
    let (_, err) = drive(&cluster, now, 300).await;
    assert_eq!(err, None);

    let status = cluster.storage_backend(NS, NAME).unwrap().status.unwrap();
    let rollout = status.rollout.clone().unwrap();
    assert_eq!((rollout.phase, rollout.batch), (Phase::RolledBack, 2));
    let degraded = conditions::get(&status.conditions, DEGRADED).unwrap();
    assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", "RolledBack"));
    assert!(degraded.message.contains("app-04"), "{}", degraded.message);
    assert!(!conditions::is_true(&status.conditions, READY));
    assert_eq!(status.active_provider, None, "nothing was active before");
    // The data is back, batches 1 and 2 were re-rolled back, 3 and 4 never touched.
    assert_eq!(cluster.state().secrets[&(NS.to_string(), "app-s3".to_string())], before);
    assert!(!cluster.state().config_maps.contains_key(&(NS.to_string(), "app-config".to_string())));
    let restarts = restarts(&cluster);
    for i in 0..6 {
        assert_eq!(restarts[&format!("app-{i:02}")], vec![Some(rollout.hash.clone()), None], "app-{i:02}");
    }
    for i in 6..10 {
        assert!(restarts[&format!("app-{i:02}")].is_empty(), "app-{i:02}");
    }
    assert!(event_reasons(&cluster).contains(&"RolledBack".to_string()));
    assert_no_secret_leaked(&cluster);
}

#[tokio::test]
async fn a_failed_validation_job_is_rolled_back_and_not_retried() {
    let cluster = cluster(10, spec("aws-primary", 30, "10m", true), &["aws-primary"]);
    cluster.state().job_outcomes.insert("Canary".into(), JobState::Failed);
    let (now, err) = drive(&cluster, start(), 200).await;
    assert_eq!(err, None);

    let status = cluster.storage_backend(NS, NAME).unwrap().status.unwrap();
    assert_eq!(status.rollout.as_ref().unwrap().phase, Phase::RolledBack);
    let validation = status.last_validation.clone().unwrap();
    assert_eq!((validation.stage.as_str(), validation.result.as_str()), ("Canary", "Failed"));
    assert!(conditions::is_true(&status.conditions, DEGRADED));
    let restarts_after = restarts(&cluster);
    for i in 0..3 {
        assert_eq!(restarts_after[&format!("app-{i:02}")].len(), 2, "rolled and rolled back");
    }
    for i in 3..10 {
        assert!(restarts_after[&format!("app-{i:02}")].is_empty());
    }
    // No retry until the generation or the retry annotation changes.
    let (now, _) = drive(&cluster, now, 5).await;
    assert_eq!(restarts(&cluster), restarts_after);
    cluster.state().job_outcomes.clear();
    {
        let mut s = cluster.state();
        let sb = s.storage_backends.get_mut(&(NS.to_string(), NAME.to_string())).unwrap();
        sb.metadata.annotations = Some([("cutover.dev/retry".to_string(), "1".to_string())].into());
    }
    let (_, err) = drive(&cluster, now, 200).await;
    assert_eq!(err, None);
    let status = cluster.storage_backend(NS, NAME).unwrap().status.unwrap();
    assert_eq!(status.rollout.unwrap().phase, Phase::Complete);
    assert!(!conditions::is_true(&status.conditions, DEGRADED));
}

#[tokio::test]
async fn an_operator_killed_mid_batch_resumes_without_restarting_anything_twice() {
    for kill_after in [0, 1, 2, 3, 4, 5, 6, 7, 9, 12, 16, 20, 25] {
        let cluster = cluster(10, spec("aws-primary", 30, "10m", true), &["aws-primary"]);
        cluster.state().fail_after_writes = Some(kill_after);
        let (now, err) = drive(&cluster, start(), 200).await;
        assert!(err.is_some(), "kill_after {kill_after}: the operator was not killed");
        // A new operator process: nothing in memory, the cluster as it was left.
        cluster.state().fail_after_writes = None;
        let (_, err) = drive(&cluster, now, 200).await;
        assert_eq!(err, None);
        let status = cluster.storage_backend(NS, NAME).unwrap().status.unwrap();
        let hash = status.rollout.clone().unwrap().hash;
        assert_eq!(status.rollout.unwrap().phase, Phase::Complete, "kill_after {kill_after}");
        for (name, r) in restarts(&cluster) {
            if name != "unrelated" {
                assert_eq!(r, vec![Some(hash.clone())], "kill_after {kill_after}: {name}");
            }
        }
    }
}

#[tokio::test]
async fn storage_class_parameters_are_recreated_not_updated() {
    use cutover_operator::crd::{Field, StorageClassSpec};
    let mut spec = spec("aws-primary", 100, "10m", false);
    spec.storage_class = Some(StorageClassSpec {
        name: "s3-shop".into(),
        provisioner: "ru.yandex.s3.csi".into(),
        parameters: [("mounter".to_string(), "geesefs".to_string())].into(),
        fields: [("bucket".to_string(), Field::Bucket), ("endpoint".to_string(), Field::Endpoint)].into(),
    });
    let cluster = cluster(2, spec, &["aws-primary"]);
    cluster
        .state()
        .storage_classes
        .insert("s3-shop".into(), ("ru.yandex.s3.csi".into(), [("bucket".to_string(), "old".to_string())].into()));
    let (_, err) = drive(&cluster, start(), 50).await;
    assert_eq!(err, None);
    let s = cluster.state();
    assert_eq!(s.storage_class_recreations, 1);
    assert_eq!(s.storage_classes["s3-shop"].1["bucket"], "app-prod-bucket");
    assert!(s.events.iter().any(|(r, m, _)| r == "StorageClassRecreated" && m.contains("s3-shop")));
}

#[tokio::test]
async fn missing_credentials_are_reported_without_touching_anything() {
    let cluster = cluster(3, spec("aws-primary", 30, "10m", false), &[]);
    let sb = cluster.storage_backend(NS, NAME).unwrap();
    let requeue = cutover_operator::reconcile::reconcile(&cluster, &sb, start()).await.unwrap();
    assert!(requeue.is_some());
    let status = cluster.storage_backend(NS, NAME).unwrap().status.unwrap();
    let degraded = conditions::get(&status.conditions, DEGRADED).unwrap();
    assert_eq!(degraded.reason, "CredentialsMissing");
    assert!(degraded.message.contains("aws-primary-creds"), "{}", degraded.message);
    assert!(restarts(&cluster).values().all(Vec::is_empty));
}

#[tokio::test]
async fn a_rollback_that_does_not_complete_is_rollback_failed() {
    // app-04 never becomes ready, whatever its template: the rollback of
    // batch 2 cannot complete either.
    let cluster = cluster(10, spec("aws-primary", 30, "2m", true), &["aws-primary"]);
    cluster.state().deployments.get_mut(&(NS.to_string(), "app-04".to_string())).unwrap().behaviour =
        Behaviour::NeverReady;
    let now = until_phase(&cluster, start(), Phase::RollingBack, 300).await;
    let (now, err) = drive(&cluster, now, 300).await;
    assert_eq!(err, None);

    let status = cluster.storage_backend(NS, NAME).unwrap().status.unwrap();
    assert_eq!(status.rollout.as_ref().unwrap().phase, Phase::Failed);
    let degraded = conditions::get(&status.conditions, DEGRADED).unwrap();
    assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", "RollbackFailed"));
    assert!(
        degraded.message.contains("the rollback did not complete") && degraded.message.contains("app-04"),
        "{}",
        degraded.message
    );
    assert!(!conditions::is_true(&status.conditions, PROGRESSING));
    assert!(event_reasons(&cluster).contains(&"RollbackFailed".to_string()));
    // Not retried: the same generation stays put.
    let restarts_after = restarts(&cluster);
    let (_, _) = drive(&cluster, now, 5).await;
    assert_eq!(restarts(&cluster), restarts_after);
    assert_no_secret_leaked(&cluster);
}

#[tokio::test]
async fn an_operator_killed_mid_rollback_resumes_and_still_waits() {
    for kill_after in [0, 1, 2, 3, 4, 5, 6, 8, 10] {
        let cluster = cluster(10, spec("aws-primary", 30, "2m", true), &["aws-primary"]);
        cluster.state().deployments.get_mut(&(NS.to_string(), "app-04".to_string())).unwrap().behaviour =
            Behaviour::NeverReadyWithNewData;
        let before = cluster.state().secrets[&(NS.to_string(), "app-s3".to_string())].clone();
        // Batch 2 is in flight and about to time out.
        let mut now = until_phase(&cluster, start(), Phase::RollingBatch, 300).await;
        loop {
            let rollout = cluster.storage_backend(NS, NAME).unwrap().status.unwrap().rollout.unwrap();
            if rollout.phase == Phase::RollingBatch && rollout.batch == 2 {
                break;
            }
            let sb = cluster.storage_backend(NS, NAME).unwrap();
            now += cutover_operator::reconcile::reconcile(&cluster, &sb, now).await.unwrap().unwrap_or_default();
            cluster.tick();
        }
        now += std::time::Duration::from_secs(3 * 60);
        cluster.state().fail_after_writes = Some(kill_after);
        let (now, err) = drive(&cluster, now, 300).await;
        assert!(err.is_some(), "kill_after {kill_after}: the operator was not killed");
        // A new operator process: nothing in memory, the cluster as it was left.
        cluster.state().fail_after_writes = None;
        let (_, err) = drive(&cluster, now, 300).await;
        assert_eq!(err, None);

        let status = cluster.storage_backend(NS, NAME).unwrap().status.unwrap();
        let rollout = status.rollout.clone().unwrap();
        assert_eq!(rollout.phase, Phase::RolledBack, "kill_after {kill_after}");
        assert!(conditions::is_true(&status.conditions, DEGRADED));
        assert_eq!(cluster.state().secrets[&(NS.to_string(), "app-s3".to_string())], before);
        let restarts = restarts(&cluster);
        for i in 0..6 {
            let name = format!("app-{i:02}");
            assert_eq!(restarts[&name], vec![Some(rollout.hash.clone()), None], "kill_after {kill_after}: {name}");
        }
        // RolledBack only once every re-rolled Deployment is rolled out.
        let state = cluster.state();
        for name in &rollout.restoring {
            let d = &state.deployments[&(NS.to_string(), name.clone())];
            assert_eq!((d.updated, d.available), (d.replicas, d.replicas), "kill_after {kill_after}: {name}");
        }
    }
}

#[tokio::test]
async fn regression_a_crash_after_restoring_rolled_a_deployment_forward_again() {
    // app-04 hits ProgressDeadlineExceeded in batch 2; the operator is killed
    // at every point of the pass that rolls back (after the snapshot, the
    // data and some or all of the Deployments are restored, before the
    // status). The resumed operator must go on rolling back: no Deployment
    // gets the new data's hash a second time. The pass writes 12 times: the
    // snapshot with the rollback intent, an Event, the Secret, the ConfigMap,
    // six Deployments, an Event, the status.
    for kill_after in 0..12 {
        let cluster = cluster(10, spec("aws-primary", 30, "10m", true), &["aws-primary"]);
        cluster.state().deployments.get_mut(&(NS.to_string(), "app-04".to_string())).unwrap().behaviour =
            Behaviour::DeadlineExceededWithNewData;
        let before = cluster.state().secrets[&(NS.to_string(), "app-s3".to_string())].clone();
        // Batch 2 is rolled and app-04 reports ProgressDeadlineExceeded.
        let mut now = start();
        loop {
            let rollout = cluster.storage_backend(NS, NAME).unwrap().status.and_then(|s| s.rollout);
            let failed = cluster.state().deployments[&(NS.to_string(), "app-04".to_string())].deadline_exceeded;
            if rollout.is_some_and(|r| r.phase == Phase::RollingBatch && r.batch == 2) && failed {
                break;
            }
            let sb = cluster.storage_backend(NS, NAME).unwrap();
            now += cutover_operator::reconcile::reconcile(&cluster, &sb, now).await.unwrap().unwrap_or_default();
            cluster.tick();
        }
        cluster.state().fail_after_writes = Some(kill_after);
        let (now, err) = drive(&cluster, now, 300).await;
        assert!(err.is_some(), "kill_after {kill_after}: the operator was not killed");
        // A new operator process: nothing in memory, the cluster as it was left.
        cluster.state().fail_after_writes = None;
        let (_, err) = drive(&cluster, now, 300).await;
        assert_eq!(err, None);

        let status = cluster.storage_backend(NS, NAME).unwrap().status.unwrap();
        let rollout = status.rollout.clone().unwrap();
        assert_eq!(rollout.phase, Phase::RolledBack, "kill_after {kill_after}");
        let degraded = conditions::get(&status.conditions, DEGRADED).unwrap();
        assert!(degraded.message.contains("app-04"), "kill_after {kill_after}: {}", degraded.message);
        assert_eq!(cluster.state().secrets[&(NS.to_string(), "app-s3".to_string())], before);
        let restarts = restarts(&cluster);
        for i in 0..6 {
            let name = format!("app-{i:02}");
            assert_eq!(restarts[&name], vec![Some(rollout.hash.clone()), None], "kill_after {kill_after}: {name}");
        }
        for i in 6..10 {
            assert!(restarts[&format!("app-{i:02}")].is_empty(), "kill_after {kill_after}: app-{i:02}");
        }
    }
}
