use super::*;

fn head(text: &str) -> Parsed {
    client_head(text.as_bytes(), 1000, &mut HeaderMap::new())
}

fn taken(text: &str) -> ClientHead {
    taken_with_headers(text).0
}

fn taken_with_headers(text: &str) -> (ClientHead, HeaderMap) {
    let mut headers = HeaderMap::new();
    match client_head(text.as_bytes(), 1000, &mut headers) {
        Parsed::Head(h) => (h, headers),
        other => panic!("not taken: {other:?} for {text:?}"),
    }
}

fn to_hyper(text: &str) {
    assert!(matches!(head(text), Parsed::Hyper), "{text:?} should go to hyper: {:?}", head(text));
}

#[test]
fn a_header_map_kept_from_the_previous_request_holds_only_the_new_heads_fields() {
    // The fast path keeps one map per connection: a field of the last
    // request must not reach the next one (a signed header, a copy source).
    let mut headers = HeaderMap::new();
    let first = "PUT /app/a HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\nX-Amz-Meta-A: 1\r\nX-Amz-Meta-A: 2\r\n\r\n";
    assert!(matches!(client_head(first.as_bytes(), 1000, &mut headers), Parsed::Head(_)));
    assert_eq!(headers.get_all("x-amz-meta-a").iter().count(), 2);
    let second = "DELETE /app/b HTTP/1.1\r\nHost: other\r\n\r\n";
    assert!(matches!(client_head(second.as_bytes(), 1000, &mut headers), Parsed::Head(_)));
    assert_eq!(headers.len(), 1, "{headers:?}");
    assert_eq!(headers.get("host").unwrap(), "other");
    // A head for hyper leaves nothing the fast path reads.
    assert!(matches!(client_head(b"GET /app/c HTTP/1.1\r\nHost: gw\r\n\r\n", 1000, &mut headers), Parsed::Hyper));
}

#[test]
fn a_target_the_fast_path_takes_is_one_http_uri_takes_and_splits_alike() {
    // Every byte in a path and in a query: taken only if `http::Uri` (what
    // hyper parses a target with) takes it too, and split at the same `?`.
    for b in 0..=255u8 {
        for target in [[b"/app/k".as_slice(), &[b], b"x"].concat(), [b"/app/k?a=".as_slice(), &[b], b"&c"].concat()] {
            let mut text = b"PUT ".to_vec();
            text.extend_from_slice(&target);
            text.extend_from_slice(b" HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\n\r\n");
            if let Parsed::Head(h) = client_head(&text, 1000, &mut HeaderMap::new()) {
                let uri = http::Uri::try_from(target.as_slice()).unwrap_or_else(|e| panic!("{target:?}: {e}"));
                assert_eq!(h.path_and_query(&text), (uri.path(), uri.query().unwrap_or("")), "{target:?}");
            }
        }
    }
    let taken = |t: &str| taken(&format!("PUT {t} HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\n\r\n"));
    let text = "PUT /app/a%20b/c?x=1&y&z=%2F HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(taken_with_headers(text).0.path_and_query(text.as_bytes()), ("/app/a%20b/c", "x=1&y&z=%2F"));
    taken("/app/k?");
    for t in ["/app/k#frag", "/app/k?x={", "/app/\u{e9}", "/app/k?x=\"y\"", "/app/k|l", "/app/[k]"] {
        to_hyper(&format!("PUT {t} HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\n\r\n"));
    }
}

#[test]
fn a_target_is_taken_with_exactly_rfc_3986s_characters_wherever_a_byte_is() {
    // The check runs 32 bytes at a time, then on the rest: each byte at
    // every place of a 70-byte target.
    let rfc = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b);
    for b in 0..=255u8 {
        for at in 0..70 {
            let mut t = vec![b'a'; 70];
            t[at] = b;
            assert_eq!(target_taken(&t), rfc(b), "byte {b:#04x} at {at}");
        }
    }
    assert!(target_taken(b""));
}

#[test]
fn a_plain_put_is_taken_with_its_length_and_head_size() {
    let text = "PUT /app/k?x=1 HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\nX-Amz-Meta-A: b\r\n\r\nhello";
    let (h, headers) = taken_with_headers(text);
    assert_eq!(h.method, Method::PUT);
    assert_eq!(h.path_and_query(text.as_bytes()), ("/app/k", "x=1"));
    assert_eq!(h.len, 5);
    assert_eq!(h.head_len, text.len() - 5);
    assert!(!h.close);
    assert_eq!(headers.get("x-amz-meta-a").unwrap(), "b");
    let h = taken("DELETE /app/k HTTP/1.1\r\nHost: gw\r\nConnection: Keep-Alive, close\r\n\r\n");
    assert_eq!(h.len, 0);
    assert!(h.close);
    taken("HEAD /app/k HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\n\r\n");
    let h = taken("PUT /app/k HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\nExpect: 100-Continue\r\n\r\n");
    assert!(h.expect);
}

#[test]
fn a_head_not_yet_whole_is_partial() {
    assert!(matches!(head("PUT /app/k HTTP/1.1\r\nHost: gw\r\nContent-Le"), Parsed::Partial));
    assert!(matches!(head("PU"), Parsed::Partial));
}

#[test]
fn anything_unusual_goes_to_hyper() {
    for text in [
        // Other methods and versions, the gateway's own endpoints, an absolute form.
        "GET /app/k HTTP/1.1\r\nHost: gw\r\n\r\n",
        "POST /app/k?uploads HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\n\r\n",
        "PUT /app/k HTTP/1.0\r\nHost: gw\r\nContent-Length: 1\r\n\r\nx",
        "PUT /-/health HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\n\r\n",
        "PUT http://gw/app/k HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\n\r\n",
        // Framing the fast path does not read itself: no length, chunked,
        // two lengths, a length that is not plain digits or too big.
        "PUT /app/k HTTP/1.1\r\nHost: gw\r\n\r\n",
        "PUT /app/k HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n",
        "PUT /app/k HTTP/1.1\r\nHost: gw\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "PUT /app/k HTTP/1.1\r\nHost: gw\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
        "PUT /app/k HTTP/1.1\r\nHost: gw\r\nContent-Length: 1, 1\r\n\r\n",
        "PUT /app/k HTTP/1.1\r\nHost: gw\r\nContent-Length: +1\r\n\r\n",
        "PUT /app/k HTTP/1.1\r\nHost: gw\r\nContent-Length: 1001\r\n\r\n",
        "PUT /app/k HTTP/1.1\r\nHost: gw\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        "DELETE /app/k HTTP/1.1\r\nHost: gw\r\nContent-Length: 3\r\n\r\nabc",
        // Other expectations, twice, or not on a PUT; Upgrade, other
        // Connection tokens, streamed uploads.
        "PUT /app/k HTTP/1.1\r\nHost: gw\r\nContent-Length: 1\r\nExpect: 200-ok\r\n\r\n",
        "PUT /app/k HTTP/1.1\r\nHost: gw\r\nContent-Length: 1\r\nExpect: 100-continue\r\nExpect: 100-continue\r\n\r\n",
        "DELETE /app/k HTTP/1.1\r\nHost: gw\r\nExpect: 100-continue\r\n\r\n",
        "PUT /app/k HTTP/1.1\r\nHost: gw\r\nContent-Length: 1\r\nUpgrade: h2c\r\n\r\n",
        "PUT /app/k HTTP/1.1\r\nHost: gw\r\nContent-Length: 1\r\nConnection: upgrade\r\n\r\n",
        "PUT /app/k HTTP/1.1\r\nHost: gw\r\nContent-Length: 1\r\nx-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER\r\n\r\n",
        "PUT /app/k HTTP/1.1\r\nHost: gw\r\nContent-Length: 1\r\nContent-Encoding: gzip, AWS-chunked\r\n\r\n",
        // What httparse refuses: hyper answers it as before.
        "PUT /app/k HTTP/1.1\r\nHost : gw\r\nContent-Length: 1\r\n\r\n",
        "PUT /app/k HTTP/1.1\r\nHost: gw\r\n folded\r\nContent-Length: 1\r\n\r\n",
        "PUT /app/k\0 HTTP/1.1\r\n\r\n",
    ] {
        to_hyper(text);
    }
}

#[test]
fn more_header_lines_than_the_fast_path_keeps_go_to_hyper() {
    let mut text = String::from("PUT /app/k HTTP/1.1\r\nContent-Length: 0\r\n");
    for i in 0..MAX_HEADERS {
        text.push_str(&format!("x-amz-meta-{i}: v\r\n"));
    }
    text.push_str("\r\n");
    to_hyper(&text);
}

#[test]
fn an_answer_head_has_status_headers_length_and_date() {
    let mut out = BytesMut::new();
    let mut h = HeaderMap::new();
    h.insert("etag", HeaderValue::from_static("\"abc\""));
    answer_head(&mut out, StatusCode::OK, &h, Some(12));
    let text = std::str::from_utf8(&out).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\netag: \"abc\"\r\ncontent-length: 12\r\ndate: "), "{text}");
    assert!(text.ends_with(" GMT\r\n\r\n"), "{text}");
    // A HEAD's answer keeps the object's length; a backend's date stays.
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("99"));
    h.insert(header::DATE, HeaderValue::from_static("Sat, 05 Dec 2026 01:00:00 GMT"));
    let mut out = BytesMut::new();
    answer_head(&mut out, StatusCode::NOT_FOUND, &h, Some(0));
    let text = std::str::from_utf8(&out).unwrap();
    assert_eq!(text.matches("content-length").count(), 1, "{text}");
    assert_eq!(text.matches("date").count(), 1, "{text}");
    assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
    // A HEAD's answer without a length gets none.
    let mut out = BytesMut::new();
    answer_head(&mut out, StatusCode::OK, &HeaderMap::new(), None);
    assert!(!std::str::from_utf8(&out).unwrap().contains("content-length"));
}

#[test]
fn a_request_head_for_a_backend() {
    let mut out = BytesMut::new();
    let mut w = WireHead { out: &mut out, method: &Method::PUT };
    w.target("/b/k%20x", &[("versionId".to_string(), "1".to_string())]);
    assert!(w.header(&Part::Value(&header::HOST, &HeaderValue::from_static("127.0.0.1:3900"))));
    assert!(w.header(&Part::Number(&header::CONTENT_LENGTH, 4096)));
    // A value that is not one is refused, and nothing of its line written.
    assert!(!w.header(&Part::Text(&header::CONTENT_TYPE, "a\r\nb")));
    w.end();
    assert_eq!(&out[..], b"PUT /b/k%20x?versionId=1 HTTP/1.1\r\nhost: 127.0.0.1:3900\r\ncontent-length: 4096\r\n\r\n");
}

/// The head `sign` gives, as it goes on the wire.
fn on_the_wire(method: &Method, head: &crate::upstream::UpHead) -> Vec<u8> {
    let mut out = format!("{method} {} HTTP/1.1\r\n", head.target).into_bytes();
    for (k, v) in &head.headers {
        out.extend_from_slice(k.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[test]
fn a_head_signed_onto_the_wire_is_byte_for_byte_the_signed_request() {
    use crate::body::{Body, channel, empty, full};
    use crate::checksum::Algorithm;
    use crate::upstream::{UpPayload, UpRequest, Upstream};
    let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_780_000_000);
    let h = |n: &'static str, v: &'static str| (HeaderName::from_static(n), HeaderValue::from_static(v));
    let header_sets = vec![
        vec![],
        vec![h("x-amz-meta-k", "v  1"), h("content-type", "text/plain"), h("cache-control", "no-cache")],
        vec![h("x-amz-meta-k", "z"), h("accept-encoding", "identity"), h("x-amz-meta-k", " a ")],
        vec![h("content-encoding", "gzip"), h("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg==")],
        vec![(HeaderName::from_static("x-amz-meta-u"), HeaderValue::from_bytes("é".as_bytes()).unwrap())],
    ];
    let payloads = [
        UpPayload::Unsigned,
        UpPayload::Sha256(cutover_s3::sigv4::sha256_hex(b"abc")),
        UpPayload::UnsignedTrailer { decoded_len: 11, trailer: Algorithm::Crc64Nvme },
    ];
    let queries = [vec![], vec![("versionId".to_string(), "x/y".to_string()), ("a b".to_string(), String::new())]];
    let bodies: [fn() -> Body; 3] = [empty, || full("abc"), || channel(1, None).1];
    let (mut compared, mut refused) = (0, 0);
    for up in [
        Upstream::for_tests(true, None),
        Upstream::for_tests(false, Some("session/token+=")),
        Upstream::for_tests(true, Some("not\na token")),
    ] {
        for method in [Method::PUT, Method::DELETE, Method::HEAD, Method::GET, Method::POST] {
            for key in [None, Some("a b/c~ü%")] {
                for query in &queries {
                    for headers in &header_sets {
                        for payload in &payloads {
                            for content_length in [None, Some(0), Some(3)] {
                                for body in bodies {
                                    let body = body();
                                    let mut req = UpRequest::new(method.clone(), key);
                                    req.query = query.clone();
                                    req.headers = headers.clone();
                                    req.payload = payload.clone();
                                    req.content_length = content_length;
                                    let signed = up.sign(&req, &body, now);
                                    let mut out = BytesMut::new();
                                    let mut wire = WireHead { out: &mut out, method: &method };
                                    let written = up.sign_into(req.to_sign(&body), now, &mut wire);
                                    wire.end();
                                    match (signed, written) {
                                        (Ok(head), Ok(())) => {
                                            let expected = on_the_wire(&method, &head);
                                            assert!(
                                                out[..] == expected[..],
                                                "{req:?}:\n{}\n!=\n{}",
                                                String::from_utf8_lossy(&out),
                                                String::from_utf8_lossy(&expected)
                                            );
                                            compared += 1;
                                        }
                                        (Err(a), Err(b)) => {
                                            assert_eq!(a.detail, b.detail, "{req:?}");
                                            refused += 1;
                                        }
                                        (a, b) => panic!("{req:?}: signed {:?}, written {:?}", a.map(|_| ()), b),
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    // Both kinds of outcome were met (an unknown length, a bad token).
    assert!(compared > 1000 && refused > 100, "{compared} compared, {refused} refused");
}

fn backend(text: &str, head: bool) -> Result<Option<(usize, BackendHead)>, Malformed> {
    backend_head(text.as_bytes(), head, 100)
}

#[test]
fn a_backend_answer_is_framed_by_its_length_or_chunks() {
    let (skip, h) = backend("HTTP/1.1 200 OK\r\nETag: x\r\nContent-Length: 0\r\n\r\n", false).unwrap().unwrap();
    assert_eq!((skip, h.status, h.framing, h.reusable), (0, StatusCode::OK, Framing::None, true));
    let (_, h) = backend("HTTP/1.1 403 Forbidden\r\nContent-Length: 7\r\n\r\n", false).unwrap().unwrap();
    assert_eq!(h.framing, Framing::Length(7));
    let (_, h) = backend("HTTP/1.1 500 x\r\nTransfer-Encoding: chunked\r\n\r\n", false).unwrap().unwrap();
    assert_eq!((h.framing, h.reusable), (Framing::Chunked, true));
    // A HEAD's answer has no body whatever its length says.
    let (_, h) = backend("HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n", true).unwrap().unwrap();
    assert_eq!(h.framing, Framing::None);
    // Without a length: to the end of the connection, never reused.
    let (_, h) = backend("HTTP/1.1 200 OK\r\n\r\n", false).unwrap().unwrap();
    assert_eq!((h.framing, h.reusable), (Framing::Close, false));
    let (_, h) = backend("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false).unwrap().unwrap();
    assert!(!h.reusable);
    let (_, h) = backend("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false).unwrap().unwrap();
    assert!(!h.reusable);
    // Both headers: chunked frames it, and the connection is not reused.
    let (_, h) =
        backend("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", false).unwrap().unwrap();
    assert_eq!((h.framing, h.reusable), (Framing::Chunked, false));
}

#[test]
fn informational_heads_are_skipped() {
    let text = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    let (skip, h) = backend(text, false).unwrap().unwrap();
    assert_eq!(skip, "HTTP/1.1 100 Continue\r\n\r\n".len());
    assert_eq!(skip + h.head_len, text.len());
    assert!(backend("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 2", false).unwrap().is_none());
}

#[test]
fn a_broken_backend_answer_is_malformed() {
    for text in [
        "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\n\r\n",
        "NOT HTTP\r\n\r\n",
    ] {
        assert!(backend(text, false).is_err(), "{text:?}");
    }
}

#[test]
fn chunked_bodies_decode_whole_or_ask_for_more() {
    let text = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: y\r\n\r\nNEXT";
    let (body, used) = dechunk(text, 100).unwrap().unwrap();
    assert_eq!(&body[..], b"hello world");
    assert_eq!(&text[used..], b"NEXT");
    for cut in 0..text.len() - 4 {
        assert!(dechunk(&text[..cut], 100).unwrap().is_none(), "cut at {cut}");
    }
    assert!(dechunk(b"zz\r\n", 100).is_err());
    assert!(dechunk(b"3\r\nabcX\r\n", 100).is_err());
    assert!(dechunk(b"65\r\n", 100).is_err(), "101 bytes over the limit");
    assert!(dechunk(b"fffffffffffffffff\r\n", 100).is_err());
}

mod hostile {
    //! Whatever a client or a backend sends, the readers never panic, never
    //! claim more bytes than they were given, and never take more than
    //! their limits.
    use proptest::prelude::*;

    use super::*;

    /// A request head the fast path takes, to mutate and cut.
    fn valid() -> Vec<u8> {
        b"PUT /app/k?x=1 HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\nx-amz-date: 20261205T000000Z\r\n\r\nhello"
            .to_vec()
    }

    fn check_client(bytes: &[u8]) {
        if let Parsed::Head(h) = client_head(bytes, 1000, &mut HeaderMap::new()) {
            assert!(h.head_len <= bytes.len());
            assert!(h.len <= 1000);
        }
    }

    fn check_backend(bytes: &[u8], head: bool) {
        if let Ok(Some((skip, h))) = backend_head(bytes, head, 100) {
            assert!(skip + h.head_len <= bytes.len());
            if let Framing::Length(n) = h.framing {
                assert!(n <= 100);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            check_client(&bytes);
            check_backend(&bytes, false);
            check_backend(&bytes, true);
            if let Ok(Some((body, used))) = dechunk(&bytes, 100) {
                prop_assert!(used <= bytes.len());
                prop_assert!(body.len() <= 100);
            }
        }

        #[test]
        fn mutated_and_cut_heads(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6), cut in any::<usize>()) {
            let mut bytes = valid();
            for (at, b) in edits {
                let n = bytes.len();
                bytes[at % n] = b;
            }
            let cut = cut % (bytes.len() + 1);
            check_client(&bytes[..cut]);
            let mut answer = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            answer.extend_from_slice(&bytes);
            check_backend(&answer[..cut.min(answer.len())], false);
        }

        #[test]
        fn chunked_bodies_round_trip_at_any_cut(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 0..6),
            cut in any::<usize>(),
        ) {
            let mut wire = Vec::new();
            for c in &chunks {
                wire.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                wire.extend_from_slice(c);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"0\r\n\r\n");
            let whole: Vec<u8> = chunks.concat();
            let (body, used) = dechunk(&wire, 1000).unwrap().unwrap();
            prop_assert_eq!(&body[..], &whole[..]);
            prop_assert_eq!(used, wire.len());
            let cut = cut % wire.len();
            prop_assert!(dechunk(&wire[..cut], 1000).unwrap().is_none());
        }
    }
}

#[test]
fn a_relayed_answer_drops_hop_by_hop_headers_and_the_backends_own_backend_header() {
    let text = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nETag: \"e\"\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\
                X-Cutover-Backend: spoofed\r\nContent-Length: 3\r\nDate: Sat, 05 Dec 2026 04:00:00 GMT\r\n\r\n";
    let (skip, h) = backend(text, false).unwrap().unwrap();
    assert_eq!(skip, "HTTP/1.1 100 Continue\r\n\r\n".len());
    let mut out = BytesMut::new();
    relayed_head(&mut out, text.as_bytes(), &h, "primary", Some(3));
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        "HTTP/1.1 200 OK\r\netag: \"e\"\r\nx-cutover-backend: primary\r\ncontent-length: 3\r\n\r\n"
            .replace("x-cutover-backend", "date: Sat, 05 Dec 2026 04:00:00 GMT\r\nx-cutover-backend")
    );
    // A HEAD's answer keeps the object's length; a missing date is added.
    let text = "HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n";
    let (_, h) = backend(text, true).unwrap().unwrap();
    let mut out = BytesMut::new();
    relayed_head(&mut out, text.as_bytes(), &h, "secondary", None);
    let out = std::str::from_utf8(&out).unwrap();
    assert!(
        out.starts_with("HTTP/1.1 200 OK\r\ncontent-length: 4096\r\nx-cutover-backend: secondary\r\ndate: "),
        "{out}"
    );
    assert_eq!(out.matches("content-length").count(), 1, "{out}");
}
