//! Queries and updates against one name server, signed with TSIG, each
//! exchange bounded in time. Every response is checked: its id, its rcode,
//! and its signature.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::record::{Rr, RrType, sorted};
use super::transport::{self, TransportError};
use super::tsig::{self, Key, TsigError, VerifyError};
use super::wire::{CLASS_ANY, CLASS_IN, Name, Opcode, RData, Record, Request, Response, TYPE_SOA, WireError};

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
}

impl Client {
    /// Sends `request` signed; the response when its rcode is NOERROR (or
    /// one in `accept`) and its signature is right.
    async fn send(&self, request: Request, what: &str, accept: &[Rcode]) -> Result<Response, DnsError> {
        let server = self.server;
        let mut bytes = request.encode();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
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
    /// record (RFC 2136 §2.5.2, §2.5.1).
    pub async fn replace(&self, zone: &Name, name: &Name, rtype: RrType, records: &[Rr]) -> Result<(), DnsError> {
        let what = format!("update of {name} {} in zone {zone}", rtype.as_str());
        let mut updates =
            vec![Record { name: name.clone(), rtype: rtype.code(), class: CLASS_ANY, ttl: 0, data: RData::Empty }];
        for r in records {
            let data = rtype.data(&r.value).map_err(|_| DnsError::Malformed {
                what: what.clone(),
                server: self.server,
                source: WireError::BadRdata(rtype.code()),
            })?;
            updates.push(Record { name: name.clone(), rtype: rtype.code(), class: CLASS_IN, ttl: r.ttl, data });
        }
        let request =
            Request { id: fastrand::u16(..), opcode: Opcode::Update, question: (zone.clone(), TYPE_SOA), updates };
        self.send(request, &what, &[]).await.map(|_| ())
    }
}
