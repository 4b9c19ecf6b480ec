//! One DNS exchange over TCP (RFC 1035 §4.2.2, RFC 7766): a fresh
//! connection, the request with its two-byte length, the response with its.
//! TCP only: an update or a signed answer may not fit a UDP datagram, and
//! there is no truncation to fall back from.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why an exchange did not get a response.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Connecting, writing or reading failed.
    #[error("{server}: {source}")]
    Io {
        server: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// No complete response within the exchange's time.
    #[error("{server}: no answer within {timeout:?}")]
    Timeout { server: SocketAddr, timeout: Duration },
    /// The response does not answer the request (another id).
    #[error("{server}: the response answers another request (id {got}, sent {sent})")]
    WrongId { server: SocketAddr, sent: u16, got: u16 },
}

/// Sends `request` to `server` and returns the response's bytes, all within
/// `timeout`.
pub async fn exchange(server: SocketAddr, request: &[u8], timeout: Duration) -> Result<Vec<u8>, TransportError> {
    let io = |source| TransportError::Io { server, source };
    let attempt = async {
        let mut stream = TcpStream::connect(server).await.map_err(io)?;
        let mut framed = (request.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(request);
        stream.write_all(&framed).await.map_err(io)?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await.map_err(io)?;
        let mut response = vec![0u8; u16::from_be_bytes(len) as usize];
        stream.read_exact(&mut response).await.map_err(io)?;
        Ok(response)
    };
    let response =
        tokio::time::timeout(timeout, attempt).await.map_err(|_| TransportError::Timeout { server, timeout })??;
    let (sent, got) =
        (u16::from_be_bytes([request[0], request[1]]), response.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])));
    match got {
        Some(got) if got == sent => Ok(response),
        Some(got) => Err(TransportError::WrongId { server, sent, got }),
        None => Err(io(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "a response shorter than its header"))),
    }
}
