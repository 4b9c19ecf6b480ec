//! cutover's control loop, one module per stage: detect (the health state
//! machine), verify (quorum over vantages, optional signals), decide (a Rego
//! policy), and the telemetry of what happens (typed events, their metrics,
//! log lines and timeline entries).

pub mod clock;
pub mod controller;
pub mod health;
pub mod metrics;
pub mod policy;
pub mod signals;
pub mod telemetry;
