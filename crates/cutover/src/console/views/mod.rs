//! The pages' templates (maud: checked at compile time, every value
//! escaped) and the data each page reads. The part of a page inside
//! `#live` is what the script swaps in on a change; forms stay outside it
//! so that a comment being typed survives a refresh.
//!
//! - `status`: the status page; `incident`: the incident page and its
//!   verdict form; `audit`: the audit page.

use maud::{Markup, html};
use serde_json::Value;

use super::session::Session;

mod audit;
mod incident;
mod status;

pub use audit::{AuditFilter, audit_page};
pub use incident::{IncidentData, incident_live, incident_page};
pub use status::{StatusData, status_live, status_page};

/// A path segment, percent-encoded.
pub fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The message shown for a verdict the controller refused.
pub fn verdict_refused(why: &str) -> String {
    format!("not recorded: {why}")
}

pub(super) fn age(ms: u64) -> String {
    if ms < 10_000 { format!("{:.1} s ago", ms as f64 / 1000.0) } else { format!("{} s ago", ms / 1000) }
}

pub(super) fn cli(command: &str) -> Markup {
    html! { p.cli { "CLI: " code { (command) } } }
}

pub(super) fn flash(s: &Session) -> Markup {
    html! {
        @if let Some(m) = &s.flash {
            p.flash #flash role="status" { (m) }
        }
    }
}

/// The sign-in form.
pub fn login(nonce: &str, error: Option<&str>) -> Markup {
    html! {
        main {
            h1 { "Sign in" }
            @if let Some(e) = error { p.error { (e) } }
            form method="post" action="/ui/login" {
                input type="hidden" name="csrf" value=(nonce);
                label { "API token " input type="password" name="token" autocomplete="off" required; }
                " " button type="submit" { "sign in" }
            }
            p.cli { "The same tokens as the API's (" code { "[[api.tokens]]" } "); viewers see, approvers decide." }
        }
    }
}

/// A JSON value as one line, cut at 300 characters.
pub(super) fn compact(v: &Value) -> String {
    let s = if v.is_null() { String::new() } else { v.to_string() };
    if s.chars().count() > 300 { format!("{}…", s.chars().take(300).collect::<String>()) } else { s }
}
