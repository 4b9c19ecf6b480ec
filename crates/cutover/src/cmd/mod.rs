//! One module per command.

pub mod agent;
pub mod approve;
pub mod bench;
pub mod chaos;
pub mod config;
pub mod demo;
pub mod drill;
pub mod gateway;
pub mod ha;
pub mod operator;
pub mod policy;
pub mod probe;
pub mod run;
pub mod runbook;
pub mod state;
pub mod status;
pub mod sync;
pub mod validate;
