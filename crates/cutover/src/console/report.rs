//! `cutover incidents report ID [--format md|html]`: the post-incident
//! report, from the state store: a summary of the times, the timeline, the
//! evidence, the decision and who approved it, every step with its
//! result, and the chart. The HTML form is one self-contained file (its
//! style inline, the chart inline SVG, no script, nothing fetched).
//!
//! # Caveats
//! - The probe lines and the `suspect` marker come from what the
//!   controller stored on its node (probe samples kept 7 days, health
//!   changes kept): a report made on another node, or later than that,
//!   has the other markers without them.
//! - Client impact is what the gateway inside `cutover run` on this node
//!   answered (its answers per second, stored node-local, kept 7 days): a
//!   gateway in another process or on another host is not counted, and the
//!   report says "not recorded" rather than "none" when nothing was stored.

use std::time::{Duration, SystemTime};

use cutover_core::domain::{RunKind, StepPhase, StepState};
use cutover_core::time::parse_rfc3339;
use cutover_store::{ClientCount, Incident, RunRecord, StepRecord, Store, StoreError, TimelineEvent};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde_json::Value;

use super::chart::{ChartInput, draw, health_window, probe_window};

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Html,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "md" | "markdown" => Ok(Self::Markdown),
            "html" => Ok(Self::Html),
            other => Err(format!("unknown report format {other:?} (md or html)")),
        }
    }
}

/// An incident's records, read from the store.
#[derive(Debug)]
pub struct Report {
    pub incident: Incident,
    pub timeline: Vec<TimelineEvent>,
    pub runs: Vec<(RunRecord, Vec<StepRecord>)>,
    /// The evidence the latest decision was made on.
    pub evidence: Option<Value>,
    /// The local probes around the incident, by backend.
    pub probes: Vec<(String, Vec<super::samples::Probe>)>,
    /// The health changes before the incident (for the `suspect` marker).
    pub health: Vec<super::samples::HealthChange>,
    /// The gateway's answers per second from the incident's opening to its
    /// close (or now).
    pub clients: Vec<ClientCount>,
}

/// The times of the summary.
#[derive(Debug, Default, PartialEq)]
pub struct Summary {
    /// The incident's opening to the decision.
    pub to_decide: Option<Duration>,
    /// The incident's opening to the validated switch.
    pub rto: Option<Duration>,
    /// The fallback run, start to end.
    pub fallback: Option<Duration>,
    /// Who approved (or rejected), with the comment.
    pub verdicts: Vec<String>,
    /// What the fallback's `sync.resync` says of the writes made during the
    /// outage.
    pub writes_lost: String,
    /// The client requests the gateway answered during the incident, and
    /// how many failed.
    pub client_impact: String,
}

impl Report {
    /// Reads incident `id`; `None` when there is no such incident.
    pub fn read(store: &dyn Store, id: &str) -> Result<Option<Self>, StoreError> {
        let Some(incident) = store.incident(id)? else { return Ok(None) };
        let timeline = store.timeline(id)?;
        let mut runs = Vec::new();
        for r in store.runs_for(id)? {
            let steps = store.steps(r.id)?;
            runs.push((r, steps));
        }
        let evidence = store.decision_input(id)?.map(|i| i["evidence"].clone());
        let (from, to) = probe_window(&incident);
        let probes = super::samples::series(store.probe_samples(from, to)?);
        let (from, to) = health_window(&incident);
        let health = super::samples::health_changes(store.health_changes(from, to)?);
        let (from, to) = impact_window(&incident);
        let clients = store.client_counts(from, to)?;
        Ok(Some(Self { incident, timeline, runs, evidence, probes, health, clients }))
    }

    pub fn summary(&self) -> Summary {
        let at = |s: &str| parse_rfc3339(s);
        let opened = at(&self.incident.opened_at);
        let between = |a: Option<SystemTime>, b: Option<SystemTime>| b?.duration_since(a?).ok();
        let decided = self.timeline.iter().find(|e| e.kind == "decision").and_then(|e| at(&e.at));
        let validated = self
            .runs
            .iter()
            .filter(|(r, _)| r.kind == RunKind::Failover)
            .flat_map(|(_, s)| s.iter())
            .find(|s| s.uses == "validate" && s.phase == StepPhase::Do && s.state == StepState::Ok)
            .and_then(|s| s.ended_at.as_deref().and_then(at));
        let fallback = self
            .runs
            .iter()
            .find(|(r, _)| r.kind == RunKind::Fallback)
            .and_then(|(r, _)| between(at(&r.started_at), r.ended_at.as_deref().and_then(at)));
        let verdicts = self
            .timeline
            .iter()
            .filter(|e| e.kind == "approval")
            .map(|e| {
                format!(
                    "{} by {} at {}: {}",
                    e.detail["verdict"].as_str().unwrap_or("?"),
                    e.detail["by"].as_str().unwrap_or("?"),
                    e.at,
                    e.detail["comment"].as_str().unwrap_or("")
                )
            })
            .collect();
        let writes_lost = writes_lost(self.runs.iter().find(|(r, _)| r.kind == RunKind::Fallback).map(|(_, s)| &s[..]));
        Summary {
            to_decide: between(opened, decided),
            rto: between(opened, validated),
            fallback,
            verdicts,
            writes_lost,
            client_impact: client_impact(&self.clients),
        }
    }

    fn chart(&self) -> String {
        draw(&ChartInput::from_parts(&self.incident, &self.timeline, &self.runs, self.probes.clone(), &self.health))
    }

    fn policy_sha256(&self) -> &str {
        let d = self.timeline.iter().rev().find(|e| e.kind == "decision");
        d.and_then(|e| e.detail["policy_sha256"].as_str()).unwrap_or("—")
    }

    /// The report in `format`.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Markdown => self.markdown(),
            Format::Html => self.html().into_string(),
        }
    }

    fn markdown(&self) -> String {
        let i = &self.incident;
        let s = self.summary();
        let mut out = format!("# Incident {} ({})\n\n", i.id, i.backend);
        out.push_str(&format!(
            "State **{}**, opened {}{}.\n\n",
            i.state,
            i.opened_at,
            i.closed_at.as_ref().map(|c| format!(", closed {c}")).unwrap_or_default()
        ));
        out.push_str("## Summary\n\n");
        for (k, v) in summary_rows(&s) {
            out.push_str(&format!("- {k}: {v}\n"));
        }
        out.push_str("\n## Decision\n\n");
        out.push_str(&format!(
            "{} {}: {}\n\npolicy sha256 `{}`\n\n",
            i.decision["action"].as_str().unwrap_or("none"),
            i.decision["target"].as_str().unwrap_or(""),
            md(i.decision["reason"].as_str().unwrap_or("")),
            self.policy_sha256()
        ));
        for v in &s.verdicts {
            out.push_str(&format!("- {}\n", md(v)));
        }
        out.push_str("\n## Evidence\n\n");
        for e in self.timeline.iter().filter(|e| e.kind == "incident.opened") {
            out.push_str(&format!("- at opening: `{}`\n", e.detail));
        }
        if let Some(ev) = &self.evidence {
            out.push_str(&format!("- at the decision: `{}`\n", md(&ev.to_string())));
        }
        out.push_str("\n## Timeline\n\n| at | what | who | detail |\n|---|---|---|---|\n");
        for e in &self.timeline {
            out.push_str(&format!("| {} | {} | {} | `{}` |\n", e.at, e.kind, who(&e.detail), md(&compact(&e.detail))));
        }
        out.push_str("\n## Runbook steps\n");
        for (r, steps) in &self.runs {
            out.push_str(&format!(
                "\n### {} run {}: {} ({} → {}, by {})\n\n| # | phase | step | uses | state | attempts | duration | result |\n|---|---|---|---|---|---|---|---|\n",
                r.kind, r.id, r.state, r.source, r.target, r.actor
            ));
            for st in steps {
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} | {} | `{}` |\n",
                    st.idx + 1,
                    st.phase,
                    md(&st.name),
                    st.uses,
                    st.state,
                    st.attempts,
                    step_duration(st),
                    md(&compact(&st.result))
                ));
            }
        }
        out.push_str("\n## Chart\n\nThe HTML report (`--format html`) has the chart; its markers:\n\n");
        let chart =
            ChartInput::from_parts(&self.incident, &self.timeline, &self.runs, self.probes.clone(), &self.health);
        for (label, at) in &chart.markers {
            out.push_str(&format!("- {label}: {}\n", cutover_core::time::rfc3339(*at)));
        }
        out
    }

    fn html(&self) -> Markup {
        let i = &self.incident;
        let s = self.summary();
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    title { "Incident " (i.id) }
                    style { (PreEscaped(STYLE)) }
                }
                body {
                    h1 { "Incident " (i.id) " (" (i.backend) ")" }
                    p { "State " strong { (i.state.as_str()) } ", opened " (i.opened_at) @if let Some(c) = &i.closed_at { ", closed " (c) } "." }
                    h2 { "Summary" }
                    table { @for (k, v) in summary_rows(&s) { tr { th { (k) } td { (v) } } } }
                    h2 { "Decision" }
                    p { strong { (i.decision["action"].as_str().unwrap_or("none")) } " " (i.decision["target"].as_str().unwrap_or("")) ": " (i.decision["reason"].as_str().unwrap_or("")) }
                    p { "policy sha256 " code { (self.policy_sha256()) } }
                    ul { @for v in &s.verdicts { li { (v) } } }
                    h2 { "Chart" }
                    (PreEscaped(self.chart()))
                    h2 { "Evidence" }
                    ul {
                        @for e in self.timeline.iter().filter(|e| e.kind == "incident.opened") { li { "at opening: " code { (e.detail.to_string()) } } }
                        @if let Some(ev) = &self.evidence { li { "at the decision: " code { (ev.to_string()) } } }
                    }
                    h2 { "Timeline" }
                    table {
                        tr { th { "at" } th { "what" } th { "who" } th { "detail" } }
                        @for e in &self.timeline { tr { td { (e.at) } td { (e.kind) } td { (who(&e.detail)) } td { code { (compact(&e.detail)) } } } }
                    }
                    h2 { "Runbook steps" }
                    @for (r, steps) in &self.runs {
                        h3 { (r.kind.as_str()) " run " (r.id) ": " (r.state.as_str()) " (" (r.source) " → " (r.target) ", by " (r.actor) ")" }
                        table {
                            tr { th { "#" } th { "phase" } th { "step" } th { "uses" } th { "state" } th { "attempts" } th { "duration" } th { "result" } }
                            @for st in steps {
                                tr { td { (st.idx + 1) } td { (st.phase.as_str()) } td { (st.name) } td { (st.uses) } td { (st.state.as_str()) } td { (st.attempts) } td { (step_duration(st)) } td { code { (compact(&st.result)) } } }
                            }
                        }
                    }
                }
            }
        }
    }
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2rem;color:#1d1d1f}\
table{border-collapse:collapse;margin:.5rem 0 1rem}th,td{border:1px solid #ddd;padding:.2rem .5rem;text-align:left;vertical-align:top}\
th{background:#f5f5f7}code{background:#f5f5f7;padding:0 .2rem}svg{max-width:100%;height:auto}";

fn summary_rows(s: &Summary) -> Vec<(&'static str, String)> {
    let d = |d: Option<Duration>| d.map(|d| format!("{:.1} s", d.as_secs_f64())).unwrap_or_else(|| "—".into());
    vec![
        ("time to decide (incident opened → decision)", d(s.to_decide)),
        ("RTO (incident opened → validated switch)", d(s.rto)),
        ("fallback (resync, switch back, validate)", d(s.fallback)),
        ("client impact", s.client_impact.clone()),
        ("acknowledged writes lost", s.writes_lost.clone()),
        ("approvals", if s.verdicts.is_empty() { "none".into() } else { s.verdicts.join("; ") }),
    ]
}

/// From the incident's opening to its close (now while it is open).
pub(crate) fn impact_window(incident: &Incident) -> (SystemTime, SystemTime) {
    let opened = parse_rfc3339(&incident.opened_at).unwrap_or_else(SystemTime::now);
    let closed = incident.closed_at.as_deref().and_then(parse_rfc3339).unwrap_or_else(SystemTime::now);
    (opened, closed.max(opened))
}

/// The client impact line: failed (5xx) of answered, and the worst second;
/// "not recorded" when this node's gateway stored nothing for the window.
pub(crate) fn client_impact(counts: &[ClientCount]) -> String {
    let answered: u64 = counts.iter().map(|c| c.answered).sum();
    let failed: u64 = counts.iter().map(|c| c.failed).sum();
    if answered == 0 {
        return "not recorded on this node: no client requests through the gateway of `cutover run` here during the \
                incident"
            .into();
    }
    let share = failed as f64 * 100.0 / answered as f64;
    let mut line = format!("{failed} of {answered} client requests failed (5xx, {share:.1} %) from opening to close");
    if let Some(worst) = counts.iter().filter(|c| c.failed > 0).max_by_key(|c| (c.failed, std::cmp::Reverse(c.at))) {
        line.push_str(&format!(
            "; the worst second, {}, had {} of {} failed",
            cutover_core::time::rfc3339(worst.at),
            worst.failed,
            worst.answered
        ));
    }
    line
}

/// Acknowledged writes lost, as the fallback's `sync.resync` step (the steps
/// of the fallback run, if one ran) recorded them: it copies back, verified,
/// every write made during the outage, so "none" is a finding only when it
/// ended `ok` with nothing remaining.
fn writes_lost(fallback: Option<&[StepRecord]>) -> String {
    let Some(steps) = fallback else {
        return "not known yet: the fallback's resync copies back and verifies what was written during the outage"
            .into();
    };
    let resync = steps.iter().rfind(|s| s.uses == "sync.resync" && s.phase == StepPhase::Do);
    let Some(step) = resync else {
        return "not checked: the fallback ran no sync.resync step".into();
    };
    let n = |k: &str| step.result[k].as_u64().unwrap_or(0);
    match step.state {
        StepState::Ok if n("remaining") == 0 => format!(
            "none: the fallback's resync copied back {} writes and {} deletes and restored {} objects the primary lacked, \
             verified, with nothing remaining",
            n("copied"),
            n("deleted"),
            n("restored_missing")
        ),
        StepState::Ok => format!("unknown: the fallback's resync ended with {} writes remaining", n("remaining")),
        StepState::Started => "unknown: the fallback's resync did not finish".into(),
        StepState::Failed => format!("unknown: the fallback's resync failed: {}", compact(&step.result)),
    }
}

fn who(detail: &Value) -> &str {
    detail["by"].as_str().or(detail["actor"].as_str()).unwrap_or("controller")
}

fn compact(v: &Value) -> String {
    let s = if v.is_null() { String::new() } else { v.to_string() };
    if s.chars().count() > 400 { format!("{}…", s.chars().take(400).collect::<String>()) } else { s }
}

/// Markdown table cells: no pipes or newlines.
fn md(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn step_duration(st: &StepRecord) -> String {
    match (parse_rfc3339(&st.started_at), st.ended_at.as_deref().and_then(parse_rfc3339)) {
        (Some(a), Some(b)) => b.duration_since(a).map(|d| format!("{} ms", d.as_millis())).unwrap_or_default(),
        _ => "—".into(),
    }
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
