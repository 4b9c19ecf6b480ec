//! When in the probe cycle a fault lands: pseudo-random phases, so that the
//! trials cover every phase of the cycle.

use std::time::{Duration, SystemTime};

/// A pseudo-random delay in [1 s, 1 s + interval): the fault then lands at
/// any phase of the probe cycle (the probe loop's ticks are aligned with the
/// moment the controller first saw both backends healthy, give or take the
/// few milliseconds of a probe cycle).
pub fn phase(interval: Duration) -> Duration {
    Duration::from_secs(1) + interval.mul_f64(pseudo_random())
}

/// A pseudo-random delay in [1 s + interval·i/n, 1 s + interval·(i+1)/n).
pub fn stratified_phase(interval: Duration, i: usize, n: usize) -> Duration {
    let n = n.max(1) as f64;
    Duration::from_secs(1) + interval.mul_f64((i as f64 + pseudo_random()) / n)
}

/// A pseudo-random delay in [0, max).
pub fn jitter(max: Duration) -> Duration {
    max.mul_f64(pseudo_random())
}

/// A number in [0, 1) from the clock's nanoseconds.
fn pseudo_random() -> f64 {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().subsec_nanos() as u64;
    (nanos.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_spread_over_the_interval() {
        for _ in 0..100 {
            let p = phase(Duration::from_secs(1));
            assert!(p >= Duration::from_secs(1) && p < Duration::from_secs(2), "{p:?}");
        }
        for i in 0..10 {
            let p = stratified_phase(Duration::from_secs(1), i, 10);
            let lo = Duration::from_millis(1000 + 100 * i as u64);
            assert!(p >= lo && p < lo + Duration::from_millis(100), "{i}: {p:?}");
        }
    }
}
