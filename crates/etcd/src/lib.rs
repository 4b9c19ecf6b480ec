//! cutover's high availability on etcd.
//!
//! - [`Client`]: a small etcd v3 client over etcd's JSON gateway (HTTP/1.1,
//!   `POST /v3/...`), without gRPC: ranges, puts, transactions, leases,
//!   streamed watches, authentication, TLS, fail-over across endpoints.
//! - [`election::Election`]: leader election on a lease, with the leader
//!   key's create revision as the fencing token; node registration.
//! - [`registry`]: node and gateway registration and the read of them all.
//! - [`store::EtcdStore`]: the `cutover_store::Store` interface on etcd,
//!   every write one transaction guarded on the fence.

pub mod active;
pub mod client;
pub mod election;
pub mod error;
pub mod kv;
pub mod registry;
pub mod store;
pub mod tls;
pub mod watch;

pub use active::{ActiveFollower, Contact};
pub use client::{Client, ClientOptions};
pub use election::{Election, ElectionConfig, ElectionStatus, LeaderInfo, Role};
pub use error::{EtcdError, TransportError};
pub use kv::{Cmp, Compare, KeyValue, Op, RangeResponse, TxnResponse};
pub use store::EtcdStore;

pub use tls::{TlsError, TlsFiles};
pub use watch::{Event, EventType, WatchResponse, WatchStream};

/// The end of the range of every key starting with `prefix` (etcd's
/// `range_end`: the prefix with its last byte incremented).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0] // every key
}
