//! cutover's control loop, one module per stage: detect (the health state
//! machine), verify (quorum over vantages, optional signals), decide (a Rego
//! policy).

pub mod clock;
pub mod controller;
pub mod health;
pub mod metrics;
pub mod policy;
pub mod signals;
