//! The controller's clock. Decision logic reads no clock of its own: every
//! command it handles carries a [`Now`], stamped by a [`Clock`] where the
//! command was made. Under `#[tokio::test(start_paused = true)]` both halves
//! of `Now` follow tokio's paused time, so tests of timing rules run in
//! virtual time and are deterministic.

use std::time::{Instant, SystemTime};

/// One reading of the clock: a monotonic instant for durations and windows,
/// and the wall-clock time that goes into records (timeline, audit, policy
/// input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub mono: Instant,
    pub wall: SystemTime,
}

impl Now {
    /// Both readings `d` later.
    pub fn after(self, d: std::time::Duration) -> Now {
        Now { mono: self.mono + d, wall: self.wall + d }
    }
}

/// Reads tokio's clock (paused in tests) and derives the wall clock from it,
/// so that the two never disagree about how much time passed.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base_mono: tokio::time::Instant,
    base_wall: SystemTime,
}

impl Clock {
    /// A clock whose wall time starts at the system's time now.
    pub fn system() -> Self {
        Self { base_mono: tokio::time::Instant::now(), base_wall: SystemTime::now() }
    }

    /// A clock whose wall time starts at `wall` (tests).
    pub fn starting_at(wall: SystemTime) -> Self {
        Self { base_mono: tokio::time::Instant::now(), base_wall: wall }
    }

    pub fn now(&self) -> Now {
        self.at(tokio::time::Instant::now().into_std())
    }

    /// This clock's reading at the instant `mono` (also one before its
    /// start): the wall time is as far from the start as `mono` is.
    pub fn at(&self, mono: Instant) -> Now {
        let base = self.base_mono.into_std();
        let wall = match mono.checked_duration_since(base) {
            Some(after) => self.base_wall + after,
            None => self.base_wall - base.duration_since(mono),
        };
        Now { mono, wall }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn wall_time_follows_paused_time() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let clock = Clock::starting_at(start);
        let a = clock.now();
        tokio::time::sleep(Duration::from_secs(90)).await;
        let b = clock.now();
        assert_eq!(b.mono.duration_since(a.mono), Duration::from_secs(90));
        assert_eq!(b.wall.duration_since(a.wall).unwrap(), Duration::from_secs(90));
        assert_eq!(a.wall, start);
    }
}
