//! One client connection.
//!
//! - At accept: `reset` closes it with an RST, `blackhole` reads and drops
//!   everything and never answers; otherwise a connection to the upstream
//!   is opened (an RST to the client when that fails).
//! - Client to upstream: requests are framed (head, then a `Content-Length`
//!   or `chunked` body) so that each request is seen at its start: `reset`
//!   and `blackhole` act there too, and `slowdown` may answer it with a 503
//!   instead of forwarding it (its body is read and dropped, so the
//!   keep-alive connection stays in step). What does not parse as HTTP/1.x
//!   (TLS, another protocol) is relayed as plain bytes from then on.
//! - Upstream to client: bytes are relayed as they come, each piece held
//!   for `latency_ms` plus jitter after it arrived (order kept: a time
//!   shift, not a throughput limit); the proxy's own 503 answers go through
//!   the same queue.
//! - Both directions go through the shared bandwidth pacers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::faults::FaultKind;
use crate::http1::{BodyFramer, BodyKind, NotHttp, RequestHead, parse_head};
use crate::metrics::Metrics;
use crate::pace::{Pacer, slice_len};
use crate::proxy::Shared;

const READ_BUF: usize = 16 * 1024;
const MAX_HEAD: usize = 64 * 1024;
/// Pieces of the response direction held for latency, per connection (up
/// to 4 MiB): enough that latency shifts time without capping throughput.
const DOWN_QUEUE: usize = 256;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// After the client closed its side, how long the upstream may take to finish.
const DRAIN_UPSTREAM: Duration = Duration::from_secs(300);
/// After a 503 that closes the connection, how long to read and drop what
/// the client still sends (closing on unread data would send an RST that
/// could overtake the answer).
const LINGER: Duration = Duration::from_secs(2);

/// The body of the proxy's 503 answers.
pub const SLOWDOWN_BODY: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
    <Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";

/// A piece for the client, to be written at its release time.
#[derive(Debug)]
enum Down {
    Data(Bytes, Instant),
    /// Write what came before, then close the client's side (FIN).
    Close,
}

/// How the client direction ended.
#[derive(Debug, PartialEq, Eq)]
enum Ending {
    /// The client closed, or a side failed: finish what is in flight.
    Done,
    Reset,
    Blackhole,
}

/// Serves one accepted connection to its end.
pub(crate) async fn serve(client: TcpStream, shared: Arc<Shared>) {
    let _active = shared.metrics.connection();
    let _ = client.set_nodelay(true);
    let faults = shared.faults();
    if faults.reset {
        shared.metrics.fault(FaultKind::Reset);
        return reset(client);
    }
    if faults.blackhole {
        shared.metrics.fault(FaultKind::Blackhole);
        return blackhole(client).await;
    }
    let upstream = match connect(&shared.upstream).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(upstream = %shared.upstream, error = %e, "cannot reach the upstream; resetting the client");
            shared.metrics.upstream_errors.fetch_add(1, Ordering::Relaxed);
            return reset(client);
        }
    };
    relay(client, upstream, &shared).await;
}

async fn connect(upstream: &str) -> std::io::Result<TcpStream> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(upstream))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Closes with an RST: `SO_LINGER` 0, then close.
fn reset(client: TcpStream) {
    let _ = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
    drop(client);
}

/// Reads and drops everything until the client gives up; never writes.
async fn blackhole(mut client: TcpStream) {
    let mut sink = vec![0u8; READ_BUF];
    while let Ok(n) = client.read(&mut sink).await {
        if n == 0 {
            break;
        }
    }
}

async fn relay(mut client: TcpStream, mut upstream: TcpStream, shared: &Shared) {
    let ending = {
        let (cr, cw) = client.split();
        let (ur, uw) = upstream.split();
        let (tx, rx) = mpsc::channel(DOWN_QUEUE);
        let up = requests(cr, uw, tx.clone(), shared);
        let down = downstream(ur, cw, tx, rx, shared);
        tokio::pin!(up, down);
        let mut down_done = false;
        let ending = loop {
            tokio::select! {
                e = &mut up => break e,
                _ = &mut down, if !down_done => down_done = true,
            }
        };
        if ending == Ending::Done && !down_done {
            let _ = tokio::time::timeout(DRAIN_UPSTREAM, &mut down).await;
        }
        ending
    };
    match ending {
        Ending::Done => {}
        Ending::Reset => reset(client),
        Ending::Blackhole => {
            drop(upstream);
            blackhole(client).await;
        }
    }
}

/// Writes `data` in slices through a pacer, counting bytes (before each
/// write, so that whoever received them also sees them counted).
async fn write_paced(
    w: &mut WriteHalf<'_>,
    data: &[u8],
    pacer: &Pacer,
    bps: Option<u64>,
    counter: &AtomicU64,
) -> std::io::Result<()> {
    for piece in data.chunks(slice_len(bps, READ_BUF)) {
        pacer.wait(piece.len(), bps).await;
        Metrics::add(counter, piece.len());
        w.write_all(piece).await?;
    }
    Ok(())
}

/// Upstream to client: a reader that stamps each piece with its release
/// time, and a writer that holds it until then. Ends when the writer ends
/// (after a [`Down::Close`], or when the client is gone).
async fn downstream(
    mut ur: ReadHalf<'_>,
    mut cw: WriteHalf<'_>,
    tx: mpsc::Sender<Down>,
    mut rx: mpsc::Receiver<Down>,
    shared: &Shared,
) {
    let reader = async move {
        let mut last = Instant::now();
        let mut buf = BytesMut::with_capacity(READ_BUF);
        loop {
            buf.reserve(READ_BUF);
            match ur.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let release = (Instant::now() + shared.delay()).max(last);
                    last = release;
                    if tx.send(Down::Data(buf.split().freeze(), release)).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = tx.send(Down::Close).await;
    };
    let writer = async move {
        while let Some(Down::Data(data, release)) = rx.recv().await {
            if release > Instant::now() {
                tokio::time::sleep_until(release).await;
            }
            let counter = &shared.metrics.bytes_downstream;
            if write_paced(&mut cw, &data, &shared.down_pacer, shared.bandwidth(), counter).await.is_err() {
                return;
            }
        }
        let _ = cw.shutdown().await;
    };
    tokio::select! {
        _ = writer => {}
        _ = async { reader.await; std::future::pending::<()>().await } => {}
    }
}

/// Why a body could not be passed on.
enum BodyError {
    NotHttp(NotHttp),
    Closed,
}

/// Passes a request body from the client on to `to` (or drops it when
/// `to` is `None`), leaving in `buf` what follows it.
async fn pass_body(
    cr: &mut ReadHalf<'_>,
    mut to: Option<&mut WriteHalf<'_>>,
    buf: &mut BytesMut,
    kind: BodyKind,
    shared: &Shared,
) -> Result<(), BodyError> {
    let Some(mut framer) = BodyFramer::new(kind) else { return Ok(()) };
    loop {
        if !buf.is_empty() {
            let n = framer.feed(buf).map_err(BodyError::NotHttp)?;
            let piece = buf.split_to(n);
            if let Some(w) = to.as_deref_mut() {
                let counter = &shared.metrics.bytes_upstream;
                write_paced(w, &piece, &shared.up_pacer, shared.bandwidth(), counter)
                    .await
                    .map_err(|_| BodyError::Closed)?;
            }
        }
        if framer.done() {
            return Ok(());
        }
        buf.reserve(READ_BUF);
        match cr.read_buf(buf).await {
            Ok(0) | Err(_) => return Err(BodyError::Closed),
            Ok(_) => {}
        }
    }
}

/// The proxy's own `503 SlowDown` answer to `head`.
fn slowdown_answer(head: &RequestHead, close: bool, request_id: u64) -> Bytes {
    let mut answer = format!(
        "HTTP/1.1 503 Slow Down\r\ncontent-type: application/xml\r\ncontent-length: {}\r\n\
         x-amz-request-id: cutover-chaos-{request_id}\r\nconnection: {}\r\n\r\n",
        SLOWDOWN_BODY.len(),
        if close { "close" } else { "keep-alive" }
    );
    if !head.method.eq_ignore_ascii_case("HEAD") {
        answer.push_str(SLOWDOWN_BODY);
    }
    Bytes::from(answer)
}

/// Client to upstream, one request at a time, with the faults in force at
/// the start of each request.
async fn requests(mut cr: ReadHalf<'_>, mut uw: WriteHalf<'_>, tx: mpsc::Sender<Down>, shared: &Shared) -> Ending {
    let metrics = &shared.metrics;
    let mut buf = BytesMut::with_capacity(READ_BUF);
    loop {
        let head = loop {
            match parse_head(&buf) {
                Ok(Some(h)) => break h,
                Ok(None) if buf.len() > MAX_HEAD => {
                    return plain(cr, uw, buf, shared, "request head over 64 KiB").await;
                }
                Ok(None) => {}
                Err(NotHttp(why)) => return plain(cr, uw, buf, shared, &why).await,
            }
            buf.reserve(READ_BUF);
            match cr.read_buf(&mut buf).await {
                Ok(0) | Err(_) => {
                    let _ = uw.shutdown().await;
                    return Ending::Done;
                }
                Ok(_) => {}
            }
        };
        let request_id = metrics.requests.fetch_add(1, Ordering::Relaxed) + 1;
        let faults = shared.faults();
        if faults.reset {
            metrics.fault(FaultKind::Reset);
            return Ending::Reset;
        }
        if faults.blackhole {
            metrics.fault(FaultKind::Blackhole);
            return Ending::Blackhole;
        }
        if faults.draw_slowdown() {
            metrics.fault(FaultKind::Slowdown);
            let _ = buf.split_to(head.len);
            // A client waiting for `100 Continue` may or may not send its
            // body now: answer and close rather than guess.
            let close = head.close || head.expect_continue;
            if !head.expect_continue && pass_body(&mut cr, None, &mut buf, head.body, shared).await.is_err() {
                return Ending::Done;
            }
            let answer = slowdown_answer(&head, close, request_id);
            if tx.send(Down::Data(answer, Instant::now() + faults.delay())).await.is_err() {
                return Ending::Done;
            }
            if close {
                let _ = tx.send(Down::Close).await;
                linger(&mut cr).await;
                return Ending::Done;
            }
            continue;
        }
        for kind in [FaultKind::Latency, FaultKind::Bandwidth] {
            if faults.is_on(kind) {
                metrics.fault(kind);
            }
        }
        let head_bytes = buf.split_to(head.len);
        let bps = faults.bandwidth_bps;
        if write_paced(&mut uw, &head_bytes, &shared.up_pacer, bps, &metrics.bytes_upstream).await.is_err() {
            return Ending::Done;
        }
        if head.upgrade {
            return plain(cr, uw, buf, shared, "upgraded").await;
        }
        match pass_body(&mut cr, Some(&mut uw), &mut buf, head.body, shared).await {
            Ok(()) => {}
            Err(BodyError::Closed) => return Ending::Done,
            Err(BodyError::NotHttp(NotHttp(why))) => return plain(cr, uw, buf, shared, &why).await,
        }
    }
}

/// Reads and drops what the client sends, until it closes or [`LINGER`] passes.
async fn linger(cr: &mut ReadHalf<'_>) {
    let mut sink = vec![0u8; READ_BUF];
    let _ = tokio::time::timeout(LINGER, async {
        while let Ok(n) = cr.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// Relays the rest of the client direction as plain bytes (with the
/// bandwidth cap).
async fn plain(mut cr: ReadHalf<'_>, mut uw: WriteHalf<'_>, pending: BytesMut, shared: &Shared, why: &str) -> Ending {
    tracing::debug!(why, "relaying the rest of the connection as plain bytes");
    let faults = shared.faults();
    for kind in [FaultKind::Latency, FaultKind::Bandwidth] {
        if faults.is_on(kind) {
            shared.metrics.fault(kind);
        }
    }
    let counter = &shared.metrics.bytes_upstream;
    if write_paced(&mut uw, &pending, &shared.up_pacer, shared.bandwidth(), counter).await.is_err() {
        return Ending::Done;
    }
    let mut buf = vec![0u8; READ_BUF];
    loop {
        match cr.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = uw.shutdown().await;
                return Ending::Done;
            }
            Ok(n) => {
                if write_paced(&mut uw, &buf[..n], &shared.up_pacer, shared.bandwidth(), counter).await.is_err() {
                    return Ending::Done;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slowdown_answer_is_an_s3_error_and_has_no_body_for_head() {
        let head = parse_head(b"GET /b/k HTTP/1.1\r\n\r\n").unwrap().unwrap();
        let a = String::from_utf8(slowdown_answer(&head, false, 7).to_vec()).unwrap();
        assert!(a.starts_with("HTTP/1.1 503 Slow Down\r\n"), "{a}");
        assert!(a.contains("connection: keep-alive\r\n") && a.contains("x-amz-request-id: cutover-chaos-7\r\n"));
        assert!(a.ends_with("<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"));
        assert!(a.contains(&format!("content-length: {}\r\n", SLOWDOWN_BODY.len())));
        let head = parse_head(b"HEAD /b/k HTTP/1.1\r\n\r\n").unwrap().unwrap();
        let a = String::from_utf8(slowdown_answer(&head, true, 8).to_vec()).unwrap();
        assert!(a.ends_with("connection: close\r\n\r\n"), "{a}");
    }
}
