//! aws-chunked uploads through the gateway (in process) to a real Garage
//! node, checked on Garage directly:
//!
//! - signed streaming uploads whose last chunk (or final empty chunk) has a
//!   bad signature are refused and never stored;
//! - trailing checksums (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`) of every
//!   algorithm are verified: right ones are stored and read back, wrong ones
//!   are `400 BadDigest` and nothing is stored (an existing object keeps its
//!   content), missing or unannounced ones are refused;
//! - signed trailers (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`) are
//!   verified: a bad trailer signature is `403 SignatureDoesNotMatch`;
//! - the verified checksum goes on to Garage (as an unsigned trailer), which
//!   stores it: GetObject and HeadObject with `x-amz-checksum-mode: ENABLED`
//!   on Garage directly return it, for every algorithm and both trailer
//!   forms, in single PUTs, multipart uploads created with
//!   `x-amz-checksum-algorithm` (which Garage refuses parts of without a
//!   checksum) and dual-write to two buckets;
//! - boto3, made to send its trailing checksum over plain HTTP, uploads
//!   through the gateway.
//!
//! The aws-chunked encoder here is the test's own (chunk and trailer
//! signatures, CRCs computed bit by bit), checked against the AWS
//! documentation's example values, not the gateway's decoder.

mod common;

use cutover_s3::S3Client;
use cutover_s3::client::Req;
use cutover_s3::sigv4::{self, AmzDate, CanonicalRequest};
use hmac::{Hmac, KeyInit, Mac};
use http::Method;
use sha2::{Digest, Sha256};

use common::{Answer, CLIENT_KEY, CLIENT_SECRET, GatewayLab, lab};

// ---------------------------------------------------------------------------
// The test's aws-chunked encoder.

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(data);
    m.finalize().into_bytes().into()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The signature chain of a signed streaming upload, from its seed.
struct Chain {
    key: [u8; 32],
    datetime: String,
    scope: String,
    prev: String,
}

impl Chain {
    fn new(secret: &str, datetime: &str, region: &str, seed: &str) -> Self {
        let date = &datetime[..8];
        let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
        let k = hmac(&k, region.as_bytes());
        let k = hmac(&k, b"s3");
        let key = hmac(&k, b"aws4_request");
        Chain { key, datetime: datetime.into(), scope: format!("{date}/{region}/s3/aws4_request"), prev: seed.into() }
    }

    fn chunk(&mut self, data: &[u8]) -> String {
        let sts = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{}\n{}\n{}",
            self.datetime,
            self.scope,
            self.prev,
            sha256_hex(b""),
            sha256_hex(data)
        );
        self.prev = hex::encode(hmac(&self.key, sts.as_bytes()));
        self.prev.clone()
    }

    /// `canonical`: the trailing header lines, each `name:value\n`.
    fn trailer(&mut self, canonical: &str) -> String {
        let sts = format!(
            "AWS4-HMAC-SHA256-TRAILER\n{}\n{}\n{}\n{}",
            self.datetime,
            self.scope,
            self.prev,
            sha256_hex(canonical.as_bytes())
        );
        self.prev = hex::encode(hmac(&self.key, sts.as_bytes()));
        self.prev.clone()
    }
}

/// A reflected CRC computed bit by bit (`poly` reflected, init and xorout
/// all ones): CRC-32 (0xEDB88320), CRC-32C (0x82F63B78), CRC-64/NVME
/// (0x9A6C9329AC4BC9B5).
fn crc_bitwise(data: &[u8], poly: u64, width: u32) -> u64 {
    let mask = if width == 64 { u64::MAX } else { (1u64 << width) - 1 };
    let mut crc = mask;
    for &b in data {
        crc ^= u64::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ poly } else { crc >> 1 };
        }
    }
    crc ^ mask
}

const ALGORITHMS: [&str; 5] = [
    "x-amz-checksum-crc32",
    "x-amz-checksum-crc32c",
    "x-amz-checksum-crc64nvme",
    "x-amz-checksum-sha1",
    "x-amz-checksum-sha256",
];

/// The trailer value (base64 of the big-endian digest) of `header` for `data`.
fn checksum_value(header: &str, data: &[u8]) -> String {
    use base64::Engine as _;
    let digest = match header {
        "x-amz-checksum-crc32" => (crc_bitwise(data, 0xEDB8_8320, 32) as u32).to_be_bytes().to_vec(),
        "x-amz-checksum-crc32c" => (crc_bitwise(data, 0x82F6_3B78, 32) as u32).to_be_bytes().to_vec(),
        "x-amz-checksum-crc64nvme" => crc_bitwise(data, 0x9A6C_9329_AC4B_C9B5, 64).to_be_bytes().to_vec(),
        "x-amz-checksum-sha1" => sha1::Sha1::digest(data).to_vec(),
        "x-amz-checksum-sha256" => Sha256::digest(data).to_vec(),
        _ => panic!("{header}"),
    };
    base64::engine::general_purpose::STANDARD.encode(digest)
}

#[test]
fn the_test_checksums_give_the_catalogue_check_values() {
    assert_eq!(crc_bitwise(b"123456789", 0xEDB8_8320, 32), 0xCBF4_3926);
    assert_eq!(crc_bitwise(b"123456789", 0x82F6_3B78, 32), 0xE306_9283);
    assert_eq!(crc_bitwise(b"123456789", 0x9A6C_9329_AC4B_C9B5, 64), 0xAE8B_1486_0A79_9888);
    assert_eq!(checksum_value("x-amz-checksum-crc32c", &[b'a'; 66560]), "sOO8/Q==", "the AWS documentation's");
}

/// Flips the first hex digit of a signature.
fn spoil(sig: &str) -> String {
    let first = if sig.starts_with('0') { '1' } else { '0' };
    format!("{first}{}", &sig[1..])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`
    Signed,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`
    SignedTrailer,
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`
    UnsignedTrailer,
}

impl Mode {
    fn content_sha256(self) -> &'static str {
        match self {
            Mode::Signed => "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            Mode::SignedTrailer => "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
            Mode::UnsignedTrailer => "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        }
    }

    fn signed(self) -> bool {
        self != Mode::UnsignedTrailer
    }
}

/// What to get wrong on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Spoil {
    #[default]
    Nothing,
    /// The signature of the last data chunk.
    LastChunkSignature,
    /// The last data byte (after signing).
    LastByte,
    /// The signature of the final, empty chunk.
    FinalChunkSignature,
    /// The trailer signature.
    TrailerSignature,
}

/// Where an upload goes and whose key signs it.
struct Signer<'a> {
    port: u16,
    bucket: &'a str,
    key_id: &'a str,
    secret: &'a str,
    region: &'a str,
}

/// One aws-chunked upload to encode.
#[derive(Debug, Clone)]
struct Upload<'a> {
    mode: Mode,
    data: &'a [u8],
    chunk: usize,
    /// (header name, value) sent as the trailer; `x-amz-trailer` announces
    /// `announce` (defaults to the trailer's name).
    trailer: Option<(String, String)>,
    announce: Option<String>,
    spoil: Spoil,
}

impl<'a> Upload<'a> {
    fn new(mode: Mode, data: &'a [u8]) -> Self {
        Upload { mode, data, chunk: 64 * 1024, trailer: None, announce: None, spoil: Spoil::Nothing }
    }

    fn announced(&self) -> Option<String> {
        self.announce.clone().or_else(|| self.trailer.as_ref().map(|(n, _)| n.clone()))
    }

    /// The aws-chunked body, given the seed signature when signed.
    fn body(&self, chain: Option<&mut Chain>) -> Vec<u8> {
        let mut chain = chain;
        let mut out = Vec::new();
        let pieces: Vec<&[u8]> = self.data.chunks(self.chunk).collect();
        for (i, piece) in pieces.iter().enumerate() {
            let last = i + 1 == pieces.len();
            let mut piece = piece.to_vec();
            out.extend_from_slice(format!("{:x}", piece.len()).as_bytes());
            if let Some(c) = chain.as_deref_mut() {
                let mut sig = c.chunk(&piece);
                if last && self.spoil == Spoil::LastChunkSignature {
                    sig = spoil(&sig);
                }
                out.extend_from_slice(format!(";chunk-signature={sig}").as_bytes());
            }
            if last && self.spoil == Spoil::LastByte {
                *piece.last_mut().unwrap() ^= 1;
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&piece);
            out.extend_from_slice(b"\r\n");
        }
        out.push(b'0');
        if let Some(c) = chain.as_deref_mut() {
            let mut sig = c.chunk(b"");
            if self.spoil == Spoil::FinalChunkSignature {
                sig = spoil(&sig);
            }
            out.extend_from_slice(format!(";chunk-signature={sig}").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        let mut canonical = String::new();
        if let Some((name, value)) = &self.trailer {
            canonical = format!("{name}:{value}\n");
            out.extend_from_slice(format!("{name}:{value}\r\n").as_bytes());
        }
        if self.mode == Mode::SignedTrailer {
            let c = chain.expect("signed");
            let mut sig = c.trailer(&canonical);
            if self.spoil == Spoil::TrailerSignature {
                sig = spoil(&sig);
            }
            out.extend_from_slice(format!("x-amz-trailer-signature:{sig}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    /// The whole request (head and body) for the gateway on `port`:
    /// signed with the client key; the body sent with a Content-Length, or
    /// with HTTP chunked transfer encoding (as botocore does).
    fn request(&self, port: u16, key: &str, query: &[(String, String)], http_chunked: bool) -> (String, Vec<u8>) {
        let to = Signer { port, bucket: "app", key_id: CLIENT_KEY, secret: CLIENT_SECRET, region: "us-east-1" };
        self.request_to(&to, key, query, http_chunked)
    }

    fn request_to(&self, to: &Signer, key: &str, query: &[(String, String)], http_chunked: bool) -> (String, Vec<u8>) {
        let host = format!("127.0.0.1:{}", to.port);
        let path = format!("/{}/{key}", to.bucket);
        let date = AmzDate::now();
        let mut headers = vec![
            ("host".to_string(), host.clone()),
            ("x-amz-content-sha256".to_string(), self.mode.content_sha256().to_string()),
            ("x-amz-date".to_string(), date.datetime.clone()),
            ("content-encoding".to_string(), "aws-chunked".to_string()),
            ("x-amz-decoded-content-length".to_string(), self.data.len().to_string()),
        ];
        if let Some(t) = self.announced() {
            headers.push(("x-amz-trailer".to_string(), t));
        }
        let req = CanonicalRequest {
            method: "PUT",
            encoded_path: &path,
            query,
            headers: &headers,
            payload_hash: self.mode.content_sha256(),
        };
        let auth = sigv4::authorization(to.key_id, to.secret, to.region, &date, &req);
        let seed = auth.rsplit_once("Signature=").unwrap().1.to_string();
        let mut chain = Chain::new(to.secret, &date.datetime, to.region, &seed);
        let body = self.body(self.mode.signed().then_some(&mut chain));
        let mut head = format!("PUT {path}{} HTTP/1.1\r\n", wire_query(query));
        for (k, v) in &headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!("authorization: {auth}\r\nconnection: close\r\n"));
        if !http_chunked {
            head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
            return (head, body);
        }
        head.push_str("transfer-encoding: chunked\r\n\r\n");
        let mut wire = Vec::new();
        for piece in body.chunks(10_000) {
            wire.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            wire.extend_from_slice(piece);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        (head, wire)
    }
}

/// The AWS documentation's examples ("Signature Calculations for the
/// Authorization Header: Transferring Payload in Multiple Chunks" and
/// "Signature calculations for trailing headers"): 66560 bytes of 'a' in
/// chunks of 65536 and 1024, secret `wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY`,
/// 20130524T000000Z, us-east-1.
#[test]
fn the_test_encoder_reproduces_the_aws_documentation_examples() {
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let data = vec![b'a'; 66560];
    let date = AmzDate { datetime: "20130524T000000Z".into(), date: "20130524".into() };
    let seed = |payload: &str, trailer: bool| {
        let mut headers = vec![
            ("host".to_string(), "s3.amazonaws.com".to_string()),
            ("x-amz-date".to_string(), date.datetime.clone()),
            ("x-amz-storage-class".to_string(), "REDUCED_REDUNDANCY".to_string()),
            ("x-amz-content-sha256".to_string(), payload.to_string()),
            ("content-encoding".to_string(), "aws-chunked".to_string()),
            ("x-amz-decoded-content-length".to_string(), "66560".to_string()),
        ];
        if trailer {
            headers.push(("x-amz-trailer".to_string(), "x-amz-checksum-crc32c".to_string()));
        } else {
            headers.push(("content-length".to_string(), "66824".to_string()));
        }
        let req = CanonicalRequest {
            method: "PUT",
            encoded_path: "/examplebucket/chunkObject.txt",
            query: sigv4::NO_QUERY,
            headers: &headers,
            payload_hash: payload,
        };
        let (canonical, _) = req.render();
        sigv4::signature(SECRET, &date, "us-east-1", "s3", &canonical)
    };

    let s = seed("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", false);
    assert_eq!(s, "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9");
    let body = Upload { chunk: 65536, ..Upload::new(Mode::Signed, &data) }.body(Some(&mut Chain::new(
        SECRET,
        &date.datetime,
        "us-east-1",
        &s,
    )));
    assert_eq!(body.len(), 66824, "the documented Content-Length");
    for sig in [
        "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
        "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
        "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
    ] {
        assert!(body.windows(64).any(|w| w == sig.as_bytes()), "{sig}");
    }

    let s = seed("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", true);
    assert_eq!(s, "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e");
    let mut chain = Chain::new(SECRET, &date.datetime, "us-east-1", &s);
    assert_eq!(chain.chunk(&data[..65536]), "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2");
    assert_eq!(chain.chunk(&data[65536..]), "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7");
    assert_eq!(chain.chunk(b""), "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992");
    assert_eq!(
        chain.trailer("x-amz-checksum-crc32c:sOO8/Q==\n"),
        "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"
    );
}

// ---------------------------------------------------------------------------
// Garage behind the gateway.

/// `?k=v&..` as sent on the wire (empty without a query).
fn wire_query(query: &[(String, String)]) -> String {
    let pairs: Vec<String> =
        query.iter().map(|(k, v)| format!("{}={}", sigv4::uri_encode(k, false), sigv4::uri_encode(v, false))).collect();
    if pairs.is_empty() { String::new() } else { format!("?{}", pairs.join("&")) }
}

fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

impl GatewayLab {
    async fn put(&self, up: &Upload<'_>, key: &str, http_chunked: bool) -> Answer {
        self.put_at(up, key, &[], http_chunked).await
    }

    /// An aws-chunked PUT with a query (UploadPart).
    async fn put_at(&self, up: &Upload<'_>, key: &str, query: &[(String, String)], http_chunked: bool) -> Answer {
        let (head, body) = up.request(self.gw.port, key, query, http_chunked);
        common::send(self.gw.port, &head, &body).await
    }

    /// A request through the gateway with a plain body, its SHA-256 signed.
    async fn call(
        &self,
        method: &str,
        key: &str,
        query: &[(String, String)],
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> Answer {
        let port = self.gw.port;
        let host = format!("127.0.0.1:{port}");
        let path = format!("/app/{key}");
        let date = AmzDate::now();
        let hash = sha256_hex(body);
        let mut headers = vec![
            ("host".to_string(), host.clone()),
            ("x-amz-content-sha256".to_string(), hash.clone()),
            ("x-amz-date".to_string(), date.datetime.clone()),
        ];
        headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let req = CanonicalRequest { method, encoded_path: &path, query, headers: &headers, payload_hash: &hash };
        let auth = sigv4::authorization(CLIENT_KEY, CLIENT_SECRET, "us-east-1", &date, &req);
        let mut head = format!("{method} {path}{} HTTP/1.1\r\n", wire_query(query));
        for (k, v) in &headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!("authorization: {auth}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len()));
        common::send(port, &head, body).await
    }

    /// A GET through the gateway: (status, body).
    async fn get(&self, key: &str) -> (u16, Vec<u8>) {
        let a = self.call("GET", key, &[], &[], b"").await;
        (a.status, a.body)
    }
}

/// The checksum `client`'s backend returns for `key` with
/// `x-amz-checksum-mode: ENABLED`: (HeadObject's, GetObject's).
async fn stored_checksum(client: &S3Client, key: &str, header: &str) -> (Option<String>, Option<String>) {
    let head = Req::new(Method::HEAD, Some(client.bucket()), Some(key)).header("x-amz-checksum-mode", "ENABLED");
    let head = client.send("HeadObject", head).await.unwrap_or_else(|e| panic!("HEAD {key}: {e}"));
    let get = client.get_object(key, &[("x-amz-checksum-mode", "ENABLED".into())]).await.unwrap();
    (head.header(header).map(str::to_string), get.header(header).map(str::to_string))
}

/// Asserts that Garage returns `value` as the checksum of `key`, on HEAD and GET.
async fn assert_stored_checksum(client: &S3Client, key: &str, header: &str, value: &str, what: &str) {
    let want = Some(value.to_string());
    assert_eq!(stored_checksum(client, key, header).await, (want.clone(), want), "{what}: the checksum Garage returns");
}

/// 3 × 64 KiB and a remainder; and one short chunk.
fn bodies() -> [Vec<u8>; 2] {
    let multi: Vec<u8> = (0..3 * 65536 + 1000u32).map(|i| (i % 251) as u8).collect();
    [multi, b"one small chunk".to_vec()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_uploads_with_a_bad_last_chunk_are_refused_and_never_stored() {
    let lab = lab().await;
    for data in bodies() {
        let ok = Upload::new(Mode::Signed, &data);
        let a = lab.put(&ok, "signed-ok", false).await;
        assert_eq!(a.status, 200, "{a:?}");
        assert_eq!(lab.stored("signed-ok").await.as_deref(), Some(&data[..]));

        for spoil in [Spoil::LastChunkSignature, Spoil::LastByte, Spoil::FinalChunkSignature] {
            for (i, http_chunked) in [false, true].into_iter().enumerate() {
                let key = format!("signed-{spoil:?}-{i}-{}", data.len());
                let up = Upload { spoil, ..ok.clone() };
                let a = lab.put(&up, &key, http_chunked).await;
                assert_eq!(
                    (a.status, a.code().as_deref()),
                    (403, Some("SignatureDoesNotMatch")),
                    "{spoil:?} (HTTP chunked: {http_chunked}): {a:?}"
                );
                assert_eq!(lab.stored(&key).await, None, "{spoil:?}: stored on Garage");
            }
        }
    }
}

/// Asserts an answer's status and S3 error code.
fn refused(a: &Answer, status: u16, code: &str, what: &str) {
    assert_eq!((a.status, a.code().as_deref()), (status, Some(code)), "{what}: {a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailing_checksums_of_every_algorithm_are_verified_before_anything_is_stored() {
    let lab = lab().await;
    for (n, data) in bodies().iter().enumerate() {
        for (i, header) in ALGORITHMS.into_iter().enumerate() {
            let key = format!("unsigned-{n}-{header}");
            let what = format!("{header}, {} bytes", data.len());
            let right = Upload {
                trailer: Some((header.to_string(), checksum_value(header, data))),
                ..Upload::new(Mode::UnsignedTrailer, data)
            };
            let a = lab.put(&right, &key, i % 2 == 0).await;
            assert_eq!(a.status, 200, "{what}: {a:?}");
            assert_eq!(lab.stored(&key).await.as_deref(), Some(&data[..]), "{what}");
            assert_eq!(lab.get(&key).await, (200, data.clone()), "{what}: read back through the gateway");
            // Verified by the gateway and forwarded: Garage stores it.
            let value = checksum_value(header, data);
            assert_stored_checksum(&lab.direct, &key, header, &value, &what).await;

            // A wrong checksum: nothing stored, and the existing object keeps its content.
            let mut other = data.clone();
            other[data.len() / 2] ^= 0x55;
            let wrong = Upload { data: &other, ..right.clone() };
            for k in [format!("{key}-new"), key.clone()] {
                let a = lab.put(&wrong, &k, i % 2 == 1).await;
                refused(&a, 400, "BadDigest", &what);
                assert!(String::from_utf8_lossy(&a.body).contains(header), "{what}: the message names the checksum");
            }
            assert_eq!(lab.stored(&format!("{key}-new")).await, None, "{what}: stored on Garage");
            assert_eq!(lab.stored(&key).await.as_deref(), Some(&data[..]), "{what}: the old content changed");
            assert_stored_checksum(&lab.direct, &key, header, &value, &what).await;
        }

        // The announced trailer is missing, or another one comes.
        let crc = || Some(("x-amz-checksum-crc32".to_string(), checksum_value("x-amz-checksum-crc32", data)));
        let missing =
            Upload { announce: Some("x-amz-checksum-crc32".into()), ..Upload::new(Mode::UnsignedTrailer, data) };
        let swapped = Upload { announce: Some("x-amz-checksum-sha256".into()), trailer: crc(), ..missing.clone() };
        let unannounced = Upload { announce: Some(String::new()), trailer: crc(), ..missing.clone() };
        for (what, up) in [("missing", missing), ("swapped", swapped), ("unannounced", unannounced)] {
            let key = format!("malformed-{n}-{what}");
            refused(&lab.put(&up, &key, false).await, 400, "MalformedTrailerError", what);
            assert_eq!(lab.stored(&key).await, None, "{what}: stored on Garage");
        }
        let md5 = Upload { announce: Some("x-amz-checksum-md5".into()), ..Upload::new(Mode::UnsignedTrailer, data) };
        refused(&lab.put(&md5, "md5", false).await, 400, "InvalidRequest", "an unsupported trailer");
        assert_eq!(lab.stored("md5").await, None);
    }

    // An empty object, with its checksum.
    let empty = Upload {
        trailer: Some(("x-amz-checksum-sha256".into(), checksum_value("x-amz-checksum-sha256", b""))),
        ..Upload::new(Mode::UnsignedTrailer, b"")
    };
    assert_eq!(lab.put(&empty, "empty", false).await.status, 200);
    assert_eq!(lab.stored("empty").await.as_deref(), Some(&b""[..]));
    let value = checksum_value("x-amz-checksum-sha256", b"");
    assert_stored_checksum(&lab.direct, "empty", "x-amz-checksum-sha256", &value, "empty").await;
    let bad = Upload {
        trailer: Some(("x-amz-checksum-sha256".into(), checksum_value("x-amz-checksum-sha256", b"x"))),
        ..empty
    };
    refused(&lab.put(&bad, "empty-bad", false).await, 400, "BadDigest", "an empty body");
    assert_eq!(lab.stored("empty-bad").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_trailers_are_verified_before_anything_is_stored() {
    let lab = lab().await;
    for (n, data) in bodies().iter().enumerate() {
        let header = ALGORITHMS[n % ALGORITHMS.len() + 1];
        let ok = Upload {
            trailer: Some((header.to_string(), checksum_value(header, data))),
            ..Upload::new(Mode::SignedTrailer, data)
        };
        let key = format!("signed-trailer-{n}");
        let a = lab.put(&ok, &key, n == 0).await;
        assert_eq!(a.status, 200, "{a:?}");
        assert_eq!(lab.stored(&key).await.as_deref(), Some(&data[..]));
        assert_eq!(lab.get(&key).await, (200, data.clone()));
        assert_stored_checksum(&lab.direct, &key, header, &checksum_value(header, data), header).await;

        let wrong_sum = Upload { trailer: Some((header.to_string(), checksum_value(header, b"other"))), ..ok.clone() };
        for (what, up, status, code) in [
            (
                "trailer signature",
                Upload { spoil: Spoil::TrailerSignature, ..ok.clone() },
                403,
                "SignatureDoesNotMatch",
            ),
            ("last chunk", Upload { spoil: Spoil::LastChunkSignature, ..ok.clone() }, 403, "SignatureDoesNotMatch"),
            ("final chunk", Upload { spoil: Spoil::FinalChunkSignature, ..ok.clone() }, 403, "SignatureDoesNotMatch"),
            ("checksum", wrong_sum, 400, "BadDigest"),
        ] {
            let k = format!("{key}-{}", what.replace(' ', "-"));
            refused(&lab.put(&up, &k, n == 1).await, status, code, what);
            assert_eq!(lab.stored(&k).await, None, "{what}: stored on Garage");
        }
        // Over an existing object: unchanged.
        let bad = Upload { spoil: Spoil::TrailerSignature, data: b"replacement", ..ok.clone() };
        refused(&lab.put(&bad, &key, false).await, 403, "SignatureDoesNotMatch", "overwrite");
        assert_eq!(lab.stored(&key).await.as_deref(), Some(&data[..]));
    }

    // An empty signed upload whose final chunk signature is wrong.
    let empty = Upload::new(Mode::Signed, b"");
    assert_eq!(lab.put(&empty, "empty-signed", false).await.status, 200);
    let bad = Upload { spoil: Spoil::FinalChunkSignature, ..empty };
    refused(&lab.put(&bad, "empty-signed-bad", false).await, 403, "SignatureDoesNotMatch", "empty");
    assert_eq!(lab.stored("empty-signed-bad").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_sends_trailing_checksums_over_plain_http_through_the_gateway() {
    let lab = lab().await;
    let stdout = common::boto3(lab.gw.port, &[&common::script("boto3_trailers.py")]).await;
    let report = stdout.lines().last().unwrap_or_default().to_string();
    eprintln!("boto3: {report}");
    assert!(report.contains(r#""bad": ["BadDigest", 400]"#), "{report}");
    assert_eq!(lab.stored("boto3-bad").await, None, "a wrong trailing checksum was stored");
    for key in ["boto3-CRC32", "boto3-SHA1", "boto3-SHA256"] {
        assert!(report.contains(key), "{report}");
        assert_eq!(lab.stored(key).await.map(|b| b.len()), Some(2 * 1024 * 1024 + 1000), "{key} on Garage");
    }
}

/// 2.5 MiB: more than two of the chunks the gateway re-frames into.
fn big() -> Vec<u8> {
    (0..5 * 512 * 1024 + 77u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garage_stores_the_forwarded_checksum_of_every_algorithm_from_both_trailer_forms() {
    let lab = lab().await;
    let [multi, small] = bodies();
    let datas = [big(), multi, small, Vec::new()];
    for mode in [Mode::UnsignedTrailer, Mode::SignedTrailer] {
        for header in ALGORITHMS {
            for (n, data) in datas.iter().enumerate() {
                let key = format!("stored-{mode:?}-{header}-{n}");
                let what = format!("{mode:?}, {header}, {} bytes", data.len());
                let value = checksum_value(header, data);
                let up = Upload { trailer: Some((header.to_string(), value.clone())), ..Upload::new(mode, data) };
                let a = lab.put(&up, &key, n % 2 == 1).await;
                assert_eq!(a.status, 200, "{what}: {a:?}");
                assert!(lab.stored(&key).await.as_deref() == Some(&data[..]), "{what}: the content on Garage");
                assert_stored_checksum(&lab.direct, &key, header, &value, &what).await;
            }
        }
    }
}

fn upload_id(a: &Answer) -> String {
    let text = String::from_utf8_lossy(&a.body);
    let i = text.find("<UploadId>").unwrap_or_else(|| panic!("no upload id: {a:?}")) + 10;
    let j = text[i..].find("</UploadId>").unwrap() + i;
    text[i..j].to_string()
}

fn b64_decode(v: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(v).unwrap()
}

/// A multipart upload created with `x-amz-checksum-algorithm` (what boto3
/// and the AWS CLI do over HTTPS): Garage refuses a part that comes without
/// its checksum, so the parts' trailers must reach it. One part in each
/// trailer form; a part with a wrong checksum is refused and not kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_uploads_with_checksums_complete_through_the_gateway() {
    let lab = lab().await;
    let p1 = big();
    let p2 = b"the second and last part".repeat(100);
    let mut whole = p1.clone();
    whole.extend_from_slice(&p2);
    for (i, header) in ALGORITHMS.into_iter().enumerate() {
        let alg = header.trim_start_matches("x-amz-checksum-").to_ascii_uppercase();
        let key = format!("mpu-{alg}");
        let created =
            lab.call("POST", &key, &query(&[("uploads", "")]), &[("x-amz-checksum-algorithm", &alg)], b"").await;
        assert_eq!(created.status, 200, "{alg}: {created:?}");
        let id = upload_id(&created);
        let part = |n: &str| query(&[("partNumber", n), ("uploadId", &id)]);
        let mut etags = Vec::new();
        for (n, (mode, data)) in [(Mode::UnsignedTrailer, &p1), (Mode::SignedTrailer, &p2)].into_iter().enumerate() {
            let up =
                Upload { trailer: Some((header.to_string(), checksum_value(header, data))), ..Upload::new(mode, data) };
            let a = lab.put_at(&up, &key, &part(&(n + 1).to_string()), (i + n) % 2 == 0).await;
            assert_eq!(a.status, 200, "{alg}, part {}: {a:?}", n + 1);
            etags.push(a.header("etag").expect("an ETag").to_string());
        }
        // A part whose checksum does not match: refused by the gateway, not kept.
        let wrong = Upload {
            trailer: Some((header.to_string(), checksum_value(header, b"other"))),
            ..Upload::new(Mode::UnsignedTrailer, &p2)
        };
        refused(&lab.put_at(&wrong, &key, &part("3"), false).await, 400, "BadDigest", &alg);
        let listed = lab.call("GET", &key, &query(&[("uploadId", &id)]), &[], b"").await;
        let listed_text = String::from_utf8_lossy(&listed.body).into_owned();
        assert_eq!(listed.status, 200, "{alg}: {listed:?}");
        assert_eq!(listed_text.matches("<PartNumber>").count(), 2, "{alg}: {listed_text}");
        assert!(!listed_text.contains("<PartNumber>3</PartNumber>"), "{alg}: {listed_text}");

        let mut xml = String::from("<CompleteMultipartUpload>");
        for (n, (etag, data)) in etags.iter().zip([&p1, &p2]).enumerate() {
            let sum = checksum_value(header, data);
            xml.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{etag}</ETag><Checksum{alg}>{sum}</Checksum{alg}></Part>",
                n + 1
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let done = lab.call("POST", &key, &query(&[("uploadId", &id)]), &[], xml.as_bytes()).await;
        assert!(done.status == 200 && done.code().is_none(), "{alg}: {done:?}");
        assert!(lab.stored(&key).await.as_deref() == Some(&whole[..]), "{alg}: the completed object on Garage");
        // Garage's default for the algorithm: a full-object CRC64NVME, a
        // composite checksum (of the parts' checksums) for the others.
        let want = if alg == "CRC64NVME" {
            checksum_value(header, &whole)
        } else {
            let parts: Vec<u8> = [&p1, &p2].iter().flat_map(|d| b64_decode(&checksum_value(header, d))).collect();
            format!("{}-2", checksum_value(header, &parts))
        };
        assert_stored_checksum(&lab.direct, &key, header, &want, &alg).await;
    }
}

/// Dual-write tees the re-framed body: both backends (two buckets of one
/// Garage node) get the trailer and store the checksum; a failing body
/// reaches neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_write_forwards_the_trailer_to_both_backends() {
    let (lab, copy) = common::dual_lab("all").await;
    let data = big();
    for (i, header) in ALGORITHMS.into_iter().enumerate() {
        let mode = if i % 2 == 0 { Mode::UnsignedTrailer } else { Mode::SignedTrailer };
        let key = format!("dual-{header}");
        let value = checksum_value(header, &data);
        let up = Upload { trailer: Some((header.to_string(), value.clone())), ..Upload::new(mode, &data) };
        let a = lab.put(&up, &key, i % 2 == 1).await;
        assert_eq!(a.status, 200, "{header}: {a:?}");
        for (side, client) in [("primary", &lab.direct), ("secondary", &copy)] {
            let what = format!("{header} on the {side}");
            let stored = client.get_object(&key, &[]).await.unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(stored.body[..] == data[..], "{what}: content");
            assert_stored_checksum(client, &key, header, &value, &what).await;
        }
        let bad = Upload { trailer: Some((header.to_string(), checksum_value(header, b"x"))), ..up.clone() };
        let k = format!("{key}-bad");
        refused(&lab.put(&bad, &k, false).await, 400, "BadDigest", header);
        for (side, client) in [("primary", &lab.direct), ("secondary", &copy)] {
            let e = client.get_object(&k, &[]).await.expect_err("stored");
            assert_eq!(e.status(), Some(404), "{header} on the {side}: {e}");
        }
    }
}

/// What the backend does with the trailer it is now given: Garage checks
/// it too. Sent straight to Garage (not through the gateway, which would
/// refuse them first), in the form the gateway forwards: a wrong checksum
/// is refused and not stored, a right one is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garage_itself_verifies_an_unsigned_trailer() {
    let lab = lab().await;
    let g = &lab.garage;
    let to = Signer { port: g.s3_port, bucket: &g.bucket, key_id: &g.key_id, secret: &g.secret, region: "garage" };
    let data = big();
    for header in ALGORITHMS {
        let right = Upload {
            chunk: 1 << 20,
            trailer: Some((header.to_string(), checksum_value(header, &data))),
            ..Upload::new(Mode::UnsignedTrailer, &data)
        };
        let wrong = Upload { trailer: Some((header.to_string(), checksum_value(header, b"x"))), ..right.clone() };
        let key = format!("garage-direct-{header}");
        let (head, body) = wrong.request_to(&to, &key, &[], false);
        let a = common::send(g.s3_port, &head, &body).await;
        refused(&a, 400, "InvalidDigest", &format!("{header}: a wrong trailing checksum sent to Garage"));
        assert_eq!(lab.stored(&key).await, None, "{header}");
        let (head, body) = right.request_to(&to, &key, &[], false);
        let a = common::send(g.s3_port, &head, &body).await;
        assert_eq!(a.status, 200, "{header}: {a:?}");
        assert_stored_checksum(&lab.direct, &key, header, &checksum_value(header, &data), header).await;
    }
}
