//! The gateway's aws-chunked decoder (crates/gateway/src/chunked.rs), the
//! way a client's upload reaches it: any bytes, cut anywhere by the network.
//!
//! Input: `[form] [cuts] [declared: u64 LE] body...`
//! - form bits 0-1: 0 signed chunks, 1 signed chunks and trailer, 2-3
//!   unsigned chunks and trailer; bits 2-4: the announced checksum
//!   (crc32, crc32c, crc64nvme, sha1, sha256; 5-7 none).
//! - cuts: seeds where the body is cut into network reads (0: one read).
//! - declared: `x-amz-decoded-content-length`.
//!
//! Checks, besides "no panic, no hang": the outcome does not depend on how
//! the body is cut; a body that decodes has the declared length; the body
//! forwarded upstream agrees with the decoder, and a body that fails never
//! gives the backend its whole Content-Length.
#![no_main]

use cutover_gateway::fuzzing::{ChunkedForm, decode_aws_chunked, forward_aws_chunked};
use libfuzzer_sys::fuzz_target;

/// The seed signature of the S3 documentation's chunked upload example.
const SEED: &str = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";

fn cut(body: &[u8], seed: u8) -> Vec<&[u8]> {
    if seed == 0 || body.is_empty() {
        return vec![body];
    }
    // A small deterministic generator: up to 8 cuts, some of them 1 byte apart.
    let mut x = u32::from(seed).wrapping_mul(2_654_435_761);
    let mut at: Vec<usize> = (0..(seed % 8 + 1))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as usize % (body.len() + 1)
        })
        .collect();
    at.push(body.len());
    at.sort_unstable();
    let mut pieces = Vec::new();
    let mut from = 0;
    for to in at {
        pieces.push(&body[from..to]);
        from = to;
    }
    pieces
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 10 {
        return;
    }
    let kind = data[0] & 3;
    let checksum = usize::from((data[0] >> 2) & 7);
    let form = ChunkedForm { signed: kind < 2, trailer: kind != 0, checksum: (checksum < 5).then_some(checksum) };
    let declared = u64::from_le_bytes(data[2..10].try_into().unwrap());
    let body = &data[10..];

    let whole = decode_aws_chunked(form, SEED, declared, &[body]);
    if let Ok(out) = &whole {
        assert_eq!(out.len() as u64, declared, "decoded a length other than the declared one");
    }
    let pieces = cut(body, data[1]);
    let split = decode_aws_chunked(form, SEED, declared, &pieces);
    match (&whole, &split) {
        (Ok(a), Ok(b)) => assert!(a == b, "the decoded bytes depend on the network reads"),
        (Err(a), Err(b)) => assert_eq!(a, b, "the refusal depends on the network reads"),
        _ => panic!(
            "whole: {:?}, in {} reads: {:?}",
            whole.as_ref().map(Vec::len),
            pieces.len(),
            split.as_ref().map(Vec::len)
        ),
    }

    // client_body refuses a declared length beyond S3's largest object first.
    let Ok(fwd) = forward_aws_chunked(form, SEED, declared, &pieces) else { return };
    match (&whole, fwd.refused) {
        (Ok(out), None) => {
            assert_eq!(fwd.bytes.len() as u64, fwd.len, "forwarded a length other than the upstream Content-Length");
            if checksum >= 5 || (kind == 0) {
                assert!(fwd.bytes == *out, "forwarded bytes other than the decoded ones");
            }
        }
        (Err(a), Some(b)) => {
            assert_eq!(*a, b, "the forwarded body fails otherwise than the decoder");
            // An empty upload (Content-Length 0) is read whole by server.rs
            // before it goes upstream; every other failing body must stay
            // short of its Content-Length so that the backend commits nothing.
            assert!(fwd.len == 0 || (fwd.bytes.len() as u64) < fwd.len, "a failing body was forwarded whole");
        }
        (w, f) => panic!("decoder: {:?}, forwarded body: {f:?}", w.as_ref().map(Vec::len)),
    }
});
