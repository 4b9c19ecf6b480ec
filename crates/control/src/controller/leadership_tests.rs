//! The controller as a hot standby, in virtual time through its task: it
//! probes and evaluates but writes nothing until it leads; it leads from
//! what the store says; it stops writing at once when it stands by or when
//! the store refuses its fence.

use std::sync::Arc;
use std::time::Duration;

use cutover_core::domain::{IncidentState, RunKind, RunOutcome};
use cutover_store::prelude::*;
use cutover_store::{Fence, SqliteStore};
use tokio::sync::mpsc;
use tracing::info;

use super::super::{ControllerHandle, start};
use super::*;
use crate::clock::Clock;
use crate::health::Health;
use crate::policy::Policy;

#[path = "fencing_store_tests.rs"]
mod fencing;
use fencing::FencingStore;

fn leader() -> Option<Leader> {
    Some(Leader { node: "ctl-b".into(), api: "http://127.0.0.1:18080".into() })
}

/// A standby controller on `store` (its task started, detection window of
/// the fixture, hung probes count after 2 s).
fn standby(dir: &std::path::Path, store: Arc<dyn Store>) -> (ControllerHandle, mpsc::UnboundedReceiver<Event>) {
    let env = |_: &str| Some("set".to_string());
    let text = format!("[detect]\nslow_after = \"2s\"\n{}", cutover_core::fixtures::TWO_BACKENDS);
    let config = cutover_core::config::load_str(&text, "cutover.toml", dir, &env).unwrap();
    let clock = Clock::system();
    let c = Controller::standby(config, Policy::load(None).unwrap(), store, clock.now().mono, leader()).unwrap();
    start(c, clock, Duration::from_secs(2))
}

fn sqlite(dir: &std::path::Path) -> Arc<SqliteStore> {
    Arc::new(SqliteStore::open(&dir.join("cutover.db")).unwrap())
}

/// Probes both backends once a second for `seconds` (a backend that is
/// down refuses connections, and so does its re-check), time passing in
/// handled ticks of 100 ms.
async fn probe(handle: &ControllerHandle, seconds: u64, primary_up: bool, secondary_up: bool, id: &mut u64) {
    for _ in 0..seconds {
        for (backend, up) in [("primary", primary_up), ("secondary", secondary_up)] {
            *id += 1;
            let at = handle.clock().now().mono;
            handle.probe_started(*id, backend, at);
            let outcome = if up { "Ok" } else { "ConnectRefused" };
            handle.probe_done(*id, backend, at, up, outcome.into());
            if !up {
                handle.verified(backend, at, false, outcome.into());
            }
        }
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            handle.tick().await.unwrap();
        }
    }
}

fn drain(events: &mut mpsc::UnboundedReceiver<Event>) -> Vec<Event> {
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push(e);
    }
    seen
}

fn opened(events: &[Event]) -> usize {
    events.iter().filter(|e| matches!(e, Event::IncidentOpened { .. })).count()
}

/// (leader gauge, leadership changes, fenced writes).
async fn ha_metrics(handle: &ControllerHandle) -> (i64, u64, u64) {
    handle
        .query(|c, _| {
            let m = c.telemetry().metrics();
            (m.ha_leader.get(), m.ha_leadership_changes.get(), m.ha_fenced_writes.get())
        })
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_standby_opens_nothing_and_the_incident_opens_at_the_first_tick_it_leads() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path());
    let (handle, mut events) = standby(dir.path(), store.clone());
    let mut id = 0;
    assert!(!handle.status().leading);
    assert_eq!(store.active_backend().unwrap(), None, "a standby wrote the active backend at start");

    info!("the primary is down for 20 s: the standby sees it down, and writes nothing shared");
    probe(&handle, 5, true, true, &mut id).await;
    probe(&handle, 20, false, true, &mut id).await;
    let status = handle.status();
    assert_eq!(status.health("primary"), Health::Down, "{status:?}");
    assert_eq!(status.active, "primary");
    let seen = drain(&mut events);
    assert!(seen.iter().any(|e| matches!(e, Event::HealthChanged { to: Health::Down, .. })), "{seen:?}");
    assert_eq!(opened(&seen), 0, "{seen:?}");
    assert!(!seen.iter().any(|e| matches!(e, Event::Decided { .. } | Event::RunbookDue(_))), "{seen:?}");
    assert!(store.incidents().unwrap().is_empty());
    assert!(store.audit_entries().unwrap().is_empty());
    assert_eq!(store.active_backend().unwrap(), None);
    assert!(!store.last_health().unwrap().is_empty(), "node-local health history stopped");
    assert_eq!(ha_metrics(&handle).await, (0, 0, 0));

    info!("it leads: the active backend is recorded, nothing opens before a tick");
    handle.lead(Fence::leader(7)).await.unwrap();
    let status = handle.status();
    assert!(status.leading);
    assert_eq!(status.token, Some(7));
    assert_eq!(store.active_backend().unwrap().as_deref(), Some("primary"));
    let seen = drain(&mut events);
    assert!(
        seen.iter().any(|e| matches!(e, Event::LeadershipChanged { leading: true, token: Some(7), .. })),
        "{seen:?}"
    );
    assert!(store.incidents().unwrap().is_empty());

    info!("the next tick opens the incident (detection is not restarted), and the decision follows");
    handle.tick().await.unwrap();
    let seen = drain(&mut events);
    assert_eq!(opened(&seen), 1, "{seen:?}");
    assert_eq!(store.open_incidents().unwrap().len(), 1);
    probe(&handle, 2, false, true, &mut id).await;
    let seen = [seen, drain(&mut events)].concat();
    assert!(seen.iter().any(|e| matches!(e, Event::Decided { .. })), "{seen:?}");
    assert!(seen.iter().any(|e| matches!(e, Event::RunbookDue(d) if d.target == "secondary")), "{seen:?}");
    assert_eq!(ha_metrics(&handle).await, (1, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn mutating_requests_on_a_standby_are_not_leader_and_name_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path());
    let (handle, _events) = standby(dir.path(), store.clone());
    let not_leader = |r: Result<(), RequestError>| match r {
        Err(RequestError::NotLeader { leader: l }) => assert_eq!(l, leader()),
        other => panic!("not NotLeader: {other:?}"),
    };
    not_leader(handle.force_failover("secondary", "drill", "admin").await.map(drop));
    not_leader(handle.approval("inc-1", true, "alice", "ok").await.map(drop));
    not_leader(handle.set_active("secondary").await.map(drop));
    not_leader(handle.finish_run("inc-1", RunKind::Failover, RunOutcome::Completed).await);
    let e = handle.set_active("secondary").await.unwrap_err();
    assert_eq!(e.to_string(), "this node is a standby: the leader is ctl-b (http://127.0.0.1:18080)");
    assert!(store.incidents().unwrap().is_empty());
    assert!(store.audit_entries().unwrap().is_empty());
    assert_eq!(store.active_backend().unwrap(), None);
    assert_eq!(handle.status().active, "primary");
}

#[tokio::test(start_paused = true)]
async fn after_stand_by_nothing_more_is_written_though_backends_stay_down() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path());
    let (handle, mut events) = standby(dir.path(), store.clone());
    let mut id = 0;
    handle.lead(Fence::leader(3)).await.unwrap();

    info!("as the leader: the primary is down, its incident opens and fails over");
    probe(&handle, 5, true, true, &mut id).await;
    probe(&handle, 20, false, true, &mut id).await;
    let incident = store.open_incident_for("primary").unwrap().expect("an incident");
    assert_eq!(incident.state, IncidentState::FailingOver);
    drain(&mut events);

    info!("it stands by; the secondary goes down too and the run ends: nothing is written");
    handle.stand_by(leader());
    let audit = store.audit_entries().unwrap().len();
    let timeline = store.timeline(&incident.id).unwrap().len();
    probe(&handle, 20, false, false, &mut id).await;
    let r = handle.finish_run(&incident.id, RunKind::Failover, RunOutcome::Completed).await;
    assert!(matches!(r, Err(RequestError::NotLeader { .. })), "{r:?}");
    let status = handle.status();
    assert_eq!(status.health("secondary"), Health::Down, "{status:?}");
    assert!(!status.leading);
    assert_eq!(status.token, None);
    let seen = drain(&mut events);
    assert!(seen.iter().any(|e| matches!(e, Event::LeadershipChanged { leading: false, .. })), "{seen:?}");
    assert_eq!(opened(&seen), 0, "{seen:?}");
    assert_eq!(store.open_incidents().unwrap().len(), 1, "the standby opened an incident");
    assert_eq!(store.incident(&incident.id).unwrap().unwrap().state, IncidentState::FailingOver);
    assert_eq!(store.audit_entries().unwrap().len(), audit);
    assert_eq!(store.timeline(&incident.id).unwrap().len(), timeline);
    assert_eq!(ha_metrics(&handle).await, (0, 2, 0));
}

#[tokio::test(start_paused = true)]
async fn a_fenced_write_makes_the_controller_stand_by_and_is_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FencingStore::new(SqliteStore::open(&dir.path().join("cutover.db")).unwrap()));
    let (handle, mut events) = standby(dir.path(), store.clone());
    let mut id = 0;
    store.elect(1);
    handle.lead(Fence::leader(1)).await.unwrap();
    probe(&handle, 5, true, true, &mut id).await;

    info!("another node leads (token 2) before this one notices; the primary goes down");
    store.elect(2);
    probe(&handle, 20, false, true, &mut id).await;
    let seen = drain(&mut events);
    assert!(seen.iter().any(|e| matches!(e, Event::LeadershipChanged { leading: false, .. })), "{seen:?}");
    assert_eq!(opened(&seen), 0, "{seen:?}");
    assert!(store.incidents().unwrap().is_empty());
    let status = handle.status();
    assert!(!status.leading);
    assert!(status.store_errors.is_empty(), "a fenced write is not a store failure: {:?}", status.store_errors);
    assert_eq!(ha_metrics(&handle).await, (0, 2, 1));

    info!("the primary stays down: no write is attempted again");
    probe(&handle, 10, false, true, &mut id).await;
    assert_eq!(ha_metrics(&handle).await, (0, 2, 1));
    let r = handle.set_active("secondary").await;
    assert!(matches!(r, Err(RequestError::NotLeader { leader: None })), "{r:?}");

    info!("it leads again with the current token: the incident opens");
    handle.lead(Fence::leader(2)).await.unwrap();
    handle.tick().await.unwrap();
    assert_eq!(store.open_incidents().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_new_leader_after_a_restart_sees_the_open_incident_and_opens_no_second() {
    let dir = tempfile::tempdir().unwrap();
    let mut id = 0;
    {
        let (first, _events) = standby(dir.path(), sqlite(dir.path()));
        first.lead(Fence::leader(1)).await.unwrap();
        probe(&first, 5, true, true, &mut id).await;
        probe(&first, 20, false, true, &mut id).await;
        assert_eq!(first.status().open_incidents, 1);
    }

    info!("a second controller on the same store stands by, then leads, the primary still down");
    let store = sqlite(dir.path());
    let incident = store.open_incident_for("primary").unwrap().expect("the first's incident");
    let decisions = store.timeline(&incident.id).unwrap().iter().filter(|e| e.kind == "decision").count();
    let (second, mut events) = standby(dir.path(), store.clone());
    assert_eq!(second.status().open_incidents, 1, "a standby reads the incidents");
    probe(&second, 20, false, true, &mut id).await;
    second.lead(Fence::leader(2)).await.unwrap();
    probe(&second, 5, false, true, &mut id).await;
    let seen = drain(&mut events);
    assert_eq!(opened(&seen), 0, "{seen:?}");
    assert_eq!(store.incidents().unwrap().len(), 1);
    let again = store.timeline(&incident.id).unwrap().iter().filter(|e| e.kind == "decision").count();
    assert_eq!(again, decisions, "the failing-over incident was decided again");
    assert_eq!(store.incident(&incident.id).unwrap().unwrap().state, IncidentState::FailingOver);
}
