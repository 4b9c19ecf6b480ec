//! Part 3 of `bench ha`: the RTO of a hard-down outage of the primary when
//! the leader is killed at the moment of its decision. Per trial, two fresh
//! `cutover run` nodes on a fresh prefix (the built-in failover runbook);
//! once both see both backends healthy, the primary stops answering (every
//! request held, as a host that is gone); the bench follows the prefix in
//! etcd and sends SIGKILL to the leader as soon as the `failover`
//! decision's key arrives. The RTO is the time from the onset to the
//! arrival of `<prefix>/active_backend` = `secondary`, written by whichever
//! node leads then.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use cutover_core::duration::format_duration;
use cutover_etcd::{Event, EventType};
use serde_json::Value;

use super::lab::{HaLab, wait};
use super::process::HaProcess;
use super::watch::{Seen, follow, leaf};
use crate::cmd::bench::error::BenchError;
use crate::cmd::bench::process::PATIENCE;

/// How long after the kill the bench waits for the switch before it counts
/// the outage as not recovered: the takeover (`lease_ttl` + 1 s at most)
/// plus the failover runbook, with room to spare.
const RECOVERY_PATIENCE: Duration = Duration::from_secs(30);

/// What the outage trials measured.
#[derive(Debug, Default)]
pub struct RtoReport {
    /// Onset of the outage to the active backend being the secondary, per
    /// recovered outage.
    pub rto: Vec<Duration>,
    /// Onset to the leader's failover decision.
    pub decided: Vec<Duration>,
    /// The kill of the leader to the new leader's key.
    pub takeover: Vec<Duration>,
    /// Outages where the switch was written before the kill landed (the
    /// leader was not killed in time: its own switch counts).
    pub switched_before_kill: usize,
    /// Outages not recovered within [`RECOVERY_PATIENCE`] of the kill, each
    /// with the incident's state when the leader died.
    pub not_recovered: Vec<String>,
    /// Trials that could not be run (set-up, no decision).
    pub errors: Vec<String>,
}

/// What one trial measured.
struct RtoTrial {
    decided: Duration,
    /// `None`: not recovered within [`RECOVERY_PATIENCE`] of the kill.
    rto: Option<Duration>,
    takeover: Option<Duration>,
    switched_before_kill: bool,
    /// The incident's state in the last write the bench saw before the kill.
    state_at_kill: Option<String>,
}

/// `trials` outages on `lab`'s primary (resumed after each).
pub fn measure(lab: &HaLab, trials: usize) -> RtoReport {
    let mut r = RtoReport::default();
    for i in 1..=trials {
        let outcome = trial(lab, i);
        lab.primary.resume();
        let t = match outcome {
            Ok(t) => t,
            Err(e) => {
                eprintln!("outage {i}/{trials}: {e}");
                r.errors.push(e.to_string());
                continue;
            }
        };
        let state = t.state_at_kill.as_deref().unwrap_or("unknown");
        let decided = t.decided.as_secs_f64();
        r.decided.push(t.decided);
        r.takeover.extend(t.takeover);
        match t.rto {
            Some(rto) => {
                eprintln!(
                    "outage {i}/{trials}: decision after {decided:.3} s, leader killed (incident {state}), \
                     secondary active after {:.3} s{}",
                    rto.as_secs_f64(),
                    if t.switched_before_kill { " (the leader switched before the kill landed)" } else { "" }
                );
                r.rto.push(rto);
                r.switched_before_kill += usize::from(t.switched_before_kill);
            }
            None => {
                let why = format!(
                    "outage {i}: no switch to the secondary within {} of the kill (incident {state} when the leader died)",
                    format_duration(RECOVERY_PATIENCE)
                );
                eprintln!("outage {i}/{trials}: decision after {decided:.3} s, leader killed; {why}");
                r.not_recovered.push(why);
            }
        }
    }
    r
}

fn trial(lab: &HaLab, i: usize) -> Result<RtoTrial, BenchError> {
    let shared = lab.shared(&format!("rto-{i}"));
    let mut nodes = lab.start_nodes(&shared, 2, "")?;
    let all: Vec<&HaProcess> = nodes.iter().collect();
    let mut leader = None;
    wait("one leader and both backends healthy on both nodes", &all, || {
        let statuses: Vec<Value> = nodes.iter().map(HaProcess::status).collect();
        let leaders: Vec<usize> = (0..statuses.len()).filter(|i| statuses[*i]["role"] == "leader").collect();
        leader = leaders.first().copied();
        leaders.len() == 1
            && statuses.iter().all(|s| {
                s["active"] == "primary"
                    && s["backends"].as_array().is_some_and(|b| b.iter().all(|b| b["health"] == "healthy"))
            })
    })?;
    let leader = leader.unwrap_or(0);
    let (now, events) = follow(lab, &format!("{}/", shared.prefix))?;
    let leader_key = format!("{}/leader", shared.prefix);
    let old_token = now.kvs.iter().find(|kv| kv.key == leader_key.as_bytes()).map(|kv| kv.create_revision);

    let onset = Instant::now();
    lab.primary.hang();
    let mut state_at_kill = None;
    let (decided_at, _) = next(&events, &nodes, "failover decision", PATIENCE, |(_, e)| {
        state_at_kill = incident_state(e).or(state_at_kill.take());
        e.kind == EventType::Put
            && String::from_utf8_lossy(&e.kv.key).contains("/decisions/")
            && serde_json::from_slice::<Value>(&e.kv.value).is_ok_and(|d| d["action"] == "failover")
    })?;
    nodes[leader].kill();
    let killed = Instant::now();
    let mut new_leader = None;
    let switched = next(&events, &nodes, "switch to the secondary", RECOVERY_PATIENCE, |(at, e)| {
        if *at <= killed {
            state_at_kill = incident_state(e).or(state_at_kill.take());
        }
        if e.kind == EventType::Put && e.kv.key == leader_key.as_bytes() && Some(e.kv.create_revision) != old_token {
            new_leader.get_or_insert(*at);
        }
        e.kind == EventType::Put && leaf(&e.kv.key) == "active_backend" && value_is(&e.kv.value, "secondary")
    });
    let switched_at = match switched {
        Ok((at, _)) => Some(at),
        Err(BenchError::Timeout { .. }) => None,
        Err(e) => return Err(e),
    };
    Ok(RtoTrial {
        decided: decided_at.duration_since(onset),
        rto: switched_at.map(|at| at.duration_since(onset)),
        takeover: new_leader.map(|at| at.saturating_duration_since(killed)),
        switched_before_kill: switched_at.is_some_and(|at| at < killed),
        state_at_kill,
    })
}

/// The state of the incident an incident key's write holds.
fn incident_state(e: &Event) -> Option<String> {
    if e.kind != EventType::Put || !String::from_utf8_lossy(&e.kv.key).contains("/incidents/") {
        return None;
    }
    let incident: Value = serde_json::from_slice(&e.kv.value).ok()?;
    incident["state"].as_str().map(str::to_string)
}

/// Whether an etcd value is `name` (raw or as a JSON string).
fn value_is(value: &[u8], name: &str) -> bool {
    value == name.as_bytes() || serde_json::from_slice::<String>(value).is_ok_and(|v| v == name)
}

/// The next change for which `f` holds, within `patience`.
fn next(
    events: &mpsc::Receiver<Seen>,
    nodes: &[HaProcess],
    what: &str,
    patience: Duration,
    mut f: impl FnMut(&Seen) -> bool,
) -> Result<Seen, BenchError> {
    let deadline = Instant::now() + patience;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(seen) if f(&seen) => return Ok(seen),
            Ok(_) => continue,
            Err(_) => {
                return Err(BenchError::Timeout {
                    what: what.to_string(),
                    patience: format_duration(patience),
                    log_tail: nodes.iter().map(HaProcess::log_tail).collect::<Vec<_>>().join("\n"),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_active_backend_reads_raw_or_as_json() {
        assert!(value_is(b"secondary", "secondary"));
        assert!(value_is(b"\"secondary\"", "secondary"));
        assert!(!value_is(b"primary", "secondary"));
    }
}
