//! The record sets `dns.update` replaces: their type and records as a
//! runbook writes them and as the saved copy for the undo keeps them.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use super::wire::{self, Name, RData};

/// The types `dns.update` replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RrType {
    A,
    #[serde(rename = "AAAA")]
    Aaaa,
    #[serde(rename = "CNAME")]
    Cname,
}

impl RrType {
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_uppercase().as_str() {
            "A" => Some(RrType::A),
            "AAAA" => Some(RrType::Aaaa),
            "CNAME" => Some(RrType::Cname),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RrType::A => "A",
            RrType::Aaaa => "AAAA",
            RrType::Cname => "CNAME",
        }
    }

    pub fn code(self) -> u16 {
        match self {
            RrType::A => wire::TYPE_A,
            RrType::Aaaa => wire::TYPE_AAAA,
            RrType::Cname => wire::TYPE_CNAME,
        }
    }

    /// The record data for `value`, or why it is not one of this type.
    pub fn data(self, value: &str) -> Result<RData, String> {
        match self {
            RrType::A => value.parse::<Ipv4Addr>().map(RData::A).map_err(|_| "is not an IPv4 address".into()),
            RrType::Aaaa => value.parse::<Ipv6Addr>().map(RData::Aaaa).map_err(|_| "is not an IPv6 address".into()),
            RrType::Cname => Name::parse(value)
                .map(RData::Cname)
                .map_err(|_| "is not a domain name (labels of letters, digits and -, 63 bytes at most)".into()),
        }
    }
}

/// One record of a record set: its TTL and its value as text (an address,
/// or a name with its trailing dot).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Rr {
    pub ttl: u32,
    pub value: String,
}

impl Rr {
    /// From a record read from the server; `None` for record data of
    /// another type.
    pub fn from_data(ttl: u32, data: &RData) -> Option<Self> {
        let value = match data {
            RData::A(ip) => ip.to_string(),
            RData::Aaaa(ip) => ip.to_string(),
            RData::Cname(name) => name.to_string(),
            _ => return None,
        };
        Some(Rr { ttl, value })
    }
}

/// A record set in a canonical order, so that two can be compared.
pub fn sorted(mut set: Vec<Rr>) -> Vec<Rr> {
    set.sort();
    set.dedup();
    set
}

/// The saved copy of the record set an update replaced (`records`) and of
/// the one it wrote (`written`), for its undo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    pub server: String,
    pub zone: String,
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: RrType,
    pub records: Vec<Rr>,
    pub written: Vec<Rr>,
}
