//! Keys, values, leases and transactions: the JSON shapes of etcd's gateway
//! (checked against etcd 3.4: answers use the proto field names, int64s
//! are strings, bytes are base64, fields at their default are left out).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::client::Client;
use crate::error::EtcdError;

/// int64 as etcd's gateway writes it: a JSON string (a number is accepted too); absent is 0.
pub(crate) mod i64s {
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        S(String),
        N(i64),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        match Repr::deserialize(d)? {
            Repr::N(n) => Ok(n),
            Repr::S(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// Bytes as base64; absent is empty.
pub(crate) mod b64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        super::B64.decode(s).map_err(serde::de::Error::custom)
    }
}

pub(crate) fn enc(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// The header of every answer.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Header {
    /// The store's revision when the request was served.
    #[serde(default, with = "i64s")]
    pub revision: i64,
}

/// One key and its value.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct KeyValue {
    #[serde(default, with = "b64")]
    pub key: Vec<u8>,
    #[serde(default, with = "b64")]
    pub value: Vec<u8>,
    #[serde(default, with = "i64s")]
    pub create_revision: i64,
    #[serde(default, with = "i64s")]
    pub mod_revision: i64,
    #[serde(default, with = "i64s")]
    pub version: i64,
    /// The lease the key is attached to (0: none).
    #[serde(default, with = "i64s")]
    pub lease: i64,
}

/// The answer of a range.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct RangeResponse {
    #[serde(default)]
    pub header: Header,
    #[serde(default)]
    pub kvs: Vec<KeyValue>,
    #[serde(default, with = "i64s")]
    pub count: i64,
    #[serde(default)]
    pub more: bool,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct PutResponse {
    #[serde(default)]
    pub header: Header,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct DeleteResponse {
    #[serde(default)]
    pub header: Header,
    #[serde(default, with = "i64s")]
    pub deleted: i64,
}

/// One answer inside a transaction's answer.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct ResponseOp {
    pub response_range: Option<RangeResponse>,
    pub response_put: Option<PutResponse>,
    pub response_delete_range: Option<DeleteResponse>,
}

/// The answer of a transaction.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct TxnResponse {
    #[serde(default)]
    pub header: Header,
    /// Whether the compares held (the success branch ran).
    #[serde(default)]
    pub succeeded: bool,
    #[serde(default)]
    pub responses: Vec<ResponseOp>,
}

impl TxnResponse {
    /// The key-values of the `i`th answer when it is a range.
    pub fn range(&self, i: usize) -> &[KeyValue] {
        self.responses.get(i).and_then(|r| r.response_range.as_ref()).map_or(&[], |r| &r.kvs)
    }
}

/// How a compare compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Equal,
    Greater,
    Less,
    NotEqual,
}

impl Cmp {
    fn word(self) -> &'static str {
        match self {
            Cmp::Equal => "EQUAL",
            Cmp::Greater => "GREATER",
            Cmp::Less => "LESS",
            Cmp::NotEqual => "NOT_EQUAL",
        }
    }
}

/// One compare of a transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Compare(Value);

impl Compare {
    fn new(key: &[u8], cmp: Cmp, target: &str, field: &str, value: Value) -> Self {
        Compare(json!({"key": enc(key), "result": cmp.word(), "target": target, field: value}))
    }

    /// The key's create revision (0: the key does not exist).
    pub fn create_revision(key: &[u8], cmp: Cmp, rev: i64) -> Self {
        Self::new(key, cmp, "CREATE", "create_revision", json!(rev.to_string()))
    }

    /// The key's last modification revision (0: the key does not exist).
    pub fn mod_revision(key: &[u8], cmp: Cmp, rev: i64) -> Self {
        Self::new(key, cmp, "MOD", "mod_revision", json!(rev.to_string()))
    }

    /// The key's version (0: the key does not exist).
    pub fn version(key: &[u8], cmp: Cmp, version: i64) -> Self {
        Self::new(key, cmp, "VERSION", "version", json!(version.to_string()))
    }

    /// The key's value (fails when the key does not exist).
    pub fn value(key: &[u8], cmp: Cmp, value: &[u8]) -> Self {
        Self::new(key, cmp, "VALUE", "value", json!(enc(value)))
    }
}

/// One operation of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Puts `value` at `key`, attached to `lease` (0: none).
    Put { key: Vec<u8>, value: Vec<u8>, lease: i64 },
    /// Deletes `key`.
    Delete { key: Vec<u8> },
    /// Reads `key` (`range_end` empty), or `[key, range_end)`.
    Range { key: Vec<u8>, range_end: Vec<u8> },
}

impl Op {
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Op::Put { key: key.into(), value: value.into(), lease: 0 }
    }

    pub fn get(key: impl Into<Vec<u8>>) -> Self {
        Op::Range { key: key.into(), range_end: Vec::new() }
    }

    fn json(&self) -> Value {
        match self {
            Op::Put { key, value, lease } => {
                json!({"request_put": {"key": enc(key), "value": enc(value), "lease": lease.to_string()}})
            }
            Op::Delete { key } => json!({"request_delete_range": {"key": enc(key)}}),
            Op::Range { key, range_end } if range_end.is_empty() => json!({"request_range": {"key": enc(key)}}),
            Op::Range { key, range_end } => {
                json!({"request_range": {"key": enc(key), "range_end": enc(range_end)}})
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct LeaseGrant {
    #[serde(rename = "ID", default, with = "i64s")]
    id: i64,
    #[serde(rename = "TTL", default, with = "i64s")]
    ttl: i64,
    #[serde(default)]
    error: String,
}

#[derive(Debug, Deserialize)]
struct LeaseTtl {
    #[serde(rename = "TTL", default, with = "i64s")]
    ttl: i64,
}

/// A streamed answer: `{"result": ...}` or `{"error": ...}`.
#[derive(Debug, Deserialize)]
pub(crate) struct Streamed<T> {
    pub result: Option<T>,
    pub error: Option<Value>,
}

impl Client {
    /// The value of `key`, if any.
    pub async fn get(&self, key: &[u8]) -> Result<(Header, Option<KeyValue>), EtcdError> {
        let r: RangeResponse = self.call("/v3/kv/range", &json!({"key": enc(key)}), true).await?;
        Ok((r.header, r.kvs.into_iter().next()))
    }

    /// Every key starting with `prefix`, in key order.
    pub async fn get_prefix(&self, prefix: &[u8]) -> Result<RangeResponse, EtcdError> {
        self.range(prefix, &crate::prefix_end(prefix)).await
    }

    /// The keys in `[key, range_end)`, in key order.
    pub async fn range(&self, key: &[u8], range_end: &[u8]) -> Result<RangeResponse, EtcdError> {
        self.call("/v3/kv/range", &json!({"key": enc(key), "range_end": enc(range_end)}), true).await
    }

    /// Puts `value` at `key` (attached to `lease` unless 0).
    pub async fn put(&self, key: &[u8], value: &[u8], lease: i64) -> Result<Header, EtcdError> {
        let req = json!({"key": enc(key), "value": enc(value), "lease": lease.to_string()});
        let r: PutResponse = self.call("/v3/kv/put", &req, true).await?;
        Ok(r.header)
    }

    /// Deletes `key`; returns how many keys were deleted.
    pub async fn delete(&self, key: &[u8]) -> Result<i64, EtcdError> {
        let r: DeleteResponse = self.call("/v3/kv/deleterange", &json!({"key": enc(key)}), true).await?;
        Ok(r.deleted)
    }

    /// One transaction: when every compare holds, `success` runs, else `failure`.
    pub async fn txn(&self, compare: &[Compare], success: &[Op], failure: &[Op]) -> Result<TxnResponse, EtcdError> {
        let req = json!({
            "compare": compare.iter().map(|c| c.0.clone()).collect::<Vec<_>>(),
            "success": success.iter().map(Op::json).collect::<Vec<_>>(),
            "failure": failure.iter().map(Op::json).collect::<Vec<_>>(),
        });
        self.call("/v3/kv/txn", &req, false).await
    }

    /// Grants a lease of `ttl` seconds; returns its id and TTL.
    pub async fn lease_grant(&self, ttl: i64) -> Result<(i64, i64), EtcdError> {
        // Not idempotent (a second grant is a second lease), but a lost one just expires.
        let g: LeaseGrant = self.call("/v3/lease/grant", &json!({"TTL": ttl.to_string()}), true).await?;
        if !g.error.is_empty() || g.id == 0 {
            return Err(EtcdError::Status {
                endpoint: self.endpoints().join(","),
                path: "/v3/lease/grant",
                http: 200,
                code: 0,
                message: g.error,
            });
        }
        Ok((g.id, g.ttl))
    }

    /// Renews a lease once; returns its new TTL, or [`EtcdError::LeaseGone`].
    pub async fn lease_keepalive(&self, id: i64) -> Result<i64, EtcdError> {
        let r: Streamed<LeaseTtl> = self.call("/v3/lease/keepalive", &json!({"ID": id.to_string()}), true).await?;
        if let Some(e) = r.error {
            let (code, message) = crate::client::error_of(e.to_string().as_bytes());
            return Err(EtcdError::Status {
                endpoint: self.endpoints().join(","),
                path: "/v3/lease/keepalive",
                http: 200,
                code,
                message,
            });
        }
        match r.result {
            Some(LeaseTtl { ttl }) if ttl > 0 => Ok(ttl),
            _ => Err(EtcdError::LeaseGone { id }),
        }
    }

    /// Revokes a lease (its keys are deleted).
    pub async fn lease_revoke(&self, id: i64) -> Result<(), EtcdError> {
        match self.call::<Value>("/v3/lease/revoke", &json!({"ID": id.to_string()}), true).await {
            Err(EtcdError::Status { code: 5, .. }) => Ok(()), // already gone
            r => r.map(drop),
        }
    }

    /// A lease's remaining TTL in seconds, or [`EtcdError::LeaseGone`].
    pub async fn lease_time_to_live(&self, id: i64) -> Result<i64, EtcdError> {
        let r: LeaseTtl = self.call("/v3/lease/timetolive", &json!({"ID": id.to_string()}), true).await?;
        if r.ttl < 0 { Err(EtcdError::LeaseGone { id }) } else { Ok(r.ttl) }
    }
}

#[cfg(test)]
#[path = "kv/tests.rs"]
mod tests;
