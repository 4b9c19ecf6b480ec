//! Serving until a shutdown future completes, then draining.

use std::future::Future;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::Limits;
use crate::accept::Acceptor;

/// Tells a connection that the listener is stopping: it should finish the
/// request in progress and close (see [`crate::serve_http1`]).
#[derive(Debug, Clone)]
pub struct Stopping(watch::Receiver<bool>);

impl Stopping {
    /// A signal that never fires.
    pub fn never() -> Self {
        let (tx, rx) = watch::channel(false);
        // The receiver sees a closed channel as "not stopping" forever.
        drop(tx);
        Self(rx)
    }

    /// Has the listener stopped?
    pub fn is_stopping(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once the listener stops (never for [`Stopping::never`]).
    pub async fn stopped(&mut self) {
        if self.0.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Accepts on `listener` like [`crate::accept_loop`] until `shutdown`
/// completes (or this future is dropped, which aborts the connections);
/// then closes the listener, tells every connection through its
/// [`Stopping`], and waits at most `drain` for them to finish before
/// closing the rest.
pub async fn serve_until<S, F>(
    listener: TcpListener,
    what: &'static str,
    limits: Limits,
    refused: impl Fn(),
    serve: S,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) where
    S: Fn(TcpStream, Stopping) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = tokio::task::JoinSet::new();
    let mut acceptor = Acceptor::new(listener, what, limits);
    tokio::pin!(shutdown);
    loop {
        let socket = tokio::select! {
            s = acceptor.accept() => s,
            _ = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let Some((socket, slot)) = acceptor.admit(socket, &refused) else { continue };
        let work = serve(socket, Stopping(stop_rx.clone()));
        conns.spawn(async move {
            work.await;
            drop(slot);
        });
    }
    drop(acceptor);
    stop_tx.send_replace(true);
    if tokio::time::timeout(drain, async { while conns.join_next().await.is_some() {} }).await.is_err() {
        tracing::warn!(connections = conns.len(), "{what}: requests still in progress after {drain:?}: closing them");
    }
}

#[cfg(test)]
#[path = "drain_tests.rs"]
mod tests;
