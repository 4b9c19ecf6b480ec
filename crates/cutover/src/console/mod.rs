//! The console: server-rendered pages under `/ui/` on the API's listener.
//! People sign in with an API token (checked against the configured hashes,
//! as `/v1` does) and then carry a session cookie; every POST needs the
//! session's CSRF token and a matching `Origin`; every response forbids
//! framing. Approve and reject are plain form POSTs (no script needed); a
//! small script only refreshes the live part of a page when the server
//! pushes a change (server-sent events).
//!
//! - `session`: sessions, cookies, CSRF and `Origin` checks; `signin`:
//!   the sign-in and sign-out handlers;
//! - `pages`: the handlers; `views`: the templates (maud, compile-time
//!   checked); `layout`: the frame and the security headers;
//! - `live`: the change log and the SSE endpoint;
//! - `samples`: recent probe results per backend, for the chart;
//!   `probe_log`: their writer to the node-local store;
//! - `signals`: the latest reading of each signal, for the status page;
//! - `chart`: the incident chart (SVG drawn on the server);
//! - `audit`: console actions in the audit log;
//! - `drills`: the drills page (the reports `cutover drill` wrote);
//! - `report`: `cutover incidents report` (Markdown or one HTML file).

mod audit;
pub mod chart;
pub mod client_log;
mod drills;
mod layout;
mod live;
mod pages;
pub mod probe_log;
pub mod report;
pub mod samples;
mod session;
pub mod signals;
mod signin;
mod views;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::wiring::Shared;

pub use live::{stop, watch};

/// What the console keeps in memory: the sessions, the recent probe
/// samples (and their writer to the store) and the change log of the live
/// pages.
#[derive(Debug)]
pub struct ConsoleState {
    sessions: session::Sessions,
    pub samples: samples::Samples,
    pub probe_log: probe_log::ProbeLog,
    pub signals: signals::Signals,
    changes: live::Changes,
    /// With `[ha]`: this node's own audit log (the state file), where a
    /// standby writes its console actions (see [`audit::record`]).
    standby_audit: Option<cutover_store::SqliteStore>,
}

impl ConsoleState {
    /// The console's state; probe samples are written to `store`; with
    /// `[ha]`, `standby_audit` is the node-local audit log.
    pub fn new(store: Arc<dyn cutover_store::Store>, standby_audit: Option<cutover_store::SqliteStore>) -> Self {
        Self {
            sessions: Default::default(),
            samples: Default::default(),
            probe_log: probe_log::ProbeLog::start(store),
            signals: Default::default(),
            changes: Default::default(),
            standby_audit,
        }
    }
}

/// The console's routes, merged into the API's router.
pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/ui", get(pages::status))
        .route("/ui/login", get(signin::login_form).post(signin::login))
        .route("/ui/logout", post(signin::logout))
        .route("/ui/incidents/{id}", get(pages::incident))
        .route("/ui/incidents/{id}/chart.svg", get(pages::chart))
        .route("/ui/incidents/{id}/approve", post(pages::approve))
        .route("/ui/incidents/{id}/reject", post(pages::reject))
        .route("/ui/audit", get(pages::audit))
        .route("/ui/drills", get(pages::drills))
        .route("/ui/events", get(live::events))
        .route("/ui/static/console.js", get(layout::script))
        .route("/ui/static/console.css", get(layout::stylesheet))
}
