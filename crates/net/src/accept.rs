//! Accepting with a cap and a backoff.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// A client must send a whole request head within this (a new or a
    /// kept-alive connection).
    pub header_timeout: Duration,
}

/// The first pause after a failed accept, and the longest.
const BACKOFF_MIN: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Accepts on `listener` until the task is dropped; each connection is
/// served by `serve` in its own task while it holds a slot. `refused` is
/// called for each connection closed because every slot was taken.
///
/// The connection tasks are detached: they outlive this future. Use
/// [`crate::serve_until`] to stop and drain them.
pub async fn accept_loop<S, F>(listener: TcpListener, what: &'static str, limits: Limits, refused: impl Fn(), serve: S)
where
    S: Fn(TcpStream) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let mut acceptor = Acceptor::new(listener, what, limits);
    loop {
        let socket = acceptor.accept().await;
        let Some((socket, slot)) = acceptor.admit(socket, &refused) else { continue };
        let work = serve(socket);
        tokio::spawn(async move {
            work.await;
            drop(slot);
        });
    }
}

/// A listener with its connection slots and accept backoff.
pub(crate) struct Acceptor {
    listener: TcpListener,
    what: &'static str,
    slots: Arc<Semaphore>,
    backoff: Duration,
}

impl Acceptor {
    pub(crate) fn new(listener: TcpListener, what: &'static str, limits: Limits) -> Self {
        Self { listener, what, slots: Arc::new(Semaphore::new(limits.max_connections)), backoff: BACKOFF_MIN }
    }

    /// The next connection; accept errors are logged and retried after a
    /// growing pause (reset by a success).
    pub(crate) async fn accept(&mut self) -> TcpStream {
        loop {
            match self.listener.accept().await {
                Ok((socket, _)) => {
                    self.backoff = BACKOFF_MIN;
                    return socket;
                }
                Err(e) => {
                    let (what, backoff) = (self.what, self.backoff);
                    tracing::warn!(error = %e, "{what}: accept failed; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    self.backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// Takes a slot for `socket` and sets `TCP_NODELAY`, or closes it and
    /// calls `refused` when every slot is taken.
    pub(crate) fn admit(&self, socket: TcpStream, refused: &impl Fn()) -> Option<(TcpStream, OwnedSemaphorePermit)> {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            refused();
            drop(socket);
            return None;
        };
        if let Err(e) = socket.set_nodelay(true) {
            tracing::debug!(error = %e, "{}: TCP_NODELAY not set", self.what);
        }
        Some((socket, slot))
    }
}

#[cfg(test)]
#[path = "accept_tests.rs"]
mod tests;
