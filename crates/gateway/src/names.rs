//! Maps keyed by names from the configuration (buckets, backends, client
//! access keys), looked up on every request.
//!
//! They hash with FNV-1a instead of the standard library's SipHash: a name
//! is a few bytes, and SipHash's setup and finish cost more than the lookup
//! itself (about 120 instructions a lookup, five lookups a small PUT).
//! SipHash's keyed hashing guards a map that clients can insert into
//! against chosen collisions; nothing is inserted into these after start,
//! and a lookup of a chosen name compares at most against every configured
//! one. Maps that clients' requests insert into keep SipHash.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map from a configured name.
pub(crate) type NameMap<V> = HashMap<String, V, BuildHasherDefault<Fnv1a>>;

/// FNV-1a, 64 bits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::hash::Hasher;

    use super::{Fnv1a, NameMap};

    #[test]
    fn fnv1a_gives_the_reference_values_and_the_map_finds_every_name() {
        // The FNV reference test vectors (draft-eastlake-fnv, FNV-1a 64).
        for (text, want) in
            [("", 0xcbf2_9ce4_8422_2325u64), ("a", 0xaf63_dc4c_8601_ec8c), ("foobar", 0x8594_4171_f739_67e8)]
        {
            let mut h = Fnv1a::default();
            h.write(text.as_bytes());
            assert_eq!(h.finish(), want, "{text:?}");
        }
        let names: Vec<String> = (0..500).map(|i| format!("bucket-{i}")).collect();
        let map: NameMap<usize> = names.iter().cloned().enumerate().map(|(i, n)| (n, i)).collect();
        for (i, n) in names.iter().enumerate() {
            assert_eq!(map.get(n.as_str()), Some(&i));
        }
        assert_eq!(map.get("bucket-500"), None);
        assert_eq!(map.get(""), None);
    }
}
