//! Queries and updates against one name server, signed with TSIG, each
//! exchange bounded in time. Every response is checked: its id, its rcode,
//! and its signature.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::record::{Rr, RrType, sorted};
use super::transport::{self, TransportError};
use super::tsig::{self, Key, TsigError, VerifyError};
use super::wire::{
    CLASS_ANY, CLASS_IN, CLASS_NONE, Name, Opcode, RData, Record, Request, Response, TYPE_SOA, WireError,
};

/// A response code (RFC 1035 §4.1.1, RFC 2136 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    NoError,
    FormErr,
    ServFail,
    NxDomain,
    NotImp,
    Refused,
    YxDomain,
    YxRrset,
    NxRrset,
    NotAuth,
    NotZone,
    Other(u16),
}

impl Rcode {
    fn from_code(code: u16) -> Self {
        match code {
            0 => Rcode::NoError,
            1 => Rcode::FormErr,
            2 => Rcode::ServFail,
            3 => Rcode::NxDomain,
            4 => Rcode::NotImp,
            5 => Rcode::Refused,
            6 => Rcode::YxDomain,
            7 => Rcode::YxRrset,
            8 => Rcode::NxRrset,
            9 => Rcode::NotAuth,
            10 => Rcode::NotZone,
            c => Rcode::Other(c),
        }
    }
}

impl std::fmt::Display for Rcode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Rcode::NoError => "NOERROR",
            Rcode::FormErr => "FORMERR",
            Rcode::ServFail => "SERVFAIL",
            Rcode::NxDomain => "NXDOMAIN",
            Rcode::NotImp => "NOTIMP",
            Rcode::Refused => "REFUSED",
            Rcode::YxDomain => "YXDOMAIN",
            Rcode::YxRrset => "YXRRSET",
            Rcode::NxRrset => "NXRRSET",
            Rcode::NotAuth => "NOTAUTH",
            Rcode::NotZone => "NOTZONE",
            Rcode::Other(c) => return write!(f, "rcode {c}"),
        };
        f.write_str(name)
    }
}

/// Why a query or an update did not succeed. Messages never contain the key.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// No response (connection, timeout, another id).
    #[error("{what}: {source}")]
    Transport {
        what: String,
        #[source]
        source: TransportError,
    },
    /// The response cannot be read.
    #[error("{what}: malformed response from {server}: {source}")]
    Malformed {
        what: String,
        server: SocketAddr,
        #[source]
        source: WireError,
    },
    /// The server answered with an error rcode (and a TSIG error when it
    /// rejected the signature: NOTAUTH with BADSIG, BADKEY or BADTIME).
    #[error("{what}: {server} answered {rcode}{}", .tsig.map(|t| format!(" (TSIG {t})")).unwrap_or_default())]
    Rejected { what: String, server: SocketAddr, rcode: Rcode, tsig: Option<TsigError> },
    /// An update's prerequisite did not hold (`NXRRSET`, `YXRRSET`): the
    /// record set is no longer the one it was sent against, and the server
    /// changed nothing.
    #[error("{what}: {server} answered {rcode}: the record set changed under it; nothing was changed")]
    Changed { what: String, server: SocketAddr, rcode: Rcode },
    /// The response's signature is missing or wrong.
    #[error("{what}: {server}: {source}")]
    Signature {
        what: String,
        server: SocketAddr,
        #[source]
        source: VerifyError,
    },
}

/// A name server and the key to sign with.
#[derive(Debug, Clone)]
pub struct Client {
    pub server: SocketAddr,
    pub key: Key,
    /// The time for each exchange.
    pub timeout: Duration,
    /// Seconds added to the clock the requests are signed with: always 0,
    /// except in tests that show what a server says to a skewed clock.
    pub clock_offset: i64,
}

impl Client {
    /// Sends `request` signed; the response when its rcode is NOERROR (or
    /// one in `accept`) and its signature is right.
    async fn send(&self, request: Request, what: &str, accept: &[Rcode]) -> Result<Response, DnsError> {
        let server = self.server;
        let mut bytes = request.encode();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let now = now.saturating_add_signed(self.clock_offset);
        let mac = tsig::sign(&mut bytes, &self.key, now);
        let answer = transport::exchange(server, &bytes, self.timeout)
            .await
            .map_err(|source| DnsError::Transport { what: what.into(), source })?;
        let response =
            Response::decode(&answer).map_err(|source| DnsError::Malformed { what: what.into(), server, source })?;
        let rcode = Rcode::from_code(response.rcode);
        let verified = tsig::verify(&answer, &response.additional, &self.key, &mac);
        if let Err(VerifyError::Server(e)) = verified {
            return Err(DnsError::Rejected { what: what.into(), server, rcode, tsig: Some(e) });
        }
        if rcode != Rcode::NoError && !accept.contains(&rcode) {
            return Err(DnsError::Rejected { what: what.into(), server, rcode, tsig: None });
        }
        verified.map_err(|source| DnsError::Signature { what: what.into(), server, source })?;
        Ok(response)
    }

    /// The record set of `name` and `rtype` (empty when there is none).
    pub async fn rrset(&self, name: &Name, rtype: RrType) -> Result<Vec<Rr>, DnsError> {
        let what = format!("query {name} {}", rtype.as_str());
        let request = Request {
            id: fastrand::u16(..),
            opcode: Opcode::Query,
            question: (name.clone(), rtype.code()),
            prerequisites: vec![],
            updates: vec![],
        };
        let response = self.send(request, &what, &[Rcode::NxDomain]).await?;
        let set = response
            .answers
            .iter()
            .filter(|p| p.record.name == *name && p.record.rtype == rtype.code())
            .filter_map(|p| Rr::from_data(p.record.ttl, &p.record.data))
            .collect();
        Ok(sorted(set))
    }

    /// The serial of `zone`'s SOA record.
    pub async fn soa_serial(&self, zone: &Name) -> Result<u32, DnsError> {
        let what = format!("query {zone} SOA");
        let request = Request {
            id: fastrand::u16(..),
            opcode: Opcode::Query,
            question: (zone.clone(), TYPE_SOA),
            prerequisites: vec![],
            updates: vec![],
        };
        let response = self.send(request, &what, &[]).await?;
        response
            .answers
            .iter()
            .find_map(|p| match (&p.record.data, p.record.name == *zone) {
                (RData::Soa { serial, .. }, true) => Some(*serial),
                _ => None,
            })
            .ok_or(DnsError::Malformed { what, server: self.server, source: WireError::BadRdata(TYPE_SOA) })
    }

    /// Replaces the record set of `name` and `rtype` in `zone` with
    /// `records` (none: deletes it) in one update: delete the set, add each
    /// record (RFC 2136 §2.5.2, §2.5.1), on the condition that the set is
    /// still `expected` (RFC 2136 §2.4.2 "RRset exists (value dependent)",
    /// or §2.4.3 "RRset does not exist" when `expected` is empty; the TTLs
    /// are not compared). When it is not, the server changes nothing and
    /// answers `NXRRSET` or `YXRRSET`: [`DnsError::Changed`].
    pub async fn replace(
        &self,
        zone: &Name,
        name: &Name,
        rtype: RrType,
        expected: &[Rr],
        records: &[Rr],
    ) -> Result<(), DnsError> {
        let what = format!("update of {name} {} in zone {zone}", rtype.as_str());
        let data = |r: &Rr| {
            rtype.data(&r.value).map_err(|_| DnsError::Malformed {
                what: what.clone(),
                server: self.server,
                source: WireError::BadRdata(rtype.code()),
            })
        };
        let record =
            |class: u16, ttl: u32, data: RData| Record { name: name.clone(), rtype: rtype.code(), class, ttl, data };
        let mut prerequisites = Vec::new();
        if expected.is_empty() {
            prerequisites.push(record(CLASS_NONE, 0, RData::Empty));
        }
        for r in expected {
            prerequisites.push(record(CLASS_IN, 0, data(r)?));
        }
        let mut updates = vec![record(CLASS_ANY, 0, RData::Empty)];
        for r in records {
            updates.push(record(CLASS_IN, r.ttl, data(r)?));
        }
        let request = Request {
            id: fastrand::u16(..),
            opcode: Opcode::Update,
            question: (zone.clone(), TYPE_SOA),
            prerequisites,
            updates,
        };
        let response = self.send(request, &what, &[Rcode::NxRrset, Rcode::YxRrset]).await?;
        match Rcode::from_code(response.rcode) {
            Rcode::NoError => Ok(()),
            rcode => Err(DnsError::Changed { what, server: self.server, rcode }),
        }
    }
}
