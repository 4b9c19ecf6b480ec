//! `POST /v1/evidence`: `{"vantage", "reports": [probe report, ...]}` from an
//! agent, checked completely before the controller sees any of it.

use std::time::{Duration, Instant};

use cutover_control::controller::Report;
use cutover_core::config::TokenRole;

use super::auth::Caller;
use super::body::RequestBody;
use super::error::ApiError;

#[derive(Debug, serde::Deserialize)]
pub struct EvidenceBody {
    pub vantage: String,
    pub reports: Vec<ReportBody>,
}

impl RequestBody for EvidenceBody {
    const LIMIT: usize = 1 << 20;
    const EMPTY_IS_OBJECT: bool = false;
}

/// One probe report, as `cutover agent` sends it.
#[derive(Debug, serde::Deserialize)]
pub struct ReportBody {
    backend: String,
    ok: bool,
    #[serde(default)]
    outcome: Option<String>,
    #[serde(default)]
    ops: Vec<OpBody>,
}

#[derive(Debug, serde::Deserialize)]
struct OpBody {
    #[serde(default)]
    ms: Option<f64>,
}

/// Bounds on what one evidence post may carry.
const MAX_REPORTS: usize = 256;
const MAX_OPS: usize = 16;
const MAX_OP_MS: f64 = 3_600_000.0;
const MAX_OUTCOME: usize = 128;

/// What is wrong with an evidence body (400).
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// Not a vantage name (or `local`).
    #[error("\"vantage\" must be 1 to 64 letters, digits, '.', '_' or '-', other than \"local\"")]
    Vantage,
    /// More than [`MAX_REPORTS`] reports.
    #[error("\"reports\" has {0} entries; at most {MAX_REPORTS}")]
    TooManyReports(usize),
    /// A report about a backend that is not configured.
    #[error("reports[{report}].backend: no backend named {name:?}")]
    UnknownBackend { report: usize, name: String },
    /// A report with more than [`MAX_OPS`] operations.
    #[error("reports[{report}].ops: {count} entries; at most {MAX_OPS}")]
    TooManyOps { report: usize, count: usize },
    /// An operation's duration that is negative, not finite or over an hour.
    #[error("reports[{report}].ops[{op}].ms: {ms} is not a duration from 0 to {MAX_OP_MS} ms")]
    Duration { report: usize, op: usize, ms: f64 },
    /// An outcome that is too long or not printable ASCII.
    #[error("reports[{report}].outcome: at most {MAX_OUTCOME} printable ASCII characters")]
    Outcome { report: usize },
}

/// At most 64 characters of a name from the body, for an error message.
fn shown(s: &str) -> String {
    s.chars().take(64).collect()
}

/// The vantage is well-formed and the caller may speak for it: an agent for
/// its own vantage, an admin for any configured one.
pub fn check_vantage(config: &cutover_core::Config, who: &Caller, vantage: &str) -> Result<(), ApiError> {
    if !cutover_core::config::valid_vantage(vantage) {
        return Err(EvidenceError::Vantage.into());
    }
    let allowed = match (&who.role, &who.vantage) {
        (TokenRole::Agent, Some(v)) => v == vantage,
        _ => config.api.iter().flat_map(|a| &a.tokens).any(|t| t.vantage.as_deref() == Some(vantage)),
    };
    if allowed {
        return Ok(());
    }
    let (actor, asked) = (who.name.clone(), shown(vantage));
    Err(match &who.vantage {
        Some(own) => ApiError::OtherVantage { actor, own: own.clone(), asked },
        None => ApiError::UnknownVantage { actor, asked },
    })
}

/// Checks every report against the configured backends and the bounds;
/// a report's start is `now` less the sum of its operations' durations.
pub fn check_reports(doc: &EvidenceBody, names: &[String], now: Instant) -> Result<Vec<Report>, EvidenceError> {
    if doc.reports.len() > MAX_REPORTS {
        return Err(EvidenceError::TooManyReports(doc.reports.len()));
    }
    let mut out = Vec::with_capacity(doc.reports.len());
    for (i, r) in doc.reports.iter().enumerate() {
        if !names.contains(&r.backend) {
            return Err(EvidenceError::UnknownBackend { report: i, name: shown(&r.backend) });
        }
        if r.ops.len() > MAX_OPS {
            return Err(EvidenceError::TooManyOps { report: i, count: r.ops.len() });
        }
        let mut ms = 0.0;
        for (j, op) in r.ops.iter().enumerate() {
            match op.ms {
                None => {}
                Some(v) if v.is_finite() && (0.0..=MAX_OP_MS).contains(&v) => ms += v,
                Some(v) => return Err(EvidenceError::Duration { report: i, op: j, ms: v }),
            }
        }
        let outcome = r.outcome.clone().unwrap_or_else(|| "unknown".into());
        if outcome.len() > MAX_OUTCOME || !outcome.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
            return Err(EvidenceError::Outcome { report: i });
        }
        let started = now.checked_sub(Duration::from_secs_f64(ms / 1000.0)).unwrap_or(now);
        out.push(Report { backend: r.backend.clone(), started, ok: r.ok, outcome });
    }
    Ok(out)
}
