//! One timer per client connection for each kind of wait, moved lazily.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use tokio::time::{Instant, Sleep};

/// Runs `f` until it ends or the deadline `deadline()` gives passes
/// (`None`), on `timer`: one timer per client connection for every wait of
/// one kind (for its next request head, on a backend), moved only when it
/// is set for later than the deadline or fires before it (then it was set
/// by an earlier wait, and is set again), as nginx's lazy timers. A wait
/// that ends in time (nearly all) adds and removes no timer, and one that
/// ends at once (a write the socket takes) does not ask for its deadline.
/// A timer left set fires at most once while nothing waits on it: the
/// connection's task is polled for nothing, once.
pub(super) async fn within<F: Future>(
    mut timer: Pin<&mut Sleep>,
    mut deadline: impl FnMut() -> Instant,
    f: F,
) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    let mut at = None;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = f.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        let at = *at.get_or_insert_with(|| {
            let at = deadline();
            if timer.deadline() > at {
                timer.as_mut().reset(at);
            }
            at
        });
        while timer.as_mut().poll(cx).is_ready() {
            if Instant::now() >= at {
                return Poll::Ready(None);
            }
            timer.as_mut().reset(at);
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::{Instant, sleep};

    use super::within;

    #[tokio::test(start_paused = true)]
    async fn a_backend_wait_lasts_to_its_own_deadline_whatever_the_timer_was_set_for() {
        let mut timer = std::pin::pin!(sleep(Duration::ZERO));
        let never = std::future::pending::<()>;
        // Set for now (a fresh connection's timer): this wait still lasts 5 s.
        let start = Instant::now();
        assert!(within(timer.as_mut(), || start + Duration::from_secs(5), never()).await.is_none());
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        let quick = || async {
            sleep(Duration::from_millis(10)).await;
            7
        };
        // The timer fired: the next wait sets it again, for its deadline.
        let start = Instant::now();
        assert_eq!(within(timer.as_mut(), || start + Duration::from_secs(30), quick()).await, Some(7));
        let set = timer.deadline();
        assert_eq!(set, start + Duration::from_secs(30));
        // A wait that ends in time leaves a timer set for earlier as it is...
        let start = Instant::now();
        assert_eq!(within(timer.as_mut(), || start + Duration::from_secs(30), quick()).await, Some(7));
        assert_eq!(timer.deadline(), set, "a wait that ended in time moved the timer");
        // ...and a wait that outlives that earlier deadline lasts its own.
        let start = Instant::now();
        assert!(start + Duration::from_secs(30) > set);
        assert!(within(timer.as_mut(), || start + Duration::from_secs(30), never()).await.is_none());
        assert_eq!(start.elapsed(), Duration::from_secs(30));
        // A deadline earlier than the timer's moves it earlier.
        let start = Instant::now();
        assert!(within(timer.as_mut(), || start + Duration::from_secs(1), never()).await.is_none());
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }
}
