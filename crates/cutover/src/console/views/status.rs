//! The status page: the active backend (and the leader under HA), the
//! backend × vantage health matrix, the signals, the open incidents.

use cutover_control::controller::VantageStatus;
use cutover_store::Incident;
use maud::{Markup, html};
use serde_json::Value;

use super::super::pages::read_store;
use super::super::session::Session;
use super::{age, cli, flash, path_segment};
use crate::wiring::Shared;

/// What the status page shows.
#[derive(Debug)]
pub struct StatusData {
    pub status: Value,
    pub open: Vec<Incident>,
    /// Each backend's vantages, in order.
    pub vantages: Vec<(String, Vec<(String, VantageStatus)>)>,
    /// Evidence older than this is shown as stale.
    pub stale_ms: u64,
    /// The signals' latest readings.
    pub signals: Vec<(String, Value)>,
}

impl StatusData {
    pub async fn read(shared: &Shared) -> Self {
        let status = crate::api::status_json(shared);
        let snapshot = shared.controller.status();
        let vantages = snapshot
            .backends
            .iter()
            .map(|b| (b.name.clone(), b.vantages.iter().map(|(v, s)| (v.clone(), s.clone())).collect()))
            .collect();
        let open = read_store(shared, |s| s.open_incidents().unwrap_or_default()).await.unwrap_or_default();
        let stale_ms = (shared.config.probe.interval.as_millis() as u64).saturating_mul(5).max(5_000);
        let signals = shared.console.signals.now();
        Self { status, open, vantages, stale_ms, signals }
    }
}

/// The status page.
pub fn status_page(s: &Session, d: &StatusData) -> Markup {
    html! {
        main {
            h1 { "Status" }
            (flash(s))
            section #live data-events="/ui/events" { (status_live(d)) }
            (cli("cutover status"))
        }
    }
}

/// The live part of the status page.
pub fn status_live(d: &StatusData) -> Markup {
    let columns: Vec<String> = {
        let mut v: Vec<String> = d.vantages.iter().flat_map(|(_, vs)| vs.iter().map(|(n, _)| n.clone())).collect();
        v.sort();
        v.dedup();
        v
    };
    let backends = d.status["backends"].as_array().cloned().unwrap_or_default();
    html! {
        p { "Active backend: " strong #active { (d.status["active"].as_str().unwrap_or("?")) } }
        @if let Some(role) = d.status["role"].as_str() {
            p #leader {
                "This node: " (role) " · leader: "
                @match d.status["leader"]["node"].as_str() {
                    Some(n) => { strong { (n) } " (" (d.status["leader"]["api"].as_str().unwrap_or("")) ")" }
                    None => { strong { "none known" } }
                }
            }
        }
        h2 { "Health" }
        table #health {
            tr { th { "backend" } th { "role" } th { "health" } @for c in &columns { th { "@" (c) } } }
            @for b in &backends {
                @let name = b["name"].as_str().unwrap_or("?");
                tr {
                    td { (name) } td { (b["role"].as_str().unwrap_or("")) }
                    td class=(b["health"].as_str().unwrap_or("unknown")) data-backend=(name) { (b["health"].as_str().unwrap_or("unknown")) }
                    @for c in &columns {
                        @let v = d.vantages.iter().find(|(n, _)| n == name).and_then(|(_, vs)| vs.iter().find(|(n, _)| n == c));
                        @match v {
                            Some((_, vs)) => {
                                @let stale = vs.age_ms > d.stale_ms;
                                @let shown = if stale { "unknown" } else { vs.health.as_str() };
                                td class=(shown) data-cell=(format!("{name}@{c}")) {
                                    (shown) @if stale { " (stale)" }
                                    br; small { (vs.last_outcome) " · " (age(vs.age_ms)) }
                                }
                            }
                            None => { td.unknown { "—" } }
                        }
                    }
                }
            }
        }
        h2 { "Signals" }
        @if d.signals.is_empty() { p #no-signals { "No signals configured (" code { "[[signals]]" } ")." } } @else {
            table #signals {
                tr { th { "signal" } th { "backend" } th { "status" } th { "reading" } th { "firing" } th { "age" } }
                @for (name, v) in &d.signals {
                    @let firing = match v["firing"].as_bool() { Some(true) => "firing", Some(false) => "no", None => "—" };
                    tr {
                        td { (name) } td { (v["backend"].as_str().unwrap_or("—")) }
                        td class=(if v["status"] == "ok" { "healthy" } else { "unknown" }) { (v["status"].as_str().unwrap_or("?")) }
                        td {
                            @if let Some(i) = v["indicator"].as_str() { (i) " " (v["description"].as_str().unwrap_or("")) }
                            @else if let Some(x) = v["value"].as_f64() { (format!("{x}")) " (threshold " (v["threshold"].to_string()) ")" }
                            @else { (v["error"].as_str().unwrap_or("—")) }
                        }
                        td class=(if firing == "firing" { "down" } else { "" }) { (firing) }
                        td { (v["age_ms"].as_u64().map(age).unwrap_or_else(|| "—".into())) }
                    }
                }
            }
        }
        h2 { "Open incidents (" (d.open.len()) ")" }
        @if d.open.is_empty() { p #no-incidents { "None." } } @else {
            table #incidents {
                tr { th { "incident" } th { "backend" } th { "state" } th { "opened" } th { "decision" } }
                @for i in &d.open {
                    tr {
                        td { a href=(format!("/ui/incidents/{}", path_segment(&i.id))) { (i.id) } }
                        td { (i.backend) } td class=(i.state.as_str()) { (i.state.as_str()) } td { (i.opened_at) }
                        td { (i.decision["action"].as_str().unwrap_or("—")) " " (i.decision["target"].as_str().unwrap_or("")) }
                    }
                }
            }
        }
    }
}
