//! One module per command.

pub mod agent;
pub mod bench;
pub mod config;
pub mod demo;
pub mod gateway;
pub mod policy;
pub mod probe;
pub mod run;
pub mod state;
pub mod sync;
pub mod validate;
