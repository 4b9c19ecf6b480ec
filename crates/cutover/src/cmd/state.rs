//! Commands that read the state store: `incidents list/show`, `audit verify`.

use cutover_store::Store;

use crate::cli::{AuditCommand, Global, IncidentsCommand};
use crate::{Failure, api, load};

fn open(global: &Global) -> Result<Store, Failure> {
    let config = load::config(global)?;
    if !config.state.path.exists() {
        return Err(Failure::Usage(format!(
            "state store {} does not exist yet (run `cutover run` first, or check [state] path)",
            config.state.path.display()
        )));
    }
    Store::open(&config.state.path).map_err(|e| Failure::Error(e.into()))
}

/// The states an incident can be in (see docs/api.md).
const STATES: &[&str] = &[
    "open",
    "held",
    "awaiting_approval",
    "rejected",
    "failing_over",
    "failed_over",
    "failover_failed",
    "rolled_back",
    "falling_back",
    "resolved",
];

pub fn incidents(global: &Global, command: IncidentsCommand) -> Result<(), Failure> {
    let store = open(global)?;
    match command {
        IncidentsCommand::List { open, state, limit, json } => {
            let mut list =
                if open { store.open_incidents() } else { store.incidents() }.map_err(|e| Failure::Error(e.into()))?;
            if let Some(s) = &state {
                if !STATES.contains(&s.as_str()) {
                    return Err(Failure::Usage(format!("--state: unknown state {s:?} (one of {})", STATES.join(", "))));
                }
                list.retain(|i| &i.state == s);
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
            let v = api::incident_json(&store, &id)
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
    }
}

pub fn audit(global: &Global, command: AuditCommand) -> Result<(), Failure> {
    let store = open(global)?;
    match command {
        AuditCommand::Verify => match store.verify_audit().map_err(|e| Failure::Error(e.into()))? {
            Ok(n) => {
                println!("audit log intact: {n} entries, hash chain verified");
                Ok(())
            }
            Err(bad) => {
                println!("audit log TAMPERED: {bad}");
                Err(Failure::Failed)
            }
        },
    }
}
