//! The body the gateway sends a backend when the client's aws-chunked
//! upload carries a trailing checksum: `STREAMING-UNSIGNED-PAYLOAD-TRAILER`
//! (the grammar of the S3 documentation, "Signature calculations for
//! trailing headers", and of botocore's `AwsChunkedWrapper`), in a framing
//! the gateway chooses:
//!
//! ```text
//! 100000\r\n<1 MiB of data>\r\n      chunks of CHUNK decoded bytes,
//! 2a\r\n<42 bytes of data>\r\n         the last one shorter (none when empty),
//! 0\r\n                                the final empty chunk,
//! x-amz-checksum-crc32:DUoRhQ==\r\n    the checksum as the one trailing header,
//! \r\n                                 the end.
//! ```
//!
//! A checksum's base64 has a fixed length per algorithm, so the encoded
//! length follows from the decoded length and the algorithm alone
//! ([`encoded_len`]): the upstream request has a Content-Length, known
//! before the first byte. The trailer is produced last, once every check on
//! the client's body has passed; a body that fails never gives the backend
//! its Content-Length.
//!
//! Chunks are bounded because a backend may hold a whole chunk in memory
//! before it passes it on (Garage does, and parses the chunk size as 32
//! bits); 1 MiB is botocore's chunk size, what backends see from the SDKs.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::checksum::{self, Algorithm};

/// Decoded bytes per chunk (the last chunk may be shorter).
pub const CHUNK: u64 = 1 << 20;

/// Digits of `n` in hex (at least one).
fn hex_digits(n: u64) -> u64 {
    u64::from((64 - n.leading_zeros()).div_ceil(4).max(1))
}

/// The length of the encoded body for `decoded` bytes and a trailer of
/// algorithm `a`.
pub fn encoded_len(decoded: u64, a: Algorithm) -> u64 {
    let chunk = |size: u64| hex_digits(size) + 2 + size + 2;
    let (full, rest) = (decoded / CHUNK, decoded % CHUNK);
    let data = full * chunk(CHUNK) + if rest > 0 { chunk(rest) } else { 0 };
    // "0\r\n" name ":" value "\r\n" "\r\n"
    data + 3 + a.header().len() as u64 + 1 + a.value_len() as u64 + 2 + 2
}

/// Encodes a stream of decoded bytes, [`CHUNK`] bytes per chunk. Knows
/// nothing of hyper: the frames go to a queue.
#[derive(Debug)]
pub struct TrailerFraming {
    algorithm: Algorithm,
    decoded: u64,
    pos: u64,
}

impl TrailerFraming {
    /// `decoded`: the number of data bytes that will be pushed.
    pub fn new(algorithm: Algorithm, decoded: u64) -> Self {
        Self { algorithm, decoded, pos: 0 }
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The encoded length (the upstream Content-Length).
    pub fn encoded_len(&self) -> u64 {
        encoded_len(self.decoded, self.algorithm)
    }

    /// Frames for the next decoded bytes: chunk headers (each with the CRLF
    /// that ends the chunk before it) and slices of `data`, never copied.
    /// The bytes pushed must not go beyond the decoded length.
    pub fn data(&mut self, mut data: Bytes, out: &mut VecDeque<Bytes>) {
        debug_assert!(self.pos + data.len() as u64 <= self.decoded, "more bytes than declared");
        while !data.is_empty() {
            let at = self.pos % CHUNK;
            if at == 0 {
                let size = CHUNK.min(self.decoded - self.pos);
                let sep = if self.pos == 0 { "" } else { "\r\n" };
                out.push_back(Bytes::from(format!("{sep}{size:x}\r\n")));
            }
            let n = (CHUNK - at).min(data.len() as u64) as usize;
            out.push_back(data.split_to(n));
            self.pos += n as u64;
        }
    }

    /// The end of the body: the CRLF of the last data chunk, the final
    /// empty chunk and the trailer carrying `digest` (of this algorithm).
    pub fn finish(&mut self, digest: &[u8]) -> Bytes {
        debug_assert_eq!(self.pos, self.decoded, "fewer bytes than declared");
        let value = checksum::encode(digest);
        debug_assert_eq!(value.len(), self.algorithm.value_len());
        let sep = if self.pos == 0 { "" } else { "\r\n" };
        Bytes::from(format!("{sep}0\r\n{}:{value}\r\n\r\n", self.algorithm.header()))
    }
}

#[cfg(test)]
mod tests {

    use http_body_util::BodyExt;

    use super::*;
    use crate::chunked::{AwsChunked, Decoded, Decoder, Form};

    fn digest(a: Algorithm, data: &[u8]) -> Vec<u8> {
        let mut c = a.hasher();
        c.update(data);
        c.finish()
    }

    /// The whole encoded body of `data` pushed in pieces of `piece` bytes.
    fn encode(a: Algorithm, data: &[u8], piece: usize) -> Vec<u8> {
        let mut f = TrailerFraming::new(a, data.len() as u64);
        let mut q = VecDeque::new();
        for p in data.chunks(piece.max(1)) {
            f.data(Bytes::copy_from_slice(p), &mut q);
        }
        let mut out: Vec<u8> = q.into_iter().flat_map(|b| b.to_vec()).collect();
        out.extend_from_slice(&f.finish(&digest(a, data)));
        out
    }

    /// Decodes with the gateway's own decoder; the checksum it verified.
    fn decode(a: Algorithm, body: &[u8], declared: u64) -> (Vec<u8>, Vec<u8>) {
        let mut d = Decoder::new(Form::UnsignedTrailer(Some(a)), declared);
        d.push(body);
        d.end_of_input();
        let mut out = Vec::new();
        loop {
            match d.next_event().unwrap_or_else(|r| panic!("{a:?}: {r}")) {
                Decoded::Data(b) => out.extend_from_slice(&b),
                Decoded::End => return (out, d.verified_checksum().expect("verified").to_vec()),
                Decoded::NeedInput => panic!("{a:?}: the decoder wants more"),
            }
        }
    }

    #[test]
    fn hex_digits_and_value_lengths() {
        let cases = [(0, 1), (1, 1), (15, 1), (16, 2), (255, 2), (256, 3), (CHUNK, 6), (u64::MAX, 16)];
        for (n, d) in cases {
            assert_eq!(hex_digits(n), d, "{n}");
            assert_eq!(format!("{n:x}").len() as u64, d, "{n}");
        }
        let lens = [(Algorithm::Crc32, 8), (Algorithm::Crc32c, 8), (Algorithm::Crc64Nvme, 12)];
        for (a, n) in lens.into_iter().chain([(Algorithm::Sha1, 28), (Algorithm::Sha256, 44)]) {
            assert_eq!(a.value_len(), n, "{a:?}");
            assert_eq!(checksum::encode(&digest(a, b"x")).len(), n, "{a:?}");
        }
    }

    #[test]
    fn exact_bytes_of_an_empty_and_a_small_body() {
        let empty = encode(Algorithm::Sha256, b"", 1);
        let want = "0\r\nx-amz-checksum-sha256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\r\n\r\n";
        assert_eq!(String::from_utf8(empty).unwrap(), want);
        assert_eq!(encoded_len(0, Algorithm::Sha256), want.len() as u64);
        for piece in [1, 4, 11] {
            let small = encode(Algorithm::Crc32, b"hello world", piece);
            let want = "b\r\nhello world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n";
            assert_eq!(String::from_utf8(small).unwrap(), want, "pieces of {piece}");
            assert_eq!(encoded_len(11, Algorithm::Crc32), want.len() as u64);
        }
        // What botocore sends for the same body (one chunk) is byte for byte the same.
        let crc64 = encode(Algorithm::Crc64Nvme, b"123456789", 9);
        let want = format!("9\r\n123456789\r\n0\r\nx-amz-checksum-crc64nvme:{}\r\n\r\n", "rosUhgp5mIg=");
        assert_eq!(String::from_utf8(crc64).unwrap(), want);
    }

    #[test]
    fn exact_bytes_of_a_body_of_several_chunks() {
        let data: Vec<u8> = (0..2 * CHUNK + 5).map(|i| (i % 251) as u8).collect();
        let mut want = b"100000\r\n".to_vec();
        want.extend_from_slice(&data[..CHUNK as usize]);
        want.extend_from_slice(b"\r\n100000\r\n");
        want.extend_from_slice(&data[CHUNK as usize..2 * CHUNK as usize]);
        want.extend_from_slice(b"\r\n5\r\n");
        want.extend_from_slice(&data[2 * CHUNK as usize..]);
        let value = checksum::encode(&digest(Algorithm::Sha1, &data));
        want.extend_from_slice(format!("\r\n0\r\nx-amz-checksum-sha1:{value}\r\n\r\n").as_bytes());
        for piece in [1000, 65536, CHUNK as usize, CHUNK as usize + 1, data.len()] {
            assert!(encode(Algorithm::Sha1, &data, piece) == want, "pieces of {piece}");
        }
        assert_eq!(encoded_len(data.len() as u64, Algorithm::Sha1), want.len() as u64);
        // An exact multiple of the chunk size has no short chunk.
        let two = &data[..2 * CHUNK as usize];
        let body = encode(Algorithm::Crc32c, two, 70_000);
        assert_eq!(body.len() as u64, encoded_len(two.len() as u64, Algorithm::Crc32c));
        let tail = String::from_utf8_lossy(&body[body.len() - 40..]).into_owned();
        assert!(
            tail.ends_with(&format!("\r\n0\r\nx-amz-checksum-crc32c:{}\r\n\r\n", value_of(Algorithm::Crc32c, two)))
        );
    }

    fn value_of(a: Algorithm, data: &[u8]) -> String {
        checksum::encode(&digest(a, data))
    }

    /// Every algorithm, sizes around the chunk boundaries: the computed
    /// length is the encoded length, and the gateway's decoder gives the
    /// data and the checksum back.
    #[test]
    fn round_trips_through_the_gateways_decoder() {
        let c = CHUNK as usize;
        let mut rng = fastrand::Rng::with_seed(0xf0d);
        for a in Algorithm::ALL {
            for n in [0, 1, 15, 16, 4095, c - 1, c, c + 1, 2 * c, 3 * c - 7] {
                let data: Vec<u8> = (0..n).map(|_| rng.u8(..)).collect();
                let body = encode(a, &data, rng.usize(1..=c + 10));
                assert_eq!(body.len() as u64, encoded_len(n as u64, a), "{a:?}, {n} bytes");
                let (back, sum) = decode(a, &body, n as u64);
                assert!(back == data, "{a:?}, {n} bytes");
                assert_eq!(sum, digest(a, &data), "{a:?}, {n} bytes");
            }
        }
    }

    /// A client body decoded and re-framed by [`AwsChunked`] (any framing
    /// of the client's) comes out as exactly the encoding above.
    #[tokio::test]
    async fn the_client_body_is_reframed_whatever_its_own_chunks() {
        let data: Vec<u8> = (0..CHUNK + 300_000).map(|i| (i * 7 % 256) as u8).collect();
        for a in Algorithm::ALL {
            let want = encode(a, &data, data.len());
            for client_chunk in [8192, 65536, CHUNK as usize + 3] {
                let mut client = Vec::new();
                for c in data.chunks(client_chunk) {
                    client.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                    client.extend_from_slice(c);
                    client.extend_from_slice(b"\r\n");
                }
                client.extend_from_slice(format!("0\r\n{}:{}\r\n\r\n", a.header(), value_of(a, &data)).as_bytes());
                let dec = Decoder::new(Form::UnsignedTrailer(Some(a)), data.len() as u64);
                let inner = http_body_util::Full::new(Bytes::from(client));
                let mut b = AwsChunked::new(inner, dec, prometheus_client::metrics::counter::Counter::default())
                    .forward_trailer(TrailerFraming::new(a, data.len() as u64));
                assert_eq!(http_body::Body::size_hint(&b).exact(), Some(want.len() as u64));
                let mut out = Vec::new();
                while let Some(f) = b.frame().await {
                    out.extend_from_slice(&f.unwrap().into_data().unwrap());
                }
                assert!(out == want, "{a:?}, client chunks of {client_chunk}");
            }
        }
    }
}
