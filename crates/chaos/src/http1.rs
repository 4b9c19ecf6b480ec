//! Just enough HTTP/1.1 request framing to find where each request starts
//! and ends on a keep-alive connection: the request head, then a body of
//! `Content-Length` bytes or in `chunked` coding. Bodies are forwarded as
//! they are; nothing is rewritten.

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// Bytes of the head, the blank line included.
    pub len: usize,
    pub method: String,
    pub path: String,
    pub body: BodyKind,
    /// `Expect: 100-continue`: the client waits before sending the body.
    pub expect_continue: bool,
    /// The client asks to close after this request (or speaks HTTP/1.0).
    pub close: bool,
    /// `Upgrade` or `CONNECT`: what follows is no longer HTTP requests.
    pub upgrade: bool,
}

/// How the body of a request is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    None,
    Length(u64),
    Chunked,
}

/// Why a request head cannot be framed (the connection is then relayed as
/// plain bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotHttp(pub String);

const MAX_HEADERS: usize = 128;

/// Parses a request head at the start of `buf`: `Ok(None)` while it is
/// incomplete.
pub fn parse_head(buf: &[u8]) -> Result<Option<RequestHead>, NotHttp> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(NotHttp(e.to_string())),
    };
    let method = req.method.unwrap_or_default().to_string();
    let http10 = req.version == Some(0);
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut expect_continue = false;
    let mut close = http10;
    let mut upgrade = method.eq_ignore_ascii_case("CONNECT");
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value).map_err(|_| NotHttp(format!("header {} is not text", h.name)))?;
        let name = h.name.to_ascii_lowercase();
        match name.as_str() {
            "content-length" => {
                let n: u64 = value.trim().parse().map_err(|_| NotHttp(format!("Content-Length {value:?}")))?;
                if length.is_some_and(|l| l != n) {
                    return Err(NotHttp("conflicting Content-Length headers".into()));
                }
                length = Some(n);
            }
            "transfer-encoding" => {
                let last = value.rsplit(',').next().unwrap_or("").trim();
                if !last.eq_ignore_ascii_case("chunked") {
                    return Err(NotHttp(format!("Transfer-Encoding {value:?}")));
                }
                chunked = true;
            }
            "expect" => expect_continue = value.trim().eq_ignore_ascii_case("100-continue"),
            "connection" => {
                for token in value.split(',').map(str::trim) {
                    if token.eq_ignore_ascii_case("close") {
                        close = true;
                    } else if token.eq_ignore_ascii_case("keep-alive") && http10 {
                        close = false;
                    } else if token.eq_ignore_ascii_case("upgrade") {
                        upgrade = true;
                    }
                }
            }
            "upgrade" => upgrade = true,
            _ => {}
        }
    }
    // Transfer-Encoding overrides Content-Length (RFC 9112, 6.3).
    let body = match (chunked, length) {
        (true, _) => BodyKind::Chunked,
        (false, Some(n)) if n > 0 => BodyKind::Length(n),
        _ => BodyKind::None,
    };
    Ok(Some(RequestHead {
        len,
        method,
        path: req.path.unwrap_or("/").to_string(),
        body,
        expect_continue,
        close,
        upgrade,
    }))
}

/// Follows a request body through the bytes that arrive and says where it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyFramer {
    /// Bytes of a `Content-Length` body still to come.
    Length(u64),
    Chunked(Chunked),
}

impl BodyFramer {
    /// `None` for a request without a body.
    pub fn new(kind: BodyKind) -> Option<Self> {
        match kind {
            BodyKind::None => None,
            BodyKind::Length(n) => Some(BodyFramer::Length(n)),
            BodyKind::Chunked => Some(BodyFramer::Chunked(Chunked::default())),
        }
    }

    /// Takes what belongs to the body from the front of `buf`; returns how
    /// many bytes that is (the rest belongs to the next request).
    pub fn feed(&mut self, buf: &[u8]) -> Result<usize, NotHttp> {
        match self {
            BodyFramer::Length(rest) => {
                let n = (*rest).min(buf.len() as u64);
                *rest -= n;
                Ok(n as usize)
            }
            BodyFramer::Chunked(c) => c.feed(buf),
        }
    }

    pub fn done(&self) -> bool {
        match self {
            BodyFramer::Length(rest) => *rest == 0,
            BodyFramer::Chunked(c) => c.state == ChunkState::Done,
        }
    }
}

/// The state of a `chunked` body: size lines, data, CRLFs, the last chunk
/// and the trailers up to the blank line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chunked {
    state: ChunkState,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum ChunkState {
    /// Reading the hex size (`digits` so far), then extensions up to the line end.
    #[default]
    SizeStart,
    Size {
        value: u64,
        in_extension: bool,
    },
    SizeLf {
        value: u64,
    },
    Data(u64),
    DataCr,
    DataLf,
    /// Trailer lines after the last chunk; `empty` while the line has no byte yet.
    Trailer {
        empty: bool,
    },
    TrailerLf {
        empty: bool,
    },
    Done,
}

impl Chunked {
    fn feed(&mut self, buf: &[u8]) -> Result<usize, NotHttp> {
        let bad = |what: &str| Err(NotHttp(format!("chunked body: {what}")));
        let mut i = 0;
        while i < buf.len() {
            let b = buf[i];
            self.state = match self.state {
                ChunkState::Done => return Ok(i),
                ChunkState::Data(n) => {
                    let take = n.min((buf.len() - i) as u64);
                    i += take as usize;
                    self.state = if n == take { ChunkState::DataCr } else { ChunkState::Data(n - take) };
                    continue;
                }
                ChunkState::SizeStart => match (b as char).to_digit(16) {
                    Some(d) => ChunkState::Size { value: d as u64, in_extension: false },
                    None => return bad("a chunk size must start with a hex digit"),
                },
                ChunkState::Size { value, in_extension } => match (b, (b as char).to_digit(16)) {
                    (b'\r', _) => ChunkState::SizeLf { value },
                    (b'\n', _) => Self::after_size(value),
                    (_, Some(d)) if !in_extension => match value.checked_mul(16) {
                        Some(v) => ChunkState::Size { value: v + d as u64, in_extension },
                        None => return bad("chunk size overflows"),
                    },
                    _ => ChunkState::Size { value, in_extension: true },
                },
                ChunkState::SizeLf { value } if b == b'\n' => Self::after_size(value),
                ChunkState::SizeLf { .. } => return bad("CR without LF after a chunk size"),
                ChunkState::DataCr if b == b'\r' => ChunkState::DataLf,
                ChunkState::DataCr | ChunkState::DataLf if b == b'\n' => ChunkState::SizeStart,
                ChunkState::DataCr | ChunkState::DataLf => return bad("no CRLF after chunk data"),
                ChunkState::Trailer { empty } if b == b'\r' => ChunkState::TrailerLf { empty },
                ChunkState::Trailer { empty } | ChunkState::TrailerLf { empty } if b == b'\n' => {
                    if empty {
                        ChunkState::Done
                    } else {
                        ChunkState::Trailer { empty: true }
                    }
                }
                ChunkState::Trailer { .. } => ChunkState::Trailer { empty: false },
                ChunkState::TrailerLf { .. } => return bad("CR without LF in the trailers"),
            };
            i += 1;
        }
        Ok(i)
    }

    fn after_size(value: u64) -> ChunkState {
        if value == 0 { ChunkState::Trailer { empty: true } } else { ChunkState::Data(value) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_heads_and_their_body_framing() {
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n"), Ok(None));
        let h = parse_head(b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello").unwrap().unwrap();
        assert_eq!((h.method.as_str(), h.path.as_str(), h.body, h.close), ("PUT", "/b/k", BodyKind::Length(5), false));
        assert_eq!(h.len, 49);
        let h = parse_head(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.body, BodyKind::Chunked);
        let h = parse_head(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(h.close && h.body == BodyKind::None);
        let h = parse_head(b"PUT / HTTP/1.1\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n").unwrap().unwrap();
        assert!(h.expect_continue && h.close);
    }

    #[test]
    fn what_is_not_http_is_said_so() {
        // A TLS ClientHello.
        assert!(parse_head(&[0x16, 0x03, 0x01, 0x02, 0x00]).is_err());
        assert!(parse_head(b"PUT / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n").is_err());
        assert!(parse_head(b"PUT / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n").is_err());
    }

    #[test]
    fn a_length_body_ends_where_the_next_request_starts() {
        let mut f = BodyFramer::new(BodyKind::Length(4)).unwrap();
        assert_eq!(f.feed(b"ab").unwrap(), 2);
        assert!(!f.done());
        assert_eq!(f.feed(b"cdGET /").unwrap(), 2);
        assert!(f.done());
    }

    fn feed_all(input: &[u8], piece: usize) -> (usize, bool) {
        let mut f = BodyFramer::new(BodyKind::Chunked).unwrap();
        let mut used = 0;
        for part in input.chunks(piece) {
            if f.done() {
                break;
            }
            used += f.feed(part).unwrap();
        }
        (used, f.done())
    }

    #[test]
    fn a_chunked_body_is_followed_in_pieces_of_any_size() {
        let body = b"5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nx-amz-checksum: abc\r\n\r\n";
        let mut input = body.to_vec();
        input.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        for piece in [1, 2, 3, 7, 64] {
            assert_eq!(feed_all(&input, piece), (body.len(), true), "pieces of {piece}");
        }
        let bare = b"3\nabc\n0\n\n";
        assert_eq!(feed_all(bare, 1), (bare.len(), true));
    }

    #[test]
    fn a_broken_chunked_body_is_an_error() {
        let mut f = BodyFramer::new(BodyKind::Chunked).unwrap();
        assert!(f.feed(b"zz\r\n").is_err());
        let mut f = BodyFramer::new(BodyKind::Chunked).unwrap();
        assert!(f.feed(b"1\r\naXX").is_err());
    }
}
