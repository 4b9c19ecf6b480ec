//! The S3 checksums a client can send as the trailer of an aws-chunked
//! upload (`x-amz-trailer: x-amz-checksum-<algorithm>`), computed over the
//! decoded bytes while they stream. The trailer's value is the base64 of the
//! big-endian digest.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use crc::{CRC_64_NVME, Crc, Table};
use sha1::Sha1;
use sha2::{Digest as _, Sha256};

static CRC64_NVME: Crc<u64, Table<16>> = Crc::<u64, Table<16>>::new(&CRC_64_NVME);

/// A checksum algorithm of S3's flexible checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl Algorithm {
    pub const ALL: [Algorithm; 5] =
        [Algorithm::Crc32, Algorithm::Crc32c, Algorithm::Crc64Nvme, Algorithm::Sha1, Algorithm::Sha256];

    /// The algorithm a header (`x-amz-checksum-crc32`, ..) carries, any case.
    pub fn from_header(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.header().eq_ignore_ascii_case(name))
    }

    pub fn header(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "x-amz-checksum-crc32",
            Algorithm::Crc32c => "x-amz-checksum-crc32c",
            Algorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Algorithm::Sha1 => "x-amz-checksum-sha1",
            Algorithm::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// The name S3 uses in messages (`CRC32`, `SHA256`, ..).
    pub fn label(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "CRC32",
            Algorithm::Crc32c => "CRC32C",
            Algorithm::Crc64Nvme => "CRC64NVME",
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
        }
    }

    fn digest_len(self) -> usize {
        match self {
            Algorithm::Crc32 | Algorithm::Crc32c => 4,
            Algorithm::Crc64Nvme => 8,
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
        }
    }

    /// The length of a trailer value (base64 of the digest, padded).
    pub fn value_len(self) -> usize {
        self.digest_len().div_ceil(3) * 4
    }

    /// The digest a trailer value (base64) stands for, or None when it is
    /// not valid base64 of a digest of this algorithm's size.
    pub fn parse_value(self, value: &str) -> Option<Vec<u8>> {
        STANDARD.decode(value.trim()).ok().filter(|d| d.len() == self.digest_len())
    }

    pub fn hasher(self) -> Checksum {
        match self {
            Algorithm::Crc32 => Checksum::Crc32(crc32fast::Hasher::new()),
            Algorithm::Crc32c => Checksum::Crc32c(0),
            Algorithm::Crc64Nvme => Checksum::Crc64Nvme(Box::new(CRC64_NVME.digest())),
            Algorithm::Sha1 => Checksum::Sha1(Sha1::new()),
            Algorithm::Sha256 => Checksum::Sha256(Sha256::new()),
        }
    }
}

/// A running checksum.
pub enum Checksum {
    Crc32(crc32fast::Hasher),
    Crc32c(u32),
    Crc64Nvme(Box<crc::Digest<'static, u64, Table<16>>>),
    Sha1(Sha1),
    Sha256(Sha256),
}

impl std::fmt::Debug for Checksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Checksum").field(&self.algorithm()).finish()
    }
}

impl Checksum {
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Checksum::Crc32(_) => Algorithm::Crc32,
            Checksum::Crc32c(_) => Algorithm::Crc32c,
            Checksum::Crc64Nvme(_) => Algorithm::Crc64Nvme,
            Checksum::Sha1(_) => Algorithm::Sha1,
            Checksum::Sha256(_) => Algorithm::Sha256,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Checksum::Crc32(h) => h.update(data),
            Checksum::Crc32c(c) => *c = crc32c::crc32c_append(*c, data),
            Checksum::Crc64Nvme(d) => d.update(data),
            Checksum::Sha1(h) => h.update(data),
            Checksum::Sha256(h) => h.update(data),
        }
    }

    /// The big-endian digest.
    pub fn finish(self) -> Vec<u8> {
        match self {
            Checksum::Crc32(h) => h.finalize().to_be_bytes().to_vec(),
            Checksum::Crc32c(c) => c.to_be_bytes().to_vec(),
            Checksum::Crc64Nvme(d) => d.finalize().to_be_bytes().to_vec(),
            Checksum::Sha1(h) => h.finalize().to_vec(),
            Checksum::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

/// The base64 a trailer carries for a digest.
pub fn encode(digest: &[u8]) -> String {
    STANDARD.encode(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(a: Algorithm, parts: &[&[u8]]) -> String {
        let mut c = a.hasher();
        for p in parts {
            c.update(p);
        }
        encode(&c.finish())
    }

    /// The catalogue check values ("123456789") and the AWS documentation's
    /// CRC32C of 66560 bytes of 'a'; split input gives the same digest.
    #[test]
    fn digests_match_the_published_values() {
        let hex_of = |a: Algorithm| hex::encode(STANDARD.decode(of(a, &[b"1234", b"56789"])).unwrap());
        assert_eq!(hex_of(Algorithm::Crc32), "cbf43926");
        assert_eq!(hex_of(Algorithm::Crc32c), "e3069283");
        assert_eq!(hex_of(Algorithm::Crc64Nvme), "ae8b14860a799888");
        assert_eq!(hex_of(Algorithm::Sha1), "f7c3bc1d808e04732adf679965ccc34ca7ae3441");
        assert_eq!(hex_of(Algorithm::Sha256), "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225");
        let a = vec![b'a'; 66560];
        assert_eq!(of(Algorithm::Crc32c, &[&a[..65536], &a[65536..]]), "sOO8/Q==");
    }

    #[test]
    fn headers_and_values_are_parsed_strictly() {
        assert_eq!(Algorithm::from_header("X-Amz-Checksum-CRC64NVME"), Some(Algorithm::Crc64Nvme));
        assert_eq!(Algorithm::from_header("x-amz-checksum-md5"), None);
        assert_eq!(Algorithm::Crc32.parse_value("AAAAAA=="), Some(vec![0; 4]));
        assert_eq!(Algorithm::Crc32.parse_value("AAAAAAAAAAA="), None, "wrong length");
        assert_eq!(Algorithm::Crc32.parse_value("not base64!"), None);
    }
}
