//! The gateway's TLS listener end to end: the real binary (`cutover run` and
//! `cutover gateway`) in front of a real Garage node, driven over HTTPS by
//! boto3 (tests/gateway/s3ops.py) and the AWS CLI, with a throwaway CA made
//! by `openssl` in a temporary directory. Also: what `cutover config check`,
//! `cutover gateway` and `cutover run` say about unusable certificate files.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::run_process::RunProcess;
use common::{Backend, Setup, start_garage};
use cutover_lab::tls::{TestPki, new_key};
use serde_json::Value;

const KEY: &str = "APPKEY";
const SECRET: &str = "app-secret-for-the-gateway-tls-tests";

/// The `[gateway]` table of a TLS gateway on `port` (relative certificate paths).
fn gateway_toml(port: u16, cert: &str, key: &str) -> String {
    format!(
        "[gateway]\nlisten = \"127.0.0.1:{port}\"\ntls_cert_file = \"{cert}\"\ntls_key_file = \"{key}\"\n\
         [[gateway.clients]]\naccess_key_id = \"{KEY}\"\nsecret_access_key_env = \"GATEWAY_APP_SECRET\"\n\
         [[gateway.buckets]]\nname = \"app\"\n\n"
    )
}

/// A setup with a TLS gateway on `port` whose PKI lives in the setup's directory.
fn tls_setup(backends: &[Backend], port: u16) -> (Setup, TestPki) {
    let mut setup = Setup::new(backends, &gateway_toml(port, "tls/fullchain.pem", "tls/key.pem"));
    setup.env.push(("GATEWAY_APP_SECRET".into(), SECRET.into()));
    let tls = setup.dir.path().join("tls");
    std::fs::create_dir(&tls).unwrap();
    let pki = TestPki::generate(&tls, "gw").unwrap();
    std::fs::rename(&pki.chain, tls.join("fullchain.pem")).unwrap();
    std::fs::rename(&pki.key, tls.join("key.pem")).unwrap();
    let pki = TestPki { chain: tls.join("fullchain.pem"), key: tls.join("key.pem"), ..pki };
    (setup, pki)
}

fn wait_port(port: u16, what: impl Fn() -> String) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(30), "the gateway did not start: {}", what());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a scenario of s3ops.py against `endpoint`, trusting `ca` (or the system's CAs).
fn py(endpoint: &str, ca: Option<&Path>, args: &[&str]) -> Result<Value, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gateway/s3ops.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).args(args).env("GW_ENDPOINT", endpoint).env("GW_KEY", KEY).env("GW_SECRET", SECRET);
    for var in ["GW_CA", "AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"] {
        cmd.env_remove(var);
    }
    if let Some(ca) = ca {
        cmd.env("GW_CA", ca);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("s3ops.py {args:?} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    }
    let last = stdout.lines().last().unwrap_or("");
    serde_json::from_str(last).map_err(|e| format!("not JSON: {last:?}: {e}"))
}

fn handshake_failures(c: &RunProcess) -> u64 {
    let (_, text) = c.get("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix("cutover_gateway_tls_handshake_failures_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no handshake failure counter in:\n{text}"))
}

/// Sends a plain HTTP request to the TLS port: whatever comes back is not an HTTP answer.
fn plain_http(port: u16) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"GET /app/x HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

#[test]
fn boto3_over_https_through_the_gateway_of_cutover_run() {
    let g = start_garage();
    let port = cutover_lab::free_port();
    let (setup, pki) = tls_setup(&[Backend::garage("primary", "primary", &g)], port);
    let c = RunProcess::start(&setup);
    wait_port(port, || c.log());
    assert!(c.log().contains(&format!("gateway listening on https://127.0.0.1:{port}")), "{}", c.log());
    let endpoint = format!("https://127.0.0.1:{port}");

    // The multipart upload without botocore's default checksums (with them:
    // the test below).
    let out = py(&endpoint, Some(&pki.ca), &["tls", "when_required"]).unwrap_or_else(|e| panic!("{e}\n{}", c.log()));
    assert_eq!(out["put_backend"], "primary", "{out}");
    assert_eq!(out["keys"], serde_json::json!(["tls/big", "tls/small"]), "{out}");
    // What botocore 1.43 sends over HTTPS by default: the unsigned-payload
    // aws-chunked form with a CRC32 trailer.
    let trailer = serde_json::json!([["STREAMING-UNSIGNED-PAYLOAD-TRAILER", "x-amz-checksum-crc32"]]);
    assert_eq!(out["forms"]["PutObject"], trailer, "{out}");
    assert_eq!(out["forms"]["CreateMultipartUpload"], serde_json::json!([[null]]), "{out}");
    // Without them, each part's SHA-256 is signed (three distinct hashes, no trailer).
    let parts = out["forms"]["UploadPart"].as_array().unwrap();
    assert_eq!(parts.len(), 3, "{out}");
    for p in parts {
        let sha = p[0].as_str().unwrap();
        assert!(sha.len() == 64 && sha.chars().all(|c| c.is_ascii_hexdigit()) && p[1].is_null(), "{out}");
    }
    // The single PUT's trailing CRC32 is stored by the backend (s3ops.py checks
    // its value); the multipart upload had no checksum.
    assert!(out["checksums"]["tls/small"].is_string(), "{out}");
    assert!(out["checksums"]["tls/big"].is_null(), "{out}");
    assert_eq!(handshake_failures(&c), 0);

    // Plain HTTP to the TLS port: refused and counted.
    let answer = plain_http(port);
    assert!(!answer.starts_with(b"HTTP/"), "{:?}", String::from_utf8_lossy(&answer));
    c.wait_for("the plain-HTTP attempt is counted", Duration::from_secs(30), |c| handshake_failures(c) >= 1);
    assert_eq!(handshake_failures(&c), 1);
    // A client that does not trust the CA fails the handshake; counted too
    // (botocore tries the connection more than once, hence no exact figure).
    let e = py(&endpoint, None, &["untrusted"]).unwrap();
    assert_eq!(e["error"], "SSLError", "{e}");
    assert!(e["detail"].as_str().unwrap().contains("CERTIFICATE_VERIFY_FAILED"), "{e}");
    c.wait_for("the failed handshake is counted", Duration::from_secs(30), |c| handshake_failures(c) >= 2);
    // The gateway goes on.
    let again = py(&endpoint, Some(&pki.ca), &["put", "after", "still serving"]).unwrap();
    assert_eq!(again["backend"], "primary", "{again}");
    assert!(!c.log().contains(SECRET), "a secret leaked into the log");
}

/// botocore's defaults for a managed multipart upload over HTTPS:
/// CreateMultipartUpload with `x-amz-checksum-algorithm: CRC32`, then parts in
/// the unsigned-trailer aws-chunked form. Garage refuses a part of such an
/// upload that comes without its checksum (400 InvalidRequest "Requested
/// checksum verification without providing checksum"), which is what it got
/// when the gateway dropped the trailer; the gateway now verifies the
/// checksum and forwards it as an unsigned trailer. Not a TLS matter:
/// trailers are what clients send over HTTPS.
#[test]
fn multipart_uploads_with_botocore_default_checksums_over_https() {
    let g = start_garage();
    let port = cutover_lab::free_port();
    let (setup, pki) = tls_setup(&[Backend::garage("primary", "primary", &g)], port);
    let c = RunProcess::start(&setup);
    wait_port(port, || c.log());
    let out = py(&format!("https://127.0.0.1:{port}"), Some(&pki.ca), &["tls", "when_supported"])
        .unwrap_or_else(|e| panic!("{e}\n{}", c.log()));
    let trailer = serde_json::json!([["STREAMING-UNSIGNED-PAYLOAD-TRAILER", "x-amz-checksum-crc32"]]);
    assert_eq!(out["forms"]["CreateMultipartUpload"], serde_json::json!([["CRC32"]]), "{out}");
    assert_eq!(out["forms"]["UploadPart"], trailer, "{out}");
    // The parts' CRC32s reached the backend: the object has their composite.
    let big = out["checksums"]["tls/big"].as_str().unwrap_or_else(|| panic!("no checksum for tls/big: {out}"));
    assert!(big.ends_with("-3") && big.len() == 10, "{out}");
}

/// A running `cutover gateway`, killed on drop.
struct Gw(Child);

impl Drop for Gw {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_aws_cli_copies_over_https_with_its_ca_bundle_through_cutover_gateway() {
    let g = start_garage();
    let port = cutover_lab::free_port();
    let (setup, pki) = tls_setup(&[Backend::garage("primary", "primary", &g)], port);
    let log_path = setup.dir.path().join("gateway.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cutover"));
    cmd.arg("--config").arg(&setup.config).arg("gateway");
    cmd.envs(setup.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    cmd.env("CUTOVER_LOG", "info,cutover_gateway=debug").stdout(Stdio::null());
    cmd.stderr(std::fs::File::create(&log_path).unwrap());
    let _gw = Gw(cmd.spawn().unwrap());
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    wait_port(port, log);
    assert!(log().contains(&format!("listening on https://127.0.0.1:{port}")), "{}", log());

    let dir = tempfile::tempdir().unwrap();
    let aws = |args: &[&str], ca: Option<&Path>| {
        let mut cmd = Command::new("aws");
        cmd.args(["--endpoint-url", &format!("https://127.0.0.1:{port}"), "--region", "us-east-1"]);
        if let Some(ca) = ca {
            cmd.arg("--ca-bundle").arg(ca);
        }
        cmd.args(args)
            .env("AWS_ACCESS_KEY_ID", KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            // The default, whatever the environment says.
            .env("AWS_REQUEST_CHECKSUM_CALCULATION", "when_supported")
            .env_remove("AWS_CA_BUNDLE")
            .output()
            .unwrap()
    };
    let ok = |out: std::process::Output| {
        assert!(out.status.success(), "aws: {}\n{}", String::from_utf8_lossy(&out.stderr), log());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // With the CLI's default checksums (the CRC32 trailer form). 1 MiB: one PUT.
    // 9 MiB: above the CLI's 8 MiB multipart threshold, two parts (of an upload
    // created with x-amz-checksum-algorithm CRC32).
    for (name, size) in [("small.bin", 1 << 20), ("big.bin", 9 << 20)] {
        let src = dir.path().join(name);
        let data: Vec<u8> = (0..size).map(|i: u32| (i % 251) as u8).collect();
        std::fs::write(&src, &data).unwrap();
        let dest = format!("s3://app/cli/{name}");
        ok(aws(&["s3", "cp", src.to_str().unwrap(), &dest], Some(&pki.ca)));
        assert!(ok(aws(&["s3", "ls", "s3://app/cli/"], Some(&pki.ca))).contains(name));
        let back = dir.path().join(format!("back-{name}"));
        ok(aws(&["s3", "cp", &dest, back.to_str().unwrap()], Some(&pki.ca)));
        assert!(std::fs::read(&back).unwrap() == data, "{name} came back different");
    }

    // Without the bundle the CLI refuses the certificate; the gateway logs the
    // failed handshake at debug, without any secret.
    let out = aws(&["s3", "ls", "s3://app/cli/"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SSL"), "{}", String::from_utf8_lossy(&out.stderr));
    let start = Instant::now();
    while !log().contains("TLS handshake failed") {
        assert!(start.elapsed() < Duration::from_secs(30), "no handshake failure logged: {}", log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let key = std::fs::read_to_string(&pki.key).unwrap();
    for line in key.lines().filter(|l| !l.starts_with("-----")).chain([SECRET]) {
        assert!(!log().contains(line), "secret material in the log: {}", log());
    }
}

/// `config check` names each unusable file with its key; `gateway` and `run`
/// refuse to start with exit 2 and the same message.
#[test]
fn unusable_certificate_files_are_configuration_errors() {
    let backends = [Backend::dummy("primary", "primary")];
    let port = cutover_lab::free_port();
    let (setup, pki) = tls_setup(&backends, port);
    let tls = setup.dir.path().join("tls");
    assert_eq!(setup.run(&["config", "check"]).code, 0, "{:?}", setup.run(&["config", "check"]));

    let write_config = |cert: &str, key: &str| {
        let text = std::fs::read_to_string(&setup.config).unwrap();
        let start = text.find("[gateway]").unwrap();
        let end = text.find("[[backends]]").unwrap();
        let text = format!("{}{}{}", &text[..start], gateway_toml(port, cert, key), &text[end..]);
        std::fs::write(&setup.config, text).unwrap();
    };
    std::fs::write(tls.join("garbage.pem"), "not a certificate\n").unwrap();
    new_key(&tls, "other.key").unwrap();
    let at = |f: &str| tls.join(f).display().to_string();
    let cases = [
        ("missing.pem", "key.pem", format!("gateway.tls_cert_file: {}: cannot be read: ", at("missing.pem"))),
        ("fullchain.pem", "missing.pem", format!("gateway.tls_key_file: {}: cannot be read: ", at("missing.pem"))),
        ("garbage.pem", "key.pem", format!("gateway.tls_cert_file: {}: no certificate in it", at("garbage.pem"))),
        ("fullchain.pem", "garbage.pem", format!("gateway.tls_key_file: {}: no private key in it", at("garbage.pem"))),
        (
            "fullchain.pem",
            "other.key",
            format!(
                "gateway.tls_key_file: {}: the private key does not match the certificate in {}",
                at("other.key"),
                at("fullchain.pem")
            ),
        ),
    ];
    let key_lines: Vec<String> = std::fs::read_to_string(&pki.key)
        .unwrap()
        .lines()
        .chain(std::fs::read_to_string(tls.join("other.key")).unwrap().lines())
        .filter(|l| !l.starts_with("-----"))
        .map(str::to_string)
        .collect();
    for (cert, key, expected) in &cases {
        write_config(&format!("tls/{cert}"), &format!("tls/{key}"));
        let check = setup.run(&["config", "check"]);
        assert_eq!(check.code, 2, "{check:?}");
        let file = setup.config.display().to_string();
        assert!(check.stderr.contains(&format!("{file}: {expected}")), "expected {expected:?}: {check:?}");
        for args in [&["gateway"][..], &["run"]] {
            let run = setup.run(args);
            assert_eq!(run.code, 2, "{args:?}: {run:?}");
            assert!(run.stderr.contains(expected.as_str()), "{args:?}: expected {expected:?}: {run:?}");
            assert!(!run.stdout.contains("listening"), "{args:?} started: {run:?}");
        }
        for line in &key_lines {
            assert!(!check.stderr.contains(line.as_str()), "key material in: {check:?}");
        }
    }
    // One key without the other.
    let text = std::fs::read_to_string(&setup.config).unwrap().replace("tls_key_file = \"tls/other.key\"\n", "");
    std::fs::write(&setup.config, text).unwrap();
    let check = setup.run(&["config", "check"]);
    assert_eq!(check.code, 2, "{check:?}");
    assert!(check.stderr.contains("gateway.tls_key_file: missing: tls_cert_file is set"), "{check:?}");
}
