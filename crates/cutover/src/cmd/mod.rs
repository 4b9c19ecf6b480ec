//! One module per command.

pub mod config;
pub mod gateway;
pub mod probe;
pub mod validate;
