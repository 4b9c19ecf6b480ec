//! TSIG (RFC 8945) with HMAC-SHA256 and HMAC-SHA512: signing a request and
//! checking the signature of its response.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Sha256, Sha512};

use super::wire::{CLASS_ANY, Name, Parsed, TYPE_TSIG};

/// How long the server may think our clock is off (RFC 8945 recommends 300 s).
pub const FUDGE: u16 = 300;

/// The HMAC algorithms we sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    HmacSha256,
    HmacSha512,
}

impl Algorithm {
    /// From a runbook's `tsig_algorithm` (`hmac-sha256`, `hmac-sha512`).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim_end_matches('.').to_ascii_lowercase().as_str() {
            "hmac-sha256" => Some(Algorithm::HmacSha256),
            "hmac-sha512" => Some(Algorithm::HmacSha512),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::HmacSha256 => "hmac-sha256",
            Algorithm::HmacSha512 => "hmac-sha512",
        }
    }

    fn name(self) -> Name {
        Name::parse(self.as_str()).expect("a valid name")
    }

    fn mac(self, secret: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        fn run<M: Mac + KeyInit>(secret: &[u8], parts: &[&[u8]]) -> Vec<u8> {
            let mut m = <M as KeyInit>::new_from_slice(secret).expect("HMAC takes a key of any length");
            for p in parts {
                m.update(p);
            }
            m.finalize().into_bytes().to_vec()
        }
        match self {
            Algorithm::HmacSha256 => run::<Hmac<Sha256>>(secret, parts),
            Algorithm::HmacSha512 => run::<Hmac<Sha512>>(secret, parts),
        }
    }
}

/// A TSIG key. `Debug` does not show the secret.
#[derive(Clone)]
pub struct Key {
    pub name: Name,
    pub algorithm: Algorithm,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key").field("name", &self.name).field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

/// A TSIG error code (RFC 8945 §3, the IANA registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsigError {
    BadSig,
    BadKey,
    BadTime,
    BadTrunc,
    Other(u16),
}

impl TsigError {
    fn from_code(code: u16) -> Option<Self> {
        match code {
            0 => None,
            16 => Some(TsigError::BadSig),
            17 => Some(TsigError::BadKey),
            18 => Some(TsigError::BadTime),
            22 => Some(TsigError::BadTrunc),
            other => Some(TsigError::Other(other)),
        }
    }
}

impl std::fmt::Display for TsigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TsigError::BadSig => f.write_str("BADSIG"),
            TsigError::BadKey => f.write_str("BADKEY"),
            TsigError::BadTime => f.write_str("BADTIME"),
            TsigError::BadTrunc => f.write_str("BADTRUNC"),
            TsigError::Other(c) => write!(f, "TSIG error {c}"),
        }
    }
}

/// What is wrong with a response's signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The request was signed and the answer is not.
    #[error("the response is not signed")]
    Unsigned,
    /// The server reports a TSIG error (then it does not sign).
    #[error("the server reports {0}")]
    Server(TsigError),
    /// The response is signed with another key or algorithm.
    #[error("the response is signed with another key or algorithm")]
    OtherKey,
    /// The MAC does not match: the response was altered or the key differs.
    #[error("the response's signature does not match")]
    BadMac,
    /// The TSIG record cannot be read.
    #[error("the response's TSIG record is malformed")]
    Malformed,
}

/// The TSIG variables of RFC 8945 §4.3.3 (and, with the MAC and the
/// original id, the record's data).
fn variables(key: &Key, time: u64, error: u16, other: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    key.name.write(&mut v);
    v.extend_from_slice(&CLASS_ANY.to_be_bytes());
    v.extend_from_slice(&0u32.to_be_bytes());
    key.algorithm.name().write(&mut v);
    v.extend_from_slice(&time.to_be_bytes()[2..]);
    v.extend_from_slice(&FUDGE.to_be_bytes());
    v.extend_from_slice(&error.to_be_bytes());
    v.extend_from_slice(&(other.len() as u16).to_be_bytes());
    v.extend_from_slice(other);
    v
}

/// Signs `message` (a whole request in wire form) at `time` (seconds since
/// the epoch): appends the TSIG record and counts it. Returns the MAC, which
/// the response's signature covers.
pub fn sign(message: &mut Vec<u8>, key: &Key, time: u64) -> Vec<u8> {
    let mac = key.algorithm.mac(&key.secret, &[message, &variables(key, time, 0, &[])]);
    let id = [message[0], message[1]];
    let mut rdata = Vec::new();
    key.algorithm.name().write(&mut rdata);
    rdata.extend_from_slice(&time.to_be_bytes()[2..]);
    rdata.extend_from_slice(&FUDGE.to_be_bytes());
    rdata.extend_from_slice(&(mac.len() as u16).to_be_bytes());
    rdata.extend_from_slice(&mac);
    rdata.extend_from_slice(&id);
    rdata.extend_from_slice(&[0, 0, 0, 0]);
    key.name.write(message);
    message.extend_from_slice(&TYPE_TSIG.to_be_bytes());
    message.extend_from_slice(&CLASS_ANY.to_be_bytes());
    message.extend_from_slice(&0u32.to_be_bytes());
    message.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    message.extend_from_slice(&rdata);
    let arcount = u16::from_be_bytes([message[10], message[11]]) + 1;
    message[10..12].copy_from_slice(&arcount.to_be_bytes());
    mac
}

/// The fields of a TSIG record's data.
struct Fields<'a> {
    algorithm: Name,
    time: u64,
    mac: &'a [u8],
    original_id: u16,
    error: u16,
    other: &'a [u8],
}

fn fields(raw: &[u8]) -> Option<Fields<'_>> {
    // The algorithm name is never compressed (RFC 8945 §4.2).
    let mut at = 0;
    let mut labels = Vec::new();
    loop {
        let len = *raw.get(at)? as usize;
        at += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        labels.push(std::str::from_utf8(raw.get(at..at + len)?).ok()?.to_string());
        at += len;
    }
    let algorithm = Name::parse(&labels.join(".")).ok()?;
    let u16_at = |i: usize| raw.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let t = raw.get(at..at + 6)?;
    let time = t.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    let mac_len = u16_at(at + 8)? as usize;
    let mac = raw.get(at + 10..at + 10 + mac_len)?;
    let rest = at + 10 + mac_len;
    let other_len = u16_at(rest + 4)? as usize;
    Some(Fields {
        algorithm,
        time,
        mac,
        original_id: u16_at(rest)?,
        error: u16_at(rest + 2)?,
        other: raw.get(rest + 6..rest + 6 + other_len)?,
    })
}

/// Checks the signature of `response` (the bytes as received), whose last
/// additional record is `additional.last()`, against the `request_mac` of
/// the request it answers.
pub fn verify(response: &[u8], additional: &[Parsed], key: &Key, request_mac: &[u8]) -> Result<(), VerifyError> {
    let Some(tsig) = additional.last().filter(|p| p.record.rtype == TYPE_TSIG) else {
        return Err(VerifyError::Unsigned);
    };
    let f = fields(&tsig.raw).ok_or(VerifyError::Malformed)?;
    if let Some(e) = TsigError::from_code(f.error) {
        return Err(VerifyError::Server(e));
    }
    if tsig.record.name != key.name || Algorithm::parse(&f.algorithm.to_string()) != Some(key.algorithm) {
        return Err(VerifyError::OtherKey);
    }
    // The message as it was before the TSIG record was added: original id,
    // one additional record fewer.
    let mut unsigned = response[..tsig.offset].to_vec();
    unsigned[0..2].copy_from_slice(&f.original_id.to_be_bytes());
    let arcount = u16::from_be_bytes([unsigned[10], unsigned[11]]).saturating_sub(1);
    unsigned[10..12].copy_from_slice(&arcount.to_be_bytes());
    let expected = key.algorithm.mac(
        &key.secret,
        &[&(request_mac.len() as u16).to_be_bytes(), request_mac, &unsigned, &variables(key, f.time, 0, f.other)],
    );
    // Both are public-length HMAC outputs; compare without an early exit.
    let same = expected.len() == f.mac.len() && expected.iter().zip(f.mac).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if same { Ok(()) } else { Err(VerifyError::BadMac) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test case 2 for HMAC-SHA256 (key "Jefe").
    #[test]
    fn macs_match_the_rfc_4231_vectors() {
        let mac = Algorithm::HmacSha256.mac(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(hex::encode(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        let mac = Algorithm::HmacSha512.mac(b"Jefe", &[b"what do ya want for nothing?"]);
        assert!(hex::encode(mac).starts_with("164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"));
    }

    #[test]
    fn a_signed_message_carries_one_more_additional_record_and_the_mac() {
        let key = Key { name: Name::parse("cutover").unwrap(), algorithm: Algorithm::HmacSha512, secret: vec![7; 64] };
        let mut msg = vec![0xab, 0xcd, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 1];
        let mac = sign(&mut msg, &key, 1_700_000_000);
        assert_eq!(mac.len(), 64);
        assert_eq!(&msg[10..12], &[0, 1]);
        // 17 bytes of header and question, 9 of owner name, 10 of type to length.
        let f = fields(&msg[17 + 9 + 10..]).unwrap();
        assert_eq!(f.algorithm.to_string(), "hmac-sha512.");
        assert_eq!((f.time, f.mac, f.original_id, f.error), (1_700_000_000, &mac[..], 0xabcd, 0));
        assert_eq!(Algorithm::parse("HMAC-SHA256."), Some(Algorithm::HmacSha256));
        assert_eq!(Algorithm::parse("hmac-md5"), None);
    }
}
