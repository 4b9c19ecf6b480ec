use serde_json::json;

use super::*;

fn params(v: Value) -> Params {
    v.as_object().unwrap().clone()
}

fn good() -> Value {
    json!({
        "server": "127.0.0.1:5353", "zone": "example.test", "name": "s3.example.test", "type": "CNAME",
        "value": "{{ target }}.storage.example.test.", "ttl": 30, "tsig_key": "cutover",
        "tsig_algorithm": "hmac-sha512", "tsig_secret_env": "TSIG_SECRET"
    })
}

#[test]
fn check_accepts_a_templated_step_and_names_every_literal_problem() {
    assert_eq!(check(&params(good())), vec![]);
    let mut bad = good();
    bad["server"] = json!("ns1.example.test");
    bad["name"] = json!("s3.example.org");
    bad["type"] = json!("MX");
    bad["ttl"] = json!(-1);
    bad["tsig_algorithm"] = json!("hmac-md5");
    bad["tsig_secret_file"] = json!("/etc/key");
    let problems = check(&params(bad));
    let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(fields, ["server", "name", "type", "ttl", "tsig_algorithm", "tsig_secret_env"], "{problems:?}");
    assert!(problems[1].1.contains("not in zone example.test."), "{problems:?}");
}

#[test]
fn check_judges_a_literal_value_by_its_type() {
    let mut p = good();
    p["type"] = json!("A");
    p["value"] = json!("10.0.0.300");
    assert_eq!(check(&params(p.clone())), vec![("value".to_string(), "\"10.0.0.300\" is not an IPv4 address".into())]);
    p["type"] = json!("AAAA");
    p["value"] = json!("2001:db8::1");
    assert_eq!(check(&params(p.clone())), vec![]);
    p.as_object_mut().unwrap().remove("value");
    assert_eq!(check(&params(p.clone()))[0].0, "value");
    p["restore"] = json!(true);
    assert_eq!(check(&params(p.clone())), vec![]);
    p["previous"] = json!([]);
    assert_eq!(check(&params(p.clone())), vec![("written".to_string(), "is required with previous".into())]);
    p["written"] = json!([{"ttl": 30, "value": "2001:db8::1"}]);
    assert_eq!(check(&params(p.clone())), vec![]);
    p.as_object_mut().unwrap().remove("restore");
    p["value"] = json!("2001:db8::1");
    assert_eq!(check(&params(p)), vec![("previous".to_string(), "is only given with restore = true".into())]);
}

#[test]
fn journaled_record_sets_are_checked_before_anything_is_sent() {
    let mut p = good();
    p.as_object_mut().unwrap().remove("value");
    p["restore"] = json!(true);
    p["previous"] = json!([{"ttl": 300, "value": "primary.storage.example.test."}]);
    p["written"] = json!([{"ttl": 30, "value": "not a name"}]);
    let e = Plan::parse(&params(p.clone())).unwrap_err().to_string();
    assert!(e.starts_with("with.written: \"not a name\" is not a domain name"), "{e}");
    p["written"] = json!("secondary");
    let e = Plan::parse(&params(p.clone())).unwrap_err().to_string();
    assert!(e.starts_with("with.written: is not a record set"), "{e}");
    p["written"] = json!([{"ttl": 30, "value": "secondary.storage.example.test"}]);
    let plan = Plan::parse(&params(p)).unwrap();
    let (previous, written) = plan.journaled.unwrap();
    assert_eq!(previous[0].ttl, 300);
    assert_eq!(written[0].value, "secondary.storage.example.test");
}

#[test]
fn the_undo_gets_the_record_sets_from_the_journaled_result_of_the_same_update_only() {
    let mut undo = good();
    undo.as_object_mut().unwrap().remove("value");
    undo["restore"] = json!(true);
    let forward = json!({
        "server": "127.0.0.1:5353", "zone": "example.test.", "name": "s3.example.test.", "type": "CNAME",
        "previous": [{"ttl": 300, "value": "primary.storage.example.test."}],
        "records": [{"ttl": 30, "value": "secondary.storage.example.test."}],
    });
    let mut p = params(undo.clone());
    undo_from_result(&mut p, &forward);
    assert_eq!(p["previous"], forward["previous"]);
    assert_eq!(p["written"], forward["records"]);
    // Another name: nothing is added (the undo then reads the saved copy).
    let mut other = forward.clone();
    other["name"] = json!("www.example.test.");
    let mut p = params(undo.clone());
    undo_from_result(&mut p, &other);
    assert!(!p.contains_key("previous") && !p.contains_key("written"), "{p:?}");
    // A forward call (not a restore) is left alone.
    let mut p = params(good());
    undo_from_result(&mut p, &forward);
    assert!(!p.contains_key("previous"), "{p:?}");
}

#[test]
fn the_dry_run_shows_the_update_and_not_the_secret() {
    let mut p = good();
    p["value"] = json!("secondary.storage.example.test.");
    let text = describe(&params(p)).unwrap();
    assert_eq!(
        text,
        "RFC 2136 UPDATE of zone example.test. at 127.0.0.1:5353 over TCP, signed with TSIG key cutover. \
         (hmac-sha512): delete the s3.example.test. CNAME record set; add s3.example.test. 30 IN CNAME \
         secondary.storage.example.test."
    );
}

#[test]
fn a_secret_is_read_from_base64_or_a_key_clause_and_errors_do_not_show_it() {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("cutover.key");
    std::fs::write(&file, "key \"cutover\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0\";\n};\n").unwrap();
    let ctx = Ctx {
        incident: "inc-1".into(),
        source: "primary".into(),
        target: "secondary".into(),
        reason: String::new(),
        kind: "failover".into(),
        step: "dns".into(),
        timeout: Duration::from_secs(10),
        work_dir: work.path().to_path_buf(),
        env: std::sync::Arc::new(|v| (v == "TSIG_SECRET").then(|| "not base64 !!".to_string())),
        fencing_token: None,
        incident_url: None,
    };
    let by_file = params(json!({"tsig_secret_file": file.to_str().unwrap()}));
    assert_eq!(secret(&by_file, &ctx).unwrap(), b"secret");
    let by_env = params(json!({"tsig_secret_env": "TSIG_SECRET"}));
    let e = secret(&by_env, &ctx).unwrap_err().to_string();
    assert_eq!(e, "with.tsig_secret_env: the value of TSIG_SECRET is not a base64 TSIG secret");
    let unset = params(json!({"tsig_secret_env": "OTHER"}));
    assert_eq!(
        secret(&unset, &ctx).unwrap_err().to_string(),
        "with.tsig_secret_env: environment variable OTHER is not set"
    );
}
