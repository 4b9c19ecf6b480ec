//! `cutover ha status`: the leader, its fencing token and lease, every node
//! and every gateway, as etcd has them (like `patronictl list`).

use std::time::{Duration, SystemTime};

use clap::Subcommand;
use cutover_etcd::Client;
use cutover_etcd::registry::{HaSnapshot, read_all};
use serde_json::{Value, json};

use crate::cli::Global;
use crate::{Failure, ha, load};

#[derive(Debug, Subcommand)]
pub enum HaCommand {
    /// Show the leader (fencing token, lease time left), every node and every gateway.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(global: &Global, command: HaCommand) -> Result<(), Failure> {
    let HaCommand::Status { json } = command;
    let config = load::config(global)?;
    let Some(ha_cfg) = &config.ha else {
        return Err(Failure::Usage(format!(
            "{}: no [ha] table: this cutover runs embedded on SQLite (see docs/ha.md)",
            load::config_path(global).display()
        )));
    };
    let options = ha::client_options(ha_cfg).map_err(|e| Failure::Error(e.into()))?;
    let prefix = ha_cfg.prefix.clone();
    let prefix_shown = prefix.clone();
    let report = crate::runtime().block_on(async move {
        let client = Client::new(&options)?;
        let snap = read_all(&client, &prefix).await?;
        let lease_left = match &snap.leader {
            Some(_) => leader_lease_left(&client, &prefix).await,
            None => None,
        };
        Ok::<_, cutover_etcd::EtcdError>(report(&snap, lease_left, SystemTime::now()))
    });
    let report = report.map_err(|e| {
        Failure::Error(anyhow::Error::new(e).context(format!("cutover ha status: reading {prefix_shown}")))
    })?;
    if json {
        println!("{report}");
    } else {
        print!("{}", text(&report));
    }
    Ok(())
}

/// The time left on the leader key's lease, if etcd says.
async fn leader_lease_left(client: &Client, prefix: &str) -> Option<Duration> {
    let (_, kv) = client.get(cutover_etcd::election::leader_key(prefix).as_bytes()).await.ok()?;
    let ttl = client.lease_time_to_live(kv?.lease).await.ok()?;
    (ttl >= 0).then(|| Duration::from_secs(ttl as u64))
}

fn age_ms(at: &str, now: SystemTime) -> Option<u64> {
    let at = cutover_core::time::parse_rfc3339(at)?;
    Some(now.duration_since(at).unwrap_or_default().as_millis() as u64)
}

/// The report as JSON (what `--json` prints).
pub fn report(snap: &HaSnapshot, lease_left: Option<Duration>, now: SystemTime) -> Value {
    let leader = snap.leader.as_ref().map(|(l, token)| json!({"node": l.node, "api": l.api, "token": token}));
    let nodes: Vec<Value> = snap
        .nodes
        .iter()
        .map(|n| {
            let role = match &snap.leader {
                Some((l, _)) if l.node == n.node => "leader",
                _ => "standby",
            };
            json!({"name": n.node, "role": role, "api": n.api, "last_renewal": n.last_renewal,
                   "last_renewal_age_ms": age_ms(&n.last_renewal, now)})
        })
        .collect();
    let gateways: Vec<Value> = snap
        .gateways
        .iter()
        .map(
            |g| json!({"name": g.name, "active": g.active, "acked_at": g.acked_at, "age_ms": age_ms(&g.acked_at, now)}),
        )
        .collect();
    json!({
        "leader": leader,
        "lease_left_ms": lease_left.map(|d| d.as_millis() as u64),
        "nodes": nodes,
        "gateways": gateways,
        "revision": snap.revision,
    })
}

fn secs(ms: &Value) -> String {
    ms.as_u64().map_or("-".into(), |ms| format!("{:.1}s", ms as f64 / 1000.0))
}

/// The report as a table.
pub fn text(r: &Value) -> String {
    let mut out = String::new();
    match r["leader"].as_object() {
        Some(l) => out.push_str(&format!(
            "leader: {} ({}), fencing token {}, lease {} left\n",
            l["node"].as_str().unwrap_or("?"),
            l["api"].as_str().unwrap_or("?"),
            l["token"],
            secs(&r["lease_left_ms"])
        )),
        None => out.push_str("leader: none (no node holds the leader key)\n"),
    }
    out.push_str(&format!("\n{:<20} {:<8} {:<32} {}\n", "NODE", "ROLE", "API", "LAST RENEWAL"));
    for n in r["nodes"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{:<20} {:<8} {:<32} {} ago\n",
            n["name"].as_str().unwrap_or("?"),
            n["role"].as_str().unwrap_or("?"),
            n["api"].as_str().unwrap_or("?"),
            secs(&n["last_renewal_age_ms"])
        ));
    }
    out.push_str(&format!("\n{:<20} {:<20} {}\n", "GATEWAY", "ACKNOWLEDGED", "AGE"));
    let gateways = r["gateways"].as_array().map(Vec::as_slice).unwrap_or_default();
    if gateways.is_empty() {
        out.push_str("(no gateway registered)\n");
    }
    for g in gateways {
        out.push_str(&format!(
            "{:<20} {:<20} {}\n",
            g["name"].as_str().unwrap_or("?"),
            g["active"].as_str().unwrap_or("(none)"),
            secs(&g["age_ms"])
        ));
    }
    out
}
