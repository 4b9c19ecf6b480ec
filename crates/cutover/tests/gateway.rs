//! `cutover gateway` end to end: the real binary in front of two real Garage
//! nodes, driven by boto3 (tests/gateway/s3ops.py), presigned URLs included.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Backend, Setup, start_garage};
use cutover_lab::garage::Garage;
use serde_json::Value;

const KEY: &str = "APPKEY";
const SECRET: &str = "app-secret-for-the-gateway-tests";

/// A running `cutover gateway` process, killed on drop.
struct Gw {
    child: Child,
    endpoint: String,
    setup: Setup,
}

impl Drop for Gw {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gw {
    fn start(backends: &[Backend], mode: &str, ack: Option<&str>) -> Gw {
        let port = cutover_lab::free_port();
        let ack = ack.map(|a| format!("ack = \"{a}\"\n")).unwrap_or_default();
        let toml = format!(
            "[gateway]\nlisten = \"127.0.0.1:{port}\"\n[[gateway.clients]]\naccess_key_id = \"{KEY}\"\n\
             secret_access_key_env = \"GATEWAY_APP_SECRET\"\n[[gateway.buckets]]\nname = \"app\"\nmode = \"{mode}\"\n{ack}\n"
        );
        let mut setup = Setup::new(backends, &toml);
        setup.env.push(("GATEWAY_APP_SECRET".into(), SECRET.into()));
        let log = std::fs::File::create(setup.dir.path().join("gateway.log")).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cutover"));
        cmd.arg("--config").arg(&setup.config).args(["gateway", "--header-timeout", "2s"]);
        cmd.envs(setup.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd.env("CUTOVER_LOG", "info").stdout(Stdio::null()).stderr(log);
        let child = cmd.spawn().unwrap();
        let gw = Gw { child, endpoint: format!("http://127.0.0.1:{port}"), setup };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(30), "gateway did not start: {}", gw.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        gw
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.setup.dir.path().join("gateway.log")).unwrap_or_default()
    }

    fn db(&self) -> String {
        self.setup.dir.path().join("cutover.db").display().to_string()
    }

    /// Runs a scenario of s3ops.py against this gateway.
    fn py(&self, args: &[&str]) -> Value {
        py(&self.endpoint, KEY, SECRET, args).unwrap_or_else(|e| panic!("{e}\ngateway log:\n{}", self.log()))
    }

    fn sql(&self, query: &str) -> Vec<Value> {
        self.py(&["sql", &self.db(), query])["rows"].as_array().unwrap().clone()
    }
}

fn py(endpoint: &str, key: &str, secret: &str, args: &[&str]) -> Result<Value, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gateway/s3ops.py");
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .env("GW_ENDPOINT", endpoint)
        .env("GW_KEY", key)
        .env("GW_SECRET", secret)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("s3ops.py {args:?} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    }
    let last = stdout.lines().last().unwrap_or("");
    serde_json::from_str(last).map_err(|e| format!("not JSON: {last:?}: {e}"))
}

/// boto3 straight to one Garage node (bucket app-data), for checks behind the gateway's back.
fn direct(g: &Garage, args: &[&str]) -> Value {
    let out = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gateway/s3ops.py"))
        .args(args)
        .env("GW_ENDPOINT", g.endpoint())
        .env("GW_KEY", &g.key_id)
        .env("GW_SECRET", &g.secret)
        .env("GW_BUCKET", &g.bucket)
        .env("GW_REGION", "garage")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap()
}

fn two_garages() -> (Garage, Garage, Vec<Backend>) {
    let a = start_garage();
    let b = start_garage();
    let backends = vec![Backend::garage("primary", "primary", &a), Backend::garage("secondary", "secondary", &b)];
    (a, b, backends)
}

/// Polls `f` until it returns true (no timing assertion: the bound only ends a hung test).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(120), "never happened: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn boto3_runs_the_whole_operation_matrix_through_the_gateway() {
    let (a, _b, backends) = two_garages();
    let gw = Gw::start(&backends, "active-passive", None);
    let out = gw.py(&["matrix"]);
    assert_eq!(out["put_backend"], "primary", "{out}");
    assert_eq!(out["get_backend"], "primary");
    assert_eq!(out["complete_backend"], "primary");
    assert_eq!(out["buckets"], serde_json::json!(["app"]));
    // The data really is on the primary's own bucket.
    assert_eq!(direct(&a, &["get", "big"])["status"], 200);
    assert!(!gw.log().contains(SECRET), "a secret leaked into the log");
}

#[test]
fn the_aws_cli_copies_files_through_the_gateway() {
    let (_a, _b, backends) = two_garages();
    let gw = Gw::start(&backends, "active-passive", None);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.bin");
    let data: Vec<u8> = (0..(9 << 20)).map(|i: u32| (i % 251) as u8).collect();
    std::fs::write(&src, &data).unwrap();
    let back = dir.path().join("back.bin");
    let aws = |args: &[&str]| {
        let out = Command::new("aws")
            .args(["--endpoint-url", &gw.endpoint, "--region", "us-east-1"])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .output()
            .unwrap();
        assert!(out.status.success(), "aws {args:?}: {}\n{}", String::from_utf8_lossy(&out.stderr), gw.log());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    aws(&["s3", "cp", src.to_str().unwrap(), "s3://app/cli/src.bin"]);
    assert!(aws(&["s3", "ls", "s3://app/cli/"]).contains("src.bin"));
    aws(&["s3", "cp", "s3://app/cli/src.bin", back.to_str().unwrap()]);
    assert_eq!(std::fs::read(&back).unwrap(), data);
}

#[test]
fn bad_signatures_unknown_keys_and_anonymous_requests_are_refused() {
    let (_a, _b, backends) = two_garages();
    let gw = Gw::start(&backends, "active-passive", None);
    let out = gw.py(&["auth"]);
    assert_eq!(out["wrong_secret"], serde_json::json!(["SignatureDoesNotMatch", 403]), "{out}");
    assert_eq!(out["unknown_key"], serde_json::json!(["InvalidAccessKeyId", 403]));
    assert_eq!(out["anonymous"], serde_json::json!(["AccessDenied", 403]));
    assert_eq!(out["anonymous_put"], serde_json::json!(["AccessDenied", 403]));
}

#[test]
fn read_through_serves_gets_from_the_secondary_while_the_primary_hangs_or_is_dead() {
    let (mut a, b, backends) = two_garages();
    let gw = Gw::start(&backends, "read-through", None);
    assert_eq!(gw.py(&["put", "both", "v1"])["backend"], "primary");
    direct(&b, &["put", "both", "v1"]);
    gw.py(&["put", "only-primary", "p"]);
    // Missing on the primary (404): served by the secondary.
    direct(&b, &["put", "only-secondary", "s"]);
    let r = gw.py(&["get", "only-secondary"]);
    assert_eq!((r["status"].as_i64(), r["backend"].as_str()), (Some(200), Some("secondary")), "{r}");

    a.pause().unwrap();
    let r = gw.py(&["get", "both"]);
    assert_eq!(
        (r["status"].as_i64(), r["backend"].as_str(), r["body"].as_str()),
        (Some(200), Some("secondary"), Some("v1")),
        "{r}"
    );
    a.resume().unwrap();

    a.kill();
    let r = gw.py(&["get", "both"]);
    assert_eq!((r["status"].as_i64(), r["backend"].as_str()), (Some(200), Some("secondary")), "{r}");
    // Unreachable is never "not found": the secondary's 404 does not hide a dead primary.
    let r = gw.py(&["get", "only-primary"]);
    assert_eq!(r["status"], 503, "{r}");
    assert_ne!(r["code"], "NoSuchKey");
}

#[test]
fn dual_write_journals_what_a_dead_secondary_missed_and_replays_it() {
    let (a, mut b, backends) = two_garages();
    let gw = Gw::start(&backends, "dual-write", Some("active-journal"));
    gw.py(&["put", "k0", "both-up"]);
    assert_eq!(direct(&b, &["get", "k0"])["body"], "both-up");

    b.kill();
    assert_eq!(gw.py(&["put", "k1", "while-down"])["backend"], "primary");
    gw.py(&["delete", "k0"]);
    // Acknowledged only after the journal entry was on disk.
    let pending = gw.sql("SELECT key, op, source, target FROM gateway_journal ORDER BY id");
    assert!(pending.len() >= 2, "{pending:?}");
    assert_eq!(pending[0], serde_json::json!(["k1", "put", "primary", "secondary"]));
    assert_eq!(pending[1], serde_json::json!(["k0", "delete", "primary", "secondary"]));

    b.restart().unwrap();
    eventually("the journal drains", || gw.sql("SELECT COUNT(*) FROM gateway_journal")[0][0] == 0);
    assert_eq!(direct(&b, &["get", "k1"])["body"], "while-down");
    assert_eq!(direct(&a, &["get", "k1"])["body"], "while-down");
    assert_eq!(direct(&b, &["get", "k0"])["status"], 404);
}

#[test]
fn dual_write_with_ack_all_refuses_a_write_the_secondary_cannot_take() {
    let (_a, mut b, backends) = two_garages();
    let gw = Gw::start(&backends, "dual-write", Some("all"));
    gw.py(&["put", "k", "ok"]);
    b.kill();
    let e = py(&gw.endpoint, KEY, SECRET, &["put", "k2", "refused"]).unwrap_err();
    assert!(e.contains("ServiceUnavailable") || e.contains("503"), "{e}");
}

#[test]
fn switching_active_backend_in_the_state_file_moves_new_writes_and_resync_brings_them_back() {
    let (a, b, backends) = two_garages();
    let gw = Gw::start(&backends, "active-passive", None);
    assert_eq!(gw.py(&["put", "before", "1"])["backend"], "primary");
    gw.sql("INSERT INTO kv(key, value) VALUES('active_backend', 'secondary') ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    eventually("writes move to the secondary", || gw.py(&["put", "after", "2"])["backend"] == "secondary");
    assert_eq!(direct(&b, &["get", "after"])["body"], "2");
    assert_eq!(direct(&a, &["get", "after"])["status"], 404);
    let recorded = gw.sql("SELECT key, backend FROM gateway_failback");
    assert_eq!(recorded, vec![serde_json::json!(["after", "secondary"])]);

    // Failback: copy back to the primary, verified, then switch back.
    let run = gw.setup.run(&["gateway", "--resync"]);
    assert_eq!(run.code, 0, "{run:?}");
    let report: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(
        (report["copied"].as_u64(), report["failed"].as_u64(), report["remaining"].as_u64()),
        (Some(1), Some(0), Some(0)),
        "{report}"
    );
    assert_eq!(direct(&a, &["get", "after"])["body"], "2");
    gw.sql("UPDATE kv SET value = 'primary' WHERE key = 'active_backend'");
    eventually("writes move back", || gw.py(&["put", "later", "3"])["backend"] == "primary");
}

#[test]
fn sigterm_lets_an_upload_in_progress_finish_then_the_gateway_exits_0() {
    use std::io::{Read, Write};
    let (a, _b, backends) = two_garages();
    let mut gw = Gw::start(&backends, "active-passive", None);
    let host = gw.endpoint.trim_start_matches("http://").to_string();
    let date = cutover_s3::sigv4::AmzDate::now();
    let query = cutover_s3::sigv4::presign_query(
        "PUT",
        &host,
        "/app/at-sigterm",
        KEY,
        SECRET,
        None,
        "us-east-1",
        &date,
        Duration::from_secs(600),
    );
    // The body is text so that s3ops.py can read it back.
    let body: String = (0..20_000u32).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let mut conn = std::net::TcpStream::connect(&host).unwrap();
    let head =
        format!("PUT /app/at-sigterm?{query} HTTP/1.1\r\nhost: {host}\r\ncontent-length: {}\r\n\r\n", body.len());
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(&body.as_bytes()[..10_000]).unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let pid = gw.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    eventually("the listener closes", || std::net::TcpStream::connect(&host).is_err());
    assert!(gw.child.try_wait().unwrap().is_none(), "the gateway exited with an upload in progress: {}", gw.log());

    conn.write_all(&body.as_bytes()[10_000..]).unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}\n{}", gw.log());
    let mut status = None;
    eventually("the gateway exits", || {
        status = gw.child.try_wait().unwrap();
        status.is_some()
    });
    assert!(status.unwrap().success(), "exit status {status:?}: {}", gw.log());
    let stored = direct(&a, &["get", "at-sigterm"]);
    assert_eq!(stored["status"], 200, "{stored}");
    assert_eq!(stored["body"].as_str(), Some(body.as_str()), "the upload was not stored whole");
}
