//! `cutover config check`: every problem at once, with its path; exit 2.

mod common;

use common::cutover;

const SECRET: &str = "very-secret-value-0123456789";

fn write(dir: &tempfile::TempDir, text: &str) -> String {
    let p = dir.path().join("cutover.toml");
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn backend(name: &str, role: &str, endpoint: &str) -> String {
    format!(
        "[[backends]]\nname = \"{name}\"\nendpoint = \"{endpoint}\"\nregion = \"r\"\nbucket = \"app-data\"\nrole = \"{role}\"\n\
         credentials = {{ access_key_id_env = \"K\", secret_access_key_env = \"S\" }}\n"
    )
}

const ENV: [(&str, &str); 2] = [("K", "id"), ("S", SECRET)];

#[test]
fn the_example_configuration_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/cutover.toml");
    let run = cutover(
        &["--config", example, "config", "check"],
        &[("PRIMARY_KEY_ID", "id"), ("PRIMARY_SECRET", SECRET), ("GATEWAY_APP_SECRET", SECRET)],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("ok; 2 backends"), "{run:?}");
    run.assert_no_secret(SECRET);
    run.assert_no_secret("example-secret-not-real");
}

#[test]
fn every_problem_is_reported_at_once_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[probe]\ninterval = \"fast\"\ntimout = \"2s\"\n\n{}{}{}\
         [[backends]]\nname = \"Bad_Name\"\nendpoint = \"http://x\"\nregion = \"r\"\nbucket = \"B\"\n\
         credentials = {{ access_key_id_env = \"UNSET_KEY_VAR_FOR_TEST\", secret_access_key_env = \"S\" }}\n",
        backend("primary", "primary", "htp://x"),
        backend("primary", "primary", "http://127.0.0.1:1"),
        backend("third", "tertiary", "http://127.0.0.1:2"),
    );
    let path = write(&dir, &text);
    let run = cutover(&["--config", &path, "config", "check"], &ENV);
    assert_eq!(run.code, 2, "{run:?}");
    let expected = [
        "probe.timout: unknown key",
        "probe.interval: \"fast\" is not a duration",
        "backends[0].endpoint: \"htp://x\" is not an http(s) URL",
        "backends[1].name: \"primary\" is the name of another backend too",
        "backends[2].role: \"tertiary\" is not a role",
        "backends[3].name: \"Bad_Name\" may contain only lowercase letters",
        "backends[3].bucket: \"B\" is not a valid bucket name",
        "backends[3].credentials.access_key_id_env: environment variable UNSET_KEY_VAR_FOR_TEST is not set",
        "backends: 2 backends have role = \"primary\" (backends[0], backends[1])",
    ];
    for e in expected {
        assert!(run.stderr.contains(e), "missing {e:?} in:\n{}", run.stderr);
    }
    assert!(run.stderr.lines().all(|l| l.starts_with(&path)), "every line names the file: {}", run.stderr);
    run.assert_no_secret(SECRET);
}

#[test]
fn no_primary_and_no_backends_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, &backend("a", "secondary", "http://127.0.0.1:1"));
    let run = cutover(&["--config", &path, "config", "check"], &ENV);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("no backend has role = \"primary\""), "{run:?}");
    let path = write(&dir, "[probe]\ninterval = \"1s\"\n");
    let run = cutover(&["--config", &path, "config", "check"], &ENV);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("backends: no backends configured"), "{run:?}");
}

#[test]
fn a_syntax_error_names_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "[probe]\ninterval = \"1s\"\ntimeout = 2s\n");
    let run = cutover(&["--config", &path, "config", "check"], &ENV);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("line 3, column"), "{run:?}");
}

#[test]
fn a_wrong_type_names_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, &format!("{}path_style = \"yes\"\n", backend("p", "primary", "http://127.0.0.1:1")));
    let run = cutover(&["--config", &path, "config", "check"], &ENV);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("line 8, column") && run.stderr.contains("bool"), "{run:?}");
}

#[test]
fn a_missing_file_is_a_usage_error_with_a_hint() {
    let run = cutover(&["--config", "/nonexistent/cutover.toml", "config", "check"], &[]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("/nonexistent/cutover.toml") && run.stderr.contains("not found"), "{run:?}");
}

#[test]
fn the_config_file_comes_from_cutover_config_when_not_given() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, &backend("p", "primary", "http://127.0.0.1:1"));
    let mut env = ENV.to_vec();
    env.push(("CUTOVER_CONFIG", &path));
    let run = cutover(&["config", "check"], &env);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.starts_with(&path));
}

#[test]
fn a_credentials_file_without_the_profile_is_caught_without_printing_values() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("creds"),
        format!("[other]\naws_access_key_id = X\naws_secret_access_key = {SECRET}\n"),
    )
    .unwrap();
    let text = "[[backends]]\nname = \"p\"\nendpoint = \"http://127.0.0.1:1\"\nregion = \"r\"\nbucket = \"app-data\"\n\
                role = \"primary\"\ncredentials = { file = \"creds\", profile = \"prod\" }\n";
    let path = write(&dir, text);
    let run = cutover(&["--config", &path, "config", "check"], &[]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("backends[0].credentials.file") && run.stderr.contains("profile [prod] not found"),
        "{run:?}"
    );
    run.assert_no_secret(SECRET);
}

#[test]
fn json_output_lists_problems() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, &backend("p", "primary", "ftp://x"));
    let run = cutover(&["--config", &path, "config", "check", "--json"], &ENV);
    assert_eq!(run.code, 2);
    let doc: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["problems"][0]["path"], "backends[0].endpoint");
}

#[test]
fn gateway_and_api_keys_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[api]\nlisten = \"nowhere\"\n[[api.tokens]]\nname = \"x\"\nrole = \"god\"\nsha256 = \"abc\"\n\n{}\
         [gateway]\nlisten = \"127.0.0.1:9000\"\n[[gateway.clients]]\naccess_key_id = \"APP\"\nsecret_access_key_env = \"UNSET_GW_SECRET_VAR\"\n\
         [[gateway.buckets]]\nname = \"app\"\nmode = \"mirror\"\nack = \"all\"\nbackends = [\"p\", \"q\"]\n",
        backend("p", "primary", "http://127.0.0.1:1")
    );
    let path = write(&dir, &text);
    let run = cutover(&["--config", &path, "config", "check"], &ENV);
    assert_eq!(run.code, 2);
    for e in [
        "api.listen: \"nowhere\" is not an address:port",
        "api.tokens[0].role: \"god\" is not a role",
        "api.tokens[0].sha256: must be the 64 hex digits",
        "gateway.clients[0].secret_access_key_env: environment variable UNSET_GW_SECRET_VAR is not set",
        "gateway.buckets[0].mode: \"mirror\" is not a mode",
        "gateway.buckets[0].backends[1]: \"q\" is not a configured backend",
    ] {
        assert!(run.stderr.contains(e), "missing {e:?} in:\n{}", run.stderr);
    }
}

#[test]
fn bad_command_line_usage_exits_2() {
    assert_eq!(cutover(&["probe", "--once", "--watch"], &[]).code, 2);
    assert_eq!(cutover(&["no-such-command"], &[]).code, 2);
    assert_eq!(cutover(&["validate"], &[]).code, 2);
}

#[test]
fn objectives_and_drills_are_checked_with_their_paths() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}{}[objectives]\nrto = \"soon\"\nrpo = 5\n\
         [[drills]]\nscenario = \"earthquake\"\ncron = \"0 25 * * *\"\n\
         [[drills]]\nscenario = \"blip\"\ncron = \"@every 6h\"\nconfig = \"staging.toml\"\nchaos = {{ primary = \"http://127.0.0.1:9101\" }}\n",
        backend("primary", "primary", "http://127.0.0.1:3900"),
        backend("secondary", "secondary", "http://127.0.0.1:3901"),
    );
    let run = cutover(&["--config", &write(&dir, &text), "config", "check"], &ENV);
    assert_eq!(run.code, 2, "{run:?}");
    for expected in [
        "objectives.rto",
        "objectives.rpo: 5 is not a duration",
        "drills[0].scenario: \"earthquake\" is not one of hard-down",
        "drills[0].cron: hour: 25 is outside 0-23",
        "drills[0].config: missing",
        "drills[0].chaos: missing",
    ] {
        assert!(run.stderr.contains(expected), "missing {expected:?}: {}", run.stderr);
    }
    assert!(!run.stderr.contains("drills[1]"), "{}", run.stderr);
}

#[test]
fn an_ha_table_is_checked_with_its_paths() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("client.pem"), "cert").unwrap();
    std::fs::write(dir.path().join("client.key"), "key").unwrap();
    let two =
        format!("{}{}", backend("a", "primary", "http://127.0.0.1:1"), backend("b", "secondary", "http://127.0.0.1:2"));
    let good = "[ha]\netcd = [\"https://127.0.0.1:2379\", \"https://127.0.0.1:22379\"]\nprefix = \"/cutover/prod\"\n\
                node = \"ctl-a\"\nadvertise_api = \"http://10.0.0.5:8080\"\nlease_ttl = \"6s\"\n\
                cert_file = \"client.pem\"\nkey_file = \"client.key\"\nusername = \"cutover\"\npassword_env = \"ETCD_PW\"\n";
    let path = write(&dir, &format!("{good}\n{two}"));
    let env = [("K", "id"), ("S", SECRET), ("ETCD_PW", SECRET)];
    let run = cutover(&["--config", &path, "config", "check"], &env);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("ok; 2 backends"), "{run:?}");

    // Every rule broken at once: each problem with its path, exit 2.
    let bad = "[ha]\netcd = [\"http://127.0.0.1:2379\", \"http://127.0.0.1:2379/v3\"]\nprefix = \"cutover/\"\nnode = \"ctl a\"\n\
               lease_ttl = \"6s\"\nrenew_interval = \"3s\"\ncert_file = \"client.pem\"\nusername = \"cutover\"\n\
               lease_tll = \"6s\"\n";
    let path = write(&dir, &format!("{bad}\n{two}"));
    let run = cutover(&["--config", &path, "config", "check"], &env);
    assert_eq!(run.code, 2, "{run:?}");
    let expected = [
        "ha.lease_tll: unknown key at line 9 (did you mean \"lease_ttl\"?)",
        "ha.etcd[1]: \"http://127.0.0.1:2379/v3\": an etcd endpoint has no path or query",
        "ha.prefix: \"cutover/\" must start with '/'",
        "ha.node: \"ctl a\" is not a node name",
        "ha: renew_interval (3s) + 2 × request_timeout (1s) ≤ renew_deadline (4s) < lease_ttl (6s) must hold",
        "ha.cert_file: every etcd endpoint is http://",
        "ha.key_file: missing: cert_file is set",
        "ha.password_env: missing: username is set",
    ];
    for e in expected {
        assert!(run.stderr.contains(e), "missing {e:?} in:\n{}", run.stderr);
    }
    assert!(run.stderr.lines().all(|l| l.starts_with(&path)), "every line names the file: {}", run.stderr);

    // A valid table whose client certificate is not there.
    let path = write(&dir, &format!("{}\n{two}", good.replace("client.key", "gone.key")));
    let run = cutover(&["--config", &path, "config", "check"], &env);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("ha.key_file: ") && run.stderr.contains("gone.key: cannot be read"), "{run:?}");
    run.assert_no_secret(SECRET);
}
