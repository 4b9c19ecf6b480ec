//! Issue 14 point 4, against a real three-member etcd cluster: three
//! `cutover gateway` processes with `[ha]` follow the active backend in
//! etcd, each acknowledges the value it serves under its own lease, a set
//! of the active backend by a fenced leader reaches all three, and while
//! etcd is entirely down every gateway keeps serving the last value (no
//! switch when etcd returns).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Backend, Setup, start_s3sfs};
use cutover_etcd::election::{Election, ElectionConfig, Role};
use cutover_etcd::registry::read_all;
use cutover_etcd::{Client, ClientOptions, EtcdStore};
use cutover_lab::etcd::EtcdCluster;
use cutover_store::prelude::*;
use cutover_store::{Fence, SqliteStore};

const KEY: &str = "HAAPPKEY";
const SECRET: &str = "ha-gateway-app-secret-0123";
const PREFIX: &str = "/cutover/ha-gateway-test";

struct Gw {
    child: Child,
    port: u16,
    setup: Setup,
}

impl Gw {
    fn start(i: usize, endpoints: &[String], backends: &[Backend]) -> Self {
        let port = cutover_lab::free_port();
        let etcd: Vec<String> = endpoints.iter().map(|e| format!("{e:?}")).collect();
        let toml = format!(
            "[ha]\netcd = [{}]\nprefix = \"{PREFIX}\"\nnode = \"gw-{i}\"\nlease_ttl = \"3s\"\n\
             [gateway]\nlisten = \"127.0.0.1:{port}\"\n[[gateway.clients]]\naccess_key_id = \"{KEY}\"\n\
             secret_access_key_env = \"GATEWAY_APP_SECRET\"\n[[gateway.buckets]]\nname = \"app\"\nmode = \"active-passive\"\n",
            etcd.join(", ")
        );
        let mut setup = Setup::new(backends, &toml);
        setup.env.push(("GATEWAY_APP_SECRET".into(), SECRET.into()));
        let log = std::fs::File::create(setup.dir.path().join("gateway.log")).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cutover"));
        cmd.arg("--config").arg(&setup.config).arg("gateway");
        cmd.envs(setup.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd.env("CUTOVER_LOG", "info").stdout(Stdio::null()).stderr(log);
        let child = cmd.spawn().unwrap();
        let gw = Gw { child, port, setup };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(30), "gateway {i} did not start: {}", gw.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        gw
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.setup.dir.path().join("gateway.log")).unwrap_or_default()
    }

    /// `GET /-/health` (or another of the gateway's own paths): status and body.
    fn own(&self, path: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        (status, out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
    }

    fn health(&self) -> serde_json::Value {
        let (status, body) = self.own("/-/health");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
    }

    fn client(&self) -> cutover_s3::S3Client {
        Backend::gateway(self.port, KEY, SECRET).client()
    }
}

impl Drop for Gw {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until every gateway acknowledged `want`; returns how long it took.
fn wait_acked(rt: &tokio::runtime::Runtime, client: &Client, n: usize, want: &str, gws: &[Gw]) -> Duration {
    let start = Instant::now();
    loop {
        let snap = rt.block_on(read_all(client, PREFIX));
        if let Ok(s) = &snap
            && s.gateways.len() == n
            && s.gateways.iter().all(|g| g.active.as_deref() == Some(want))
        {
            return start.elapsed();
        }
        let logs: Vec<String> = gws.iter().map(Gw::log).collect();
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "gateways did not all acknowledge {want}: {snap:?}\n{logs:#?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Which backend holds `key`: "primary", "secondary", or both/neither.
fn holder(rt: &tokio::runtime::Runtime, key: &str, primary: &Backend, secondary: &Backend) -> String {
    let on = |b: &Backend| rt.block_on(b.client().get_object(key, &[])).is_ok();
    match (on(primary), on(secondary)) {
        (true, false) => "primary".into(),
        (false, true) => "secondary".into(),
        other => format!("{other:?}"),
    }
}

#[test]
fn three_gateways_follow_etcd_acknowledge_and_keep_serving_while_etcd_is_down() {
    let mut cluster = EtcdCluster::start().unwrap_or_else(|e| panic!("etcd cluster: {e}"));
    let (a, b) = (start_s3sfs(), start_s3sfs());
    let primary = Backend::s3sfs("primary", "primary", &a);
    let secondary = Backend::s3sfs("secondary", "secondary", &b);
    let backends = [primary.clone(), secondary.clone()];
    let endpoints = cluster.endpoints();
    let gws: Vec<Gw> = (0..3).map(|i| Gw::start(i, &endpoints, &backends)).collect();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let options = ClientOptions::new(endpoints.clone(), Duration::from_secs(1));
    let client = Client::new(&options).unwrap();

    // No active backend in etcd yet: every gateway serves (and says) the primary.
    wait_acked(&rt, &client, 3, "primary", &gws);
    for (i, gw) in gws.iter().enumerate() {
        let key = format!("before/{i}");
        rt.block_on(gw.client().put_object(&key, Bytes::from_static(b"x"), &[])).unwrap();
        assert_eq!(holder(&rt, &key, &primary, &secondary), "primary", "{}", gw.log());
    }

    // A leader sets the active backend with its fence: all three follow.
    let election = rt.block_on(async {
        Election::start(
            client.clone(),
            ElectionConfig::new(PREFIX, "ctl-test", "http://127.0.0.1:1", Duration::from_secs(3)),
        )
    });
    let mut status = election.status();
    let token = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Role::Leader { token } = status.borrow_and_update().role {
                    return token;
                }
                status.changed().await.unwrap();
            }
        })
        .await
        .expect("the test's controller leads")
    });
    let dir = tempfile::tempdir().unwrap();
    let local = SqliteStore::open(&dir.path().join("local.db")).unwrap();
    let store = EtcdStore::open(&options, PREFIX, local).unwrap();
    store.set_active_backend(&Fence::leader(token), "secondary").unwrap();
    let took = wait_acked(&rt, &client, 3, "secondary", &gws);
    println!("switch acknowledged by 3 gateways in {took:?}");
    for (i, gw) in gws.iter().enumerate() {
        let key = format!("after/{i}");
        rt.block_on(gw.client().put_object(&key, Bytes::from_static(b"y"), &[])).unwrap();
        assert_eq!(holder(&rt, &key, &primary, &secondary), "secondary", "{}", gw.log());
    }

    // `cutover ha status`: the leader with its token, every gateway with its value.
    let out = gws[0].setup.run(&["ha", "status", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["leader"]["node"], "ctl-test", "{report}");
    assert_eq!(report["leader"]["token"], token, "{report}");
    assert!(report["lease_left_ms"].as_u64().is_some_and(|ms| ms <= 3000), "{report}");
    let names: Vec<&str> = report["gateways"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["gw-0", "gw-1", "gw-2"], "{report}");
    assert!(report["gateways"].as_array().unwrap().iter().all(|g| g["active"] == "secondary"), "{report}");
    let text = gws[0].setup.run(&["ha", "status"]);
    assert!(text.stdout.contains("leader: ctl-test") && text.stdout.contains("gw-2"), "{text:?}");

    // The health endpoint says what is served and that it is fresh; the
    // metric carries the age; other paths under /-/ are not found.
    std::thread::sleep(Duration::from_millis(1500)); // a follower tick (renew_interval 1 s)
    for gw in &gws {
        let h = gw.health();
        assert_eq!((h["active"].as_str(), h["stale"].as_bool()), (Some("secondary"), Some(false)), "{h}");
        assert!(h["age_seconds"].as_f64().is_some_and(|a| a < 3.0), "{h}");
    }
    let (status, metrics) = gws[0].own("/-/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("cutover_gateway_active_age_seconds "), "{metrics}");
    assert_eq!(gws[0].own("/-/nothing").0, 404);

    // etcd entirely down: writes keep succeeding on the last known backend.
    drop(election);
    for i in 0..3 {
        cluster.member(i).kill().unwrap();
    }
    std::thread::sleep(Duration::from_secs(4)); // past the gateways' lease: they know etcd is away
    for (i, gw) in gws.iter().enumerate() {
        let key = format!("etcd-down/{i}");
        rt.block_on(gw.client().put_object(&key, Bytes::from_static(b"z"), &[]))
            .unwrap_or_else(|e| panic!("gateway {i} with etcd down: {e}\n{}", gw.log()));
        assert_eq!(holder(&rt, &key, &primary, &secondary), "secondary", "{}", gw.log());
        assert!(gw.log().contains("etcd unreachable"), "gateway {i} says etcd is away: {}", gw.log());
        let h = gw.health();
        assert_eq!((h["active"].as_str(), h["stale"].as_bool()), (Some("secondary"), Some(true)), "{h}");
        assert!(h["age_seconds"].as_f64().is_some_and(|a| a > 3.0), "{h}");
    }

    // etcd back: no switch happens.
    for i in 0..3 {
        cluster.member(i).start_again().unwrap();
    }
    cluster.wait_healthy(Duration::from_secs(30)).unwrap();
    wait_acked(&rt, &client, 3, "secondary", &gws);
    for (i, gw) in gws.iter().enumerate() {
        let key = format!("etcd-back/{i}");
        rt.block_on(gw.client().put_object(&key, Bytes::from_static(b"w"), &[])).unwrap();
        assert_eq!(holder(&rt, &key, &primary, &secondary), "secondary", "{}", gw.log());
    }
}
