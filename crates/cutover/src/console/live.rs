//! Live pages: [`watch`] turns what changes (a health, the active backend,
//! an incident's state, its timeline, a step) into numbered [`Change`]s in
//! a bounded log; `GET /ui/events` streams them as server-sent events. A
//! client that reconnects with `Last-Event-ID` gets the changes it missed,
//! or `reset` when they are no longer kept (or come from an earlier
//! process), and reloads the page's live part either way.
//!
//! # Guarantees
//! - A change is in the log at most [`POLL`] after it is stored (health and
//!   the active backend: as soon as the controller publishes them).
//! - Every stream ends when the API stops ([`stop`]), so that it never
//!   holds up the graceful stop.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::extract::{Query, State};
use axum::response::Response;
use bytes::Bytes;
use cutover_control::health::Health;
use cutover_store::Store;
use http::{HeaderMap, StatusCode};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::layout::with_headers;
use crate::wiring::Shared;

/// How often the state store is compared with what was last seen.
const POLL: Duration = Duration::from_millis(250);
/// Changes kept for reconnecting clients.
const KEPT: usize = 512;
/// A comment line this often keeps proxies from closing an idle stream.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// Incidents compared on each poll (the newest).
const WATCHED_INCIDENTS: usize = 20;

/// One change, as pushed to the pages.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub seq: u64,
    pub at: SystemTime,
    /// `health`, `active`, `incident`, `timeline` or `step`.
    pub kind: &'static str,
    pub incident: Option<String>,
    pub text: String,
}

/// The bounded change log and its notifier.
#[derive(Debug)]
pub struct Changes {
    log: Mutex<VecDeque<Change>>,
    /// The newest seq; also the stop signal (`None` once the API stops).
    head: watch::Sender<Option<u64>>,
}

impl Default for Changes {
    fn default() -> Self {
        // Numbers start at the start time in ms: an id from an earlier
        // process is older than anything kept and gets a reset.
        let start = cutover_core::time::unix_ms(SystemTime::now());
        Self { log: Mutex::new(VecDeque::new()), head: watch::Sender::new(Some(start)) }
    }
}

impl Changes {
    /// Appends a change and wakes the streams.
    pub fn push(&self, kind: &'static str, incident: Option<String>, text: String) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let Some(seq) = self.head.borrow().map(|h| h + 1) else { return };
        if log.len() >= KEPT {
            log.pop_front();
        }
        log.push_back(Change { seq, at: SystemTime::now(), kind, incident, text });
        drop(log);
        self.head.send_replace(Some(seq));
    }

    /// The changes after `after`, or `None` when some of them are no
    /// longer kept (or `after` is not a number of this process).
    pub fn since(&self, after: u64) -> Option<Vec<Change>> {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let head = (*self.head.borrow())?;
        let oldest_kept = log.front().map(|c| c.seq).unwrap_or(head + 1);
        if after > head || after + 1 < oldest_kept.min(head + 1) {
            return None;
        }
        Some(log.iter().filter(|c| c.seq > after).cloned().collect())
    }

    fn head(&self) -> Option<u64> {
        *self.head.borrow()
    }

    /// Ends every stream (the API is stopping).
    pub fn stop(&self) {
        self.head.send_replace(None);
    }
}

/// Ends the live streams: called when the API stops accepting.
pub fn stop(shared: &Shared) {
    shared.console.changes.stop();
}

/// What one incident looked like at the last poll.
#[derive(Debug, Clone, PartialEq, Default)]
struct Seen {
    state: String,
    timeline: usize,
    steps: Vec<(i64, i64, String, String, i64)>,
}

/// Follows the controller's status and the state store, and logs every
/// change for the live pages. Runs until the controller stops.
pub async fn watch(shared: Arc<Shared>) {
    let mut status = shared.controller.subscribe();
    let mut health: BTreeMap<(String, String), Health> = BTreeMap::new();
    let mut active = String::new();
    let mut incidents: Option<HashMap<String, Seen>> = None;
    let mut ticker = tokio::time::interval(POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let changes = &shared.console.changes;
    loop {
        let polled = tokio::select! {
            r = status.changed() => { if r.is_err() { return; } false }
            _ = ticker.tick() => true,
        };
        let now = status.borrow_and_update().clone();
        let first = active.is_empty();
        if now.active != active {
            if !first {
                changes.push("active", None, format!("active backend: {} → {}", active, now.active));
            }
            active = now.active.clone();
        }
        for b in &now.backends {
            for (v, vs) in &b.vantages {
                let key = (b.name.clone(), v.clone());
                let before = health.insert(key, vs.health);
                if before.is_some_and(|h| h != vs.health) || (before.is_none() && !first) {
                    let from = before.map(|h| h.as_str()).unwrap_or("none");
                    changes.push("health", None, format!("{}@{v}: {from} → {}", b.name, vs.health));
                }
            }
        }
        if !polled {
            continue;
        }
        let store = shared.store.clone();
        let Ok(Ok(seen)) = tokio::task::spawn_blocking(move || look(store.as_ref())).await else { continue };
        if let Some(before) = &incidents {
            for (id, s) in &seen {
                diff(changes, id, before.get(id), s);
            }
        }
        incidents = Some(seen);
    }
}

/// The newest incidents as they are now.
fn look(store: &dyn Store) -> Result<HashMap<String, Seen>, cutover_store::StoreError> {
    let mut out = HashMap::new();
    for inc in store.incidents()?.into_iter().take(WATCHED_INCIDENTS) {
        let timeline = store.timeline(&inc.id)?.len();
        let mut steps = Vec::new();
        for run in store.runs_for(&inc.id)? {
            for s in store.steps(run.id)? {
                steps.push((run.id, s.idx, s.phase.to_string(), s.state.to_string(), s.attempts));
            }
        }
        out.insert(inc.id.clone(), Seen { state: inc.state.to_string(), timeline, steps });
    }
    Ok(out)
}

fn diff(changes: &Changes, id: &str, before: Option<&Seen>, now: &Seen) {
    let inc = Some(id.to_string());
    let Some(before) = before else {
        changes.push("incident", inc, format!("incident {id} opened ({})", now.state));
        return;
    };
    if before.state != now.state {
        changes.push("incident", inc.clone(), format!("incident {id}: {} → {}", before.state, now.state));
    }
    if now.timeline > before.timeline {
        changes.push(
            "timeline",
            inc.clone(),
            format!("incident {id}: {} new timeline entries", now.timeline - before.timeline),
        );
    }
    if now.steps != before.steps {
        let moved = now.steps.iter().filter(|s| !before.steps.contains(s)).count();
        changes.push("step", inc, format!("incident {id}: {moved} step(s) moved on"));
    }
}

/// `?incident=ID`: only that incident's changes (and every health change).
#[derive(Debug, serde::Deserialize)]
pub struct EventsQuery {
    incident: Option<String>,
}

/// `GET /ui/events`: the change stream of a signed-in page.
pub async fn events(State(shared): State<Arc<Shared>>, headers: HeaderMap, Query(q): Query<EventsQuery>) -> Response {
    if shared.console.sessions.of(&headers).is_none() {
        return with_headers(StatusCode::UNAUTHORIZED, "text/plain; charset=utf-8", "sign in at /ui/login\n");
    }
    let last: Option<u64> =
        headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok());
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(stream(shared, q.incident, last, tx));
    let mut resp = with_headers(StatusCode::OK, "text/event-stream", axum::body::Body::new(SseBody(rx)));
    resp.headers_mut().insert("x-accel-buffering", http::HeaderValue::from_static("no"));
    resp
}

/// Feeds one client: what it missed, then every new change, until it goes
/// away or the API stops.
async fn stream(shared: Arc<Shared>, incident: Option<String>, last: Option<u64>, tx: mpsc::Sender<Bytes>) {
    let changes = &shared.console.changes;
    let mut head = changes.head.subscribe();
    let Some(start) = changes.head() else { return };
    if tx.send(Bytes::from_static(b"retry: 1000\n\n")).await.is_err() {
        return;
    }
    let mut after = match last {
        None => start,
        Some(n) => match changes.since(n) {
            Some(_) => n,
            None => {
                let reset = format!("id: {start}\nevent: reset\ndata: {{}}\n\n");
                if tx.send(Bytes::from(reset)).await.is_err() {
                    return;
                }
                start
            }
        },
    };
    loop {
        let Some(batch) = changes.since(after) else {
            let Some(h) = changes.head() else { return };
            after = h;
            if tx.send(Bytes::from(format!("id: {h}\nevent: reset\ndata: {{}}\n\n"))).await.is_err() {
                return;
            }
            continue;
        };
        for c in batch {
            after = c.seq;
            if incident.as_ref().is_some_and(|i| c.incident.as_ref().is_some_and(|ci| ci != i)) {
                continue;
            }
            if tx.send(Bytes::from(event_text(&c))).await.is_err() {
                return;
            }
        }
        tokio::select! {
            r = head.changed() => {
                if r.is_err() || head.borrow_and_update().is_none() {
                    return;
                }
            }
            _ = tokio::time::sleep(KEEPALIVE) => {
                if tx.send(Bytes::from_static(b": keepalive\n\n")).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// One change as an SSE message.
pub fn event_text(c: &Change) -> String {
    let data = json!({
        "seq": c.seq, "kind": c.kind, "incident": c.incident, "text": c.text,
        "at": cutover_core::time::rfc3339(c.at),
    });
    format!("id: {}\nevent: change\ndata: {data}\n\n", c.seq)
}

/// A response body fed by a channel.
struct SseBody(mpsc::Receiver<Bytes>);

impl http_body::Body for SseBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(http_body::Frame::data(b))))
    }
}

#[cfg(test)]
#[path = "live_tests.rs"]
mod tests;
