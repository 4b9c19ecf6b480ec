use std::collections::VecDeque;

use cutover_core::Secret;
use cutover_s3::sigv4::AmzDate;

use super::*;

const DOC_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn doc_seed(signature: &str) -> Seed {
    Seed {
        signature: signature.into(),
        date: AmzDate { datetime: "20130524T000000Z".into(), date: "20130524".into() },
        region: "us-east-1".into(),
        secret: Secret::new(DOC_SECRET),
    }
}

/// The example of the S3 documentation ("Signature Calculations for the
/// Authorization Header: Transferring Payload in Multiple Chunks"):
/// 66560 bytes of 'a' in chunks of 65536 and 1024.
fn doc_body(sig1: &str) -> (Vec<u8>, Seed) {
    let seed = doc_seed("4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9");
    let mut body = Vec::new();
    body.extend_from_slice(format!("10000;chunk-signature={sig1}\r\n").as_bytes());
    body.extend(std::iter::repeat_n(b'a', 65536));
    body.extend_from_slice(
        b"\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n",
    );
    body.extend(std::iter::repeat_n(b'a', 1024));
    body.extend_from_slice(
        b"\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n",
    );
    (body, seed)
}

/// The example of "Signature calculations for trailing headers (chunked
/// uploads)": the same data, a CRC32C trailer and its signature.
fn doc_trailer_body(crc: &str, trailer_sig: &str) -> (Vec<u8>, Seed) {
    let seed = doc_seed("106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e");
    let mut body = Vec::new();
    body.extend_from_slice(
        b"10000;chunk-signature=b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2\r\n",
    );
    body.extend(std::iter::repeat_n(b'a', 65536));
    body.extend_from_slice(
        b"\r\n400;chunk-signature=1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7\r\n",
    );
    body.extend(std::iter::repeat_n(b'a', 1024));
    body.extend_from_slice(
        b"\r\n0;chunk-signature=2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992\r\n",
    );
    body.extend_from_slice(format!("x-amz-checksum-crc32c:{crc}\r\n").as_bytes());
    body.extend_from_slice(format!("x-amz-trailer-signature:{trailer_sig}\r\n\r\n").as_bytes());
    (body, seed)
}

const DOC_TRAILER_SIG: &str = "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435";

/// A body of frames.
struct Parts(VecDeque<Bytes>);

impl HttpBody for Parts {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Poll::Ready(self.0.pop_front().map(|p| Ok(Frame::data(p))))
    }
}

/// `body` cut at `cuts` (sorted positions).
fn cut(body: &[u8], cuts: &[usize]) -> Parts {
    let mut out = VecDeque::new();
    let mut from = 0;
    for &c in cuts.iter().chain(std::iter::once(&body.len())) {
        out.push_back(Bytes::copy_from_slice(&body[from..c]));
        from = c;
    }
    Parts(out)
}

/// `body` in frames of `size` bytes.
fn frames(body: &[u8], size: usize) -> Parts {
    Parts(body.chunks(size).map(Bytes::copy_from_slice).collect())
}

/// Polls the decoded body to its end: (data delivered, refusal at the end).
async fn drain(parts: Parts, form: Form, declared: u64) -> (Vec<u8>, Option<S3Refusal>) {
    drain_body(AwsChunked::new(parts, Decoder::new(form, declared), Counter::default())).await
}

/// The same, re-framed with the trailer forwarded.
async fn drain_forwarded(parts: Parts, form: Form, declared: u64) -> (Vec<u8>, Option<S3Refusal>) {
    let a = match &form {
        Form::SignedTrailer(_, a) | Form::UnsignedTrailer(a) => a.expect("a checksum"),
        Form::Signed(_) => panic!("no trailer"),
    };
    let b = AwsChunked::new(parts, Decoder::new(form, declared), Counter::default())
        .forward_trailer(TrailerFraming::new(a, declared));
    drain_body(b).await
}

async fn drain_body(b: AwsChunked<Parts>) -> (Vec<u8>, Option<S3Refusal>) {
    let fault = Fault::default();
    let mut b = b.report_to(fault.clone());
    let mut out = Vec::new();
    while let Some(f) = b.frame().await {
        match f {
            Ok(f) => out.extend_from_slice(&f.into_data().unwrap()),
            Err(e) => {
                let r = e.downcast_ref::<S3Refusal>().cloned().expect("a refusal");
                assert_eq!(fault.get(), Some(&r), "the refusal is reported");
                return (out, Some(r));
            }
        }
    }
    assert!(b.is_end_stream());
    (out, None)
}

async fn decode(body: &[u8], form: Form, declared: u64) -> Result<Vec<u8>, S3Refusal> {
    match drain(frames(body, body.len().max(1)), form, declared).await {
        (data, None) => Ok(data),
        (_, Some(r)) => Err(r),
    }
}

fn code(r: Result<Vec<u8>, S3Refusal>) -> &'static str {
    r.expect_err("refused").code
}

fn signed(seed: &Seed) -> Form {
    Form::Signed(ChunkSigner::new(seed))
}

fn crc32_trailer() -> Form {
    Form::UnsignedTrailer(Some(Algorithm::Crc32))
}

/// An unsigned-trailer body of `data` in chunks of `chunk`, ending with `tail`
/// (after the final chunk's header).
fn unsigned(data: &[u8], chunk: usize, tail: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for c in data.chunks(chunk) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n");
    out.extend_from_slice(tail.as_bytes());
    out
}

/// CRC32 of "hello world".
const HELLO_CRC32: &str = "DUoRhQ==";

#[tokio::test]
async fn verifies_the_documented_signed_chunks_in_frames_of_any_size() {
    let (body, seed) = doc_body("ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648");
    for size in [1, 2, 7, 86, 87, 777, 65536, body.len()] {
        let (out, err) = drain(frames(&body, size), signed(&seed), 66560).await;
        assert!(err.is_none(), "frames of {size}: {err:?}");
        assert_eq!(out, vec![b'a'; 66560]);
    }
}

#[tokio::test]
async fn verifies_the_documented_signed_trailer() {
    let (body, seed) = doc_trailer_body("sOO8/Q==", DOC_TRAILER_SIG);
    let form = || Form::SignedTrailer(ChunkSigner::new(&seed), Some(Algorithm::Crc32c));
    for size in [1, 5, 999, body.len()] {
        let (out, err) = drain(frames(&body, size), form(), 66560).await;
        assert!(err.is_none(), "frames of {size}: {err:?}");
        assert_eq!(out.len(), 66560);
    }
    // The trailer's signature covers the checksum.
    let (body, _) = doc_trailer_body("AAAAAA==", DOC_TRAILER_SIG);
    assert_eq!(code(decode(&body, form(), 66560).await), "SignatureDoesNotMatch");
    let (body, _) = doc_trailer_body("sOO8/Q==", &DOC_TRAILER_SIG.replace('d', "e"));
    let r = decode(&body, form(), 66560).await.unwrap_err();
    assert_eq!((r.status, r.code), (StatusCode::FORBIDDEN, "SignatureDoesNotMatch"));
    // Without its signature line.
    let mut body = doc_trailer_body("sOO8/Q==", DOC_TRAILER_SIG).0;
    let at = body.windows(24).position(|w| w == b"x-amz-trailer-signature:").unwrap();
    body.truncate(at);
    body.extend_from_slice(b"\r\n");
    assert_eq!(code(decode(&body, form(), 66560).await), "MalformedTrailerError");
}

/// A signed-trailer body re-signed along the chain (the chain itself is
/// checked against the documentation above).
fn resigned_trailer(seed: &Seed, data: &[u8], trailer: &str, spoil_trailer_sig: bool) -> Vec<u8> {
    let mut s = ChunkSigner::new(seed);
    let mut out = Vec::new();
    for c in data.chunks(1000).chain(std::iter::once(&b""[..])) {
        s.check(&hex::encode(Sha256::digest(c)), "");
        out.extend_from_slice(format!("{:x};chunk-signature={}\r\n", c.len(), s.prev).as_bytes());
        if !c.is_empty() {
            out.extend_from_slice(c);
            out.extend_from_slice(b"\r\n");
        }
    }
    let canonical = if trailer.is_empty() { String::new() } else { format!("{trailer}\n") };
    s.check_trailer(canonical.as_bytes(), "");
    let mut sig = s.prev.clone();
    if spoil_trailer_sig {
        sig = sig.replace(|c: char| c.is_ascii_digit(), "a");
    }
    if !trailer.is_empty() {
        out.extend_from_slice(format!("{trailer}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("x-amz-trailer-signature:{sig}\r\n\r\n").as_bytes());
    out
}

#[tokio::test]
async fn a_signed_trailer_with_a_wrong_checksum_is_a_bad_digest() {
    let seed = doc_seed("106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e");
    let data = b"hello world".repeat(300);
    let mut crc = Algorithm::Crc32.hasher();
    crc.update(&data);
    let right = format!("x-amz-checksum-crc32:{}", checksum::encode(&crc.finish()));
    let form = || Form::SignedTrailer(ChunkSigner::new(&seed), Some(Algorithm::Crc32));
    let n = data.len() as u64;
    assert_eq!(decode(&resigned_trailer(&seed, &data, &right, false), form(), n).await.unwrap(), data);
    let r = decode(&resigned_trailer(&seed, &data, "x-amz-checksum-crc32:AAAAAA==", false), form(), n).await;
    let r = r.unwrap_err();
    assert_eq!((r.status, r.code), (StatusCode::BAD_REQUEST, "BadDigest"));
    assert!(r.message.contains("CRC32"), "{r}");
    assert_eq!(code(decode(&resigned_trailer(&seed, &data, &right, true), form(), n).await), "SignatureDoesNotMatch");
    // No checksum announced: only the signature.
    let bare = Form::SignedTrailer(ChunkSigner::new(&seed), None);
    assert_eq!(decode(&resigned_trailer(&seed, &data, "", false), bare, n).await.unwrap(), data);
}

#[tokio::test]
async fn never_delivers_the_last_byte_of_a_body_that_fails() {
    let seed = doc_seed("4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9");
    let good = "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9";
    let (last_bad, _) = doc_body("ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648");
    let last_bad = String::from_utf8_lossy(&last_bad)
        .replace("0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497", &"0".repeat(64))
        .into_bytes();
    let (final_bad, _) = doc_body("ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648");
    let final_bad = String::from_utf8_lossy(&final_bad).replace(good, &"1".repeat(64)).into_bytes();
    for (what, body) in [("last chunk", last_bad), ("final chunk", final_bad)] {
        for size in [1, 1000, body.len()] {
            let (out, err) = drain(frames(&body, size), signed(&seed), 66560).await;
            assert_eq!(err.map(|r| r.code), Some("SignatureDoesNotMatch"), "{what}");
            assert!(out.len() < 66560, "{what}, frames of {size}: all {} bytes delivered", out.len());
        }
    }
    let data = b"hello world";
    for (tail, want) in [
        ("x-amz-checksum-crc32:AAAAAA==\r\n\r\n", "BadDigest"),
        ("\r\n", "MalformedTrailerError"),
        ("x-amz-checksum-sha1:AAAAAA==\r\n\r\n", "MalformedTrailerError"),
        ("x-amz-checksum-crc32:***\r\n\r\n", "InvalidRequest"),
    ] {
        for size in [1, 4, 1000] {
            let body = unsigned(data, 5, tail);
            let (out, err) = drain(frames(&body, size), crc32_trailer(), 11).await;
            assert_eq!(err.map(|r| r.code), Some(want), "{tail:?}");
            assert!(out.len() < 11, "{tail:?}: the whole body was delivered");
        }
    }
}

/// Forwarded, the trailer is the end of the upstream body and comes only
/// after every check: a failing body stays short of the upstream
/// Content-Length, whatever fails and however the input is cut.
#[tokio::test]
async fn a_forwarded_trailer_comes_only_after_every_check() {
    let data = b"hello world".repeat(300);
    let n = data.len() as u64;
    let crc = || Form::UnsignedTrailer(Some(Algorithm::Crc32));
    let mut c = Algorithm::Crc32.hasher();
    c.update(&data);
    let value = checksum::encode(&c.finish());
    let full = crate::reframe::encoded_len(n, Algorithm::Crc32);
    let right = format!("x-amz-checksum-crc32:{value}");
    let (ok, _) = drain_forwarded(frames(&unsigned(&data, 1000, &format!("{right}\r\n\r\n")), 777), crc(), n).await;
    let mut want = format!("{n:x}\r\n").into_bytes();
    want.extend_from_slice(&data);
    want.extend_from_slice(format!("\r\n0\r\n{right}\r\n\r\n").as_bytes());
    assert_eq!(String::from_utf8(ok).unwrap(), String::from_utf8(want).unwrap());
    for (tail, code) in [
        ("x-amz-checksum-crc32:AAAAAA==\r\n\r\n", "BadDigest"),
        ("\r\n", "MalformedTrailerError"),
        ("x-amz-checksum-sha1:AAAAAA==\r\n\r\n", "MalformedTrailerError"),
        ("x-amz-checksum-crc32:***\r\n\r\n", "InvalidRequest"),
    ] {
        for size in [1, 5, 1000, 5000] {
            let (out, err) = drain_forwarded(frames(&unsigned(&data, 1000, tail), size), crc(), n).await;
            assert_eq!(err.map(|r| r.code), Some(code), "{tail:?}");
            assert!((out.len() as u64) < full, "{tail:?}, frames of {size}: all {full} bytes delivered");
        }
    }
    // Shorter than declared.
    let body = unsigned(&data, 1000, &format!("{right}\r\n\r\n"));
    let (out, err) = drain_forwarded(frames(&body, 100), crc(), n + 1).await;
    assert_eq!(err.map(|r| r.code), Some("IncompleteBody"));
    assert!((out.len() as u64) < crate::reframe::encoded_len(n + 1, Algorithm::Crc32));
    // Signed: the trailer signature, a chunk signature, the checksum.
    let seed = doc_seed("106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e");
    let form = || Form::SignedTrailer(ChunkSigner::new(&seed), Some(Algorithm::Crc32));
    let (out, err) = drain_forwarded(frames(&resigned_trailer(&seed, &data, &right, false), 999), form(), n).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(out.len() as u64, full);
    let last_sig = {
        let good = resigned_trailer(&seed, &data, &right, false);
        let text = String::from_utf8_lossy(&good).into_owned();
        let at = text.rfind(";chunk-signature=").unwrap() + 17;
        text.replace(&text[at..at + 64], &"0".repeat(64)).into_bytes()
    };
    for (what, body, code) in [
        ("trailer signature", resigned_trailer(&seed, &data, &right, true), "SignatureDoesNotMatch"),
        ("final chunk signature", last_sig, "SignatureDoesNotMatch"),
        ("checksum", resigned_trailer(&seed, &data, "x-amz-checksum-crc32:AAAAAA==", false), "BadDigest"),
    ] {
        for size in [1, 999, body.len()] {
            let (out, err) = drain_forwarded(frames(&body, size), form(), n).await;
            assert_eq!(err.map(|r| r.code), Some(code), "{what}");
            assert!((out.len() as u64) < full, "{what}, frames of {size}: all {full} bytes delivered");
        }
    }
}

#[tokio::test]
async fn checks_every_trailing_checksum_algorithm() {
    let data: Vec<u8> = (0..70_000u32).map(|i| (i % 253) as u8).collect();
    for a in Algorithm::ALL {
        let mut c = a.hasher();
        c.update(&data);
        let value = checksum::encode(&c.finish());
        let body = unsigned(&data, 65536, &format!("{}:{value}\r\n\r\n", a.header()));
        let out = decode(&body, Form::UnsignedTrailer(Some(a)), data.len() as u64).await;
        assert_eq!(out.unwrap(), data, "{a:?}");
        let mut wrong = data.clone();
        wrong[69_999] ^= 1;
        let body = unsigned(&wrong, 65536, &format!("{}:{value}\r\n\r\n", a.header()));
        let r = decode(&body, Form::UnsignedTrailer(Some(a)), data.len() as u64).await.unwrap_err();
        assert_eq!(r.code, "BadDigest", "{a:?}");
        assert!(r.message.contains(a.header()), "{r}");
    }
}

#[tokio::test]
async fn chunk_headers_and_trailers_split_anywhere() {
    let body = unsigned(b"hello world", 5, &format!("x-amz-checksum-crc32:{HELLO_CRC32}\r\n\r\n"));
    for i in 0..=body.len() {
        for j in i..=body.len() {
            let (out, err) = drain(cut(&body, &[i, j]), crc32_trailer(), 11).await;
            assert!(err.is_none(), "cut at {i}, {j}: {err:?}");
            assert_eq!(out, b"hello world");
        }
    }
}

/// Random data, chunk sizes and frame cuts decode to the data (a
/// deterministic property test).
#[tokio::test]
async fn random_bodies_and_cuts_decode_to_their_data() {
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    for _ in 0..200 {
        let data: Vec<u8> = (0..rng.usize(0..3000)).map(|_| rng.u8(..)).collect();
        let chunk = rng.usize(1..1200);
        let mut c = Algorithm::Crc64Nvme.hasher();
        c.update(&data);
        let tail = format!("x-amz-checksum-crc64nvme:{}\r\n\r\n", checksum::encode(&c.finish()));
        let body = unsigned(&data, chunk, &tail);
        let mut cuts: Vec<usize> = (0..rng.usize(0..12)).map(|_| rng.usize(0..=body.len())).collect();
        cuts.sort_unstable();
        let (out, err) =
            drain(cut(&body, &cuts), Form::UnsignedTrailer(Some(Algorithm::Crc64Nvme)), data.len() as u64).await;
        assert!(err.is_none(), "{} bytes in chunks of {chunk}, cuts {cuts:?}: {err:?}", data.len());
        assert_eq!(out, data);
    }
}

#[tokio::test]
async fn framing_errors_are_refused() {
    let ok = format!("x-amz-checksum-crc32:{HELLO_CRC32}\r\n\r\n");
    // Chunk data not followed by CRLF, or bare LF line ends.
    let body =
        unsigned(b"hello world", 5, &ok).iter().copied().map(|b| if b == b'\r' { b' ' } else { b }).collect::<Vec<_>>();
    assert!(decode(&body, crc32_trailer(), 11).await.is_err());
    assert_eq!(code(decode(b"5\r\nhelloXX6\r\n world\r\n0\r\n\r\n", crc32_trailer(), 11).await), "InvalidRequest");
    // Chunk sizes: oversize, longer than declared, not hex.
    assert_eq!(code(decode(b"fffffffffffffffff\r\n", crc32_trailer(), 11).await), "InvalidRequest");
    assert_eq!(code(decode(b"ffffffffffffffff\r\n", crc32_trailer(), 11).await), "InvalidRequest");
    assert_eq!(code(decode(b"c\r\nhello world!\r\n", crc32_trailer(), 11).await), "InvalidRequest");
    assert_eq!(code(decode(b"+5\r\nhello\r\n", crc32_trailer(), 11).await), "InvalidRequest");
    assert_eq!(code(decode(b"\r\nhello\r\n", crc32_trailer(), 11).await), "InvalidRequest");
    // A header line that never ends is refused before it fills memory.
    let endless = vec![b'0'; MAX_LINE + 10];
    let (_, err) = drain(frames(&endless, 100), crc32_trailer(), 11).await;
    assert_eq!(err.unwrap().code, "InvalidRequest");
    // Shorter than declared, truncated anywhere.
    assert_eq!(code(decode(&unsigned(b"hello world", 5, &ok), crc32_trailer(), 12).await), "IncompleteBody");
    let full = unsigned(b"hello world", 5, &ok);
    for end in [0, 2, 5, 8, 11, 14, 19, 22] {
        assert_eq!(code(decode(&full[..end], crc32_trailer(), 11).await), "IncompleteBody", "cut at {end}");
    }
    // Signed chunks need their signature.
    let seed = doc_seed("4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9");
    assert_eq!(code(decode(b"5\r\nhello\r\n", signed(&seed), 5).await), "SignatureDoesNotMatch");
    // Trailing headers without a -TRAILER payload, or not announced.
    let mut s = ChunkSigner::new(&seed);
    s.check(EMPTY_SHA256, "");
    let with_trailer = format!("0;chunk-signature={}\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n", s.prev);
    assert_eq!(code(decode(with_trailer.as_bytes(), signed(&seed), 0).await), "MalformedTrailerError");
    let unannounced = unsigned(b"", 5, "x-amz-checksum-crc32:AAAAAA==\r\n\r\n");
    assert_eq!(code(decode(&unannounced, Form::UnsignedTrailer(None), 0).await), "MalformedTrailerError");
    let unsigned_sig = unsigned(b"", 5, "x-amz-trailer-signature:00\r\n\r\n");
    assert_eq!(code(decode(&unsigned_sig, Form::UnsignedTrailer(None), 0).await), "MalformedTrailerError");
    // Bytes after the end.
    let mut extra = unsigned(b"hello world", 5, &ok);
    extra.extend_from_slice(b"more");
    assert_eq!(code(decode(&extra, crc32_trailer(), 11).await), "InvalidRequest");
}

#[tokio::test]
async fn tolerates_a_missing_final_crlf() {
    let data = b"hello world";
    for tail in [
        format!("x-amz-checksum-crc32:{HELLO_CRC32}\r\n\r\n"),
        format!("x-amz-checksum-crc32:{HELLO_CRC32}\r\n"),
        format!("x-amz-checksum-crc32:{HELLO_CRC32}"),
    ] {
        assert_eq!(decode(&unsigned(data, 5, &tail), crc32_trailer(), 11).await.unwrap(), data, "{tail:?}");
    }
    // No trailer announced: the body may end right after the final chunk.
    for tail in ["\r\n", ""] {
        assert_eq!(decode(&unsigned(data, 4, tail), Form::UnsignedTrailer(None), 11).await.unwrap(), data);
    }
    // Announced but absent.
    assert_eq!(code(decode(&unsigned(data, 5, ""), crc32_trailer(), 11).await), "MalformedTrailerError");
    // The signed form without its last CRLF.
    let (mut body, seed) = doc_body("ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648");
    body.truncate(body.len() - 2);
    assert_eq!(decode(&body, signed(&seed), 66560).await.unwrap().len(), 66560);
}

#[tokio::test]
async fn an_empty_upload_is_verified_too() {
    let seed = doc_seed("4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9");
    let mut s = ChunkSigner::new(&seed);
    s.check(EMPTY_SHA256, "");
    let body = format!("0;chunk-signature={}\r\n\r\n", s.prev);
    assert_eq!(decode(body.as_bytes(), signed(&seed), 0).await.unwrap(), b"");
    let bad = format!("0;chunk-signature={}\r\n\r\n", "2".repeat(64));
    assert_eq!(code(decode(bad.as_bytes(), signed(&seed), 0).await), "SignatureDoesNotMatch");
    let tail = "x-amz-checksum-sha256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\r\n\r\n";
    let sha = || Form::UnsignedTrailer(Some(Algorithm::Sha256));
    assert_eq!(decode(&unsigned(b"", 1, tail), sha(), 0).await.unwrap(), b"");
    let tail = "x-amz-checksum-sha256:57DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\r\n\r\n";
    assert_eq!(code(decode(&unsigned(b"", 1, tail), sha(), 0).await), "BadDigest");
}

/// Found by the aws_chunked fuzz target: a huge
/// x-amz-decoded-content-length with a trailing checksum overflowed the
/// upstream Content-Length computation (a panic in a debug build, a
/// wrong length in a release one).
#[test]
fn decoded_length_overflow_is_refused_not_a_panic() {
    for n in [MAX_DECODED_LEN + 1, u64::MAX / 2, u64::MAX] {
        let r = declared_length(n).unwrap_err();
        assert_eq!((r.status, r.code), (StatusCode::BAD_REQUEST, "EntityTooLarge"), "{n}");
    }
    assert_eq!(declared_length(MAX_DECODED_LEN).unwrap(), MAX_DECODED_LEN);
    for a in Algorithm::ALL {
        assert!(crate::reframe::encoded_len(MAX_DECODED_LEN, a) > MAX_DECODED_LEN);
    }
}

/// Found by the aws_chunked fuzz target: bytes after the end of the
/// body were refused when they came in the same read as the end, and
/// ignored (the upload accepted) when they came in a later one.
#[tokio::test]
async fn bytes_after_the_end_are_refused_however_the_body_is_cut() {
    let ok = format!("x-amz-checksum-crc32:{HELLO_CRC32}\r\n\r\n");
    let good = unsigned(b"hello world", 5, &ok);
    let mut extra = good.clone();
    extra.extend_from_slice(b"r\r\n1\r\nl\r\n");
    for i in 0..=extra.len() {
        let (out, err) = drain(cut(&extra, &[i]), crc32_trailer(), 11).await;
        assert_eq!(err.map(|r| r.code), Some("InvalidRequest"), "cut at {i}");
        assert!(out.len() < 11, "cut at {i}: the whole body was delivered");
    }
    for i in 0..=good.len() {
        let (out, err) = drain(cut(&good, &[i]), crc32_trailer(), 11).await;
        assert!(err.is_none(), "cut at {i}: {err:?}");
        assert_eq!(out, b"hello world");
    }
}
