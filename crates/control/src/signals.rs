//! Optional signals that join the evidence (`[signals]`): a Prometheus
//! instant query and a provider status feed in the Atlassian Statuspage
//! format. Each is read on its own interval with its own timeout; a signal
//! that cannot be read is `unavailable`, never a blocker.
//!
//! A reading becomes the JSON document the policy sees under
//! `input.signals.<name>` ([`Snapshot::to_json`]) and the gauges
//! `cutover_signal_up`, `cutover_signal_value` and `cutover_signal_firing`
//! ([`Snapshot::event`], emitted through [`crate::telemetry`]).
//!
//! # Guarantees
//! - A read never takes longer than the signal's `timeout` (connect, request
//!   and body together); a timeout, a refused connection, an HTTP error, a
//!   Prometheus error or a document not in the documented format is
//!   `unavailable` with the error in words.
//! - `age_ms` is how old the reading is; [`spawn`] hands the same reading out
//!   again every [`REFRESH`] so that the age stays current between reads.
//!
//! # Caveats
//! - Prometheus values are the maximum over the series of an instant vector
//!   (or the scalar); an empty result, or one with only `NaN` values (e.g. a
//!   ratio over no requests), is `value: null` and not firing.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cutover_core::HttpUrl;
use cutover_core::Outcome;
use cutover_core::config::{PrometheusSignal, SignalsConfig, StatuspageSignal};
use cutover_core::duration::format_duration;
use cutover_s3::http::{Connector, classify, empty};
use cutover_s3::sigv4::uri_encode;
use http_body_util::{BodyExt, Limited};
use serde_json::{Value, json};

use crate::telemetry::Event;

/// How often [`spawn`] hands out the latest reading again, with its age updated.
pub const REFRESH: Duration = Duration::from_millis(500);
/// The largest answer read from a signal's service.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// Why a signal could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SignalError {
    /// No complete answer within the signal's timeout.
    #[error("no answer within {}", format_duration(*.0))]
    Timeout(Duration),
    /// Connecting or talking to the service failed (refused, reset, TLS, DNS).
    #[error("{outcome}: {detail}")]
    Transport { outcome: Outcome, detail: String },
    /// An HTTP status other than 200, with the start of the body.
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
    /// Prometheus answered `"status": "error"` (e.g. a query that does not parse).
    #[error("Prometheus {error_type}: {error}")]
    Query { error_type: String, error: String },
    /// The answer is not in the documented format.
    #[error("unexpected answer: {0}")]
    Format(String),
}

/// A Statuspage `status.indicator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Indicator {
    None,
    Minor,
    Major,
    Critical,
}

impl Indicator {
    pub fn as_str(self) -> &'static str {
        match self {
            Indicator::None => "none",
            Indicator::Minor => "minor",
            Indicator::Major => "major",
            Indicator::Critical => "critical",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => Indicator::None,
            "minor" => Indicator::Minor,
            "major" => Indicator::Major,
            "critical" => Indicator::Critical,
            _ => return None,
        })
    }
}

/// One successful reading.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// The query's value: the maximum over its series; `None` when empty.
    Prometheus { value: Option<f64> },
    /// The provider's own account of its health.
    Statuspage { indicator: Indicator, description: String },
}

/// A configured signal.
#[derive(Debug, Clone)]
pub enum Source {
    Prometheus(PrometheusSignal),
    Statuspage(StatuspageSignal),
}

impl Source {
    /// Every signal in the configuration.
    pub fn all(config: &SignalsConfig) -> Vec<Source> {
        let p = config.prometheus.clone().map(Source::Prometheus);
        let s = config.statuspage.clone().map(Source::Statuspage);
        p.into_iter().chain(s).collect()
    }

    /// The name under `input.signals` and in the metrics' `signal` label.
    pub fn name(&self) -> &'static str {
        match self {
            Source::Prometheus(_) => "prometheus",
            Source::Statuspage(_) => "statuspage",
        }
    }

    pub fn interval(&self) -> Duration {
        match self {
            Source::Prometheus(p) => p.interval,
            Source::Statuspage(s) => s.interval,
        }
    }

    pub fn timeout(&self) -> Duration {
        match self {
            Source::Prometheus(p) => p.timeout,
            Source::Statuspage(s) => s.timeout,
        }
    }

    /// The backend the signal speaks about.
    pub fn backend(&self) -> &str {
        match self {
            Source::Prometheus(p) => &p.backend,
            Source::Statuspage(s) => &s.backend,
        }
    }

    /// Reads the signal once, within its timeout.
    pub async fn read(&self) -> Result<Reading, SignalError> {
        match self {
            Source::Prometheus(p) => {
                let target = format!(
                    "{}/api/v1/query?query={}",
                    p.url.path().trim_end_matches('/'),
                    uri_encode(&p.query, false)
                );
                let (status, body) = get(&p.url, &target, p.timeout, p.ca_file.as_deref()).await?;
                parse_prometheus(status, &body).map(|value| Reading::Prometheus { value })
            }
            Source::Statuspage(s) => {
                let (status, body) = get(&s.url, &s.url.target, s.timeout, s.ca_file.as_deref()).await?;
                if status != 200 {
                    return Err(status_error(status, &body));
                }
                let (indicator, description) = parse_statuspage(&body)?;
                Ok(Reading::Statuspage { indicator, description })
            }
        }
    }
}

/// The latest reading of one signal.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub source: Source,
    /// When the latest read ended, and what it gave; `None` before the first.
    pub latest: Option<(Instant, Result<Reading, SignalError>)>,
}

impl Snapshot {
    pub fn new(source: Source) -> Self {
        Self { source, latest: None }
    }

    pub fn name(&self) -> &'static str {
        self.source.name()
    }

    /// True when the latest read succeeded.
    pub fn up(&self) -> bool {
        matches!(self.latest, Some((_, Ok(_))))
    }

    /// The value (a Prometheus value, or the Statuspage indicator as 0 to 3).
    pub fn value(&self) -> Option<f64> {
        match &self.latest {
            Some((_, Ok(Reading::Prometheus { value }))) => *value,
            Some((_, Ok(Reading::Statuspage { indicator, .. }))) => Some(*indicator as u8 as f64),
            _ => None,
        }
    }

    /// Firing: a Prometheus value above the threshold, or a status page that
    /// reports any incident (an indicator other than `none`). `None` while
    /// unavailable.
    pub fn firing(&self) -> Option<bool> {
        match (&self.latest, &self.source) {
            (Some((_, Ok(Reading::Prometheus { value }))), Source::Prometheus(p)) => {
                Some(value.is_some_and(|v| v > p.threshold))
            }
            (Some((_, Ok(Reading::Statuspage { indicator, .. }))), _) => Some(*indicator != Indicator::None),
            _ => None,
        }
    }

    /// The document under `input.signals.<name>` (see docs/policy.md).
    pub fn to_json(&self, now: Instant) -> Value {
        let Some((at, result)) = &self.latest else {
            return json!({"status": "unavailable", "error": "not read yet", "backend": self.source.backend(), "age_ms": null});
        };
        let age_ms = now.saturating_duration_since(*at).as_millis() as u64;
        let backend = self.source.backend();
        match (&self.source, result) {
            (Source::Prometheus(p), Ok(_)) => json!({
                "status": "ok",
                "value": self.value(),
                "threshold": p.threshold,
                "firing": self.firing(),
                "backend": backend,
                "age_ms": age_ms,
            }),
            (Source::Prometheus(p), Err(e)) => json!({
                "status": "unavailable",
                "error": e.to_string(),
                "value": null,
                "threshold": p.threshold,
                "firing": null,
                "backend": backend,
                "age_ms": age_ms,
            }),
            (Source::Statuspage(_), Ok(Reading::Statuspage { indicator, description })) => json!({
                "status": "ok",
                "indicator": indicator.as_str(),
                "description": description,
                "backend": backend,
                "age_ms": age_ms,
            }),
            (Source::Statuspage(_), Ok(other)) => unreachable!("a status page reads as a status, not {other:?}"),
            (Source::Statuspage(_), Err(e)) => json!({
                "status": "unavailable",
                "error": e.to_string(),
                "indicator": null,
                "description": null,
                "backend": backend,
                "age_ms": age_ms,
            }),
        }
    }

    /// The reading as a telemetry event: it sets the signal's gauges, up
    /// (1 or 0), value and firing (NaN while unavailable or without a value).
    pub fn event(&self) -> Event {
        Event::SignalRead { name: self.name().to_string(), up: self.up(), value: self.value(), firing: self.firing() }
    }
}

/// Reads every configured signal on its own interval, each in its own task,
/// and hands every reading to `publish`, then the same reading again every
/// [`REFRESH`] until the next one (so that its age stays current).
///
/// # Assumptions
/// Runs inside a Tokio runtime with the time driver.
pub fn spawn<F>(config: &SignalsConfig, publish: F) -> Vec<tokio::task::JoinHandle<()>>
where
    F: Fn(&Snapshot) + Send + Sync + 'static,
{
    let publish = Arc::new(publish);
    Source::all(config).into_iter().map(|source| tokio::spawn(watch(source, publish.clone()))).collect()
}

async fn watch<F: Fn(&Snapshot) + Send + Sync + 'static>(source: Source, publish: Arc<F>) {
    let mut snapshot = Snapshot::new(source.clone());
    let mut refresh = tokio::time::interval_at(tokio::time::Instant::now() + REFRESH, REFRESH);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let due = tokio::time::Instant::now() + source.interval();
        let read = source.read();
        tokio::pin!(read);
        let result = loop {
            tokio::select! {
                r = &mut read => break r,
                _ = refresh.tick() => if snapshot.latest.is_some() { publish(&snapshot) },
            }
        };
        if let Err(e) = &result {
            tracing::warn!(signal = source.name(), error = %e, "signal unavailable");
        }
        snapshot.latest = Some((Instant::now(), result));
        publish(&snapshot);
        refresh.reset();
        let wait = tokio::time::sleep_until(due);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                _ = &mut wait => break,
                _ = refresh.tick() => publish(&snapshot),
            }
        }
    }
}

/// One GET within `timeout`: the status and the body. An `https` URL is
/// trusted through the webpki roots plus `ca_file` ([`cutover_s3::tls`]).
async fn get(
    url: &HttpUrl,
    target: &str,
    timeout: Duration,
    ca_file: Option<&Path>,
) -> Result<(u16, Bytes), SignalError> {
    let exchange = async {
        let connector = Connector::with_ca_file(url.endpoint.clone(), timeout, false, ca_file);
        let mut sender = connector
            .checkout(&url.endpoint.host)
            .await
            .map_err(|e| SignalError::Transport { outcome: e.outcome, detail: e.detail })?;
        let request = http::Request::get(target)
            .header(http::header::HOST, url.endpoint.authority())
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::USER_AGENT, concat!("cutover/", env!("CARGO_PKG_VERSION")))
            .body(empty())
            .map_err(|e| SignalError::Format(format!("cannot build a request for {target:?}: {e}")))?;
        let response = sender.send_request(request).await.map_err(|e| {
            let t = classify(&e);
            SignalError::Transport { outcome: t.outcome, detail: t.detail }
        })?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| SignalError::Format(format!("reading the answer: {e}")))?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| SignalError::Timeout(timeout))?
}

fn status_error(status: u16, body: &[u8]) -> SignalError {
    let text = String::from_utf8_lossy(body);
    let mut short: String = text.trim().chars().take(200).collect();
    if text.trim().chars().count() > 200 {
        short.push('…');
    }
    SignalError::Status { status, body: short }
}

/// Parses a Prometheus instant-query answer (`/api/v1/query`): the maximum
/// over the result's series (or the scalar), ignoring `NaN`; `None` when
/// there is no value.
pub fn parse_prometheus(status: u16, body: &[u8]) -> Result<Option<f64>, SignalError> {
    let doc: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) if status != 200 => return Err(status_error(status, body)),
        Err(e) => return Err(SignalError::Format(format!("not JSON: {e}"))),
    };
    if doc["status"] == "error" {
        return Err(SignalError::Query {
            error_type: doc["errorType"].as_str().unwrap_or("error").to_string(),
            error: doc["error"].as_str().unwrap_or("").to_string(),
        });
    }
    if status != 200 {
        return Err(status_error(status, body));
    }
    if doc["status"] != "success" {
        return Err(SignalError::Format(format!("\"status\" is {}, not \"success\"", doc["status"])));
    }
    let data = &doc["data"];
    let samples: Vec<&Value> = match data["resultType"].as_str() {
        Some("vector") => data["result"]
            .as_array()
            .ok_or_else(|| SignalError::Format("data.result is not an array".into()))?
            .iter()
            .map(|series| &series["value"])
            .collect(),
        Some("scalar") => vec![&data["result"]],
        Some(other) => {
            return Err(SignalError::Format(format!(
                "the query gives a {other}; use an expression that gives an instant vector or a scalar"
            )));
        }
        None => return Err(SignalError::Format("data.resultType is missing".into())),
    };
    let mut max: Option<f64> = None;
    for sample in samples {
        let text = sample[1]
            .as_str()
            .ok_or_else(|| SignalError::Format(format!("a sample is not [time, \"value\"]: {sample}")))?;
        let v: f64 = text.parse().map_err(|_| SignalError::Format(format!("{text:?} is not a number")))?;
        if !v.is_nan() {
            max = Some(max.map_or(v, |m| m.max(v)));
        }
    }
    Ok(max)
}

/// Parses a Statuspage `/api/v2/status.json`: `status.indicator` and
/// `status.description`.
pub fn parse_statuspage(body: &[u8]) -> Result<(Indicator, String), SignalError> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| SignalError::Format(format!("not JSON: {e}")))?;
    let status = &doc["status"];
    let indicator =
        status["indicator"].as_str().ok_or_else(|| SignalError::Format("status.indicator is missing".into()))?;
    let indicator = Indicator::parse(indicator).ok_or_else(|| {
        SignalError::Format(format!("status.indicator {indicator:?} is not none, minor, major or critical"))
    })?;
    let description = status["description"].as_str().unwrap_or_default().to_string();
    Ok((indicator, description))
}

#[cfg(test)]
mod tests;
