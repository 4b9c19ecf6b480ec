//! The leadership history `bench ha` records: every poll round of the
//! nodes' `/v1/status`, with who said it leads and with which fencing
//! token. A *double action* is a round where two nodes said they lead with
//! different tokens: both would have acted at that moment.

use std::time::{Duration, Instant};

/// One round: the nodes that said they lead, as (node, token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    /// Since the history began.
    pub at: Duration,
    pub leaders: Vec<(String, i64)>,
}

impl Round {
    /// Whether two nodes said they lead with different tokens.
    fn double(&self) -> bool {
        self.leaders.iter().any(|(_, t)| *t != self.leaders[0].1)
    }
}

/// Every round recorded so far.
#[derive(Debug)]
pub struct History {
    start: Instant,
    rounds: Vec<Round>,
}

impl History {
    pub fn new() -> Self {
        History { start: Instant::now(), rounds: Vec::new() }
    }

    /// Records one round.
    pub fn record(&mut self, leaders: Vec<(String, i64)>) {
        self.rounds.push(Round { at: self.start.elapsed(), leaders });
    }

    pub fn rounds(&self) -> usize {
        self.rounds.len()
    }

    /// The double actions: runs of consecutive rounds where two nodes said
    /// they lead with different tokens (a run counts once).
    pub fn double_actions(&self) -> Vec<&Round> {
        let mut out = Vec::new();
        let mut previous = false;
        for r in &self.rounds {
            let double = r.double();
            if double && !previous {
                out.push(r);
            }
            previous = double;
        }
        out
    }

    /// The tokens that led, in the order they first appeared.
    pub fn tokens(&self) -> Vec<i64> {
        let mut out: Vec<i64> = Vec::new();
        for (_, t) in self.rounds.iter().flat_map(|r| &r.leaders) {
            if !out.contains(t) {
                out.push(*t);
            }
        }
        out
    }

    /// Whether a token appeared after a newer one (a deposed leader that
    /// still said it leads after its successor did).
    pub fn token_went_back(&self) -> bool {
        let mut newest = i64::MIN;
        for (_, t) in self.rounds.iter().flat_map(|r| &r.leaders) {
            if *t < newest {
                return true;
            }
            newest = newest.max(*t);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(rounds: &[&[(&str, i64)]]) -> History {
        let mut h = History::new();
        for r in rounds {
            h.record(r.iter().map(|(n, t)| (n.to_string(), *t)).collect());
        }
        h
    }

    #[test]
    fn a_clean_handover_has_no_double_action() {
        let h = history(&[&[("a", 10)], &[("a", 10)], &[], &[], &[("b", 42)], &[("b", 42)]]);
        assert!(h.double_actions().is_empty());
        assert_eq!(h.tokens(), [10, 42]);
        assert!(!h.token_went_back());
        assert_eq!(h.rounds(), 6);
    }

    #[test]
    fn two_leaders_with_different_tokens_count_once_per_overlap() {
        let h = history(&[
            &[("a", 10)],
            &[("a", 10), ("b", 42)],
            &[("a", 10), ("b", 42)],
            &[("b", 42)],
            &[("b", 42), ("c", 7)],
        ]);
        assert_eq!(h.double_actions().len(), 2);
        assert!(h.token_went_back(), "c's token 7 after b's 42");
    }

    #[test]
    fn two_nodes_naming_the_same_token_are_no_double_action() {
        let h = history(&[&[("a", 10), ("a", 10)]]);
        assert!(h.double_actions().is_empty());
    }
}
