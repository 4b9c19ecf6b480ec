//! The etcd store with real elections: fencing, the audit chain across
//! leaders, a member killed, and the active backend's watch.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::{TTL, client, cluster, config};
use cutover_etcd::{Election, ElectionStatus};
use cutover_store::{ActiveBackend, AuditLog, Fence, Incidents, Store, StoreError, StoreExt};
use serde_json::json;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Waits (blocking) until `e` leads; its fence.
fn leads(e: &Election, limit: Duration) -> Fence {
    let start = Instant::now();
    loop {
        if let Some(f) = e.status().borrow().fence() {
            return f;
        }
        assert!(start.elapsed() < limit, "no leadership after {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn status(e: &Election) -> ElectionStatus {
    e.status().borrow().clone()
}

#[test]
fn a_local_fence_is_refused() {
    let cluster = cluster();
    let dir = tempfile::tempdir().unwrap();
    let store = common::store(&cluster, "/s1", &dir);
    let e = store.set_active_backend(&Fence::local(), "secondary").unwrap_err();
    assert!(matches!(e, StoreError::Fenced { revision: None, .. }), "{e}");
    // A fence no leader key carries is refused too, and nothing is written.
    let e = store.audit(&Fence::leader(12345), SystemTime::now(), "c", "x", &json!({})).unwrap_err();
    assert!(matches!(e, StoreError::Fenced { revision: Some(12345), .. }), "{e}");
    assert!(store.audit_entries().unwrap().is_empty());
    assert_eq!(store.active_backend().unwrap(), None);
}

#[test]
fn a_deposed_leaders_writes_are_refused_and_the_audit_chain_stays_linear() {
    let cluster = cluster();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = common::store(&cluster, "/s2", &dir);
    let a = rt.block_on(async { Election::start(client(&cluster), config("/s2", "a")) });
    let fence_a = leads(&a, Duration::from_secs(10));
    let b = rt.block_on(async { Election::start(client(&cluster), config("/s2", "b")) });
    std::thread::sleep(Duration::from_millis(300));
    assert!(!status(&b).is_leader());
    for i in 0..3 {
        store.audit(&fence_a, SystemTime::now(), "a", "step", &json!({"i": i})).unwrap();
    }
    let inc = store.open_incident(&fence_a, "primary", SystemTime::now()).unwrap();
    // A loses its lease behind its back (as when it was paused past its TTL).
    let lease = status(&a).lease.unwrap();
    rt.block_on(client(&cluster).lease_revoke(lease)).unwrap();
    let fence_b = leads(&b, TTL + Duration::from_secs(2));
    assert!(fence_b.revision() > fence_a.revision());
    // A's writes, with its old fence, are refused and change nothing.
    let e = store.audit(&fence_a, SystemTime::now(), "a", "late", &json!({})).unwrap_err();
    assert!(matches!(e, StoreError::Fenced { .. }), "{e}");
    let e = store
        .atomic(&fence_a, |tx| {
            tx.add_event(&inc, SystemTime::now(), "late", &json!({}))?;
            tx.set_incident_state(&inc, cutover_core::domain::IncidentState::Resolved, None)
        })
        .unwrap_err();
    assert!(matches!(e, StoreError::Fenced { .. }), "{e}");
    assert!(store.timeline(&inc).unwrap().is_empty());
    assert!(store.set_active_backend(&fence_a, "secondary").is_err());
    assert_eq!(store.active_backend().unwrap(), None);
    // B's go on the same chain.
    for i in 0..3 {
        store.audit(&fence_b, SystemTime::now(), "b", "step", &json!({"i": i})).unwrap();
    }
    assert_eq!(store.verify_audit().unwrap(), Ok(6));
    let actors: Vec<_> = store.audit_entries().unwrap().into_iter().map(|e| (e.seq, e.actor)).collect();
    assert_eq!(actors.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6]);
    assert_eq!(actors.iter().filter(|(_, a)| a == "a").count(), 3);
    // A notices: it no longer leads.
    let start = Instant::now();
    while status(&a).is_leader() {
        assert!(start.elapsed() < TTL, "the deposed leader still thinks it leads");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop((a, b));
}

#[test]
fn concurrent_writers_with_one_fence_keep_ids_and_the_chain_dense() {
    let cluster = cluster();
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let leader = rt.block_on(async { Election::start(client(&cluster), config("/s3", "a")) });
    let fence = leads(&leader, Duration::from_secs(10));
    let store: Arc<dyn Store> = Arc::new(common::store(&cluster, "/s3", &dir));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (store, fence) = (store.clone(), fence.clone());
            std::thread::spawn(move || {
                (0..5)
                    .map(|i| store.audit(&fence, SystemTime::now(), "c", "x", &json!({"t": t, "i": i})).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seqs: Vec<i64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    seqs.sort();
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>(), "every append got its own seq");
    assert_eq!(store.verify_audit().unwrap(), Ok(20));
    drop(leader);
}

#[test]
fn election_and_store_keep_working_with_one_member_killed() {
    let mut cluster = cluster();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = common::store(&cluster, "/s4", &dir);
    let a = rt.block_on(async { Election::start(client(&cluster), config("/s4", "a")) });
    let fence = leads(&a, Duration::from_secs(10));
    store.set_active_backend(&fence, "primary").unwrap();
    // Kill a member that is not etcd's raft leader.
    let follower = (raft_leader(&cluster) + 1) % 3;
    cluster.member(follower).kill().unwrap();
    let t = Instant::now();
    store.set_active_backend(&fence, "secondary").unwrap();
    println!("first write after etcd member {follower} (a raft follower) was killed: {:?}", t.elapsed());
    assert_eq!(store.active_backend().unwrap().as_deref(), Some("secondary"));
    store.audit(&fence, SystemTime::now(), "a", "x", &json!({})).unwrap();
    // The leader keeps leading across a few renewals, with the same token.
    std::thread::sleep(TTL);
    assert_eq!(status(&a).fence(), Some(fence.clone()));
    // A second store opened now (its first endpoint is down) works too.
    let dir2 = tempfile::tempdir().unwrap();
    let other = common::store(&cluster, "/s4", &dir2);
    assert_eq!(other.active_backend().unwrap().as_deref(), Some("secondary"));
    assert_eq!(other.verify_audit().unwrap(), Ok(1));
    drop(a);
}

#[test]
fn a_watch_sees_every_set_of_the_active_backend() {
    let cluster = cluster();
    let dir = tempfile::tempdir().unwrap();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let writer = common::store(&cluster, "/s5", &dir);
    let fence = conformance_fence(&cluster, "/s5");
    // Another process's store (its own connection and runtime) follows.
    let follower = common::store(&cluster, "/s5", &d1);
    let mut rx = follower.watch_active_backend();
    let (mut commit, mut seen) = (Vec::new(), Vec::new());
    for i in 0..30 {
        let name = if i % 2 == 0 { "secondary" } else { "primary" };
        let t = Instant::now();
        writer.set_active_backend(&fence, name).unwrap();
        commit.push(t.elapsed());
        wait_for(&mut rx, name, Duration::from_secs(5));
        seen.push(t.elapsed());
    }
    commit.sort();
    seen.sort();
    let (p50, max) = (|v: &[Duration]| v[v.len() / 2], |v: &[Duration]| v[v.len() - 1]);
    println!(
        "30 sets of the active backend: the fenced commit p50 {:?} max {:?}; \
         seen by another store's watch (from the start of the set) p50 {:?} max {:?}",
        p50(&commit),
        max(&commit),
        p50(&seen),
        max(&seen)
    );
    assert!(p50(&seen) < Duration::from_millis(100), "p50 {:?}", p50(&seen));
    // A store opened later starts from the stored value.
    let late = common::store(&cluster, "/s5", &d2);
    assert_eq!(late.watch_active_backend().borrow().as_deref(), Some("primary"));
}

#[test]
fn the_watch_keeps_its_value_while_etcd_is_away_and_catches_up() {
    let mut cluster = cluster();
    let dir = tempfile::tempdir().unwrap();
    let d1 = tempfile::tempdir().unwrap();
    let writer = common::store(&cluster, "/s6", &dir);
    let fence = conformance_fence(&cluster, "/s6");
    writer.set_active_backend(&fence, "primary").unwrap();
    let follower = common::store(&cluster, "/s6", &d1);
    let mut rx = follower.watch_active_backend();
    assert_eq!(rx.borrow_and_update().as_deref(), Some("primary"));
    for i in 0..3 {
        cluster.member(i).pause().unwrap();
    }
    std::thread::sleep(Duration::from_secs(3));
    assert!(!rx.has_changed().unwrap(), "nothing published while etcd is away");
    assert_eq!(rx.borrow().as_deref(), Some("primary"));
    for i in 0..3 {
        cluster.member(i).resume().unwrap();
    }
    cluster.wait_healthy(Duration::from_secs(20)).unwrap();
    let t = Instant::now();
    writer.set_active_backend(&fence, "secondary").unwrap();
    wait_for(&mut rx, "secondary", Duration::from_secs(10));
    println!("after etcd came back, the follower saw a set {:?} after it began", t.elapsed());
}

fn wait_for(rx: &mut tokio::sync::watch::Receiver<Option<String>>, name: &str, limit: Duration) {
    let t = Instant::now();
    while rx.borrow_and_update().as_deref() != Some(name) {
        assert!(t.elapsed() < limit, "the watch did not see {name} within {limit:?}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn conformance_fence(cluster: &cutover_lab::etcd::EtcdCluster, prefix: &str) -> Fence {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let key = format!("{prefix}/leader");
    let r = rt
        .block_on(client(cluster).txn(
            &[cutover_etcd::Compare::create_revision(key.as_bytes(), cutover_etcd::Cmp::Equal, 0)],
            &[cutover_etcd::Op::put(key.as_bytes(), br#"{"node":"t","api":"http://t"}"#.to_vec())],
            &[],
        ))
        .unwrap();
    Fence::leader(r.header.revision)
}

#[test]
fn the_watch_catches_up_when_the_member_serving_it_is_paused() {
    let mut cluster = cluster();
    let (d0, d1) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let follower = common::store(&cluster, "/s7", &d0); // watches through member 0, its first endpoint
    let mut rx = follower.watch_active_backend();
    let mut others = common::options(&cluster);
    others.endpoints.remove(0);
    let local = cutover_store::SqliteStore::open(&d1.path().join("l.db")).unwrap();
    let writer = cutover_etcd::EtcdStore::open(&others, "/s7", local).unwrap();
    let fence = conformance_fence(&cluster, "/s7");
    cluster.member(0).pause().unwrap();
    let t = Instant::now();
    // Member 0 may be etcd's raft leader: writes wait for a new one (a
    // commit with a lost answer is an error; setting a name again is safe).
    while let Err(e) = writer.set_active_backend(&fence, "secondary") {
        assert!(t.elapsed() < Duration::from_secs(10), "{e}");
        assert!(matches!(e, StoreError::Remote { .. }), "{e}");
    }
    let committed = t.elapsed();
    wait_for(&mut rx, "secondary", Duration::from_secs(10));
    println!(
        "member 0 paused: the set committed after {committed:?}; the follower whose watch went silent saw it after {:?}",
        t.elapsed()
    );
    cluster.member(0).resume().unwrap();
}

#[test]
fn the_store_keeps_working_when_etcds_raft_leader_is_killed() {
    let mut cluster = cluster();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = common::store(&cluster, "/s8", &dir);
    let a = rt.block_on(async { Election::start(client(&cluster), config("/s8", "a")) });
    let before = leads(&a, Duration::from_secs(10));
    store.audit(&before, SystemTime::now(), "a", "x", &json!({"n": 1})).unwrap();
    // Writes stall until the other members elect a raft leader: a commit
    // may go unanswered (sent again), and with a short lease our own
    // leadership may lapse (a new token). Writing with the current fence
    // succeeds again soon, and the chain stays whole.
    let leader = raft_leader(&cluster);
    cluster.member(leader).kill().unwrap();
    let t = Instant::now();
    let mut refused = Vec::new();
    let fence = loop {
        let fence = leads(&a, TTL * 3);
        match store.audit(&fence, SystemTime::now(), "a", "x", &json!({"n": 2})) {
            Ok(_) => break fence,
            Err(e) => refused.push(e.to_string()),
        }
        assert!(t.elapsed() < TTL * 4, "no write succeeded: {refused:#?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    println!(
        "etcd's raft leader (member {leader}) killed: a write succeeded after {:?} ({} refused or unanswered before; token {:?} -> {:?})",
        t.elapsed(),
        refused.len(),
        before.revision(),
        fence.revision()
    );
    assert_eq!(store.verify_audit().unwrap(), Ok(2));
    drop(a);
}

/// The index of the member that is etcd's raft leader (`etcdctl endpoint status`).
fn raft_leader(cluster: &cutover_lab::etcd::EtcdCluster) -> usize {
    let out = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", cluster.endpoints().join(",")))
        .args(["endpoint", "status", "-w", "json"])
        .output()
        .expect("etcdctl runs");
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).expect("etcdctl's JSON");
    let all = all.as_array().expect("one status per endpoint");
    all.iter().position(|s| s["Status"]["header"]["member_id"] == s["Status"]["leader"]).expect("a member leads")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_opening_the_store_with_etcd_unreachable_panicked_dropping_its_runtime() {
    // `cutover run` opens the store from inside its runtime: a failed open
    // dropped the store's own runtime there, which panics.
    let dir = tempfile::tempdir().unwrap();
    let local = cutover_store::SqliteStore::open(&dir.path().join("local.db")).unwrap();
    let dead = format!("http://127.0.0.1:{}", cutover_lab::free_port());
    let options = cutover_etcd::ClientOptions::new(vec![dead.clone()], Duration::from_millis(300));
    let e = cutover_etcd::EtcdStore::open(&options, "/dead", local).unwrap_err();
    assert!(matches!(e, StoreError::Remote { what: "read", .. }), "{e}");
    assert!(e.to_string().contains(&dead), "the error names the endpoint: {e}");
}
