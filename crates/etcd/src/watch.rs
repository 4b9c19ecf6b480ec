//! Watches: `POST /v3/watch` with a create request; etcd answers with a
//! stream of JSON objects, one per line (`{"result": WatchResponse}`), on a
//! connection held open until either side closes it.
//!
//! # Caveats
//! A paused or cut-off etcd member leaves the stream silent rather than
//! closed: users that must notice (the active backend's follower) also
//! read the key periodically.

use bytes::{Buf, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;

use crate::client::{Client, error_of};
use crate::error::{EtcdError, TransportError};
use crate::kv::{Header, KeyValue, Streamed, enc, i64s};

/// What happened to a key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum EventType {
    #[default]
    #[serde(rename = "PUT")]
    Put,
    #[serde(rename = "DELETE")]
    Delete,
}

/// One change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Event {
    #[serde(rename = "type", default)]
    pub kind: EventType,
    #[serde(default)]
    pub kv: KeyValue,
    pub prev_kv: Option<KeyValue>,
}

/// One message of a watch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct WatchResponse {
    #[serde(default)]
    pub header: Header,
    #[serde(default)]
    pub created: bool,
    #[serde(default)]
    pub canceled: bool,
    #[serde(default, with = "i64s")]
    pub compact_revision: i64,
    #[serde(default)]
    pub cancel_reason: String,
    #[serde(default)]
    pub events: Vec<Event>,
}

/// An open watch.
#[derive(Debug)]
pub struct WatchStream {
    endpoint: String,
    body: Incoming,
    buf: BytesMut,
}

impl Client {
    /// Watches `key` (or `[key, range_end)` when `range_end` is not empty)
    /// from `start_revision` (0: from now). Returns once etcd confirmed the
    /// watch.
    pub async fn watch(&self, key: &[u8], range_end: &[u8], start_revision: i64) -> Result<WatchStream, EtcdError> {
        let mut req = json!({"key": enc(key), "start_revision": start_revision.to_string(), "prev_kv": true});
        if !range_end.is_empty() {
            req["range_end"] = json!(enc(range_end));
        }
        let body = bytes::Bytes::from(json!({"create_request": req}).to_string());
        let n = self.endpoint_count();
        let first = self.preferred();
        let mut last = None;
        for k in 0..n {
            let i = (first + k) % n;
            match self.open_watch(i, body.clone()).await {
                Ok(w) => return Ok(w),
                Err(e) if e.try_elsewhere() => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(EtcdError::Unavailable { tried: n, last: Box::new(last.expect("at least one endpoint")) })
    }

    async fn open_watch(&self, i: usize, body: bytes::Bytes) -> Result<WatchStream, EtcdError> {
        let token = self.token(i).await?;
        let endpoint = self.endpoint(i).url.clone();
        let (status, incoming) = self.open(i, "/v3/watch", body, token.as_deref()).await?;
        let mut w = WatchStream { endpoint: endpoint.clone(), body: incoming, buf: BytesMut::new() };
        if status != 200 {
            let bytes = w.body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            let (code, message) = error_of(&bytes);
            return Err(EtcdError::Status { endpoint, path: "/v3/watch", http: status, code, message });
        }
        let t = self.request_timeout();
        match tokio::time::timeout(t, w.next()).await {
            Err(_) => Err(EtcdError::Transport { endpoint, source: TransportError::Timeout(t) }),
            Ok(Ok(Some(first))) if first.created => Ok(w),
            Ok(Ok(Some(other))) => Err(EtcdError::WatchCanceled {
                reason: format!("the watch was not created: {}", other.cancel_reason),
                compact_revision: other.compact_revision,
            }),
            Ok(Ok(None)) => {
                Err(EtcdError::WatchCanceled { reason: "the stream ended at once".into(), compact_revision: 0 })
            }
            Ok(Err(e)) => Err(e),
        }
    }
}

impl WatchStream {
    /// The next message; `None` when etcd closed the stream. A canceled
    /// watch is [`EtcdError::WatchCanceled`].
    pub async fn next(&mut self) -> Result<Option<WatchResponse>, EtcdError> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line = self.buf.split_to(pos + 1);
                let line = line.strip_suffix(b"\n").unwrap_or(&line);
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return self.parse(line).map(Some);
            }
            match self.body.frame().await {
                None => {
                    if self.buf.iter().all(u8::is_ascii_whitespace) {
                        return Ok(None);
                    }
                    let rest = self.buf.split();
                    return self.parse(&rest).map(Some);
                }
                Some(Err(e)) => {
                    return Err(EtcdError::Transport {
                        endpoint: self.endpoint.clone(),
                        source: TransportError::Http(e),
                    });
                }
                Some(Ok(frame)) => {
                    if let Ok(mut data) = frame.into_data() {
                        while data.has_remaining() {
                            let chunk = data.chunk();
                            self.buf.extend_from_slice(chunk);
                            let n = chunk.len();
                            data.advance(n);
                        }
                    }
                }
            }
        }
    }

    fn parse(&self, line: &[u8]) -> Result<WatchResponse, EtcdError> {
        let msg: Streamed<WatchResponse> = crate::client::decode(&self.endpoint, "/v3/watch", line)?;
        if let Some(e) = msg.error {
            let (_, message) = error_of(e.to_string().as_bytes());
            return Err(EtcdError::WatchCanceled { reason: message, compact_revision: 0 });
        }
        let r = msg.result.unwrap_or_default();
        if r.canceled {
            let reason = if r.cancel_reason.is_empty() { "canceled by etcd".to_string() } else { r.cancel_reason };
            return Err(EtcdError::WatchCanceled { reason, compact_revision: r.compact_revision });
        }
        Ok(r)
    }
}
