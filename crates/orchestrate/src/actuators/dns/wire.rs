//! The DNS wire format (RFC 1035 §4, RFC 2136 §2): just what `dns.update`
//! needs. Names are written uncompressed and read with compression; the
//! record data of A, AAAA, CNAME and SOA is decoded, any other type is kept
//! as bytes.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Record types.
pub const TYPE_A: u16 = 1;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_SOA: u16 = 6;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_TSIG: u16 = 250;

/// Classes (RFC 2136 §2.4 gives ANY and NONE their meaning in updates).
pub const CLASS_IN: u16 = 1;
pub const CLASS_NONE: u16 = 254;
pub const CLASS_ANY: u16 = 255;

/// The opcodes we send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Query = 0,
    Update = 5,
}

/// Why bytes are not a DNS message we can use, or a name cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The message ends before a field it announces.
    #[error("the message is truncated")]
    Truncated,
    /// A compression pointer loops or points forward.
    #[error("a name's compression pointer is invalid")]
    BadPointer,
    /// A label or name is too long, or a label is empty.
    #[error("{0:?} is not a valid domain name (labels of 1 to 63 bytes, 255 bytes in all)")]
    BadName(String),
    /// A record's data does not have the size its type needs.
    #[error("the data of a type {0} record is malformed")]
    BadRdata(u16),
}

/// A domain name: lower case, without the trailing dot (the root is `""`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(String);

impl Name {
    /// Parses `a.b.c` or `a.b.c.` (always fully qualified).
    pub fn parse(text: &str) -> Result<Self, WireError> {
        let trimmed = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
        let bad = || WireError::BadName(text.to_string());
        if trimmed.is_empty() {
            return if text == "." { Ok(Name(String::new())) } else { Err(bad()) };
        }
        if trimmed.len() > 253 || trimmed.split('.').any(|l| l.is_empty() || l.len() > 63) {
            return Err(bad());
        }
        if !trimmed.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.') {
            return Err(bad());
        }
        Ok(Name(trimmed))
    }

    /// True when this name is `zone` or below it.
    pub fn is_in(&self, zone: &Name) -> bool {
        zone.0.is_empty() || self.0 == zone.0 || self.0.ends_with(&format!(".{}", zone.0))
    }

    /// Appends the name in wire form (uncompressed; lower case, which is
    /// also the canonical form TSIG needs).
    pub fn write(&self, out: &mut Vec<u8>) {
        if !self.0.is_empty() {
            for label in self.0.split('.') {
                out.push(label.len() as u8);
                out.extend_from_slice(label.as_bytes());
            }
        }
        out.push(0);
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.", self.0)
    }
}

/// The data of a record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum RData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(Name),
    /// Only the serial is used; the rest is kept to write it back unchanged.
    Soa {
        serial: u32,
        raw: Vec<u8>,
    },
    /// Empty data: a delete in an update (RFC 2136 §2.5.2).
    Empty,
    Other(Vec<u8>),
}

impl RData {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            RData::A(ip) => out.extend_from_slice(&ip.octets()),
            RData::Aaaa(ip) => out.extend_from_slice(&ip.octets()),
            RData::Cname(name) => name.write(out),
            RData::Soa { raw, .. } | RData::Other(raw) => out.extend_from_slice(raw),
            RData::Empty => {}
        }
    }
}

/// A resource record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: Name,
    pub rtype: u16,
    pub class: u16,
    pub ttl: u32,
    pub data: RData,
}

impl Record {
    /// Appends the record in wire form.
    pub fn write(&self, out: &mut Vec<u8>) {
        self.name.write(out);
        out.extend_from_slice(&self.rtype.to_be_bytes());
        out.extend_from_slice(&self.class.to_be_bytes());
        out.extend_from_slice(&self.ttl.to_be_bytes());
        let at = out.len();
        out.extend_from_slice(&[0, 0]);
        self.data.write(out);
        let len = (out.len() - at - 2) as u16;
        out[at..at + 2].copy_from_slice(&len.to_be_bytes());
    }
}

/// A message to send: one question (a query) or the zone (an update), the
/// prerequisites (RFC 2136 §2.4: the answer section) and the updates (the
/// authority section).
#[derive(Debug, Clone)]
pub struct Request {
    pub id: u16,
    pub opcode: Opcode,
    pub question: (Name, u16),
    pub prerequisites: Vec<Record>,
    pub updates: Vec<Record>,
}

impl Request {
    /// The message in wire form, without TSIG.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(&self.id.to_be_bytes());
        let flags: u16 = (self.opcode as u16) << 11;
        out.extend_from_slice(&flags.to_be_bytes());
        for count in [1u16, self.prerequisites.len() as u16, self.updates.len() as u16, 0] {
            out.extend_from_slice(&count.to_be_bytes());
        }
        self.question.0.write(&mut out);
        out.extend_from_slice(&self.question.1.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        for r in self.prerequisites.iter().chain(&self.updates) {
            r.write(&mut out);
        }
        out
    }
}

/// A record as read, with where it starts in the message.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub record: Record,
    pub offset: usize,
    /// The record data's bytes as they are in the message.
    pub raw: Vec<u8>,
}

/// A message as read.
#[derive(Debug, Clone)]
pub struct Response {
    /// The header's 4-bit rcode (TSIG errors are in the TSIG record).
    pub rcode: u16,
    pub answers: Vec<Parsed>,
    pub additional: Vec<Parsed>,
}

impl Response {
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader { bytes, at: 0 };
        r.take(2)?; // the id, checked by the transport
        let flags = r.u16()?;
        let counts = [r.u16()?, r.u16()?, r.u16()?, r.u16()?];
        for _ in 0..counts[0] {
            r.name()?;
            r.take(4)?;
        }
        let mut sections = [Vec::new(), Vec::new(), Vec::new()];
        for (section, &count) in sections.iter_mut().zip(&counts[1..]) {
            for _ in 0..count {
                section.push(r.record()?);
            }
        }
        let [answers, _, additional] = sections;
        Ok(Response { rcode: flags & 0xf, answers, additional })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], WireError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or(WireError::Truncated)?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A name at the current position, following compression pointers.
    fn name(&mut self) -> Result<Name, WireError> {
        let mut labels: Vec<String> = Vec::new();
        let mut pos = self.at;
        let mut jumped = false;
        let mut hops = 0;
        loop {
            let len = *self.bytes.get(pos).ok_or(WireError::Truncated)? as usize;
            if len & 0xc0 == 0xc0 {
                let low = *self.bytes.get(pos + 1).ok_or(WireError::Truncated)? as usize;
                let target = ((len & 0x3f) << 8) | low;
                if !jumped {
                    self.at = pos + 2;
                }
                jumped = true;
                hops += 1;
                if target >= pos || hops > 64 {
                    return Err(WireError::BadPointer);
                }
                pos = target;
                continue;
            }
            if len == 0 {
                if !jumped {
                    self.at = pos + 1;
                }
                break;
            }
            let label = self.bytes.get(pos + 1..pos + 1 + len).ok_or(WireError::Truncated)?;
            labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
            pos += 1 + len;
        }
        let text = labels.join(".");
        if text.len() > 253 {
            return Err(WireError::BadName(text));
        }
        Ok(Name(text))
    }

    fn record(&mut self) -> Result<Parsed, WireError> {
        let offset = self.at;
        let name = self.name()?;
        let rtype = self.u16()?;
        let class = self.u16()?;
        let ttl = self.u32()?;
        let len = self.u16()? as usize;
        let start = self.at;
        let raw = self.take(len)?.to_vec();
        let data = match rtype {
            _ if len == 0 => RData::Empty,
            TYPE_A => RData::A(<[u8; 4]>::try_from(&raw[..]).map_err(|_| WireError::BadRdata(rtype))?.into()),
            TYPE_AAAA => RData::Aaaa(<[u8; 16]>::try_from(&raw[..]).map_err(|_| WireError::BadRdata(rtype))?.into()),
            TYPE_CNAME => {
                let mut sub = Reader { bytes: self.bytes, at: start };
                RData::Cname(sub.name()?)
            }
            TYPE_SOA => {
                let mut sub = Reader { bytes: self.bytes, at: start };
                sub.name()?;
                sub.name()?;
                RData::Soa { serial: sub.u32()?, raw: raw.clone() }
            }
            _ => RData::Other(raw.clone()),
        };
        Ok(Parsed { record: Record { name, rtype, class, ttl, data }, offset, raw })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_compared_without_case_or_trailing_dot() {
        let n = Name::parse("S3.Example.com.").unwrap();
        assert_eq!(n, Name::parse("s3.example.com").unwrap());
        assert!(n.is_in(&Name::parse("example.com").unwrap()));
        assert!(!n.is_in(&Name::parse("ample.com").unwrap()));
        assert!(Name::parse("a..b").is_err());
        assert!(Name::parse(&format!("{}.com", "x".repeat(64))).is_err());
        assert!(Name::parse("bad name.com").is_err());
    }

    #[test]
    fn reads_back_what_it_writes_and_follows_compression() {
        let rec = Record {
            name: Name::parse("s3.example.com").unwrap(),
            rtype: TYPE_CNAME,
            class: CLASS_IN,
            ttl: 30,
            data: RData::Cname(Name::parse("b.example.com").unwrap()),
        };
        // A response: header, one question, one answer whose owner is a
        // pointer to the question's name.
        let mut msg = vec![0x12, 0x34, 0x84, 0x00, 0, 1, 0, 1, 0, 0, 0, 0];
        rec.name.write(&mut msg);
        msg.extend_from_slice(&[0, 5, 0, 1]);
        let mut answer = Vec::new();
        rec.write(&mut answer);
        let name_len = answer.len() - 10 - "b.example.com".len() - 2;
        msg.extend_from_slice(&[0xc0, 12]);
        msg.extend_from_slice(&answer[name_len..]);
        let r = Response::decode(&msg).unwrap();
        assert_eq!(r.rcode, 0);
        assert_eq!(r.answers[0].record, rec);
        assert!(Response::decode(&msg[..msg.len() - 1]).is_err());
    }

    #[test]
    fn a_pointer_loop_is_an_error_not_a_hang() {
        let msg = [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1];
        assert_eq!(Response::decode(&msg).unwrap_err(), WireError::BadPointer);
    }
}
