//! `ca_file` of the `http`, `notify` and `terraform_cloud.run` steps: a
//! webhook receiver behind a private CA (a TLS terminator with a throwaway
//! CA made by openssl, in front of the recording server).

mod actuators_support;

use actuators_support::{Server, ctx, params};
use cutover_lab::tls::{TestPki, TlsFront};
use cutover_orchestrate::actuators::{StepError, run_external};
use serde_json::json;

struct Https {
    _dir: tempfile::TempDir,
    pki: TestPki,
    server: Server,
    front: TlsFront,
}

async fn https_receiver() -> Https {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path(), "hooks").unwrap();
    let server = Server::start(|_| (200, "{\"ok\": true}".into())).await;
    let front = TlsFront::start(&pki, server.addr).unwrap();
    Https { _dir: dir, pki, server, front }
}

#[tokio::test]
async fn webhook_with_internal_ca() {
    let h = https_receiver().await;
    let work = tempfile::tempdir().unwrap();
    let url = format!("{}/hooks/argo?token=s3cr3t", h.front.url());

    let with = params(json!({"url": url, "body": {"incident": "inc-42"}, "ca_file": h.pki.ca}));
    let result = run_external("http", &with, &ctx(work.path(), &[])).await.unwrap().unwrap();
    assert_eq!(result, json!({"status": 200, "body": "{\"ok\": true}"}));
    assert_eq!(h.server.requests()[0].path, "/hooks/argo?token=s3cr3t");

    // Without ca_file the receiver's certificate is not trusted: a failure
    // that says so (and how to fix it), without the URL's path or query.
    let with = params(json!({"url": url}));
    let err = run_external("http", &with, &ctx(work.path(), &[])).await.unwrap().unwrap_err();
    let StepError::Failed(message) = &err else { panic!("{err:?}") };
    assert!(message.contains("certificate") && message.contains("ca_file"), "{message}");
    assert!(!message.contains("s3cr3t"), "{message}");
    assert_eq!(h.server.requests().len(), 1, "nothing was sent without trust");
}

#[tokio::test]
async fn notify_webhook_with_internal_ca() {
    let h = https_receiver().await;
    let work = tempfile::tempdir().unwrap();
    let url = format!("{}/services/T0/B0", h.front.url());

    let with = params(json!({"url": url, "text": "hello", "ca_file": h.pki.ca}));
    let result = run_external("notify", &with, &ctx(work.path(), &[])).await.unwrap().unwrap();
    assert_eq!(result["delivered"], json!(true), "{result}");

    let with = params(json!({"url": url, "text": "hello"}));
    let result = run_external("notify", &with, &ctx(work.path(), &[])).await.unwrap().unwrap();
    assert_eq!(result["delivered"], json!(false), "{result}");
    assert!(result["error"].as_str().unwrap().contains("certificate"), "{result}");
}

/// A `ca_file` that is missing or not PEM is a parameter error naming the
/// file, before anything is sent (and for notify, an undelivered message).
#[tokio::test]
async fn unusable_ca_file_is_a_parameter_error_naming_the_file() {
    let h = https_receiver().await;
    let work = tempfile::tempdir().unwrap();
    let not_pem = work.path().join("not-a-ca.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let missing = work.path().join("missing-ca.pem");
    for (ca, what) in [(&not_pem, "no certificate"), (&missing, "cannot be read")] {
        let with = params(json!({"url": h.front.url(), "ca_file": ca}));
        let err = run_external("http", &with, &ctx(work.path(), &[])).await.unwrap().unwrap_err();
        let StepError::Param { field, problem } = &err else { panic!("{err:?}") };
        assert_eq!(field, "ca_file");
        assert!(problem.contains(&ca.display().to_string()) && problem.contains(what), "{problem}");
        assert!(!err.retryable());

        let with = params(json!({"url": h.front.url(), "ca_file": ca}));
        let result = run_external("notify", &with, &ctx(work.path(), &[])).await.unwrap().unwrap();
        assert_eq!(result["delivered"], json!(false), "{result}");

        let with = params(json!({"workspace_id": "ws-abc", "address": h.front.url(), "ca_file": ca}));
        let env = [("TFC_TOKEN", "t0ken")];
        let err = run_external("terraform_cloud.run", &with, &ctx(work.path(), &env)).await.unwrap().unwrap_err();
        assert!(matches!(&err, StepError::Param { field, .. } if field == "ca_file"), "{err:?}");
    }
    assert!(h.server.requests().is_empty());
}

/// Terraform Enterprise behind a private CA: the run is created and polled
/// over HTTPS with `ca_file`; without it the first call fails on the certificate.
#[tokio::test]
async fn terraform_cloud_with_internal_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path(), "tfe").unwrap();
    let server = Server::start(|req| {
        let run = |status: &str| json!({"data": {"id": "run-1", "type": "runs", "attributes": {"status": status}}});
        match (req.method.as_str(), req.path.as_str()) {
            ("POST", "/api/v2/runs") => (201, run("pending").to_string()),
            ("GET", "/api/v2/runs/run-1") => (200, run("applied").to_string()),
            _ => (404, "{}".into()),
        }
    })
    .await;
    let front = TlsFront::start(&pki, server.addr).unwrap();
    let work = tempfile::tempdir().unwrap();
    let env = [("TFC_TOKEN", "t0ken")];
    let base = json!({"workspace_id": "ws-abc", "address": front.url(), "poll_interval": "10ms"});

    let mut with = params(base.clone());
    with.insert("ca_file".into(), json!(pki.ca));
    let result = run_external("terraform_cloud.run", &with, &ctx(work.path(), &env)).await.unwrap().unwrap();
    assert_eq!(result["status"], json!("applied"), "{result}");

    let err = run_external("terraform_cloud.run", &params(base), &ctx(work.path(), &env)).await.unwrap().unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
}
