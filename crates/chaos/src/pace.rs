//! The bandwidth cap: one virtual link per direction, shared by every
//! connection. Each write reserves its transmission time on the link and
//! waits until that time has passed, so the bytes of all connections
//! together never go faster than the cap (no burst credit is saved up).

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Largest piece written at once under a cap: a tenth of a second's worth,
/// so that pacing stays smooth at low rates.
pub(crate) fn slice_len(bps: Option<u64>, default: usize) -> usize {
    match bps {
        Some(bps) => ((bps / 10) as usize).clamp(256, default),
        None => default,
    }
}

#[derive(Debug, Default)]
pub(crate) struct Pacer {
    /// When the link is free again.
    next_free: Mutex<Option<Instant>>,
}

impl Pacer {
    /// Waits until `n` bytes may go at `bps` bytes per second (no wait without a cap).
    pub async fn wait(&self, n: usize, bps: Option<u64>) {
        let Some(bps) = bps.filter(|b| *b > 0) else { return };
        let cost = Duration::from_secs_f64(n as f64 / bps as f64);
        let now = Instant::now();
        let done = {
            let mut next = self.next_free.lock().expect("pacer lock");
            let start = next.filter(|t| *t > now).unwrap_or(now);
            let done = start + cost;
            *next = Some(done);
            done
        };
        tokio::time::sleep_until(done).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn connections_share_the_cap() {
        let p = Pacer::default();
        let start = Instant::now();
        // Two writers of 1000 bytes each at 1000 B/s: 2 s in all.
        tokio::join!(p.wait(1000, Some(1000)), p.wait(1000, Some(1000)));
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        // Idle time is not saved up as credit.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let again = Instant::now();
        p.wait(500, Some(1000)).await;
        assert_eq!(again.elapsed(), Duration::from_millis(500));
        p.wait(1 << 20, None).await;
        assert_eq!(again.elapsed(), Duration::from_millis(500));
    }

    #[test]
    fn slices_are_a_tenth_of_a_second_within_bounds() {
        assert_eq!(slice_len(None, 16384), 16384);
        assert_eq!(slice_len(Some(1_000_000), 16384), 16384);
        assert_eq!(slice_len(Some(50_000), 16384), 5000);
        assert_eq!(slice_len(Some(100), 16384), 256);
    }
}
