//! Gateway registration and authentication against a real etcd cluster.

mod common;

use std::time::{Duration, Instant};

use common::{client, cluster};
use cutover_core::Secret;
use cutover_etcd::registry::{GatewayRegistration, read_all};
use cutover_etcd::{Client, ClientOptions, EtcdError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_register_and_acknowledge_and_go_with_their_lease() {
    let cluster = cluster();
    let c = client(&cluster);
    let gws: Vec<_> = (0..3)
        .map(|i| GatewayRegistration::start(c.clone(), "/g", &format!("gw{i}"), Duration::from_secs(3)))
        .collect();
    for g in &gws {
        g.ack(Some("secondary".into()));
    }
    let start = Instant::now();
    loop {
        let snap = read_all(&c, "/g").await.unwrap();
        let acked = snap.gateways.iter().filter(|g| g.active.as_deref() == Some("secondary")).count();
        if acked == 3 {
            println!("three gateways acknowledged within {:?}", start.elapsed());
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{snap:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A gateway that dies (no resign) disappears when its lease expires.
    let mut gws = gws;
    drop(gws.remove(0));
    let start = Instant::now();
    loop {
        let snap = read_all(&c, "/g").await.unwrap();
        if snap.gateways.len() == 2 {
            assert!(snap.gateways.iter().all(|g| g.name != "gw0"));
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(6), "{snap:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn etcdctl(endpoint: &str, args: &[&str]) {
    let out = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args(args)
        .output()
        .expect("etcdctl runs");
    assert!(out.status.success(), "etcdctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_with_a_token_and_no_password_in_errors() {
    let cluster = cluster();
    let ep = cluster.endpoints()[0].clone();
    etcdctl(&ep, &["user", "add", "root:rootpw-4711"]);
    etcdctl(&ep, &["user", "add", "cutover:s3cret-pw-0815"]);
    etcdctl(&ep, &["role", "add", "cutover"]);
    etcdctl(&ep, &["role", "grant-permission", "cutover", "--prefix=true", "readwrite", "/auth/"]);
    etcdctl(&ep, &["user", "grant-role", "cutover", "cutover"]);
    etcdctl(&ep, &["auth", "enable"]);
    let with = |password: &str| {
        let mut o = ClientOptions::new(cluster.endpoints(), Duration::from_secs(2));
        o.username = Some("cutover".into());
        o.password = Some(Secret::new(password));
        Client::new(&o).unwrap()
    };
    let c = with("s3cret-pw-0815");
    assert!(!format!("{c:?}").contains("s3cret"), "{c:?}");
    c.put(b"/auth/x", b"1", 0).await.unwrap();
    let (_, kv) = c.get(b"/auth/x").await.unwrap();
    assert_eq!(kv.unwrap().value, b"1");
    // Outside the granted prefix: refused by etcd, a status, not a transport error.
    let e = c.put(b"/other", b"1", 0).await.unwrap_err();
    assert!(matches!(e, EtcdError::Status { .. }) && !e.is_transport(), "{e}");
    // A wrong password: an authentication error that does not show it.
    let e = with("wrong-pw-1234").get(b"/auth/x").await.unwrap_err();
    let shown = format!("{e} {e:?}");
    assert!(matches!(e, EtcdError::Auth { .. }), "{shown}");
    assert!(!shown.contains("wrong-pw-1234"), "{shown}");
    // Without credentials: refused.
    assert!(client(&cluster).get(b"/auth/x").await.is_err());
}
