//! Shared set-up for the operator's tests: a `StorageBackend`, its
//! credentials, a fleet of Deployments in an in-memory cluster, and a loop
//! that plays the operator against the scripted controllers.
#![allow(dead_code)]

pub mod wire;

use std::collections::BTreeMap;
use std::time::Duration;

use cutover_operator::crd::{
    AppConfigMap, AppSecret, Field, RolloutSpec, SecretKeys, StorageBackend, StorageBackendSpec, ValidationSpec,
};
use cutover_operator::memory::MemoryCluster;
use cutover_operator::reconcile::reconcile;
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::Timestamp;
use kube::api::ObjectMeta;

pub const NS: &str = "prod";
pub const NAME: &str = "app-storage";
pub const SECRET_KEY: &str = "wJalrXUtnFEMI-secret-do-not-log";

pub fn spec(provider: &str, percent: u32, timeout: &str, validation: bool) -> StorageBackendSpec {
    StorageBackendSpec {
        provider: provider.into(),
        endpoint: format!("https://{provider}.s3.example.test"),
        region: Some("eu-west-1".into()),
        bucket: "app-prod-bucket".into(),
        credentials_secret: format!("{provider}-creds"),
        path_style: false,
        secret: Some(AppSecret { name: "app-s3".into(), keys: SecretKeys::default() }),
        config_maps: vec![AppConfigMap {
            name: "app-config".into(),
            keys: BTreeMap::from([("S3_ENDPOINT".into(), Field::Endpoint), ("S3_BUCKET".into(), Field::Bucket)]),
        }],
        storage_class: None,
        rollout: Some(RolloutSpec {
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([("app.kubernetes.io/part-of".into(), "shop".into())])),
                match_expressions: None,
            },
            batch_percent: percent,
            batch_timeout: timeout.into(),
        }),
        validation: validation.then(|| ValidationSpec {
            template: PodTemplateSpec {
                metadata: None,
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "check".into(),
                        image: Some("amazon/aws-cli:2".into()),
                        args: Some(vec!["s3".into(), "ls".into()]),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
            },
            active_deadline_seconds: Some(300),
            ttl_seconds_after_finished: None,
        }),
    }
}

/// A cluster with the credentials of `providers`, the old application data,
/// `count` Deployments of the shop (and one that is not), and the resource.
pub fn cluster(count: usize, spec: StorageBackendSpec, providers: &[&str]) -> MemoryCluster {
    let cluster = MemoryCluster::new();
    for p in providers {
        let data = BTreeMap::from([
            ("access_key_id".to_string(), format!("AKIA-{p}")),
            ("secret_access_key".to_string(), format!("{SECRET_KEY}-{p}")),
        ]);
        cluster.state().secrets.insert((NS.into(), format!("{p}-creds")), data);
    }
    cluster.state().secrets.insert(
        (NS.into(), "app-s3".into()),
        BTreeMap::from([("AWS_ENDPOINT_URL_S3".to_string(), "https://old.example.test".to_string())]),
    );
    for i in 0..count {
        cluster.add_deployment(NS, &format!("app-{i:02}"), &[("app.kubernetes.io/part-of", "shop")], 2);
    }
    cluster.add_deployment(NS, "unrelated", &[("app", "other")], 1);
    let sb = StorageBackend {
        metadata: ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some(NS.into()),
            uid: Some("uid-1".into()),
            generation: Some(1),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    };
    cluster.state().storage_backends.insert((NS.into(), NAME.into()), sb);
    cluster
}

/// Changes the spec (the API server bumps the generation).
pub fn change_spec(cluster: &MemoryCluster, spec: StorageBackendSpec) {
    let mut s = cluster.state();
    let sb = s.storage_backends.get_mut(&(NS.to_string(), NAME.to_string())).unwrap();
    sb.spec = spec;
    sb.metadata.generation = Some(sb.metadata.generation.unwrap_or(0) + 1);
}

pub fn start() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

/// Plays the operator: reconcile, let the controllers act, advance the clock
/// by the requeue; until nothing is left to do, an error, or `max` passes.
/// Returns the clock and the error, if one stopped it.
pub async fn drive(cluster: &MemoryCluster, mut now: Timestamp, max: usize) -> (Timestamp, Option<String>) {
    for _ in 0..max {
        let sb = cluster.storage_backend(NS, NAME).unwrap();
        match reconcile(cluster, &sb, now).await {
            Ok(None) => return (now, None),
            Ok(Some(after)) => now += after,
            Err(e) => return (now, Some(e.to_string())),
        }
        cluster.tick();
        now += Duration::from_secs(1);
    }
    panic!("the rollout did not settle in {max} passes");
}

/// Plays the operator until the rollout reaches `phase` (panics after `max`
/// passes); returns the clock.
pub async fn until_phase(
    cluster: &MemoryCluster,
    mut now: Timestamp,
    phase: cutover_operator::crd::Phase,
    max: usize,
) -> Timestamp {
    for _ in 0..max {
        let sb = cluster.storage_backend(NS, NAME).unwrap();
        if sb.status.as_ref().and_then(|s| s.rollout.as_ref()).is_some_and(|r| r.phase == phase) {
            return now;
        }
        let after = reconcile(cluster, &sb, now).await.unwrap();
        cluster.tick();
        now += after.unwrap_or_default() + Duration::from_secs(1);
    }
    panic!("the rollout did not reach {phase:?} in {max} passes");
}

/// Every Deployment's restarts (values its pod-template annotation took).
pub fn restarts(cluster: &MemoryCluster) -> BTreeMap<String, Vec<Option<String>>> {
    cluster.state().deployments.iter().map(|((_, n), d)| (n.clone(), d.restarts.clone())).collect()
}

/// The reasons of the Events recorded so far.
pub fn event_reasons(cluster: &MemoryCluster) -> Vec<String> {
    cluster.state().events.iter().map(|(r, _, _)| r.clone()).collect()
}

/// Nothing the operator put in status or Events contains a secret key.
pub fn assert_no_secret_leaked(cluster: &MemoryCluster) {
    let s = cluster.state();
    for status in &s.status_writes {
        let json = serde_json::to_string(status).unwrap();
        assert!(!json.contains(SECRET_KEY), "status leaks a secret: {json}");
    }
    for (reason, message, _) in &s.events {
        assert!(!message.contains(SECRET_KEY), "event {reason} leaks a secret: {message}");
    }
}
