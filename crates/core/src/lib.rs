//! Domain types and configuration of cutover. Nothing in this crate performs I/O,
//! with two exceptions in validation: environment variables are looked up (to
//! check that credentials are set) through a caller-supplied function, and
//! `[ha] node` defaults to the host name, read from `/proc/sys/kernel/hostname`.

pub mod config;
pub mod cron;
pub mod domain;
pub mod duration;
pub mod endpoint;
#[doc(hidden)]
pub mod fixtures;
pub mod outcome;
pub mod secret;
pub mod time;

pub use config::{Config, Problem};
pub use duration::{DurationError, parse_duration};
pub use endpoint::{Endpoint, EndpointError, HttpUrl};
pub use outcome::Outcome;
pub use secret::Secret;
