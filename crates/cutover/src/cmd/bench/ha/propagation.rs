//! Part 2 of `bench ha`: switch propagation to three `cutover gateway`
//! processes. The bench leads an in-process [`Election`] on the part's
//! prefix and sets the active backend through [`EtcdStore`] with its fence
//! (as a leader's `state.switch` does), alternating secondary and primary;
//! each switch is timed from just before the fenced write to the etcd
//! event of the last gateway acknowledging the new value under
//! `<prefix>/gateways/` (followed with a watch, each event timed as it
//! arrives).

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cutover_etcd::election::{Election, ElectionConfig, Role};
use cutover_etcd::registry::GatewayEntry;
use cutover_etcd::{EtcdStore, Event, EventType};
use cutover_store::prelude::*;
use cutover_store::{Fence, SqliteStore};

use super::lab::HaLab;
use super::process::HaProcess;
use super::watch::{Seen, follow, leaf};
use crate::cmd::bench::error::{BenchError, etcd, io, store_op};
use crate::cmd::bench::phase::jitter;
use crate::cmd::bench::process::PATIENCE;

/// Gateways that follow the switches.
pub const GATEWAYS: usize = 3;

/// What the switches measured.
#[derive(Debug, Default)]
pub struct PropagationReport {
    /// Fenced write to the last acknowledgement, per switch.
    pub took: Vec<Duration>,
    pub errors: Vec<String>,
}

/// The value each gateway acknowledged last, by name.
type Known = BTreeMap<String, Option<String>>;

/// `switches` switches followed by [`GATEWAYS`] gateways started on `lab`.
pub fn measure(lab: &HaLab, switches: usize) -> PropagationReport {
    let mut r = PropagationReport::default();
    if let Err(e) = run(lab, switches, &mut r) {
        eprintln!("propagation: {e}");
        r.errors.push(e.to_string());
    }
    r
}

fn run(lab: &HaLab, switches: usize, r: &mut PropagationReport) -> Result<(), BenchError> {
    let shared = lab.shared("switch");
    let gateways = lab.start_gateways(&shared, GATEWAYS)?;
    let prefix = shared.prefix.as_str();
    let (election, token) = lead(lab, prefix)?;
    let dir = tempfile::tempdir().map_err(io("temporary directory"))?;
    let local = SqliteStore::open(&dir.path().join("local.db")).map_err(store_op("the bench's local store"))?;
    let store = EtcdStore::open(&lab.options, prefix, local).map_err(store_op("the bench's store on etcd"))?;
    let fence = Fence::leader(token);

    let (acks, mut known) = follow_gateways(lab, prefix)?;
    // No active backend in etcd yet: every gateway serves the primary.
    wait_all(&acks, &mut known, "primary", &gateways)?;
    for i in 0..switches {
        let want = if i % 2 == 0 { "secondary" } else { "primary" };
        let start = Instant::now();
        store.set_active_backend(&fence, want).map_err(store_op("the fenced set of the active backend"))?;
        match wait_all(&acks, &mut known, want, &gateways) {
            Ok(at) => {
                let took = at.saturating_duration_since(start);
                eprintln!(
                    "switch {}/{switches} to {want}: acknowledged by {GATEWAYS} gateways in {:.1} ms",
                    i + 1,
                    took.as_secs_f64() * 1000.0
                );
                r.took.push(took);
            }
            Err(e) => {
                eprintln!("switch {}/{switches}: {e}", i + 1);
                r.errors.push(e.to_string());
            }
        }
        // Let the gateways' renewals fall at another phase of the next switch.
        std::thread::sleep(Duration::from_millis(50) + jitter(Duration::from_millis(100)));
    }
    lab.rt.block_on(election.resign()).map_err(etcd("resigning"))?;
    drop(gateways);
    Ok(())
}

/// Starts an election on `prefix` and waits until it leads; its token.
fn lead(lab: &HaLab, prefix: &str) -> Result<(Election, i64), BenchError> {
    let config = ElectionConfig::new(prefix, "bench", "http://127.0.0.1:1", lab.lease_ttl);
    let election = lab.rt.block_on(async { Election::start(lab.client.clone(), config) });
    let mut status = election.status();
    let token = lab.rt.block_on(async {
        tokio::time::timeout(PATIENCE, async {
            loop {
                if let Role::Leader { token } = status.borrow_and_update().role {
                    return Some(token);
                }
                if status.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await
    });
    match token {
        Ok(Some(token)) => Ok((election, token)),
        _ => Err(BenchError::Timeout {
            what: "leadership of the bench's election".into(),
            patience: cutover_core::duration::format_duration(PATIENCE),
            log_tail: String::new(),
        }),
    }
}

/// Reads the gateways' registrations and watches them from there: the
/// acknowledgements as they arrive, and what is known now.
fn follow_gateways(lab: &HaLab, prefix: &str) -> Result<(mpsc::Receiver<Seen>, Known), BenchError> {
    let (now, rx) = follow(lab, &format!("{prefix}/gateways/"))?;
    let known = now
        .kvs
        .iter()
        .filter_map(|kv| serde_json::from_slice::<GatewayEntry>(&kv.value).ok())
        .map(|g| (g.name, g.active))
        .collect();
    Ok((rx, known))
}

/// The value a gateway acknowledged in `e` (`None` when its key is gone).
fn acked(e: &Event) -> Option<String> {
    match e.kind {
        EventType::Put => serde_json::from_slice::<GatewayEntry>(&e.kv.value).ok().and_then(|g| g.active),
        EventType::Delete => None,
    }
}

/// Waits until every one of [`GATEWAYS`] gateways acknowledged `want`;
/// returns when the bench saw the last acknowledgement.
fn wait_all(
    acks: &mpsc::Receiver<Seen>,
    known: &mut Known,
    want: &str,
    gateways: &[HaProcess],
) -> Result<Instant, BenchError> {
    let done =
        |k: &BTreeMap<String, Option<String>>| k.len() == GATEWAYS && k.values().all(|v| v.as_deref() == Some(want));
    if done(known) {
        return Ok(Instant::now());
    }
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok((at, e)) = acks.recv_timeout(left) else {
            return Err(BenchError::Timeout {
                what: format!("acknowledgement of {want} by every gateway (seen: {known:?})"),
                patience: cutover_core::duration::format_duration(PATIENCE),
                log_tail: gateways.iter().map(HaProcess::log_tail).collect::<Vec<_>>().join("\n"),
            });
        };
        known.insert(leaf(&e.kv.key), acked(&e));
        if done(known) {
            return Ok(at);
        }
    }
}
