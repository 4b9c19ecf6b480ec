//! Summary statistics of measured samples, shared by `cutover bench` and
//! `cutover drill`: one definition of the median and of the percentiles.

use std::time::Duration;

/// Median, 90th percentile, minimum and maximum of a non-empty sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// The middle value; for an even count, the mean of the two middle values.
    pub median: f64,
    /// The 90th percentile by nearest rank: the smallest value that at least
    /// 90 % of the samples are at or below.
    pub p90: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    /// The statistics of `values`; `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Stats> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        let p90 = v[(n * 9).div_ceil(10) - 1];
        Some(Stats { median, p90, min: v[0], max: v[n - 1] })
    }

    /// The statistics of durations, in milliseconds.
    pub fn of_millis(samples: &[Duration]) -> Option<Stats> {
        let ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        Stats::of(&ms)
    }
}

/// The `pct`-th percentile of durations in milliseconds, by nearest rank
/// (the smallest value that at least `pct` % of the samples are at or
/// below); `None` when there are none.
pub fn percentile_millis(samples: &[Duration], pct: usize) -> Option<f64> {
    let mut v: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    v.sort_by(f64::total_cmp);
    let rank = (v.len() * pct.min(100)).div_ceil(100).max(1);
    v.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|m| Duration::from_millis(*m)).collect()
    }

    fn stats(median: f64, p90: f64, min: f64, max: f64) -> Option<Stats> {
        Some(Stats { median, p90, min, max })
    }

    #[test]
    fn stats_are_median_p90_min_max() {
        assert_eq!(Stats::of_millis(&ms(&[3000])), stats(3000.0, 3000.0, 3000.0, 3000.0));
        assert_eq!(Stats::of_millis(&ms(&[4000, 1000, 3000, 2000])), stats(2500.0, 4000.0, 1000.0, 4000.0));
        let ten = ms(&[10, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(Stats::of_millis(&ten), stats(5.5, 9.0, 1.0, 10.0));
        assert_eq!(Stats::of_millis(&[]), None);
        assert_eq!(Stats::of(&[]), None);
    }

    #[test]
    fn p99_is_the_nearest_rank() {
        let fifty: Vec<Duration> = (1..=50).map(Duration::from_millis).collect();
        assert_eq!(percentile_millis(&fifty, 99), Some(50.0));
        assert_eq!(percentile_millis(&fifty, 50), Some(25.0));
        let two_hundred: Vec<Duration> = (1..=200).rev().map(Duration::from_millis).collect();
        assert_eq!(percentile_millis(&two_hundred, 99), Some(198.0));
        assert_eq!(percentile_millis(&[], 99), None);
    }

    #[test]
    fn an_odd_count_has_its_middle_value_as_median() {
        assert_eq!(Stats::of(&[2.5, 0.5, 9.0]).map(|s| s.median), Some(2.5));
    }

    #[test]
    fn p90_is_the_nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(Stats::of(&v).map(|s| s.p90), Some(18.0));
        let v: Vec<f64> = (1..=11).map(f64::from).collect();
        assert_eq!(Stats::of(&v).map(|s| s.p90), Some(10.0));
    }

    #[test]
    fn the_order_of_the_samples_does_not_matter() {
        let a = Stats::of(&[5.0, 1.0, 4.0, 2.0, 3.0]);
        let b = Stats::of(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(a, b);
        assert_eq!(a, stats(3.0, 5.0, 1.0, 5.0));
    }
}
