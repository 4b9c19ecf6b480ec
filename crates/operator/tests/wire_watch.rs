//! The watches on the wire: the exact list and watch requests (path,
//! `watch=true`, `resourceVersion`, `allowWatchBookmarks`, `timeoutSeconds`,
//! the label selector), a dropped watch resumed from the last
//! `resourceVersion` (an event's or a bookmark's), and `410 Gone` (as an
//! `ERROR` event and as an answer) re-listed and watched from the list's
//! `resourceVersion`.

mod support;

use std::time::Duration;

use cutover_operator::watch::{self, Backoff, Trigger};
use http::Method;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use kube::Api;
use serde_json::{Value, json};
use support::wire::*;
use tokio::sync::mpsc;

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/prod/deployments";
/// kube's metadata-only list and watch set this content type on their GET
/// and ask for metadata only.
const META: &str = "application/json";
const METADATA_ONLY: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
const METADATA_WATCH: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
const BACKOFF: Backoff = Backoff { initial: Duration::from_millis(10), max: Duration::from_millis(50) };

fn watch_query(version: &'static str) -> &'static [(&'static str, &'static str)] {
    match version {
        "100" => {
            &[("watch", "true"), ("timeoutSeconds", "290"), ("allowWatchBookmarks", "true"), ("resourceVersion", "100")]
        }
        "105" => {
            &[("watch", "true"), ("timeoutSeconds", "290"), ("allowWatchBookmarks", "true"), ("resourceVersion", "105")]
        }
        "200" => {
            &[("watch", "true"), ("timeoutSeconds", "290"), ("allowWatchBookmarks", "true"), ("resourceVersion", "200")]
        }
        _ => {
            &[("watch", "true"), ("timeoutSeconds", "290"), ("allowWatchBookmarks", "true"), ("resourceVersion", "300")]
        }
    }
}

fn list(version: &str) -> Value {
    json!({ "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": { "resourceVersion": version }, "items": [] })
}

fn deployment(kind: &str, name: &str, app: &str, version: &str) -> Value {
    json!({ "type": kind, "object": {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": name, "namespace": "prod", "resourceVersion": version, "labels": { "app": app } },
        "spec": { "selector": { "matchLabels": { "app": app } }, "template": {} }
    }})
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Trigger>) -> Trigger {
    tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.expect("a trigger").expect("the watch is running")
}

fn web(app: &str) -> Trigger {
    Trigger::Deployment { namespace: "prod".into(), labels: [("app".to_string(), app.to_string())].into() }
}

#[tokio::test]
async fn a_dropped_watch_resumes_and_a_410_relists() {
    let (client, handle) = mock();
    let server = serve(
        handle,
        vec![
            // The list that gives the watch its start.
            Expect::new(Method::GET, DEPLOYMENTS).content_type(META).accept(METADATA_ONLY).answer(200, list("100")),
            // An event, a bookmark, then the server drops the stream.
            Expect::new(Method::GET, DEPLOYMENTS).content_type(META).accept(METADATA_WATCH).query(watch_query("100")).events(vec![
                deployment("MODIFIED", "web", "web", "101"),
                json!({ "type": "BOOKMARK", "object": { "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "resourceVersion": "105" } } }),
            ]),
            // Resumed from the bookmark's version; it has expired (an ERROR event).
            Expect::new(Method::GET, DEPLOYMENTS).content_type(META).accept(METADATA_WATCH).query(watch_query("105")).events(vec![json!({
                "type": "ERROR",
                "object": status_body(410, "Expired", "too old resource version: 105 (180)")
            })]),
            // Re-listed; watched from the list's version; answered 410 outright.
            Expect::new(Method::GET, DEPLOYMENTS).content_type(META).accept(METADATA_ONLY).answer(200, list("200")),
            Expect::new(Method::GET, DEPLOYMENTS)
                .content_type(META).accept(METADATA_WATCH).query(watch_query("200"))
                .answer(410, status_body(410, "Expired", "too old resource version: 200 (250)")),
            Expect::new(Method::GET, DEPLOYMENTS).content_type(META).accept(METADATA_ONLY).answer(200, list("300")),
            Expect::new(Method::GET, DEPLOYMENTS).content_type(META).accept(METADATA_WATCH).query(watch_query("300")).events(vec![
                deployment("ADDED", "api", "api", "301"),
                deployment("DELETED", "web", "web", "302"),
            ]),
        ],
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    let api: Api<Deployment> = Api::namespaced(client, "prod");
    let task = tokio::spawn(watch::watch(api, "Deployments", None, tx, watch::deployment_trigger, BACKOFF));
    assert_eq!(next(&mut rx).await, Trigger::Resync);
    assert_eq!(next(&mut rx).await, web("web"));
    assert_eq!(next(&mut rx).await, Trigger::Resync, "the 410 event re-lists");
    assert_eq!(next(&mut rx).await, Trigger::Resync, "the 410 answer re-lists");
    assert_eq!(next(&mut rx).await, web("api"));
    assert_eq!(next(&mut rx).await, web("web"), "a deletion changes the set too");
    server.await.unwrap();
    task.abort();
}

#[tokio::test]
async fn the_job_watch_selects_by_the_owner_label_and_resumes_from_the_last_event() {
    let (client, handle) = mock();
    const JOBS: &str = "/apis/batch/v1/namespaces/prod/jobs";
    let job = |version: &str, state: &str| {
        json!({ "type": "MODIFIED", "object": {
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": { "name": "app-storage-validate-canary-0123456789", "namespace": "prod", "resourceVersion": version,
                          "labels": { "cutover.dev/storage-backend": "app-storage" } },
            "spec": { "template": {} },
            "status": { state: 1 }
        }})
    };
    let server = serve(
        handle,
        vec![
            Expect::new(Method::GET, JOBS)
                .content_type(META)
                .accept(METADATA_ONLY)
                .query(&[("labelSelector", "cutover.dev/storage-backend")])
                .answer(200, list("7")),
            Expect::new(Method::GET, JOBS)
                .content_type(META)
                .accept(METADATA_WATCH)
                .query(&[
                    ("watch", "true"),
                    ("timeoutSeconds", "290"),
                    ("labelSelector", "cutover.dev/storage-backend"),
                    ("allowWatchBookmarks", "true"),
                    ("resourceVersion", "7"),
                ])
                .events(vec![job("8", "active")]),
            // The stream dropped after the event: watch again from it.
            Expect::new(Method::GET, JOBS)
                .content_type(META)
                .accept(METADATA_WATCH)
                .query(&[
                    ("watch", "true"),
                    ("timeoutSeconds", "290"),
                    ("labelSelector", "cutover.dev/storage-backend"),
                    ("allowWatchBookmarks", "true"),
                    ("resourceVersion", "8"),
                ])
                .events(vec![job("9", "failed")]),
        ],
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    let api: Api<Job> = Api::namespaced(client, "prod");
    let task =
        tokio::spawn(watch::watch(api, "Jobs", Some("cutover.dev/storage-backend"), tx, watch::job_trigger, BACKOFF));
    let owner = Trigger::Job(("prod".into(), "app-storage".into()));
    assert_eq!(next(&mut rx).await, Trigger::Resync);
    assert_eq!(next(&mut rx).await, owner);
    assert_eq!(next(&mut rx).await, owner);
    server.await.unwrap();
    task.abort();
}
