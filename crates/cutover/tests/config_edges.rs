//! The binary on broken and edge-case configurations (issue 12, points 11
//! and 12): a clear problem with its path and exit 2, never a panic; a
//! `ca_file` that cannot be used stops `config check` and `run`.

mod common;

use common::cutover;
use cutover_lab::tls::TestPki;

const ENV: [(&str, &str); 3] = [("K", "id"), ("S", "very-secret-value-0123456789"), ("GW", "gw-secret-0123456789")];

fn backend(extra: &str) -> String {
    format!(
        "[[backends]]\nname = \"onprem\"\nendpoint = \"https://127.0.0.1:1\"\nregion = \"r\"\nbucket = \"app-data\"\n\
         role = \"primary\"\ncredentials = {{ access_key_id_env = \"K\", secret_access_key_env = \"S\" }}\n{extra}\n"
    )
}

fn write(dir: &std::path::Path, bytes: &[u8]) -> String {
    let p = dir.join("cutover.toml");
    std::fs::write(&p, bytes).unwrap();
    p.display().to_string()
}

#[test]
fn missing_ca_file_is_a_config_error_in_check_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db").display().to_string();
    let text = format!("[state]\npath = {state:?}\n{}", backend("ca_file = \"tls/internal-ca.pem\""));
    let path = write(dir.path(), text.as_bytes());
    let missing = dir.path().join("tls/internal-ca.pem").display().to_string();
    for args in [vec!["config", "check"], vec!["run"]] {
        let mut all = vec!["--config", path.as_str()];
        all.extend(args.iter().copied());
        let run = cutover(&all, &ENV);
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        let out = format!("{}{}", run.stdout, run.stderr);
        assert!(out.contains(&format!("backends[0].ca_file: {missing}: cannot be read")), "{args:?}: {out}");
    }
    // A file that is not a CA bundle.
    std::fs::create_dir(dir.path().join("tls")).unwrap();
    std::fs::write(dir.path().join("tls/internal-ca.pem"), "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
    let run = cutover(&["--config", &path, "config", "check"], &ENV);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        format!("{run:?}").contains("backends[0].ca_file: ") && format!("{run:?}").contains("not a PEM file"),
        "{run:?}"
    );
    // A real CA bundle: fine.
    let tls = dir.path().join("tls");
    TestPki::generate(&tls, "internal").unwrap();
    let run = cutover(&["--config", &path, "config", "check"], &ENV);
    assert_eq!(run.code, 0, "{run:?}");
}

#[test]
fn empty_backends_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let text = "backends = []\n[gateway]\n[[gateway.clients]]\naccess_key_id = \"APP\"\nsecret_access_key_env = \"GW\"\n\
                [[gateway.buckets]]\nname = \"app\"\n";
    let path = write(dir.path(), text.as_bytes());
    for args in [vec!["config", "check"], vec!["gateway"], vec!["run"]] {
        let mut all = vec!["--config", path.as_str()];
        all.extend(args.iter().copied());
        let run = cutover(&all, &ENV);
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(format!("{run:?}").contains("backends: no backends configured"), "{args:?}: {run:?}");
    }
}

#[test]
fn gateway_bucket_without_backends_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}[gateway]\n[[gateway.clients]]\naccess_key_id = \"APP\"\nsecret_access_key_env = \"GW\"\n\
         [[gateway.buckets]]\nname = \"app\"\nbackends = []\n[[gateway.buckets]]\nname = \"logs\"\nbackends = [\"nowhere\"]\n",
        backend("")
    );
    let path = write(dir.path(), text.as_bytes());
    let run = cutover(&["--config", &path, "gateway"], &ENV);
    assert_eq!(run.code, 2, "{run:?}");
    let out = format!("{run:?}");
    assert!(out.contains("gateway.buckets[0].backends: empty: a bucket needs at least one backend"), "{out}");
    assert!(
        out.contains(
            "gateway.buckets[1].backends[0]: \\\"nowhere\\\" is not a configured backend (configured: onprem)"
        ),
        "{out}"
    );
}

/// Whatever the file holds, `config check` answers with problems and exit 2.
#[test]
fn broken_configs_are_problems_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &[u8], &str)] = &[
        ("empty file", b"", "backends: no backends configured"),
        ("not UTF-8", b"[probe]\ninterval = \"\xff\xfe\"\n", "(file): "),
        ("wrong type", b"[probe]\ninterval = 5\n", "line 2"),
        ("negative integer", b"[probe]\nobject_size = -1\n", "line 2"),
        ("negative duration", b"[probe]\ninterval = \"-1s\"\n", "probe.interval: "),
        ("huge duration", b"[probe]\ntimeout = \"18446744073709551615d\"\n", "probe.timeout: \"18446744073709551615d\" is too long"),
        ("number too large", b"[probe]\ntimeout = \"99999999999999999999999s\"\n", "number too large"),
        ("huge window", b"[detect]\nwindow = 9223372036854775807\n", "detect.window: "),
        ("u32 overflow", b"[detect]\nfailures = 4294967296\n", "line 2"),
        ("unknown key", b"[probe]\nintervall = \"1s\"\n", "probe.intervall: unknown key"),
        ("nan", b"[detect]\nerror_rate = nan\n", "detect.error_rate: "),
        ("deep nesting", b"a = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n", ""),
    ];
    for (what, bytes, expect) in cases {
        let mut text = bytes.to_vec();
        if !what.contains("empty") && !what.contains("UTF-8") {
            text.extend_from_slice(backend("").replace("https://127.0.0.1:1", "http://127.0.0.1:1").as_bytes());
        }
        let path = write(dir.path(), &text);
        let run = cutover(&["--config", &path, "config", "check"], &ENV);
        let out = format!("{}{}", run.stdout, run.stderr);
        assert!(!out.contains("panicked"), "{what}: {out}");
        assert_eq!(run.code, 2, "{what}: {run:?}");
        assert!(out.contains(expect), "{what}: expected {expect:?} in {out}");
    }
}
