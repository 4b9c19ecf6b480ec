//! Retries with exponential backoff and full jitter, and an adaptive
//! concurrency limit that halves on SlowDown/503 and grows back by one per
//! window of successes (AIMD).
//!
//! Throttling answers (SlowDown, 503, 429) have their own, larger budget:
//! they say "come back later", not "this request is broken", so a storm of
//! them must slow a sync down rather than fail its objects.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cutover_core::Outcome;
use cutover_s3::S3Error;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Tries of one operation while it fails with other retryable errors
    /// (transport, timeouts, 5xx other than 503, checksum mismatches).
    pub attempts: u32,
    /// Throttling answers (SlowDown, 503, 429) one operation may get and
    /// still be retried; they do not use up `attempts`.
    pub throttle_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { attempts: 6, throttle_attempts: 20, base: Duration::from_millis(100), cap: Duration::from_secs(5) }
    }
}

impl RetryPolicy {
    /// The pause before retry number `attempt` (1-based): uniform in
    /// `[0, min(cap, base * 2^(attempt-1))]`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let ceiling = exp.min(self.cap);
        ceiling.mul_f64(fastrand::f64())
    }
}

/// True for failures worth retrying: transport errors, 5xx, 429, SlowDown.
pub fn retryable(e: &S3Error) -> bool {
    match e {
        S3Error::Transport { .. } => true,
        S3Error::Response { status, .. } => *status >= 500 || *status == 429 || throttled(e),
        S3Error::ChecksumMismatch { .. } => true,
        S3Error::Protocol { .. } | S3Error::Setup { .. } => false,
    }
}

/// True when the backend asked to slow down (SlowDown, 503, 429).
pub fn throttled(e: &S3Error) -> bool {
    matches!(e.outcome(), Outcome::SlowDown | Outcome::Status(503 | 429, _))
}

/// Retries done during a run, shared by everything that retries in it.
#[derive(Debug, Clone, Default)]
pub struct RetryStats {
    retries: Arc<AtomicU64>,
    throttled: Arc<AtomicU64>,
}

impl RetryStats {
    /// Requests sent again after a retryable failure.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Of those, the ones whose failure was a throttling answer.
    pub fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }

    fn record(&self, throttle: bool) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        if throttle {
            self.throttled.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[derive(Debug)]
struct LimitState {
    current: usize,
    successes: usize,
    /// Permits to drop instead of returning (after a cut while they were out).
    debt: usize,
}

/// A concurrency limit between 1 and `max` that adapts to throttling.
#[derive(Debug, Clone)]
pub struct Limiter {
    sem: Arc<Semaphore>,
    max: usize,
    state: Arc<Mutex<LimitState>>,
    stats: RetryStats,
}

/// One unit of concurrency; dropping it returns it (or retires it after a cut).
#[derive(Debug)]
pub struct Permit {
    permit: Option<OwnedSemaphorePermit>,
    state: Arc<Mutex<LimitState>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut st = self.state.lock().expect("limiter lock");
        if st.debt > 0
            && let Some(p) = self.permit.take()
        {
            st.debt -= 1;
            p.forget();
        }
    }
}

impl Limiter {
    pub fn new(max: usize) -> Self {
        Self::with_stats(max, RetryStats::default())
    }

    /// A limiter that counts its retries into `stats` (shared with others).
    pub fn with_stats(max: usize, stats: RetryStats) -> Self {
        let max = max.max(1);
        Self {
            sem: Arc::new(Semaphore::new(max)),
            max,
            state: Arc::new(Mutex::new(LimitState { current: max, successes: 0, debt: 0 })),
            stats,
        }
    }

    /// The retries counted so far.
    pub fn stats(&self) -> &RetryStats {
        &self.stats
    }

    pub async fn acquire(&self) -> Permit {
        let permit = self.sem.clone().acquire_owned().await.expect("limiter semaphore is never closed");
        Permit { permit: Some(permit), state: self.state.clone() }
    }

    /// The current limit.
    pub fn current(&self) -> usize {
        self.state.lock().expect("limiter lock").current
    }

    /// Halves the limit (not below 1).
    pub fn on_throttle(&self) {
        let mut st = self.state.lock().expect("limiter lock");
        let cut = st.current / 2;
        if cut == 0 {
            return;
        }
        st.current -= cut;
        st.successes = 0;
        let forgotten = self.sem.forget_permits(cut);
        st.debt += cut - forgotten;
        tracing::info!(limit = st.current, "backend throttled: concurrency reduced");
    }

    /// Counts a success; after `current` successes in a row the limit grows by one.
    pub fn on_success(&self) {
        let mut st = self.state.lock().expect("limiter lock");
        if st.current >= self.max {
            return;
        }
        st.successes += 1;
        if st.successes >= st.current {
            st.successes = 0;
            st.current += 1;
            if st.debt > 0 {
                st.debt -= 1;
            } else {
                self.sem.add_permits(1);
            }
        }
    }
}

/// Runs `op` until it succeeds, fails for good, or runs out of attempts
/// (`attempts` for ordinary failures, `throttle_attempts` for throttling
/// answers, counted apart); reports throttling, successes and retries to
/// `limiter`.
pub async fn with_retries<T, F, Fut>(policy: RetryPolicy, limiter: &Limiter, mut op: F) -> Result<T, crate::SyncError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, crate::SyncError>>,
{
    let (mut failures, mut throttles) = (0u32, 0u32);
    loop {
        match op().await {
            Ok(v) => {
                limiter.on_success();
                return Ok(v);
            }
            Err(e) if e.is_retryable() => {
                let throttle = e.is_throttle();
                if throttle {
                    throttles += 1;
                } else {
                    failures += 1;
                }
                if throttles >= policy.throttle_attempts || failures >= policy.attempts {
                    return Err(e);
                }
                if throttle {
                    limiter.on_throttle();
                }
                limiter.stats.record(throttle);
                let pause = policy.backoff(failures + throttles);
                tracing::debug!(error = %e, failures, throttles, ?pause, "retrying");
                tokio::time::sleep(pause).await;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            ..Default::default()
        };
        for _ in 0..100 {
            assert!(p.backoff(1) <= Duration::from_millis(100));
            assert!(p.backoff(3) <= Duration::from_millis(400));
            assert!(p.backoff(30) <= Duration::from_secs(1));
        }
    }

    #[tokio::test]
    async fn limiter_halves_on_throttle_and_recovers() {
        let l = Limiter::new(8);
        let held: Vec<Permit> = futures_take(&l, 8).await;
        l.on_throttle();
        assert_eq!(l.current(), 4);
        drop(held);
        // Only 4 permits are available now.
        let again = futures_take(&l, 4).await;
        assert!(l.sem.available_permits() == 0);
        drop(again);
        for _ in 0..4 {
            l.on_success();
        }
        assert_eq!(l.current(), 5);
        assert_eq!(l.sem.available_permits(), 5);
    }

    async fn futures_take(l: &Limiter, n: usize) -> Vec<Permit> {
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(l.acquire().await);
        }
        v
    }

    fn slow_down() -> crate::SyncError {
        crate::SyncError::Copy {
            key: "k".into(),
            source: Box::new(S3Error::Response {
                backend: "b".into(),
                op: "PutObject",
                status: 503,
                code: Some("SlowDown".into()),
                message: String::new(),
            }),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn slow_down_is_retried_with_backoff_and_halves_concurrency() {
        let limiter = Limiter::new(16);
        let mut calls = 0;
        let started = tokio::time::Instant::now();
        let r = with_retries(RetryPolicy::default(), &limiter, || {
            calls += 1;
            let fail = calls <= 2;
            async move { if fail { Err(slow_down()) } else { Ok(calls) } }
        })
        .await;
        assert_eq!(r.unwrap(), 3);
        assert_eq!(limiter.current(), 4, "two SlowDowns halve 16 twice");
        tracing::info!(waited = ?started.elapsed(), "backoff under paused time");
        assert!(started.elapsed() <= Duration::from_millis(300));
    }

    fn reset() -> crate::SyncError {
        crate::SyncError::Copy {
            key: "k".into(),
            source: Box::new(S3Error::Transport {
                backend: "b".into(),
                op: "PutObject",
                outcome: Outcome::ConnectionReset,
                detail: String::new(),
            }),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stop_after_the_last_attempt_of_each_budget() {
        let limiter = Limiter::new(4);
        let policy = RetryPolicy { attempts: 3, throttle_attempts: 5, ..RetryPolicy::default() };
        let mut calls = 0;
        let r: Result<(), _> = with_retries(policy, &limiter, || {
            calls += 1;
            async { Err(slow_down()) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls, 5);
        assert_eq!(limiter.current(), 1);
        let mut calls = 0;
        let r: Result<(), _> = with_retries(policy, &limiter, || {
            calls += 1;
            async { Err(reset()) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls, 3);
        assert_eq!((limiter.stats().retries(), limiter.stats().throttled()), (4 + 2, 4));
    }

    /// What broke: at 30 % SlowDown answers (a chaos proxy in front of the
    /// destination), about one sync of 200 objects in five failed an object
    /// with "HTTP 503 SlowDown" because six answers in a row were SlowDown
    /// (0.3^6 per object) and throttling used up the same six attempts as
    /// real failures.
    #[tokio::test(start_paused = true)]
    async fn regression_a_slowdown_storm_used_up_the_six_attempts_of_a_copy() {
        let limiter = Limiter::new(8);
        let mut calls = 0;
        let r = with_retries(RetryPolicy::default(), &limiter, || {
            calls += 1;
            // Ten SlowDowns, and on the way five ordinary failures too.
            let outcome = match calls {
                1..=10 => Err(slow_down()),
                11..=15 => Err(reset()),
                _ => Ok(calls),
            };
            async move { outcome }
        })
        .await;
        assert_eq!(r.unwrap(), 16);
        assert_eq!((limiter.stats().retries(), limiter.stats().throttled()), (15, 10));
    }

    #[test]
    fn classifies_throttling() {
        let slow = S3Error::Response {
            backend: "b".into(),
            op: "PutObject",
            status: 503,
            code: Some("SlowDown".into()),
            message: String::new(),
        };
        assert!(retryable(&slow) && throttled(&slow));
        let denied =
            S3Error::Response { backend: "b".into(), op: "PutObject", status: 403, code: None, message: String::new() };
        assert!(!retryable(&denied) && !throttled(&denied));
    }
}
