//! Runbooks as code: [`runbook`] parses and checks a runbook file without
//! side effects, [`engine`] runs one with a write-ahead journal (resume after
//! a crash, undo in reverse on failure), and [`actuators`] do the work of
//! each step.

pub mod actuators;
pub mod engine;
pub mod runbook;
