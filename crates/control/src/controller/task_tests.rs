//! The controller task in virtual time: probe cycles, hung probes and
//! requests go through its handle; decisions come out as events and the
//! status is published on its watch channel.

use std::time::Duration;

use tracing::info;

use super::*;
use crate::health::Health;
use crate::policy::{Action, Policy};

fn controller(dir: &std::path::Path, clock: &Clock) -> Controller {
    let env = |_: &str| Some("set".to_string());
    let text = format!("[detect]\nslow_after = \"2s\"\n{}", cutover_core::fixtures::TWO_BACKENDS);
    let config = cutover_core::config::load_str(&text, "cutover.toml", dir, &env).unwrap();
    let store = std::sync::Arc::new(cutover_store::SqliteStore::open(&dir.join("cutover.db")).unwrap());
    Controller::new(config, Policy::load(None).unwrap(), store, clock.now().mono).unwrap()
}

/// Probes both backends once a second: `secondary` answers at once,
/// `primary` never (its cycles hang) when `primary_hangs`, and then its
/// re-checks time out too when `rechecks`.
async fn probe_for(handle: &ControllerHandle, seconds: u64, primary_hangs: bool, rechecks: bool, next_id: &mut u64) {
    for _ in 0..seconds {
        for backend in ["primary", "secondary"] {
            *next_id += 1;
            let at = handle.clock().now().mono;
            handle.probe_started(*next_id, backend, at);
            if backend == "secondary" || !primary_hangs {
                handle.probe_done(*next_id, backend, at, true, "Ok".into());
            } else if rechecks {
                // The re-check through a fresh connection times out too.
                handle.verified(backend, at, false, "Timeout".into());
            }
        }
        // Time passes in ticks of 100 ms, each handled before the next, so
        // that virtual time never runs ahead of the controller.
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            handle.tick().await.unwrap();
        }
    }
}

async fn settle(handle: &ControllerHandle) {
    handle.query(|_, _| ()).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn hung_probes_count_as_failures_and_the_failover_is_decided() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::system();
    let (handle, mut events) = start(controller(dir.path(), &clock), clock, Duration::from_secs(2));
    let mut id = 0;

    info!("both backends answer for 5 s: both healthy, nothing decided");
    probe_for(&handle, 5, false, false, &mut id).await;
    settle(&handle).await;
    let status = handle.status();
    assert_eq!(status.health("primary"), Health::Healthy, "{status:?}");
    assert_eq!(status.health("secondary"), Health::Healthy);
    assert_eq!(status.active, "primary");

    info!("the primary hangs: its cycles never end, and count as failures after slow_after");
    probe_for(&handle, 8, true, false, &mut id).await;
    settle(&handle).await;
    let health = handle.status().health("primary");
    assert!(matches!(health, Health::Suspect | Health::Down), "hung probes did not count: {health:?}");

    info!("its re-checks time out too: the verified outage is decided on");
    probe_for(&handle, 30, true, true, &mut id).await;
    settle(&handle).await;
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push(e);
    }
    let decided = seen.iter().rev().find_map(|e| match e {
        Event::Decided { decision, .. } => Some(decision.clone()),
        _ => None,
    });
    let decided = decided.unwrap_or_else(|| panic!("no decision in {seen:?}"));
    assert_eq!(decided.action, Action::Failover);
    assert_eq!(decided.target.as_deref(), Some("secondary"));
    assert!(seen.iter().any(|e| matches!(e, Event::RunbookDue(d) if d.target == "secondary")), "{seen:?}");
    let status = handle.status();
    assert_eq!(status.health("primary"), Health::Down, "{status:?}");
    assert_eq!(status.open_incidents, 1);
}

#[tokio::test(start_paused = true)]
async fn requests_are_answered_and_watchers_see_the_switch() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::system();
    let (handle, _events) = start(controller(dir.path(), &clock), clock, Duration::from_secs(2));
    let mut watcher = handle.subscribe();

    info!("a forced failover to an unknown backend is refused with NotFound");
    let refused = handle.force_failover("nowhere", "test", "admin").await;
    assert!(matches!(refused, Err(RequestError::NotFound(_))), "{refused:?}");

    info!("state.switch to the secondary: the previous one comes back, watchers see it");
    let previous = handle.set_active("secondary").await.unwrap();
    assert_eq!(previous, "primary");
    tokio::time::timeout(Duration::from_secs(5), watcher.wait_for(|s| s.active == "secondary"))
        .await
        .expect("no status with the new active backend")
        .unwrap();

    info!("an approval of an incident that does not exist is NotFound");
    let r = handle.approval("inc-nope", true, "alice", "").await;
    assert!(matches!(r, Err(RequestError::NotFound(_))), "{r:?}");
}

#[tokio::test(start_paused = true)]
async fn a_query_runs_on_the_controllers_thread_with_the_commands_time() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::system();
    let (handle, _events) = start(controller(dir.path(), &clock), clock, Duration::from_secs(2));
    let before = clock.now();
    tokio::time::sleep(Duration::from_secs(42)).await;
    let (active, now) = handle.query(|c, now| (c.active().to_string(), now)).await.unwrap();
    assert_eq!(active, "primary");
    assert!(now.mono.duration_since(before.mono) >= Duration::from_secs(42));
    assert!(now.wall.duration_since(before.wall).unwrap() >= Duration::from_secs(42));
}

#[tokio::test(start_paused = true)]
async fn a_decisions_timestamps_follow_the_paused_clock_not_the_hosts() {
    let dir = tempfile::tempdir().unwrap();
    // A wall time far from the host's: only the controller's clock can put it in a record.
    let clock = Clock::starting_at(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000));
    let (handle, _events) = start(controller(dir.path(), &clock), clock, Duration::from_secs(2));
    let mut id = 0;

    info!("both backends answer for 5 s, then the primary hangs and its re-checks time out");
    probe_for(&handle, 5, false, false, &mut id).await;
    let hang = clock.now().wall;
    probe_for(&handle, 20, true, true, &mut id).await;
    let end = clock.now().wall;
    settle(&handle).await;

    info!("the incident, its timeline and its health history carry the clock's time");
    let (incident, timeline) = handle
        .query(|c, _| {
            let incident = c.store().incidents().unwrap().into_iter().next().expect("an incident");
            let timeline = c.store().timeline(&incident.id).unwrap();
            (incident, timeline)
        })
        .await
        .unwrap();
    let parse = |text: &str| cutover_core::time::parse_rfc3339(text).unwrap_or_else(|| panic!("{text:?}"));
    let within = |text: &str| {
        let t = parse(text);
        t + Duration::from_millis(1) >= hang && t <= end
    };
    assert!(within(&incident.opened_at), "opened at {} (clock from {hang:?} to {end:?})", incident.opened_at);
    assert!(timeline.iter().any(|e| e.kind == "decision"), "{timeline:?}");
    for entry in &timeline {
        assert!(within(&entry.at), "{entry:?} is not on the controller's clock ({hang:?} to {end:?})");
    }
    let opened = timeline.iter().find(|e| e.kind == "incident.opened").expect("incident.opened");
    assert_eq!(opened.at, incident.opened_at);
}
