//! The accept loop shared by every listener of cutover (the S3 gateway, the
//! API, the replication metrics, the chaos proxy's control API): a cap on
//! concurrent connections (more are closed at once and reported), a backoff
//! after accept errors (out of file descriptors) instead of a spin,
//! `TCP_NODELAY`, HTTP/1.1 with a header-read timeout that also closes idle
//! kept-alive connections, and, for [`serve_until`], a graceful drain.

mod accept;
mod drain;
mod http;

pub use accept::{Limits, accept_loop};
pub use drain::{Stopping, serve_until};
pub use http::{http1, serve_http1};
