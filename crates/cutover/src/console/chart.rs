//! The incident chart, drawn on the server as SVG: probe latency per
//! backend around the incident, failed probes as red marks, and a vertical
//! marker for each of onset, suspect, decision, switch, validation and
//! fallback that happened. Presentation attributes only (no `style`), so
//! the console's CSP holds; every text is escaped (maud).

use std::time::{Duration, SystemTime};

use cutover_control::health::Health;
use cutover_core::domain::{RunKind, StepPhase, StepState};
use cutover_core::time::parse_rfc3339;
use maud::html;

use super::samples::{HealthChange, Probe, Samples};
use cutover_store::{Incident, RunRecord, StepRecord, TimelineEvent};

use super::views::IncidentData;

/// An incident's records, borrowed.
struct Parts<'a> {
    incident: &'a Incident,
    timeline: &'a [TimelineEvent],
    runs: &'a [(RunRecord, Vec<StepRecord>)],
}

/// Seconds of context before the first marker and after the last.
const BEFORE: Duration = Duration::from_secs(20);
const AFTER: Duration = Duration::from_secs(20);
/// The longest window drawn.
const LONGEST: Duration = Duration::from_secs(3600);
/// How far before the incident's opening its onset is looked for.
const LOOK_BACK: Duration = Duration::from_secs(600);

const W: f64 = 900.0;
const H: f64 = 300.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 880.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 250.0;
const COLOURS: [&str; 4] = ["#2563eb", "#059669", "#9333ea", "#d97706"];

/// What a chart shows.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartInput {
    pub title: String,
    pub from: SystemTime,
    pub to: SystemTime,
    /// Probe results per backend.
    pub series: Vec<(String, Vec<Probe>)>,
    /// (label, when), in time order.
    pub markers: Vec<(&'static str, SystemTime)>,
}

impl ChartInput {
    /// The chart of an incident: its markers from the timeline and the
    /// runbook journal, its probes from the store ([`IncidentData::probes`])
    /// completed by the newest ones kept in memory (not yet written).
    pub fn from_incident(d: &IncidentData, samples: &Samples) -> Self {
        let (from, to) = probe_window(&d.incident);
        let probes = samples.merged_with(d.probes.clone(), from, to);
        Self::from_parts(&d.incident, &d.timeline, &d.runs, probes, &d.health)
    }

    /// The same from the incident's records, its probes (`probes`, by
    /// backend, over [`probe_window`]) and its health changes (`health`,
    /// over [`health_window`]), all read from the store.
    pub fn from_parts(
        incident: &Incident,
        timeline: &[TimelineEvent],
        runs: &[(RunRecord, Vec<StepRecord>)],
        probes: Vec<(String, Vec<Probe>)>,
        health: &[HealthChange],
    ) -> Self {
        let d = Parts { incident, timeline, runs };
        let opened = parse_rfc3339(&d.incident.opened_at).unwrap_or_else(SystemTime::now);
        let mut markers = Vec::new();
        let all = probes;
        let own: Vec<Probe> =
            all.iter().find(|(b, _)| *b == d.incident.backend).map(|(_, p)| p.clone()).unwrap_or_default();
        if let Some(onset) = onset(&own, opened) {
            markers.push(("onset", onset));
        }
        let (suspect_from, suspect_until) = health_window(d.incident);
        let suspect = health
            .iter()
            .rev()
            .filter(|c| c.at >= suspect_from && c.at <= suspect_until)
            .find(|c| c.backend == d.incident.backend && c.to == Health::Suspect);
        if let Some(s) = suspect {
            markers.push(("suspect", s.at));
        }
        if let Some(at) = d.timeline.iter().find(|e| e.kind == "decision").and_then(|e| parse_rfc3339(&e.at)) {
            markers.push(("decision", at));
        }
        for (run, steps) in d.runs {
            let done = |uses: &str| {
                steps
                    .iter()
                    .find(|s| s.uses == uses && s.phase == StepPhase::Do && s.state == StepState::Ok)
                    .and_then(|s| s.ended_at.as_deref().and_then(parse_rfc3339))
            };
            match run.kind {
                RunKind::Failover => {
                    if let Some(at) = done("state.switch") {
                        markers.push(("switch", at));
                    }
                    if let Some(at) = done("validate") {
                        markers.push(("validation", at));
                    }
                }
                RunKind::Fallback => {
                    let at = run.ended_at.as_deref().or(Some(run.started_at.as_str())).and_then(parse_rfc3339);
                    if let Some(at) = at {
                        markers.push(("fallback", at));
                    }
                }
                RunKind::Rollback => {}
            }
        }
        markers.sort_by_key(|(_, at)| *at);
        let first = markers.first().map(|(_, t)| *t).unwrap_or(opened).min(opened);
        let closed = d.incident.closed_at.as_deref().and_then(parse_rfc3339);
        let last = markers.last().map(|(_, t)| *t).unwrap_or(opened).max(closed.unwrap_or(opened));
        let from = first.checked_sub(BEFORE).unwrap_or(first);
        let mut to = last + AFTER;
        if to.duration_since(from).unwrap_or_default() > LONGEST {
            to = from + LONGEST;
        }
        let series =
            all.into_iter().map(|(b, p)| (b, p.into_iter().filter(|p| p.at >= from && p.at <= to).collect())).collect();
        Self { title: format!("incident {} ({})", d.incident.id, d.incident.backend), from, to, series, markers }
    }
}

/// The probe samples an incident's chart may draw: from [`LOOK_BACK`]
/// (and [`BEFORE`]) before it opened to the longest window after.
pub fn probe_window(incident: &Incident) -> (SystemTime, SystemTime) {
    let opened = parse_rfc3339(&incident.opened_at).unwrap_or_else(SystemTime::now);
    let from = opened.checked_sub(LOOK_BACK + BEFORE).unwrap_or(opened);
    (from, opened + LONGEST)
}

/// When the health change that made the incident's backend suspect is
/// looked for: from [`LOOK_BACK`] before the incident was opened to a
/// second after.
pub fn health_window(incident: &Incident) -> (SystemTime, SystemTime) {
    let opened = parse_rfc3339(&incident.opened_at).unwrap_or_else(SystemTime::now);
    (opened.checked_sub(LOOK_BACK).unwrap_or(opened), opened + Duration::from_secs(1))
}

/// The first failed probe of the failures that led to the incident: after
/// the last success before it was opened.
fn onset(probes: &[Probe], opened: SystemTime) -> Option<SystemTime> {
    let before: Vec<&Probe> = probes.iter().filter(|p| p.at <= opened).collect();
    let last_ok = before.iter().rposition(|p| p.ok);
    let first_fail = match last_ok {
        Some(i) => before.get(i + 1),
        None => before.first(),
    }?;
    (!first_fail.ok).then_some(first_fail.at)
}

fn clock(t: SystemTime) -> String {
    let s = cutover_core::time::rfc3339(t);
    s.get(11..19).unwrap_or(&s).to_string()
}

/// The SVG of a chart.
pub fn draw(c: &ChartInput) -> String {
    let span = c.to.duration_since(c.from).unwrap_or_default().as_secs_f64().max(1.0);
    let x = |t: SystemTime| LEFT + (RIGHT - LEFT) * t.duration_since(c.from).unwrap_or_default().as_secs_f64() / span;
    let max_ms = c.series.iter().flat_map(|(_, p)| p.iter().filter(|p| p.ok).map(|p| p.ms)).fold(10.0f64, f64::max);
    let y = |ms: f64| BOTTOM - (BOTTOM - TOP - 15.0) * (ms.min(max_ms) / max_ms);
    let drawn: usize = c.series.iter().map(|(_, p)| p.len()).sum();
    let svg = html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {W} {H}")) width=(W) height=(H)
            role="img" aria-label=(format!("probe latency and failures, {}", c.title)) {
            title { "probe latency and failures per backend, " (c.title) }
            rect x="0" y="0" width=(W) height=(H) fill="#ffffff" {}
            line x1=(LEFT) y1=(BOTTOM) x2=(RIGHT) y2=(BOTTOM) stroke="#555" {}
            line x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(BOTTOM) stroke="#555" {}
            text x=(LEFT - 5.0) y=(TOP + 15.0) font-size="11" text-anchor="end" { (format!("{max_ms:.0}")) }
            text x=(LEFT - 5.0) y=(BOTTOM) font-size="11" text-anchor="end" { "0" }
            text x="12" y=((TOP + BOTTOM) / 2.0) font-size="11" transform=(format!("rotate(-90 12 {})", (TOP + BOTTOM) / 2.0)) text-anchor="middle" { "probe latency (ms)" }
            text x=(LEFT) y=(BOTTOM + 16.0) font-size="11" { (clock(c.from)) " UTC" }
            text x=(RIGHT) y=(BOTTOM + 16.0) font-size="11" text-anchor="end" { (clock(c.to)) " UTC" }
            text x=(LEFT) y=(TOP - 25.0) font-size="11" fill="#b91c1c" { "× failed probe" }
            @for (i, (backend, probes)) in c.series.iter().enumerate() {
                @let colour = COLOURS[i % COLOURS.len()];
                @let points: Vec<String> = probes.iter().filter(|p| p.ok).map(|p| format!("{:.1},{:.1}", x(p.at), y(p.ms))).collect();
                g class="series" data-backend=(backend) {
                    polyline points=(points.join(" ")) fill="none" stroke=(colour) stroke-width="1.5" {}
                    @for p in probes.iter().filter(|p| !p.ok) {
                        @let (px, py) = (x(p.at), TOP - 8.0 + 4.0 * i as f64);
                        path class="failure" d=(format!("M{:.1},{:.1} l4,4 m0,-4 l-4,4", px - 2.0, py - 2.0)) stroke="#b91c1c" stroke-width="1.5" {}
                    }
                    line x1=(LEFT + 160.0 * i as f64) y1=(H - 12.0) x2=(LEFT + 160.0 * i as f64 + 20.0) y2=(H - 12.0) stroke=(colour) stroke-width="3" {}
                    text x=(LEFT + 160.0 * i as f64 + 25.0) y=(H - 8.0) font-size="12" { (backend) }
                }
            }
            @if drawn == 0 {
                text x=((LEFT + RIGHT) / 2.0) y=((TOP + BOTTOM) / 2.0) font-size="12" text-anchor="middle" fill="#555" {
                    "no probe samples stored for this window"
                }
            }
            @for (i, (label, at)) in c.markers.iter().enumerate() {
                @let mx = x(*at);
                g class="marker" data-marker=(label) {
                    line x1=(mx) y1=(TOP - 5.0) x2=(mx) y2=(BOTTOM) stroke="#111" stroke-dasharray="4 3" {}
                    @let (tx, anchor) = if mx > RIGHT - 110.0 { (mx - 3.0, "end") } else { (mx + 3.0, "start") };
                    text x=(tx) y=(TOP + 12.0 + 13.0 * (i % 6) as f64) font-size="11" text-anchor=(anchor) { (label) " " (clock(*at)) }
                }
            }
        }
    };
    svg.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s)
    }

    #[test]
    fn the_chart_names_every_marker_and_draws_failures() {
        let probes = vec![
            Probe { at: t(1), ok: true, ms: 12.0 },
            Probe { at: t(2), ok: false, ms: 2000.0 },
            Probe { at: t(3), ok: false, ms: 2000.0 },
        ];
        let markers = ["onset", "suspect", "decision", "switch", "validation", "fallback"];
        let c = ChartInput {
            title: "incident inc-1 (<primary>)".into(),
            from: t(0),
            to: t(20),
            series: vec![
                ("<primary>".into(), probes),
                ("secondary".into(), vec![Probe { at: t(2), ok: true, ms: 30.0 }]),
            ],
            markers: markers.iter().enumerate().map(|(i, m)| (*m, t(2 + i as u64))).collect(),
        };
        let svg = draw(&c);
        assert!(svg.starts_with("<svg"), "{svg}");
        for m in markers {
            assert!(svg.contains(&format!("data-marker=\"{m}\"")), "{m} missing");
        }
        assert_eq!(svg.matches("class=\"failure\"").count(), 2);
        assert!(svg.contains("&lt;primary&gt;") && !svg.contains("<primary>"), "names are escaped");
        assert!(!svg.contains("style="), "no style attribute: the CSP forbids inline styles");
    }

    #[test]
    fn the_onset_is_the_first_failure_after_the_last_success() {
        let p = |s, ok| Probe { at: t(s), ok, ms: 1.0 };
        assert_eq!(onset(&[p(1, false), p(2, true), p(3, false), p(4, false)], t(5)), Some(t(3)));
        assert_eq!(onset(&[p(1, true), p(2, true)], t(5)), None);
        assert_eq!(onset(&[p(1, false)], t(5)), Some(t(1)));
        assert_eq!(onset(&[], t(5)), None);
    }
}
