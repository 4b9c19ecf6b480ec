//! Retries with exponential backoff and full jitter, and an adaptive
//! concurrency limit that halves on SlowDown/503 and grows back by one per
//! window of successes (AIMD).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cutover_core::Outcome;
use cutover_s3::S3Error;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { attempts: 6, base: Duration::from_millis(100), cap: Duration::from_secs(5) }
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
        let max = max.max(1);
        Self {
            sem: Arc::new(Semaphore::new(max)),
            max,
            state: Arc::new(Mutex::new(LimitState { current: max, successes: 0, debt: 0 })),
        }
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

/// Runs `op` until it succeeds, fails for good, or runs out of attempts;
/// reports throttling and successes to `limiter`.
pub async fn with_retries<T, F, Fut>(policy: RetryPolicy, limiter: &Limiter, mut op: F) -> Result<T, crate::SyncError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, crate::SyncError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match op().await {
            Ok(v) => {
                limiter.on_success();
                return Ok(v);
            }
            Err(e) if attempt < policy.attempts && e.is_retryable() => {
                if e.is_throttle() {
                    limiter.on_throttle();
                }
                let pause = policy.backoff(attempt);
                tracing::debug!(error = %e, attempt, ?pause, "retrying");
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
        let p = RetryPolicy { attempts: 5, base: Duration::from_millis(100), cap: Duration::from_secs(1) };
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

    #[tokio::test(start_paused = true)]
    async fn retries_stop_after_the_last_attempt() {
        let limiter = Limiter::new(4);
        let mut calls = 0;
        let policy = RetryPolicy { attempts: 3, ..RetryPolicy::default() };
        let r: Result<(), _> = with_retries(policy, &limiter, || {
            calls += 1;
            async { Err(slow_down()) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls, 3);
        assert_eq!(limiter.current(), 1);
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
