//! Hostile answers: whatever bytes a server (or anyone on the path) sends
//! back, reading them and checking their signature never panics.

use proptest::prelude::*;

use super::tsig::{self, Algorithm, Key};
use super::wire::{Name, Response};

fn key() -> Key {
    Key { name: Name::parse("cutover").unwrap(), algorithm: Algorithm::HmacSha256, secret: vec![7; 32] }
}

/// A well-formed signed message: a header, one question, and a TSIG record.
fn signed() -> Vec<u8> {
    let mut msg = vec![0xab, 0xcd, 0x84, 0, 0, 1, 0, 0, 0, 0, 0, 0, 2, b's', b'3', 0, 0, 1, 0, 1];
    tsig::sign(&mut msg, &key(), 1_700_000_000);
    msg
}

/// Decodes `bytes` and, when that works, checks their signature.
fn read(bytes: &[u8]) {
    if let Ok(r) = Response::decode(bytes) {
        let _ = tsig::verify(bytes, &r.additional, &key(), &[1; 32]);
    }
}

#[test]
fn the_unmutated_message_decodes_with_its_tsig_record_last() {
    let msg = signed();
    let r = Response::decode(&msg).unwrap();
    assert_eq!(r.additional.len(), 1);
    // Signed as a request, it is not a valid answer to another request's MAC.
    assert!(tsig::verify(&msg, &r.additional, &key(), &[1; 32]).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        read(&bytes);
    }

    #[test]
    fn a_signed_message_with_bytes_changed_or_cut_never_panics(
        changes in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        cut_it in any::<bool>(),
    ) {
        let mut msg = signed();
        for (at, byte) in changes {
            let i = at.index(msg.len());
            msg[i] = byte;
        }
        if cut_it {
            msg.truncate(cut.index(msg.len() + 1));
        }
        read(&msg);
    }

    #[test]
    fn compression_pointers_anywhere_never_loop_or_panic(
        header in proptest::collection::vec(any::<u8>(), 12..13),
        tail in proptest::collection::vec(prop_oneof![Just(0xc0u8), Just(0x0c), Just(0), any::<u8>()], 0..200),
    ) {
        let mut msg = header;
        msg[4..12].copy_from_slice(&[0, 1, 0, 4, 0, 4, 0, 4]);
        msg.extend(tail);
        read(&msg);
    }
}
