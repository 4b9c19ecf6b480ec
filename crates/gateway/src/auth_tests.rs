use std::time::{Duration, UNIX_EPOCH};

use http::{HeaderName, HeaderValue};

use super::*;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn keys() -> ClientKeys {
    ClientKeys::new([("AKIAIOSFODNN7EXAMPLE".to_string(), Secret::new(SECRET))])
}

fn doc_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_369_353_600)
}

fn doc_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("examplebucket.s3.amazonaws.com"));
    h.insert("range", HeaderValue::from_static("bytes=0-9"));
    h.insert("x-amz-content-sha256", HeaderValue::from_static(sigv4::EMPTY_SHA256));
    h.insert("x-amz-date", HeaderValue::from_static("20130524T000000Z"));
    h.insert(
        "authorization",
        HeaderValue::from_static(
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
        ),
    );
    h
}

#[test]
fn accepts_the_documented_get_object_request() {
    let v = verify(&keys(), "GET", "/test.txt", sigv4::NO_QUERY, &doc_headers(), doc_time()).unwrap();
    assert_eq!(v.access_key_id, "AKIAIOSFODNN7EXAMPLE");
    assert!(matches!(v.payload, Payload::Sha256(_)));
}

#[test]
fn refuses_tampering_unknown_keys_anonymity_and_skew() {
    let mut h = doc_headers();
    h.insert("range", HeaderValue::from_static("bytes=0-99"));
    assert_eq!(verify(&keys(), "GET", "/test.txt", sigv4::NO_QUERY, &h, doc_time()).unwrap_err(), AuthError::Mismatch);
    assert_eq!(
        verify(&keys(), "GET", "/other.txt", sigv4::NO_QUERY, &doc_headers(), doc_time()).unwrap_err(),
        AuthError::Mismatch
    );
    let other = ClientKeys::new([("SOMEONE".to_string(), Secret::new(SECRET))]);
    assert_eq!(
        verify(&other, "GET", "/test.txt", sigv4::NO_QUERY, &doc_headers(), doc_time()).unwrap_err(),
        AuthError::UnknownKey
    );
    let mut anon = doc_headers();
    anon.remove("authorization");
    assert_eq!(
        verify(&keys(), "GET", "/test.txt", sigv4::NO_QUERY, &anon, doc_time()).unwrap_err(),
        AuthError::Anonymous
    );
    let late = doc_time() + Duration::from_secs(3600);
    assert_eq!(
        verify(&keys(), "GET", "/test.txt", sigv4::NO_QUERY, &doc_headers(), late).unwrap_err(),
        AuthError::Skewed
    );
}

#[test]
fn accepts_a_presigned_url_until_it_expires() {
    let date = AmzDate::from_system_time(doc_time());
    let q = sigv4::presign_query(
        "GET",
        "examplebucket.s3.amazonaws.com",
        "/test.txt",
        "AKIAIOSFODNN7EXAMPLE",
        SECRET,
        None,
        "us-east-1",
        &date,
        Duration::from_secs(86_400),
    );
    let query = parse_query(&q);
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("examplebucket.s3.amazonaws.com"));
    verify(&keys(), "GET", "/test.txt", &query, &h, doc_time() + Duration::from_secs(60)).unwrap();
    let e = verify(&keys(), "GET", "/test.txt", &query, &h, doc_time() + Duration::from_secs(90_000)).unwrap_err();
    assert_eq!(e, AuthError::Expired);
    assert_eq!(verify(&keys(), "PUT", "/test.txt", &query, &h, doc_time()).unwrap_err(), AuthError::Mismatch);
}

#[test]
fn decodes_queries_as_sigv4_does() {
    assert_eq!(
        parse_query("a=b%2Fc&uploads&x=1+2"),
        [("a".into(), "b/c".into()), ("uploads".into(), String::new()), ("x".into(), "1+2".into())]
    );
    assert_eq!(percent_decode("%E2%9C%93%zz"), "✓%zz");
}

fn presigned_put() -> (Vec<(String, String)>, HeaderMap) {
    let date = AmzDate::from_system_time(doc_time());
    let q = sigv4::presign_query(
        "PUT",
        "examplebucket.s3.amazonaws.com",
        "/app/k",
        "AKIAIOSFODNN7EXAMPLE",
        SECRET,
        None,
        "us-east-1",
        &date,
        Duration::from_secs(3600),
    );
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("examplebucket.s3.amazonaws.com"));
    (parse_query(&q), h)
}

#[test]
fn an_unsigned_x_amz_copy_source_on_a_presigned_put_is_refused() {
    let (query, h) = presigned_put();
    let now = doc_time() + Duration::from_secs(60);
    verify(&keys(), "PUT", "/app/k", &query, &h, now).unwrap();
    for (name, value) in [
        ("x-amz-copy-source", "/app/private/x"),
        ("x-amz-acl", "public-read"),
        ("x-amz-object-lock-mode", "COMPLIANCE"),
        ("x-amz-tagging", "a=b"),
        ("x-amz-meta-k", "v"),
        ("x-amz-security-token", "t"),
        ("x-amz-decoded-content-length", "3"),
    ] {
        let mut h = h.clone();
        h.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
        let e = verify(&keys(), "PUT", "/app/k", &query, &h, now).unwrap_err();
        assert_eq!(e, AuthError::HeadersNotSigned(name.to_string()), "{name}");
        assert_eq!((e.status(), e.code()), (StatusCode::FORBIDDEN, "AccessDenied"));
        assert_eq!(e.to_string(), "There were headers present in the request which were not signed");
    }
    // Covered by the signature otherwise (and never forwarded): accepted.
    let mut h = h.clone();
    h.insert("x-amz-content-sha256", HeaderValue::from_static(UNSIGNED_PAYLOAD));
    h.insert("x-amz-date", HeaderValue::from_static("20130524T000000Z"));
    verify(&keys(), "PUT", "/app/k", &query, &h, now).unwrap();
}

/// A header-signed request over `signed` (name, value) pairs, the headers
/// sent as `sent` (in that order).
fn header_signed(signed: &[(&str, &str)], sent: &[(&str, &str)]) -> HeaderMap {
    let date = AmzDate::from_system_time(doc_time());
    let mut pairs: Vec<(String, String)> = vec![
        ("host".into(), "examplebucket.s3.amazonaws.com".into()),
        ("x-amz-content-sha256".into(), UNSIGNED_PAYLOAD.into()),
        ("x-amz-date".into(), date.datetime.clone()),
    ];
    pairs.extend(signed.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let req = CanonicalRequest {
        method: "PUT",
        encoded_path: "/app/k",
        query: sigv4::NO_QUERY,
        headers: &pairs,
        payload_hash: UNSIGNED_PAYLOAD,
    };
    let auth = sigv4::authorization("AKIAIOSFODNN7EXAMPLE", SECRET, "us-east-1", &date, &req);
    let mut h = HeaderMap::new();
    for (k, v) in &pairs[..3] {
        h.insert(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
    }
    for (k, v) in sent {
        h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
    }
    h.insert("authorization", HeaderValue::from_str(&auth).unwrap());
    h
}

#[test]
fn an_unsigned_x_amz_header_on_a_header_signed_request_is_refused() {
    let acl = [("x-amz-acl", "private")];
    verify(&keys(), "PUT", "/app/k", sigv4::NO_QUERY, &header_signed(&acl, &acl), doc_time()).unwrap();
    let h = header_signed(&[], &[("x-amz-copy-source", "/app/private/x")]);
    let e = verify(&keys(), "PUT", "/app/k", sigv4::NO_QUERY, &h, doc_time()).unwrap_err();
    assert_eq!(e, AuthError::HeadersNotSigned("x-amz-copy-source".into()));
    // Headers other than x-amz-* may stay unsigned, as with S3.
    verify(
        &keys(),
        "PUT",
        "/app/k",
        sigv4::NO_QUERY,
        &header_signed(&[], &[("content-type", "text/plain")]),
        doc_time(),
    )
    .unwrap();
}

#[test]
fn repeated_signed_header_values_are_joined_in_the_order_sent() {
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("h"));
    h.append("x-amz-meta-k", HeaderValue::from_static(" z "));
    h.append("x-amz-meta-k", HeaderValue::from_static("a"));
    h.append("x-amz-meta-k", HeaderValue::from_static("m"));
    assert_eq!(
        signed_header_values(&h, "host;X-Amz-Meta-K").unwrap()[..],
        [(Cow::from("host"), Cow::from("h")), (Cow::from("x-amz-meta-k"), Cow::from("z,a,m"))]
    );
    // The client signs the values in the order it sends them.
    let signed = [("x-amz-meta-k", "z,a")];
    let in_order = header_signed(&signed, &[("x-amz-meta-k", "z"), ("x-amz-meta-k", "a")]);
    verify(&keys(), "PUT", "/app/k", sigv4::NO_QUERY, &in_order, doc_time()).unwrap();
    let reordered = header_signed(&signed, &[("x-amz-meta-k", "a"), ("x-amz-meta-k", "z")]);
    assert_eq!(
        verify(&keys(), "PUT", "/app/k", sigv4::NO_QUERY, &reordered, doc_time()).unwrap_err(),
        AuthError::Mismatch
    );
}

/// What broke: the gateway verified a signature with whatever region its
/// credential scope named, so `gateway.region` meant nothing; a client
/// configured for another region must get S3's clear
/// `AuthorizationHeaderMalformed` ("the region ... is wrong"), not a
/// silent success or a generic signature mismatch.
#[test]
fn a_signature_for_another_region_than_gateway_region_is_authorization_header_malformed() {
    let here = keys().with_region("us-east-1");
    verify(&here, "GET", "/test.txt", sigv4::NO_QUERY, &doc_headers(), doc_time()).unwrap();
    let elsewhere = keys().with_region("eu-central-1");
    let e = verify(&elsewhere, "GET", "/test.txt", sigv4::NO_QUERY, &doc_headers(), doc_time()).unwrap_err();
    assert_eq!((e.status(), e.code()), (StatusCode::BAD_REQUEST, "AuthorizationHeaderMalformed"));
    assert_eq!(
        e.to_string(),
        "malformed authorization: the region 'us-east-1' is wrong; expecting 'eu-central-1' (gateway.region)"
    );
    let date = AmzDate::from_system_time(doc_time());
    let q = sigv4::presign_query(
        "GET",
        "examplebucket.s3.amazonaws.com",
        "/test.txt",
        "AKIAIOSFODNN7EXAMPLE",
        SECRET,
        None,
        "us-east-1",
        &date,
        Duration::from_secs(600),
    );
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("examplebucket.s3.amazonaws.com"));
    let e = verify(&elsewhere, "GET", "/test.txt", &parse_query(&q), &h, doc_time()).unwrap_err();
    assert_eq!(e.code(), "AuthorizationHeaderMalformed", "{e}");
    verify(&here, "GET", "/test.txt", &parse_query(&q), &h, doc_time()).unwrap();
}

/// Found by the sigv4 fuzz target: `u8::from_str_radix` takes a sign, so
/// `%+1` decoded to the byte 1 where a percent-decoder leaves it as it is.
#[test]
fn percent_sign_then_plus_is_not_an_escape() {
    assert_eq!(percent_decode("%+1"), "%+1");
    assert_eq!(percent_decode("a%+1b%-1"), "a%+1b%-1");
    assert_eq!(parse_query("%+1=%+f"), [("%+1".into(), "%+f".into())]);
    assert_eq!(percent_decode("%2B1%41"), "+1A");
}

/// The decoder writes the bytes once: escapes at either end, a cut-off
/// escape, mixed-case hex, and bytes that are not UTF-8 (replaced, as
/// before, never an error).
#[test]
fn percent_decoding_keeps_cut_off_escapes_and_replaces_bytes_that_are_not_utf8() {
    assert_eq!(percent_decode("%2fa%2F"), "/a/");
    assert_eq!(percent_decode("a%4"), "a%4");
    assert_eq!(percent_decode("a%"), "a%");
    assert_eq!(percent_decode("%%41"), "%A");
    assert_eq!(percent_decode("a%FFb"), "a\u{FFFD}b");
    assert_eq!(percent_decode("%C3%A9t%C3%A9"), "été");
}

/// A presigned request whose `x-amz-content-sha256` header carries a hex
/// hash is signed over that hash (as S3 computes it): the body must have it.
#[test]
fn a_presigned_put_that_pins_the_payload_hash_verifies_the_body() {
    let date = AmzDate::from_system_time(doc_time());
    let now = doc_time() + Duration::from_secs(60);
    let hash = sigv4::sha256_hex(b"abc");
    let mut query = vec![
        ("X-Amz-Algorithm".to_string(), "AWS4-HMAC-SHA256".to_string()),
        ("X-Amz-Credential".to_string(), "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request".to_string()),
        ("X-Amz-Date".to_string(), date.datetime.clone()),
        ("X-Amz-Expires".to_string(), "3600".to_string()),
        ("X-Amz-SignedHeaders".to_string(), "host".to_string()),
    ];
    let host = [("host".to_string(), "examplebucket.s3.amazonaws.com".to_string())];
    let sign = |query: &[(String, String)], payload_hash: &str| {
        let req = CanonicalRequest { method: "PUT", encoded_path: "/app/k", query, headers: &host, payload_hash };
        sigv4::signature(SECRET, &date, "us-east-1", "s3", &req.render().0)
    };
    let mut want = [0u8; 32];
    hex::decode_to_slice(&hash, &mut want).unwrap();
    // Pinned by the header.
    let mut q = query.clone();
    q.push(("X-Amz-Signature".to_string(), sign(&query, &hash)));
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("examplebucket.s3.amazonaws.com"));
    let mut pinned = h.clone();
    pinned.insert("x-amz-content-sha256", HeaderValue::from_str(&hash).unwrap());
    assert_eq!(verify(&keys(), "PUT", "/app/k", &q, &pinned, now).unwrap().payload, Payload::Sha256(want));
    // Pinned by a signed query parameter.
    query.push(("X-Amz-Content-Sha256".to_string(), hash.clone()));
    let mut q = query.clone();
    q.push(("X-Amz-Signature".to_string(), sign(&query, UNSIGNED_PAYLOAD)));
    assert_eq!(verify(&keys(), "PUT", "/app/k", &q, &h, now).unwrap().payload, Payload::Sha256(want));
    // Header and query disagreeing, or a value that is no hash: refused.
    let mut other = h.clone();
    other.insert("x-amz-content-sha256", HeaderValue::from_static(sigv4::EMPTY_SHA256));
    let mut q2 = query.clone();
    q2.push(("X-Amz-Signature".to_string(), sign(&query, sigv4::EMPTY_SHA256)));
    assert!(matches!(verify(&keys(), "PUT", "/app/k", &q2, &other, now), Err(AuthError::Malformed(_))));
    let mut q3 = query[..5].to_vec();
    q3.push(("X-Amz-Content-Sha256".to_string(), "STREAMING-AWS4-HMAC-SHA256-PAYLOAD".to_string()));
    let s = sign(&q3, UNSIGNED_PAYLOAD);
    q3.push(("X-Amz-Signature".to_string(), s));
    assert!(matches!(verify(&keys(), "PUT", "/app/k", &q3, &h, now), Err(AuthError::Malformed(_))));
}

#[test]
fn a_date_written_as_formatted_is_taken_as_is_and_any_other_is_written_again() {
    assert!(written_as_formatted("20130524T000000Z"));
    for text in [
        "20130524T000000Z",
        "19700101T000000Z",
        "20261228T235959Z",
        "20240228T120000Z",
        // Written again: days past the 28th, a leap second, signs.
        "20240229T120000Z",
        "20230231T120000Z",
        "20261231T235960Z",
        "2026+231T000000Z",
        "20261205T+00000Z",
    ] {
        let Some(t) = AmzDate::parse(text) else { continue };
        let formatted = AmzDate::from_system_time(t);
        let taken = header_verify_date(text, &formatted.date).unwrap();
        assert_eq!(taken.datetime, formatted.datetime, "{text}");
        assert_eq!(taken.date, formatted.date, "{text}");
        // Taken as is only where formatting gives the same text.
        assert!(!written_as_formatted(text) || formatted.datetime == text, "{text}");
    }
}

/// The query splitter as first written (split, split_once, decode each
/// part): the reference for the one-pass `parse_query`.
fn parse_query_reference(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

#[test]
fn one_pass_query_parsing_matches_the_split_and_decode_reference() {
    let pieces = ["", "a", "=", "&", "%", "%2F", "%e9", "%zz", "b=c", "==", "&&", "é", "+", "%C3%A9"];
    for a in pieces {
        for b in pieces {
            for c in pieces {
                for d in pieces {
                    let q = format!("{a}{b}{c}{d}");
                    assert_eq!(parse_query(&q), parse_query_reference(&q), "{q:?}");
                }
            }
        }
    }
}

/// The fast path's query pairs borrow from the raw query: only a component
/// with an escape is copied (and decoded), and the pairs are the owned ones.
#[test]
fn borrowed_query_pairs_copy_only_the_escaped_components() {
    let raw = "X-Amz-Credential=AK%2F20130524%2Fus-east-1&X-Amz-Expires=86400&uploads&a%20b=c";
    let pairs = parse_query_borrowed(raw);
    let borrowed: Vec<(bool, bool)> =
        pairs.iter().map(|(k, v)| (matches!(k, Cow::Borrowed(_)), matches!(v, Cow::Borrowed(_)))).collect();
    assert_eq!(borrowed, [(true, false), (true, true), (true, true), (false, true)]);
    let owned: Vec<(String, String)> = pairs.into_iter().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    assert_eq!(owned, parse_query(raw));
    assert_eq!(owned[0].1, "AK/20130524/us-east-1");
    assert_eq!(owned[3], ("a b".to_string(), "c".to_string()));
}

/// The decoding as first written (a byte at a time): the reference.
fn percent_decode_reference(s: &str) -> String {
    let nibble = |d: &u8| (*d as char).to_digit(16).map(|v| v as u8);
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(hi), Some(lo)) = (b.get(i + 1).and_then(nibble), b.get(i + 2).and_then(nibble))
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[test]
fn percent_decoding_by_runs_decodes_as_a_byte_at_a_time() {
    let mut rng = fastrand::Rng::with_seed(11);
    let alphabet: Vec<char> = "%%%0123456789abcdefABCDEFgG+/ \u{e9}".chars().collect();
    for _ in 0..20_000 {
        let s: String = (0..rng.usize(0..12)).map(|_| alphabet[rng.usize(..alphabet.len())]).collect();
        assert_eq!(percent_decode(&s), percent_decode_reference(&s), "{s:?}");
    }
}

#[test]
fn a_credential_scope_is_split_into_exactly_five_parts() {
    let ok = parse_credential("AKID/20130524/us-east-1/s3/aws4_request").ok().unwrap();
    assert_eq!((ok.key_id, ok.date, ok.region), ("AKID", "20130524", "us-east-1"));
    let empty = parse_credential("/20130524//s3/aws4_request").ok().unwrap();
    assert_eq!((empty.key_id, empty.region), ("", ""));
    for (bad, parts) in [
        ("AKID/20130524/us-east-1/s3/aws4_request/", 6),
        ("AKID/20130524/us-east-1/s3/aws4_request/x", 6),
        ("AKID/20130524/us-east-1/s3", 4),
        ("AKID/20130524/us-east-1/s3/aws4_requesT", 5),
        ("AKID/20130524/us-east-1/S3/aws4_request", 5),
        ("AKID/20130524/us-east-1/iam/aws4_request", 5),
        ("", 1),
        ("a/b/c/d/e/f/g/h", 8),
    ] {
        match parse_credential(bad) {
            Err(AuthError::Malformed(m)) => assert!(m.ends_with(&format!("got {parts} parts")), "{bad:?}: {m}"),
            other => panic!("{bad:?}: {:?}", other.map(|c| c.key_id)),
        }
    }
}
