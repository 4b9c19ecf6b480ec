//! A TCP/HTTP fault-injecting proxy for drills (`cutover chaos-proxy`, and
//! in-process through [`Proxy`]). It sits between S3 clients and one
//! backend and relays bytes; faults can be switched while it runs.
//!
//! ```no_run
//! use cutover_chaos::{Faults, Proxy};
//! let proxy = Proxy::start("127.0.0.1:0".parse().unwrap(), "127.0.0.1:3900").unwrap();
//! // Point the client at proxy.addr(), then:
//! proxy.set(Faults { slowdown_rate: 0.3, latency_ms: 50, ..Faults::none() }).unwrap();
//! proxy.set(Faults::none()).unwrap();
//! proxy.shutdown();
//! ```
//!
//! # Faults
//!
//! - `latency_ms` + `jitter_ms`: every piece of what the upstream sends back
//!   is held `latency_ms` plus a uniform `0..=jitter_ms` after it arrived,
//!   order kept. So the first byte of every answer comes at least
//!   `latency_ms` later, and a long body is shifted in time, not slowed.
//!   The client-to-upstream direction is not delayed.
//! - `blackhole`: connections are accepted and what clients send is read and
//!   dropped; nothing is forwarded and nothing is answered, so clients wait
//!   until their own timeout.
//! - `reset`: connections are closed with a TCP RST (`SO_LINGER` 0).
//! - `refuse`: the listener is closed, so connects get `ECONNREFUSED`; it is
//!   bound again (same address, `SO_REUSEADDR`) when `refuse` is cleared.
//! - `slowdown_rate`: each HTTP request is, with this probability, answered
//!   by the proxy itself with `503 Slow Down` and the S3 error body
//!   `<Error><Code>SlowDown</Code><Message>Please reduce your request
//!   rate.</Message></Error>` instead of being forwarded. Its body is read
//!   and dropped first, so the keep-alive connection stays usable; a request
//!   with `Connection: close` or `Expect: 100-continue` gets the 503 with
//!   `Connection: close`.
//! - `bandwidth_bps`: each direction is a link of this many bytes per second
//!   shared by all connections (no burst credit).
//!
//! Faults combine. For a request or connection the order is: `refuse` (no
//! connection reaches the proxy), then `reset`, then `blackhole`, then
//! `slowdown`; `latency` and `bandwidth` apply to whatever is relayed,
//! including the proxy's own 503 answers. [`Faults::none`] clears all.
//!
//! # Existing connections
//!
//! Requests are framed (HTTP/1.1 head, `Content-Length` or `chunked`
//! body), so faults act per request, also on keep-alive connections opened
//! before the change:
//!
//! - `reset`, `blackhole` and `slowdown` are decided when a request's head
//!   has arrived, with the faults in force at that moment: a pooled
//!   connection is reset (or blackholed: the upstream side is closed and the
//!   client side is never answered again, even after the fault is cleared)
//!   at its next request. A request already forwarded finishes normally,
//!   and so does the transfer of its answer.
//! - `refuse` only affects new connections: established ones go on working.
//! - `latency` applies to each piece from the moment it arrives, and
//!   `bandwidth` to each write, on every connection.
//!
//! A connection whose bytes do not parse as HTTP/1.x (TLS to an `https`
//! upstream, another protocol, a head over 64 KiB) is relayed as plain
//! bytes from that point: `reset` and `blackhole` then act only on new
//! connections, `slowdown` not at all, `latency` and `bandwidth` as usual.
//! HTTP pipelining (a request sent before the previous answer arrived) is
//! not supported together with `slowdown`: the proxy's 503 could overtake
//! the upstream's earlier answer. S3 clients do not pipeline.
//!
//! # Control API
//!
//! [`Proxy::serve_control`] (`--control ADDR`): `GET /faults` → the faults in
//! force as JSON; `PUT /faults` with a JSON object like
//! `{"latency_ms": 200, "jitter_ms": 50, "slowdown_rate": 0.3,
//! "bandwidth_bps": 1000000}` replaces them (absent keys are off, unknown keys
//! are a 400 naming them); `PATCH /faults` changes only the keys given;
//! `DELETE /faults` clears all. Each answers with the faults now in force,
//! once the listener reflects `refuse`. `GET /metrics` → the counters in the
//! Prometheus text format (see [`metrics`]); `GET /healthz` → `ok`. There is
//! no authentication: bind it to loopback.

mod conn;
mod control;
mod error;
mod faults;
mod http1;
pub mod metrics;
mod pace;
mod proxy;

pub use conn::SLOWDOWN_BODY;
pub use error::ChaosError;
pub use faults::{FaultKind, Faults};
pub use metrics::Counters;
pub use proxy::Proxy;
