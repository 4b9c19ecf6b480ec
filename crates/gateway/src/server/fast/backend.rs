//! One request to a backend on the fast path: over a pooled plain TCP
//! connection, written whole (head and body in one vectored write), the answer read
//! whole, every wait bounded by the backend deadlines.

use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use cutover_core::Outcome;
use cutover_s3::http::{Connector, IDLE_TIMEOUT, MAX_IDLE_PER_HOST, TransportError, classify, quickack};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use super::timer::within;
use super::wire::{self, BackendHead, Framing};
use crate::deadline::Deadlines;

/// Idle plain connections to one backend host: those made on the fast
/// lane apart from those made on the runtime's workers (a socket's
/// wake-ups come from the event loop it was registered with).
#[derive(Debug, Default)]
pub(crate) struct RawPool {
    idle: Mutex<Vec<(Instant, TcpStream)>>,
    lane: Mutex<Vec<(Instant, TcpStream)>>,
}

impl RawPool {
    fn here(&self) -> &Mutex<Vec<(Instant, TcpStream)>> {
        if crate::server::lane::on_lane() { &self.lane } else { &self.idle }
    }

    /// An idle connection (`now`: about now; those idle longer than
    /// `IDLE_TIMEOUT` are closed).
    fn take(&self, now: Instant) -> Option<TcpStream> {
        let mut idle = self.here().lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|(since, _)| now.duration_since(*since) < IDLE_TIMEOUT);
        idle.pop().map(|(_, s)| s)
    }

    /// Keeps `s` for another request, idle since `now`.
    fn put(&self, s: TcpStream, now: Instant) {
        let mut idle = self.here().lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE_PER_HOST {
            idle.push((now, s));
        }
    }
}

/// A backend's whole answer.
#[derive(Debug)]
pub(super) struct Answer {
    pub head: BackendHead,
    /// The bytes `head`'s fields lie in.
    pub raw: Bytes,
    pub body: Bytes,
}

/// Sends `request` (head, then body) to `host` and reads the whole answer,
/// at most `limit` bytes of body. A pooled connection that the backend had
/// closed (nothing read back) is replaced by a new one once: the request is
/// whole in memory and is a PUT, DELETE or HEAD, so sending it again is
/// safe. `head`: the request is a HEAD (its answer has no body).
/// `room`: the client connection's buffer for answers (its answer's bytes
/// are split off it). `timer`: the client connection's timer for its
/// backend waits ([`within`]).
/// `now`: when the request began (the pool's idle times are counted from
/// it: a connection's is longer by one request, a few milliseconds).
#[allow(clippy::too_many_arguments)]
pub(super) async fn exchange(
    conn: &Connector,
    pool: &RawPool,
    host: &str,
    request: [&[u8]; 2],
    room: &mut BytesMut,
    head: bool,
    d: Deadlines,
    limit: usize,
    mut timer: Pin<&mut Sleep>,
    now: Instant,
) -> Result<Answer, TransportError> {
    let mut fresh = false;
    loop {
        let (stream, reused) = match pool.take(now) {
            Some(s) if !fresh => (s, true),
            _ => (conn.connect_tcp(host).await?, false),
        };
        match once(stream, request, room, head, d, limit, timer.as_mut()).await {
            Ok((answer, stream)) => {
                if let Some(s) = stream {
                    pool.put(s, now);
                }
                return Ok(answer);
            }
            Err(Failure::Closed(_)) if reused => fresh = true,
            Err(Failure::Closed(e) | Failure::Other(e)) => return Err(e),
        }
    }
}

enum Failure {
    /// The connection ended before any byte of an answer: the request may
    /// be sent again on another.
    Closed(TransportError),
    Other(TransportError),
}

fn timed_out(what: &str, after: Duration) -> Failure {
    Failure::Other(TransportError::new(Outcome::Timeout, format!("{what} within {after:?}")))
}

/// Writes both parts of `request`, with as few writes as the socket takes.
async fn write_parts(s: &mut TcpStream, request: [&[u8]; 2]) -> std::io::Result<()> {
    let [mut head, mut body] = request;
    while !head.is_empty() || !body.is_empty() {
        let n = s.write_vectored(&[IoSlice::new(head), IoSlice::new(body)]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let from_head = n.min(head.len());
        head = &head[from_head..];
        body = &body[n - from_head..];
    }
    Ok(())
}

async fn once(
    mut s: TcpStream,
    request: [&[u8]; 2],
    buf: &mut BytesMut,
    head: bool,
    d: Deadlines,
    limit: usize,
    mut timer: Pin<&mut Sleep>,
) -> Result<(Answer, Option<TcpStream>), Failure> {
    let io = |e: std::io::Error| classify(&e);
    let idle = || tokio::time::Instant::now() + d.idle;
    match within(timer.as_mut(), idle, write_parts(&mut s, request)).await {
        None => return Err(timed_out("the backend did not take the request", d.idle)),
        // A pooled connection the backend closed: nothing was taken.
        Some(Err(e)) => return Err(Failure::Closed(io(e))),
        Some(Ok(())) => {}
    }
    // Room for an answer head (Garage's to a PUT is some 300 bytes); more
    // is made as it comes. The connection's buffer, emptied: its room is
    // used again once the previous answer's bytes are let go.
    buf.clear();
    buf.reserve(1024);
    // The answer head, within the first-byte deadline of the request's end
    // (the clock is read when the first read waits).
    let mut first_byte = None;
    let (skip, h) = loop {
        let deadline = || *first_byte.get_or_insert_with(|| tokio::time::Instant::now() + d.first_byte);
        let read = within(timer.as_mut(), deadline, s.read_buf(buf)).await;
        match read {
            None => return Err(timed_out("no answer from the backend", d.first_byte)),
            Some(Err(e)) if buf.is_empty() => return Err(Failure::Closed(io(e))),
            Some(Ok(0)) if buf.is_empty() => {
                return Err(Failure::Closed(TransportError::new(
                    Outcome::ConnectionReset,
                    "the backend closed the connection before answering",
                )));
            }
            Some(Err(e)) => return Err(Failure::Other(io(e))),
            Some(Ok(0)) => return Err(Failure::Other(cut_short("its answer head"))),
            Some(Ok(_)) => {}
        }
        match wire::backend_head(buf, head, limit) {
            Ok(Some(found)) => break found,
            Ok(None) if buf.len() > 64 << 10 => return Err(Failure::Other(malformed("an answer head over 64 KiB"))),
            // More to come: acknowledged at once, or a backend writing its
            // answer in pieces without TCP_NODELAY waits for our delayed ACK.
            Ok(None) => quickack(&s),
            Err(e) => return Err(Failure::Other(malformed(&e.0))),
        }
    };
    let raw = buf.split_to(skip + h.head_len).freeze();
    // The body, each pause within the idle deadline.
    let body = loop {
        let done = match h.framing {
            Framing::None => Some(Bytes::new()),
            Framing::Length(n) if buf.len() >= n => Some(buf.split_to(n).freeze()),
            Framing::Chunked => match wire::dechunk(buf, limit) {
                Ok(Some((b, used))) => {
                    let _ = buf.split_to(used);
                    Some(b)
                }
                Ok(None) => None,
                Err(e) => return Err(Failure::Other(malformed(&e.0))),
            },
            Framing::Length(_) | Framing::Close => None,
        };
        if let Some(b) = done {
            break b;
        }
        if buf.len() > limit {
            return Err(Failure::Other(malformed(&format!("an answer body over {limit} bytes"))));
        }
        quickack(&s);
        match within(timer.as_mut(), idle, s.read_buf(buf)).await {
            None => return Err(timed_out("the backend paused its answer", d.idle)),
            Some(Err(e)) => return Err(Failure::Other(io(e))),
            Some(Ok(0)) if h.framing == Framing::Close => break std::mem::take(buf).freeze(),
            Some(Ok(0)) => return Err(Failure::Other(cut_short("its answer body"))),
            Some(Ok(_)) => {}
        }
    };
    // Bytes past the answer: the backend is out of step; never reuse it.
    let keep = h.reusable && h.framing != Framing::Close && buf.is_empty();
    Ok((Answer { head: h, raw, body }, keep.then_some(s)))
}

fn cut_short(what: &str) -> TransportError {
    TransportError::new(Outcome::ConnectionReset, format!("the backend closed the connection in the middle of {what}"))
}

fn malformed(why: &str) -> TransportError {
    TransportError::new(Outcome::Protocol(why.to_string()), format!("the backend's answer: {why}"))
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpSocket};

    use super::write_parts;

    #[tokio::test]
    async fn a_request_written_in_parts_arrives_whole_and_in_order() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let socket = TcpSocket::new_v4().unwrap();
        // A small send buffer: the body takes many writes, some of them
        // ending inside the head or the body.
        socket.set_send_buffer_size(4096).unwrap();
        let mut client = socket.connect(listener.local_addr().unwrap()).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let head: Vec<u8> = (0..=255u8).cycle().take(777).collect();
        let body: Vec<u8> = (0..=250u8).rev().cycle().take(3 << 20).collect();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            server.read_to_end(&mut got).await.unwrap();
            got
        });
        write_parts(&mut client, [&head, &body]).await.unwrap();
        write_parts(&mut client, [b"", b"tail"]).await.unwrap();
        drop(client);
        let got = reader.await.unwrap();
        assert_eq!(got.len(), head.len() + body.len() + 4);
        assert!(got[..head.len()] == head[..], "the head arrived changed");
        assert!(got[head.len()..head.len() + body.len()] == body[..], "the body arrived changed");
        assert_eq!(&got[head.len() + body.len()..], b"tail");
    }
}
