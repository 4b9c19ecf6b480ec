//! The step's inner parts against a real BIND 9 (Debian's `bind9`), where
//! the integration tests cannot reach: a change made between the read and
//! the update (the prerequisite), and a signer whose clock is off (BADTIME).

use std::time::Duration;

use cutover_lab::bind::{self, Bind, KEY_NAME};
use serde_json::json;

use super::*;

const ZONE: &str = "example.test";

fn start(records: &[&str]) -> Option<Bind> {
    if !bind::available() {
        eprintln!("skipped: named or dig is not installed (apt-get install bind9 bind9-dnsutils)");
        return None;
    }
    Some(Bind::start(ZONE, records, "hmac-sha256").expect("named starts"))
}

fn ctx(work: &Path, secret: &str) -> Ctx {
    let secret = secret.to_string();
    Ctx {
        incident: "inc-7".into(),
        source: "primary".into(),
        target: "secondary".into(),
        reason: String::new(),
        kind: "failover".into(),
        step: "dns".into(),
        timeout: Duration::from_secs(60),
        work_dir: work.to_path_buf(),
        env: std::sync::Arc::new(move |v| (v == "TSIG_SECRET").then(|| secret.clone())),
        fencing_token: None,
        incident_url: None,
    }
}

fn plan_and_client(bind: &Bind, clock_offset: i64) -> (Plan, Client) {
    let with = json!({
        "server": bind.addr(), "zone": ZONE, "name": "s3.example.test", "type": "CNAME",
        "value": "secondary.storage.example.test.", "ttl": 30, "tsig_key": KEY_NAME,
        "tsig_secret_env": "TSIG_SECRET",
    });
    let plan = Plan::parse(with.as_object().unwrap()).unwrap();
    let secret = base64::engine::general_purpose::STANDARD.decode(bind.secret()).unwrap();
    let key = Key { name: plan.key_name.clone(), algorithm: plan.algorithm, secret };
    let client = Client { server: plan.server, key, timeout: Duration::from_secs(10), clock_offset };
    (plan, client)
}

#[tokio::test]
async fn an_update_sent_after_someone_changed_the_record_set_is_refused_and_changes_nothing() {
    let Some(bind) = start(&["s3 300 IN CNAME primary.storage"]) else { return };
    let (plan, client) = plan_and_client(&bind, 0);
    let read = client.rrset(&plan.name, plan.rtype).await.unwrap();
    assert_eq!(read, [Rr { ttl: 300, value: "primary.storage.example.test.".into() }]);

    // Between the step's read and its update, a human moves the name.
    bind.nsupdate("update delete s3.example.test CNAME\nupdate add s3.example.test 120 CNAME human.example.test.")
        .unwrap();
    let human = ["s3.example.test. 120 IN CNAME human.example.test."];
    assert_eq!(bind.dig("s3.example.test", "CNAME").unwrap(), human);
    let serial = bind.serial().unwrap();

    let desired = [plan.record.clone().unwrap()];
    let e = client.replace(&plan.zone, &plan.name, plan.rtype, &read, &desired).await.unwrap_err();
    assert!(matches!(e, DnsError::Changed { rcode: Rcode::NxRrset, .. }), "{e:?}");
    let e = changed_under(&plan, &client, &read, e).await;
    assert!(matches!(e, StepError::Refused(_)), "{e:?}");
    assert!(!e.retryable(), "a retry would read the change and overwrite it: {e:?}");
    let text = e.to_string();
    assert!(text.contains("answered NXRRSET: the record set changed under it"), "{text}");
    assert!(
        text.contains(r#"it now reads [{"ttl":120,"value":"human.example.test."}], not the record set it read"#),
        "{text}"
    );
    assert_eq!(bind.dig("s3.example.test", "CNAME").unwrap(), human);
    assert_eq!(bind.serial().unwrap(), serial);

    // A name read as empty that someone created meanwhile: YXRRSET.
    let www = Name::parse("www.example.test").unwrap();
    assert_eq!(client.rrset(&www, RrType::Cname).await.unwrap(), []);
    bind.nsupdate("update add www.example.test 60 CNAME human.example.test.").unwrap();
    let e = client.replace(&plan.zone, &www, RrType::Cname, &[], &desired).await.unwrap_err();
    assert!(matches!(e, DnsError::Changed { rcode: Rcode::YxRrset, .. }), "{e:?}");
    assert_eq!(bind.dig("www.example.test", "CNAME").unwrap(), ["www.example.test. 60 IN CNAME human.example.test."]);
}

#[tokio::test]
async fn a_request_signed_with_a_clock_outside_the_fudge_fails_naming_badtime_and_changes_nothing() {
    let Some(bind) = start(&["s3 300 IN CNAME primary.storage"]) else { return };
    let work = tempfile::tempdir().unwrap();
    let ctx = ctx(work.path(), bind.secret());
    let before = bind.dig("s3.example.test", "CNAME").unwrap();
    let serial = bind.serial().unwrap();

    // An hour behind, twelve times the 300 s fudge.
    let (plan, client) = plan_and_client(&bind, -3600);
    let e = execute(&plan, &client, &ctx).await.unwrap_err();
    assert!(matches!(e, StepError::Refused(_)), "{e:?}");
    assert!(e.to_string().contains("answered NOTAUTH (TSIG BADTIME)"), "{e}");
    assert!(!e.to_string().contains(bind.secret()), "{e}");
    assert_eq!(bind.dig("s3.example.test", "CNAME").unwrap(), before);
    assert_eq!(bind.serial().unwrap(), serial);

    // The same step with the right clock goes through: the clock was the problem.
    let (plan, client) = plan_and_client(&bind, 0);
    let out = execute(&plan, &client, &ctx).await.unwrap();
    assert_eq!(out["changed"], true, "{out}");
}
