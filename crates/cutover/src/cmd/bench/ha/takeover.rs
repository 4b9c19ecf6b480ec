//! Part 1 of `bench ha`: the takeover after `kill -9` of the leader. Three
//! `cutover run` nodes share one state in etcd; each trial waits until one
//! leads and the others name it, kills the leader with SIGKILL at a
//! pseudo-random phase of its renewal cycle, and measures the time from the
//! kill to the first answer of a standby's `GET /v1/status` saying
//! `leader` (every node polled every 10 ms); the killed node then starts
//! again and stands by. Every poll round goes into the leadership
//! [`History`], from which the double actions are counted.

use std::time::{Duration, Instant};

use cutover_core::duration::format_duration;

use super::history::History;
use super::lab::HaLab;
use super::process::HaProcess;
use crate::cmd::bench::error::BenchError;
use crate::cmd::bench::phase::phase;
use crate::cmd::bench::process::PATIENCE;

/// Controller nodes in the takeover trials.
pub const NODES: usize = 3;

/// What the takeover trials measured.
#[derive(Debug, Default)]
pub struct TakeoverReport {
    /// Kill to a standby saying it leads, per trial.
    pub took: Vec<Duration>,
    /// Rounds where two nodes said they lead with different tokens, as
    /// "at <time>: node=token, node=token".
    pub double_actions: Vec<String>,
    /// A deposed leader said it leads after its successor did.
    pub token_went_back: bool,
    /// Poll rounds recorded, and the distinct leaderships seen.
    pub rounds: usize,
    pub leaderships: usize,
    /// Leadership changes that no kill caused (a leader that missed its
    /// renew deadline on a loaded machine).
    pub unprovoked: usize,
    pub errors: Vec<String>,
}

/// The nodes and the history of their rounds.
struct Trials<'a> {
    nodes: &'a mut [HaProcess],
    history: History,
}

impl Trials<'_> {
    /// Polls every running node once; returns the index, token and answer
    /// time of each that said it leads.
    fn round(&mut self) -> Vec<(usize, i64, Instant)> {
        let mut leaders = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let s = n.status();
            if s["role"] == "leader"
                && let Some(token) = s["leader"]["token"].as_i64()
            {
                leaders.push((i, token, Instant::now()));
            }
        }
        self.history.record(leaders.iter().map(|(i, t, _)| (self.nodes[*i].name.clone(), *t)).collect());
        leaders
    }

    /// Polls until exactly one node leads and every other names it with
    /// the same token; returns the leader's index and token.
    fn settled(&mut self) -> Result<(usize, i64), BenchError> {
        let start = Instant::now();
        loop {
            let leaders = self.round();
            if let [(l, token, _)] = leaders[..] {
                let name = &self.nodes[l].name;
                let agree = self.nodes.iter().enumerate().filter(|(i, _)| *i != l).all(|(_, n)| {
                    let s = n.status();
                    s["role"] == "standby" && s["leader"]["node"] == name.as_str() && s["leader"]["token"] == token
                });
                if agree {
                    return Ok((l, token));
                }
            }
            if start.elapsed() > PATIENCE {
                return Err(self.timeout("one leader named by every standby"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Polls for `d`, recording every round.
    fn watch_for(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            self.round();
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// One trial: the time from the kill of the leader to a new leader.
    /// The kill follows at once a round in which the leader alone said it
    /// leads, with the token every standby named: when leadership moved by
    /// itself during the wait (a leader that missed its renew deadline on a
    /// loaded machine), the trial settles again first.
    fn trial(&mut self, lease_ttl: Duration) -> Result<Duration, BenchError> {
        let start = Instant::now();
        let (l, old) = loop {
            let (l, old) = self.settled()?;
            self.watch_for(phase(lease_ttl / 3));
            if let [(i, token, _)] = self.round()[..]
                && (i, token) == (l, old)
            {
                break (l, old);
            }
            if start.elapsed() > PATIENCE {
                return Err(self.timeout("steady leader to kill"));
            }
        };
        let killed = Instant::now();
        self.nodes[l].kill();
        let took = loop {
            let leaders = self.round();
            if let Some((_, _, at)) = leaders.iter().find(|(_, token, _)| *token != old) {
                break at.duration_since(killed);
            }
            if killed.elapsed() > PATIENCE {
                return Err(self.timeout("new leader after the kill"));
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        self.nodes[l].restart()?;
        Ok(took)
    }

    fn timeout(&self, what: &str) -> BenchError {
        BenchError::Timeout {
            what: what.to_string(),
            patience: format_duration(PATIENCE),
            log_tail: self.nodes.iter().map(HaProcess::log_tail).collect::<Vec<_>>().join("\n"),
        }
    }
}

/// `trials` takeovers among [`NODES`] nodes started on `lab`.
pub fn measure(lab: &HaLab, trials: usize) -> TakeoverReport {
    let mut r = TakeoverReport::default();
    let mut nodes = match lab.start_nodes(&lab.shared("takeover"), NODES, "") {
        Ok(n) => n,
        Err(e) => {
            eprintln!("takeover: {e}");
            r.errors.push(e.to_string());
            return r;
        }
    };
    let mut t = Trials { nodes: &mut nodes, history: History::new() };
    for i in 1..=trials {
        match t.trial(lab.lease_ttl) {
            Ok(took) => {
                eprintln!(
                    "takeover {i}/{trials}: a standby leads {:.3} s after kill -9 of the leader",
                    took.as_secs_f64()
                );
                r.took.push(took);
            }
            Err(e) => {
                eprintln!("takeover {i}/{trials}: {e}");
                r.errors.push(e.to_string());
            }
        }
    }
    // The last restarted node joins as a standby: its rounds count too.
    if let Err(e) = t.settled() {
        r.errors.push(e.to_string());
    }
    let h = &t.history;
    r.double_actions = h
        .double_actions()
        .iter()
        .map(|round| {
            let who: Vec<String> = round.leaders.iter().map(|(n, t)| format!("{n}={t}")).collect();
            format!("at {:.3} s: {}", round.at.as_secs_f64(), who.join(", "))
        })
        .collect();
    r.token_went_back = h.token_went_back();
    r.rounds = h.rounds();
    r.leaderships = h.tokens().len();
    r.unprovoked = r.leaderships.saturating_sub(r.took.len() + 1);
    r
}
