//! One module per command.

pub mod config;
pub mod demo;
pub mod probe;
pub mod validate;
