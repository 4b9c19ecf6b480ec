//! Commands that read the state store: `incidents list/show`, `audit verify`.

use cutover_core::domain::IncidentState;
use std::sync::Arc;

use cutover_store::{SqliteStore, Store};

use crate::cli::{AuditCommand, Global, IncidentsCommand};
use crate::{Failure, api, load};

/// The state store: the state file, or with `[ha]` the shared state in
/// etcd (node-local data from the state file).
fn open(global: &Global, keyed: bool) -> Result<Arc<dyn Store>, Failure> {
    let config = load::config(global)?;
    if let Some(ha) = &config.ha {
        return crate::wiring::ha::open_store(&config, ha);
    }
    if !config.state.path.exists() {
        return Err(Failure::Usage(format!(
            "state store {} does not exist yet (run `cutover run` first, or check [state] path)",
            config.state.path.display()
        )));
    }
    let store = SqliteStore::open(&config.state.path).map_err(|e| Failure::Error(e.into()))?;
    // The audit key only where the chain is checked (reads need no secret).
    Ok(Arc::new(if keyed { store.with_audit_key(crate::audit_export::audit_key(&config)?) } else { store }))
}

pub fn incidents(global: &Global, command: IncidentsCommand) -> Result<(), Failure> {
    let store = open(global, false)?;
    match command {
        IncidentsCommand::List { open, state, limit, json } => {
            let mut list =
                if open { store.open_incidents() } else { store.incidents() }.map_err(|e| Failure::Error(e.into()))?;
            if let Some(s) = &state {
                let Ok(wanted) = s.parse::<IncidentState>() else {
                    // The states an incident can be in (see docs/api.md).
                    let all: Vec<&str> = IncidentState::ALL.iter().map(|s| s.as_str()).collect();
                    return Err(Failure::Usage(format!("--state: unknown state {s:?} (one of {})", all.join(", "))));
                };
                list.retain(|i| i.state == wanted);
            }
            if let Some(n) = limit {
                list.truncate(n);
            }
            if json {
                println!("{}", serde_json::to_string(&list).expect("serializes"));
            } else if list.is_empty() {
                let filtered = open || state.is_some();
                println!("{}", if filtered { "no incidents match" } else { "no incidents" });
            } else {
                for i in list {
                    let d = &i.decision;
                    println!(
                        "{}  {:<10} {:<18} opened {}  decision: {} {}",
                        i.id,
                        i.backend,
                        i.state,
                        i.opened_at,
                        d["action"].as_str().unwrap_or("-"),
                        d["target"].as_str().unwrap_or("")
                    );
                }
            }
            Ok(())
        }
        IncidentsCommand::Show { id, json } => {
            let v = api::incident_json(store.as_ref(), &id)
                .ok_or_else(|| Failure::Usage(format!("no incident {id:?} (see `cutover incidents list`)")))?;
            if json {
                println!("{v}");
                return Ok(());
            }
            println!(
                "incident {}  backend {}  state {}  opened {}",
                v["id"].as_str().unwrap_or(""),
                v["backend"],
                v["state"],
                v["opened_at"]
            );
            println!("decision: {}", v["decision"]);
            for e in v["timeline"].as_array().into_iter().flatten() {
                println!(
                    "  {}  {:<16} {}",
                    e["at"].as_str().unwrap_or(""),
                    e["kind"].as_str().unwrap_or(""),
                    e["detail"]
                );
            }
            Ok(())
        }
        IncidentsCommand::Report { id, format } => {
            let format: crate::console::report::Format = format.parse().map_err(Failure::Usage)?;
            let report = crate::console::report::Report::read(store.as_ref(), &id)
                .map_err(|e| Failure::Error(anyhow::anyhow!("reading incident {id}: {e}")))?
                .ok_or_else(|| Failure::Usage(format!("no incident {id:?} (see `cutover incidents list`)")))?;
            print!("{}", report.render(format));
            Ok(())
        }
    }
}

pub fn audit(global: &Global, command: AuditCommand) -> Result<(), Failure> {
    let AuditCommand::Verify { json } = command;
    let config = load::config(global)?;
    let store = open(global, true)?;
    let export = crate::audit_export::Export::new(&config)?;
    let segments = match &export {
        None => None,
        Some(x) => match crate::runtime().block_on(x.read_all()) {
            Ok(s) => Some(s),
            Err(e) => {
                let msg = format!("reading the audit export at {}: {e}", x.location());
                if json {
                    println!("{}", serde_json::json!({"ok": false, "error": msg}));
                } else {
                    println!("audit export unreadable: {msg}");
                }
                return Err(Failure::Failed);
            }
        },
    };
    let report = store.verify_with_export(segments.as_deref()).map_err(|e| Failure::Error(e.into()))?;
    if json {
        let mut v = serde_json::to_value(&report).expect("serializes");
        v["ok"] = report.ok().into();
        v["first_bad"] = serde_json::to_value(report.first()).expect("serializes");
        v["keyed"] = store.audit_keyed().into();
        if let Some(x) = &export {
            v["export"] = x.location().into();
        }
        println!("{v}");
    } else if report.ok() {
        let mut line = format!("audit log intact: {} entries, hash chain verified", report.entries);
        if store.audit_keyed() {
            line.push_str(" (HMAC-keyed)");
        }
        if let (Some(x), Some(n)) = (&export, report.segments) {
            let through = report.exported_through.unwrap_or(0);
            line.push_str(&format!(
                "; export {}: {n} segments through entry {through}, every exported entry present and unchanged",
                x.location()
            ));
            if (report.entries as i64) > through {
                line.push_str(&format!(" ({} newer entries not exported yet)", report.entries as i64 - through));
            }
        }
        println!("{line}");
    } else {
        for (i, f) in report.findings.iter().enumerate() {
            if i == 0 {
                println!("audit log TAMPERED: {f}");
            } else {
                println!("  also: {f}");
            }
        }
    }
    if report.ok() { Ok(()) } else { Err(Failure::Failed) }
}
