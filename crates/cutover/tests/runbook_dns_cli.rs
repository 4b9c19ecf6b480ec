//! `cutover runbook check` and `runbook run --dry-run` with `dns.update`:
//! every literal problem named with its step and field, and the update the
//! step would send, without the secret. No server is contacted.

mod common;

use common::{Backend, Setup};

fn setup(runbook: &str) -> Setup {
    let s = Setup::new(
        &[Backend::dummy("primary", "primary"), Backend::dummy("secondary", "secondary")],
        "[runbooks]\nfailover = \"failover.toml\"\n",
    );
    std::fs::write(s.dir.path().join("failover.toml"), runbook).unwrap();
    s
}

const SECRET: &str = "c2VjcmV0LXRoYXQtbXVzdC1uZXZlci1zaG93";

#[test]
fn the_dry_run_shows_the_dns_update_and_its_undo_without_the_secret() {
    let mut s = setup(
        r#"
[[steps]]
name = "move the DNS name"
uses = "dns.update"
with = { server = "10.0.0.53:53", zone = "example.com", name = "s3.example.com", type = "CNAME", value = "{{ target }}.storage.example.com.", ttl = 30, tsig_key = "cutover", tsig_algorithm = "hmac-sha512", tsig_secret_env = "TSIG_SECRET" }
"#,
    );
    s.env.push(("TSIG_SECRET".into(), SECRET.into()));
    let file = s.dir.path().join("failover.toml");
    let r = s.run(&["runbook", "check", file.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("ok, 1 steps"), "{r:?}");
    let r = s.run(&["runbook", "run", file.to_str().unwrap(), "--dry-run"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains(
            "sends RFC 2136 UPDATE of zone example.com. at 10.0.0.53:53 over TCP, signed with TSIG key cutover. \
             (hmac-sha512): delete the s3.example.com. CNAME record set; add s3.example.com. 30 IN CNAME \
             secondary.storage.example.com."
        ),
        "{r:?}"
    );
    assert!(r.stdout.contains(r#"undo [dns.update] with {"name":"s3.example.com","restore":true"#), "{r:?}");
    r.assert_no_secret(SECRET);
}

#[test]
fn runbook_check_names_every_bad_dns_parameter() {
    let s = setup(
        r#"
[[steps]]
name = "move the DNS name"
uses = "dns.update"
with = { server = "ns1.example.com", zone = "example.com", name = "s3.example.org", type = "MX", value = "x", ttl = -5, tsig_key = "cutover", tsig_algorithm = "hmac-md5" }
"#,
    );
    let file = s.dir.path().join("failover.toml");
    let r = s.run(&["runbook", "check", file.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{r:?}");
    let at = r#"steps[0] "move the DNS name".with."#;
    for problem in [
        r#"server: "ns1.example.com" is not an IP address with an optional port"#,
        "name: s3.example.org. is not in zone example.com.",
        r#"type: "MX" is not A, AAAA or CNAME"#,
        "ttl: must be between 0 and 2147483647 seconds",
        r#"tsig_algorithm: "hmac-md5" is not hmac-sha256 or hmac-sha512"#,
        "tsig_secret_env: missing required parameter (or tsig_secret_file)",
    ] {
        assert!(
            r.stderr.contains(&format!("{at}{problem}")) || r.stdout.contains(&format!("{at}{problem}")),
            "{problem}: {r:?}"
        );
    }
}
