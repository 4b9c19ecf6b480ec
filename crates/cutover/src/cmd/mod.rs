//! One module per command.

pub mod config;
pub mod probe;
pub mod sync;
pub mod validate;
