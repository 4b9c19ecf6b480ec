//! The S3 data plane of cutover.
//!
//! Applications speak S3 to the gateway with the gateway's own keys (SigV4,
//! header or presigned form). Each request is routed by its bucket's mode
//! (`active-passive`, `read-through`, `dual-write`) to the active backend
//! (and in dual-write to the other one too), re-signed for that backend, and
//! streamed both ways. Writes that one side could not take go to a durable
//! journal in the state file and are replayed in the background; writes taken
//! by a non-primary backend are recorded for the failback [`Gateway::resync`].
//!
//! The controller drives the active backend in process through
//! [`ActiveBackend`]; the standalone `cutover gateway` follows
//! `kv.active_backend` in the state file ([`follow_state`]).

pub mod active;
mod amz;
pub mod auth;
mod body;
mod checksum;
mod chunked;
mod deadline;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
mod keys;
pub mod metrics;
mod names;
mod reframe;
mod replay;
mod route;
mod s3xml;
mod server;
mod sign;
pub mod state;
#[cfg(test)]
mod testing;
pub mod tls;
mod upstream;
mod xmlbody;

pub use active::{ActiveBackend, follow_state};
pub use deadline::Deadlines;
pub use error::GatewayError;
pub use metrics::Metrics;
pub use replay::{ResyncReport, resync};
pub use server::{Gateway, GatewayOptions, LaneMarks};
pub use state::State;
