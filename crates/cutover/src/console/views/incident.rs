//! The incident page: the verdict form with the runbook's plan (outside
//! the live part), the decision and its evidence, the chart, the timeline
//! and every run's steps.

use std::time::SystemTime;

use cutover_control::controller::VantageStatus;
use cutover_core::domain::{IncidentState, RunKind};
use cutover_orchestrate::runbook::{self, Vars};
use cutover_store::{Incident, RunRecord, StepRecord, TimelineEvent};
use maud::{Markup, PreEscaped, html};
use serde_json::Value;

use super::super::pages::{deciders, read_store};
use super::super::session::Session;
use super::{age, cli, compact, flash, path_segment};
use crate::wiring::Shared;

/// What the incident page shows.
#[derive(Debug)]
pub struct IncidentData {
    pub incident: Incident,
    pub timeline: Vec<TimelineEvent>,
    pub runs: Vec<(RunRecord, Vec<StepRecord>)>,
    /// The failover's plan, while a verdict is awaited.
    pub plan: Option<Result<Vec<String>, String>>,
    pub awaiting: bool,
    /// The backend's vantages now.
    pub vantages: Vec<(String, VantageStatus)>,
    /// (actor, comment) of the verdicts sent from the console (its audit entries).
    pub console_verdicts: Vec<(String, String)>,
    /// The evidence the latest decision was made on (`input.evidence` of its policy input).
    pub evidence: Option<Value>,
    /// The local probes around the incident, by backend, from the store.
    pub probes: Vec<(String, Vec<crate::console::samples::Probe>)>,
    /// The health changes before the incident, from the store.
    pub health: Vec<crate::console::samples::HealthChange>,
    /// The client impact line (the gateway's answers during the incident).
    pub client_impact: String,
}

impl IncidentData {
    pub async fn read(shared: &Shared, id: &str) -> Option<Self> {
        let key = id.to_string();
        let (incident, timeline, runs, console_verdicts, evidence, probes, health, client_impact) =
            read_store(shared, move |s| {
                let inc = s.incident(&key).ok()??;
                let evidence = s.decision_input(&key).ok().flatten().map(|i| i["evidence"].clone());
                let console_verdicts = s
                    .audit_entries()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|e| e.action.starts_with("console.") && e.detail["incident"] == key.as_str())
                    .map(|e| (e.actor, e.detail["comment"].as_str().unwrap_or_default().to_string()))
                    .collect::<Vec<_>>();
                let timeline = s.timeline(&key).unwrap_or_default();
                let runs = s
                    .runs_for(&key)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| {
                        let steps = s.steps(r.id).unwrap_or_default();
                        (r, steps)
                    })
                    .collect::<Vec<_>>();
                let (from, to) = crate::console::chart::probe_window(&inc);
                let probes = crate::console::samples::series(s.probe_samples(from, to).unwrap_or_default());
                let (from, to) = crate::console::chart::health_window(&inc);
                let health = crate::console::samples::health_changes(s.health_changes(from, to).unwrap_or_default());
                let (from, to) = crate::console::report::impact_window(&inc);
                let client_impact =
                    crate::console::report::client_impact(&s.client_counts(from, to).unwrap_or_default());
                Some((inc, timeline, runs, console_verdicts, evidence, probes, health, client_impact))
            })
            .await??;
        let awaiting = awaits_verdict(&incident, &timeline);
        let plan = (incident.state == IncidentState::AwaitingApproval).then(|| plan(shared, &incident));
        let status = shared.controller.status();
        let vantages = status
            .backend(&incident.backend)
            .map(|b| b.vantages.iter().map(|(v, s)| (v.clone(), s.clone())).collect())
            .unwrap_or_default();
        Some(Self {
            incident,
            timeline,
            runs,
            plan,
            awaiting,
            vantages,
            console_verdicts,
            evidence,
            probes,
            health,
            client_impact,
        })
    }

    /// Through which channel a timeline entry came: `console` for a verdict
    /// the console sent (its audit entry), `api` (or the CLI) for another
    /// verdict, `controller` for the rest.
    pub fn channel(&self, e: &TimelineEvent) -> &'static str {
        if e.kind != "approval" {
            return "controller";
        }
        let (by, comment) = (e.detail["by"].as_str().unwrap_or(""), e.detail["comment"].as_str().unwrap_or(""));
        if self.console_verdicts.iter().any(|(a, c)| a == by && c == comment) { "console" } else { "api" }
    }

    /// The policy hash of the latest decision.
    pub fn policy_sha256(&self) -> Option<&str> {
        self.timeline.iter().rev().find(|e| e.kind == "decision").and_then(|e| e.detail["policy_sha256"].as_str())
    }
}

/// Whether the incident waits for a human: its decision awaits approval, or
/// a run reached an `approval` step that no verdict answered yet.
fn awaits_verdict(inc: &Incident, timeline: &[TimelineEvent]) -> bool {
    if inc.closed_at.is_some() {
        return false;
    }
    if inc.state == IncidentState::AwaitingApproval {
        return true;
    }
    let start = timeline.iter().rposition(|e| e.kind == "runbook.started").unwrap_or(0);
    let asked = timeline[start..].iter().rposition(|e| e.kind == "approval.requested");
    asked.is_some_and(|i| !timeline[start + i..].iter().any(|e| e.kind == "approval"))
}

/// The failover runbook's plan for this incident, as `runbook run --dry-run` prints it.
fn plan(shared: &Shared, inc: &Incident) -> Result<Vec<String>, String> {
    let names = shared.config.backend_names();
    let rb = match &shared.config.runbooks.failover {
        None => runbook::built_in(RunKind::Failover),
        Some(p) => runbook::load(p, &names).map_err(|e| e.to_string())?,
    };
    let status = shared.controller.status();
    let vars = Vars {
        incident: inc.id.clone(),
        backend: inc.backend.clone(),
        source: status.active.clone(),
        target: inc.decision["target"].as_str().unwrap_or("?").to_string(),
        reason: inc.decision["reason"].as_str().unwrap_or_default().to_string(),
        kind: "failover".into(),
        fencing_token: status.token.map(|t| t.to_string()).unwrap_or_else(|| "0".into()),
    };
    crate::cmd::runbook::plan_lines(&rb, &vars)
}

/// The incident page: the verdict form (outside the live part), then the
/// live part, then the CLI equivalents.
pub fn incident_page(s: &Session, shared: &Shared, d: &IncidentData, svg: &str) -> Markup {
    let id = &d.incident.id;
    let events = format!("/ui/events?incident={}", path_segment(id));
    let base = format!("/ui/incidents/{}", path_segment(id));
    html! {
        main {
            h1 { "Incident " (id) }
            (flash(s))
            @if d.awaiting {
                section #approval {
                    h2 { "Awaiting a verdict" }
                    @if let Some(plan) = &d.plan {
                        @match plan {
                            Ok(lines) => { p { "Approving runs this plan:" } pre #plan { @for l in lines { (l) "\n" } } }
                            Err(e) => { p.error { "The plan cannot be rendered: " (e) } }
                        }
                    }
                    p #deciders { "May decide: " (deciders(shared).join(", ")) }
                    @if s.may_decide() {
                        form #verdict method="post" action=(format!("{base}/approve")) {
                            input type="hidden" name="csrf" value=(s.csrf);
                            label { "Comment (required)" br; textarea name="comment" rows="3" required maxlength="4096" {} }
                            br;
                            button #approve type="submit" { "Approve" }
                            " "
                            button #reject type="submit" formaction=(format!("{base}/reject")) { "Reject" }
                        }
                    } @else {
                        p #viewer-note { "Signed in as " (s.name) " (" (super::super::layout::role_name(s)) "): you may look, not decide." }
                    }
                }
            }
            section #live data-events=(events) { (incident_live(d, svg)) }
            (cli(&format!("cutover incidents show {id}")))
            @if d.awaiting { (cli(&format!("cutover approve {id} --comment \"...\"   |   cutover reject {id} --comment \"...\""))) }
            (cli(&format!("cutover incidents report {id} --format html > {id}.html")))
        }
    }
}

/// The live part of the incident page.
pub fn incident_live(d: &IncidentData, svg: &str) -> Markup {
    let i = &d.incident;
    html! {
        p #summary {
            "Backend " strong { (i.backend) } " · state " strong #state { (i.state.as_str()) }
            " · opened " (i.opened_at) @if let Some(c) = &i.closed_at { " · closed " (c) }
        }
        p #client-impact { "Client impact: " (d.client_impact) }
        h2 { "Decision" }
        @if i.decision.is_null() { p { "None yet." } } @else {
            p #decision {
                strong { (i.decision["action"].as_str().unwrap_or("?")) } " "
                (i.decision["target"].as_str().unwrap_or("")) ": " (i.decision["reason"].as_str().unwrap_or(""))
                br; small { "policy sha256 " code { (d.policy_sha256().unwrap_or("—")) } }
            }
        }
        h2 { "Evidence" }
        @let quorum = d.timeline.iter().find(|e| e.kind == "incident.opened").map(|e| e.detail["quorum"].clone());
        @if let Some(q) = quorum.filter(|q| !q.is_null()) {
            p { "Quorum at opening: " (q["down"].to_string()) " of " (q["reporting"].to_string()) " reporting vantages saw it down (required " (q["required"].to_string()) ")" }
        }
        @if let Some(ev) = d.evidence.as_ref().filter(|e| e.is_object()) {
            p { "At the decision: " (ev["quorum"]["down"].to_string()) " of " (ev["quorum"]["reporting"].to_string())
                " reporting vantages saw it down (quorum " (ev["quorum"]["required"].to_string()) "); the independent re-check "
                @if ev["verify"]["failed"] == true { "failed (" (ev["verify"]["outcome"].as_str().unwrap_or("?")) ")" } @else { "did not fail" }
                @if ev["latency_only"] == true { "; latency alone" } }
            table #decision-evidence {
                tr { th { "vantage" } th { "health" } th { "failures" } th { "error rate" } th { "last outcome" } th { "evidence age" } }
                @for (v, e) in ev["vantages"].as_object().into_iter().flatten() {
                    tr {
                        td { (v) } td class=(e["health"].as_str().unwrap_or("unknown")) { (e["health"].as_str().unwrap_or("?")) }
                        td { (e["failures"].to_string()) } td { (e["error_rate"].to_string()) }
                        td { (e["last_outcome"].as_str().unwrap_or("")) } td { (e["age_ms"].as_u64().map(age).unwrap_or_default()) }
                    }
                }
            }
        }
        table #evidence {
            tr { th { "vantage" } th { "health now" } th { "last outcome" } th { "age" } }
            @for (v, s) in &d.vantages {
                tr { td { (v) } td class=(s.health.as_str()) { (s.health.as_str()) } td { (s.last_outcome) } td { (age(s.age_ms)) } }
            }
        }
        h2 { "Chart" }
        div #chart { (PreEscaped(svg)) }
        h2 { "Timeline" }
        table #timeline {
            tr { th { "at" } th { "what" } th { "who" } th { "via" } th { "detail" } }
            @for e in &d.timeline {
                tr {
                    td { (e.at) } td { (e.kind) }
                    td { (e.detail["by"].as_str().or(e.detail["actor"].as_str()).unwrap_or("controller")) }
                    td.via { (d.channel(e)) }
                    td { code { (compact(&e.detail)) } }
                }
            }
        }
        h2 { "Runbook steps" }
        @for (r, steps) in &d.runs {
            h3 { (r.kind.as_str()) " run " (r.id) ": " (r.state.as_str()) " (" (r.source) " → " (r.target) ", by " (r.actor) ")" }
            table.steps {
                tr { th { "#" } th { "phase" } th { "step" } th { "uses" } th { "state" } th { "attempts" } th { "duration" } th { "result" } }
                @for st in steps {
                    tr {
                        td { (st.idx + 1) } td { (st.phase.as_str()) } td { (st.name) } td { (st.uses) }
                        td class=(st.state.as_str()) { (st.state.as_str()) } td { (st.attempts) }
                        td { (duration(&st.started_at, st.ended_at.as_deref())) }
                        td { code { (compact(&st.result)) } }
                    }
                }
            }
        }
    }
}

fn duration(start: &str, end: Option<&str>) -> String {
    let parse = cutover_core::time::parse_rfc3339;
    match (parse(start), end.and_then(parse)) {
        (Some(a), Some(b)) => match b.duration_since(a) {
            Ok(d) if d.as_secs() >= 10 => format!("{:.1} s", d.as_secs_f64()),
            Ok(d) => format!("{} ms", d.as_millis()),
            Err(_) => "—".into(),
        },
        (Some(a), None) => match SystemTime::now().duration_since(a) {
            Ok(d) => format!("running for {:.1} s", d.as_secs_f64()),
            Err(_) => "running".into(),
        },
        _ => "—".into(),
    }
}
