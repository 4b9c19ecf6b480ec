//! The accept loop shared by the binary's HTTP listeners (the API, the
//! replication metrics): a cap on concurrent connections (more are closed at
//! once and counted), a backoff after accept errors (out of file
//! descriptors) instead of a spin, and HTTP/1.1 with a header-read timeout
//! that also closes idle kept-alive connections.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// Limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// A client must send a whole request head within this (a new or a
    /// kept-alive connection).
    pub header_timeout: Duration,
}

/// Accepts on `listener` until the task is dropped; each connection is
/// served by `serve` in its own task while it holds a slot. `refused` is
/// called for each connection closed because every slot was taken.
pub async fn accept_loop<S, F>(listener: TcpListener, what: &'static str, limits: Limits, refused: impl Fn(), serve: S)
where
    S: Fn(TcpStream) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut backoff = BACKOFF_MIN;
    loop {
        let socket = match listener.accept().await {
            Ok((socket, _)) => {
                backoff = BACKOFF_MIN;
                socket
            }
            Err(e) => {
                tracing::warn!(error = %e, "{what}: accept failed; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused();
            drop(socket);
            continue;
        };
        let _ = socket.set_nodelay(true);
        let work = serve(socket);
        tokio::spawn(async move {
            work.await;
            drop(slot);
        });
    }
}

/// An HTTP/1.1 server connection builder with the header-read timeout.
pub fn http1(limits: Limits) -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(limits.header_timeout);
    b
}

const BACKOFF_MIN: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn connections_beyond_the_cap_are_closed_and_counted() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let r = refused.clone();
        let limits = Limits { max_connections: 1, header_timeout: Duration::from_secs(30) };
        let task = tokio::spawn(accept_loop(
            listener,
            "test",
            limits,
            move || {
                r.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            },
            |mut s: TcpStream| async move {
                // Hold the connection until the client goes away.
                let mut buf = [0u8; 16];
                let _ = s.read(&mut buf).await;
            },
        ));
        let _held = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut second = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(10), second.read(&mut buf)).await.unwrap().unwrap_or(0);
        assert_eq!(n, 0, "the second connection was not closed");
        assert_eq!(refused.load(std::sync::atomic::Ordering::Relaxed), 1);
        task.abort();
    }
}
