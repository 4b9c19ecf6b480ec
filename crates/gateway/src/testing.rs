//! Helpers for this crate's unit tests.

use std::time::{Duration, Instant};

/// Reads with `read` every 5 ms, for at most 10 s, until what it sees
/// satisfies `ok`; what it saw then (`None`: never).
pub(crate) async fn until<T>(mut read: impl FnMut() -> T, ok: impl Fn(&T) -> bool) -> Option<T> {
    let start = Instant::now();
    loop {
        let seen = read();
        if ok(&seen) {
            return Some(seen);
        }
        if start.elapsed() > Duration::from_secs(10) {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
