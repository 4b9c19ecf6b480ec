//! The audit page: the entries, filterable, and the chain's verification.

use cutover_store::AuditEntry;
use maud::{Markup, html};

use super::{cli, compact};

/// `GET /ui/audit?actor=&action=&text=`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct AuditFilter {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    text: String,
}

/// At most this many entries (the newest) on the audit page.
const AUDIT_ROWS: usize = 500;

/// The audit page.
pub fn audit_page(entries: &[AuditEntry], verified: &Result<usize, String>, f: &AuditFilter) -> Markup {
    let shown: Vec<&AuditEntry> = entries
        .iter()
        .rev()
        .filter(|e| f.actor.is_empty() || e.actor == f.actor)
        .filter(|e| f.action.is_empty() || e.action.starts_with(&f.action))
        .filter(|e| f.text.is_empty() || e.detail.to_string().contains(&f.text))
        .take(AUDIT_ROWS)
        .collect();
    html! {
        main {
            h1 { "Audit log" }
            @match verified {
                Ok(n) => { p #verify.healthy { "audit verify: " (n) " entries, chain intact" } }
                Err(e) => { p #verify.down { "audit verify FAILED: " (e) } }
            }
            form method="get" action="/ui/audit" {
                label { "actor " input type="text" name="actor" value=(f.actor); } " "
                label { "action " input type="text" name="action" value=(f.action); } " "
                label { "text " input type="text" name="text" value=(f.text); } " "
                button type="submit" { "filter" }
            }
            p { (shown.len()) " of " (entries.len()) " entries (newest first, at most " (AUDIT_ROWS) ")" }
            table #audit {
                tr { th { "seq" } th { "at" } th { "actor" } th { "action" } th { "channel" } th { "detail" } }
                @for e in &shown {
                    tr {
                        td { (e.seq) } td { (e.at) } td { (e.actor) } td { (e.action) }
                        td { (e.detail["channel"].as_str().unwrap_or("")) }
                        td { code { (compact(&e.detail)) } }
                    }
                }
            }
            (cli("cutover audit verify"))
        }
    }
}
