//! HTTP/1.1 connections with the header-read timeout, stopped gracefully.

use std::error::Error as StdError;

use hyper::body::{Body, Incoming};
use hyper::rt::{Read, Write};
use hyper::service::HttpService;

use crate::{Limits, Stopping};

/// An HTTP/1.1 server connection builder with the header-read timeout.
pub fn http1(limits: Limits) -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(limits.header_timeout);
    b
}

/// Serves HTTP/1.1 on `io` with `builder` until the client goes away or,
/// once `stop` fires, until the request in progress has been answered.
pub async fn serve_http1<I, S>(
    builder: &hyper::server::conn::http1::Builder,
    io: I,
    service: S,
    mut stop: Stopping,
) -> Result<(), hyper::Error>
where
    I: Read + Write + Unpin,
    S: HttpService<Incoming>,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    S::ResBody: 'static,
    <S::ResBody as Body>::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => r,
        _ = stop.stopped() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }
}
