//! `dns.update`: replace the record set of a name (A, AAAA or CNAME) on a
//! zone's primary name server with an RFC 2136 dynamic update signed with
//! TSIG (RFC 8945, HMAC-SHA256 or HMAC-SHA512). BIND, Knot, PowerDNS and any
//! RFC 2136 server.
//!
//! Parameters:
//! - `server` (required): the primary's address, `IP:port` or `IP` (port
//!   53); an IP address, not a host name (no resolver is involved).
//! - `zone` (required): the zone the name is in, such as `example.com`.
//! - `name` (required): the name whose record set is replaced; it must be
//!   `zone` or below it.
//! - `type` (required): `A`, `AAAA` or `CNAME`.
//! - `value` (required unless `restore`): the address, or the target name
//!   (always fully qualified; the trailing dot is optional).
//! - `ttl`: the TTL in seconds of the new record, 0 to 2147483647
//!   (default 60).
//! - `tsig_key` (required): the key's name, as the server knows it.
//! - `tsig_algorithm`: `hmac-sha256` (default) or `hmac-sha512`.
//! - `tsig_secret_env` or `tsig_secret_file` (exactly one): the environment
//!   variable holding the key's secret (base64, as in BIND's `secret "…";`),
//!   or a file holding it: the base64 text alone, or a key clause as
//!   `tsig-keygen` writes it.
//! - `restore`: `true` puts back the record set the update of the same
//!   server, zone, name and type replaced in this incident's run (its undo).
//! - `previous`, `written` (with `restore`, both or neither): the record set
//!   to put back and the one the update wrote, `[{"ttl", "value"}]`. The
//!   engine gives them to the undo from the update's journaled result
//!   ([`undo_from_result`]); without them the undo reads the copy saved on
//!   the node that ran the update.
//!
//! Every exchange is over TCP (no UDP: an update or a signed answer may not
//! fit in a datagram, and there is then no truncation to fall back from),
//! takes at most 5 s (a quarter of the step's timeout when that is less),
//! and is signed; every response's signature is checked.
//!
//! Result: `{"server", "zone", "name", "type", "previous": [{"ttl",
//! "value"}], "records": [...], "changed", "serial": {"before", "after"}}`.
//!
//! # Guarantees
//! - Before it writes, it reads the current record set and the zone's SOA
//!   serial; the record set is saved (`work_dir/dns/`) before the update is
//!   sent and reported in the result (`previous`); `restore` puts back
//!   exactly that, TTLs included (an empty set is deleted again), taking it
//!   from the journaled result when the engine gives it (any leader can
//!   undo) or else from the saved copy.
//! - The update carries the record set it read as its prerequisite (RFC
//!   2136 §2.4.2 "RRset exists (value dependent)", or §2.4.3 "RRset does not
//!   exist" when it was empty); the undo carries the record set the update
//!   wrote. A change someone else made meanwhile makes the server answer
//!   `NXRRSET` or `YXRRSET` and change nothing; the step fails, not retried,
//!   saying the record set changed under it and what it reads now: it never
//!   overwrites that change.
//! - After it writes, it queries the server: the answer must be the new
//!   record set (TTL included) and the SOA serial must have moved, or the
//!   step fails.
//! - Idempotent: when the server already has the record set, nothing is sent
//!   (`"changed": false`); a re-run that finds what an earlier attempt wrote
//!   keeps (and reports) the record set that attempt replaced.
//! - A refused update is a failure that names the rcode (`REFUSED`,
//!   `NOTAUTH`, with the TSIG error `BADSIG`, `BADKEY` or `BADTIME`), and is
//!   not retried. Nothing shows the secret.
//!
//! # Assumptions
//! - `server` is the zone's primary (updates to a secondary are refused or
//!   forwarded, and the read-back may see an older zone).
//! - The key may update `name` with `type` (BIND: `update-policy { grant
//!   <key> name <name> CNAME; };` or `allow-update { key <key>; };`).
//!
//! # Caveats
//! - Replacing a CNAME by an A record (or the reverse) is two steps: a name
//!   with a CNAME can hold no other data, and the server refuses the add.
//! - Prerequisites compare values, not TTLs (RFC 2136 §2.4.2): a change of
//!   the TTL alone is not seen, and the undo puts the old TTL back.
//! - An undo run by hand (`restore = true` without `previous`/`written`)
//!   needs the saved copy: on another node it is refused rather than
//!   guessing; the step's result in the timeline (`previous`) says what to
//!   put back.

mod check;
mod client;
mod record;
mod transport;
mod tsig;
mod wire;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub use self::check::check;
use self::client::Client;
pub use self::client::{DnsError, Rcode};
use self::record::{Rr, RrType, Saved, sorted};
pub use self::tsig::TsigError;
use self::tsig::{Algorithm, Key};
use self::wire::Name;
use super::param::{self, error};
use super::{Ctx, Kind, ParamSpec, Params, StepError};

pub const PARAMS: &[ParamSpec] = &[
    ParamSpec::required("server", Kind::String, "the zone's primary name server, IP:port (port 53 by default)"),
    ParamSpec::required("zone", Kind::String, "the zone, such as example.com"),
    ParamSpec::required("name", Kind::String, "the name whose record set is replaced (in the zone)"),
    ParamSpec::required("type", Kind::String, "A, AAAA or CNAME"),
    ParamSpec::optional("value", Kind::String, "the address or target name (required unless restore)"),
    ParamSpec::optional("ttl", Kind::Integer, "the TTL in seconds (default 60)"),
    ParamSpec::required("tsig_key", Kind::String, "the TSIG key's name"),
    ParamSpec::optional("tsig_algorithm", Kind::String, "hmac-sha256 (default) or hmac-sha512"),
    ParamSpec::optional("tsig_secret_env", Kind::String, "the environment variable holding the key's base64 secret"),
    ParamSpec::optional("tsig_secret_file", Kind::String, "a file holding the key's base64 secret or key clause"),
    ParamSpec::optional("restore", Kind::Bool, "put back the record set saved by this incident's update (the undo)"),
    ParamSpec::optional(
        "previous",
        Kind::Any,
        "with restore: the record set to put back (the engine gives it from the journal)",
    ),
    ParamSpec::optional(
        "written",
        Kind::Any,
        "with restore: the record set the update wrote (the engine gives it from the journal)",
    ),
];

/// The TTL when the step gives none.
const DEFAULT_TTL: u32 = 60;
/// The longest TTL (RFC 2181 §8).
const MAX_TTL: i64 = 2_147_483_647;
/// The most one exchange may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the parameters ask for, without the secret.
#[derive(Debug)]
struct Plan {
    server: SocketAddr,
    zone: Name,
    name: Name,
    rtype: RrType,
    /// The new record, unless restoring.
    record: Option<Rr>,
    /// Restoring: the record set to put back and the one the update wrote,
    /// from the journaled result of the update (`previous`, `written`).
    journaled: Option<(Vec<Rr>, Vec<Rr>)>,
    key_name: Name,
    algorithm: Algorithm,
}

impl Plan {
    fn parse(p: &Params) -> Result<Self, StepError> {
        let server = parse_server(param::req_str(p, "server")?).map_err(|e| error("server", e))?;
        let zone = Name::parse(param::req_str(p, "zone")?).map_err(|e| error("zone", e.to_string()))?;
        let name = Name::parse(param::req_str(p, "name")?).map_err(|e| error("name", e.to_string()))?;
        if !name.is_in(&zone) {
            return Err(error("name", format!("{name} is not in zone {zone}")));
        }
        let rtype = param::req_str(p, "type")?;
        let rtype = RrType::parse(rtype).ok_or_else(|| error("type", format!("{rtype:?} is not A, AAAA or CNAME")))?;
        let restore = param::opt_bool(p, "restore")?.unwrap_or(false);
        let record = match (param::opt_str(p, "value")?, restore) {
            (Some(_), true) => return Err(error("value", "give value or restore = true, not both")),
            (None, true) => None,
            (None, false) => return Err(error("value", "is required (unless restore = true)")),
            (Some(v), false) => {
                let data = rtype.data(v).map_err(|e| error("value", format!("{v:?} {e}")))?;
                let ttl = match param::opt_int(p, "ttl")? {
                    None => DEFAULT_TTL,
                    Some(t) if (0..=MAX_TTL).contains(&t) => t as u32,
                    Some(_) => return Err(error("ttl", format!("must be between 0 and {MAX_TTL} seconds"))),
                };
                Some(Rr::from_data(ttl, &data).expect("A, AAAA and CNAME data have a text form"))
            }
        };
        let journaled = match (p.get("previous"), p.get("written")) {
            (None, None) => None,
            (Some(_), Some(_)) if !restore => return Err(error("previous", "is only given with restore = true")),
            (Some(previous), Some(written)) => {
                Some((record_set(rtype, "previous", previous)?, record_set(rtype, "written", written)?))
            }
            (Some(_), None) => return Err(error("written", "is required with previous")),
            (None, Some(_)) => return Err(error("previous", "is required with written")),
        };
        let key_name = Name::parse(param::req_str(p, "tsig_key")?).map_err(|e| error("tsig_key", e.to_string()))?;
        let algorithm = match param::opt_str(p, "tsig_algorithm")? {
            None => Algorithm::HmacSha256,
            Some(a) => Algorithm::parse(a)
                .ok_or_else(|| error("tsig_algorithm", format!("{a:?} is not hmac-sha256 or hmac-sha512")))?,
        };
        match (param::opt_str(p, "tsig_secret_env")?, param::opt_str(p, "tsig_secret_file")?) {
            (Some(_), Some(_)) => {
                return Err(error("tsig_secret_env", "give tsig_secret_env or tsig_secret_file, not both"));
            }
            (None, None) => {
                return Err(error("tsig_secret_env", "one of tsig_secret_env and tsig_secret_file is required"));
            }
            _ => {}
        }
        Ok(Plan { server, zone, name, rtype, record, journaled, key_name, algorithm })
    }

    /// The update it would send, for `runbook run --dry-run`.
    fn describe(&self) -> String {
        let change = match &self.record {
            Some(r) => format!(
                "delete the {} {t} record set; add {} {} IN {t} {}",
                self.name,
                self.name,
                r.ttl,
                r.value,
                t = self.rtype.as_str()
            ),
            None => format!("put back the {} {} record set saved before the update", self.name, self.rtype.as_str()),
        };
        format!(
            "RFC 2136 UPDATE of zone {} at {} over TCP, signed with TSIG key {} ({}): {change}",
            self.zone,
            self.server,
            self.key_name,
            self.algorithm.as_str()
        )
    }

    /// Where the record set this update replaces is kept for its undo.
    fn saved_path(&self, ctx: &Ctx) -> PathBuf {
        let id = format!(
            "{}\n{}\n{}\n{}\n{}\n{}",
            ctx.incident,
            ctx.kind,
            self.server,
            self.zone,
            self.name,
            self.rtype.as_str()
        );
        let digest = hex::encode(Sha256::digest(id.as_bytes()));
        ctx.work_dir.join("dns").join(format!("{}.json", &digest[..16]))
    }
}

/// A record set given as parameter `field`: `[{"ttl", "value"}]`, each
/// value of type `rtype`.
fn record_set(rtype: RrType, field: &str, v: &Value) -> Result<Vec<Rr>, StepError> {
    let set: Vec<Rr> = serde_json::from_value(v.clone())
        .map_err(|e| error(field, format!("is not a record set ([{{ttl, value}}, ...]): {e}")))?;
    for r in &set {
        rtype.data(&r.value).map_err(|e| error(field, format!("{:?} {e}", r.value)))?;
        if i64::from(r.ttl) > MAX_TTL {
            return Err(error(field, format!("TTL {} is over {MAX_TTL} seconds", r.ttl)));
        }
    }
    Ok(sorted(set))
}

/// Gives the undo of a `dns.update` step (`params`, with `restore = true`)
/// the record set to put back and the one the update wrote, from the
/// update's journaled result `forward` (so that any node can run it, not
/// only the one that holds the saved copy). Nothing is added when the undo
/// already has them, is for another server, zone, name or type, or the
/// result does not hold them.
pub fn undo_from_result(params: &mut Params, forward: &Value) {
    if params.contains_key("previous") || params.contains_key("written") {
        return;
    }
    let Ok(plan) = Plan::parse(params) else { return };
    let same = |k: &str, want: String| forward[k].as_str() == Some(want.as_str());
    let is_restore = plan.record.is_none();
    if !(is_restore
        && same("server", plan.server.to_string())
        && same("zone", plan.zone.to_string())
        && same("name", plan.name.to_string())
        && same("type", plan.rtype.as_str().to_string()))
    {
        return;
    }
    if let (Some(previous), Some(written)) =
        (forward.get("previous").filter(|v| v.is_array()), forward.get("records").filter(|v| v.is_array()))
    {
        params.insert("previous".into(), previous.clone());
        params.insert("written".into(), written.clone());
    }
}

fn parse_server(text: &str) -> Result<SocketAddr, String> {
    text.parse::<SocketAddr>()
        .or_else(|_| text.trim_matches(['[', ']']).parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| format!("{text:?} is not an IP address with an optional port (such as 10.0.0.53:53)"))
}

/// The update the step would send (never the secret), for `runbook run
/// --dry-run`; the parameters are rendered.
pub fn describe(params: &Params) -> Result<String, String> {
    Plan::parse(params).map(|p| p.describe()).map_err(|e| e.to_string())
}

pub async fn run(params: &Params, ctx: &Ctx) -> Result<Value, StepError> {
    let plan = Plan::parse(params)?;
    let secret = secret(params, ctx)?;
    let key = Key { name: plan.key_name.clone(), algorithm: plan.algorithm, secret };
    let timeout = if ctx.timeout.is_zero() { EXCHANGE_TIMEOUT } else { EXCHANGE_TIMEOUT.min(ctx.timeout / 4) };
    let client = Client { server: plan.server, key, timeout, clock_offset: 0 };
    execute(&plan, &client, ctx).await
}

/// The step with its client: read, save, update on the condition that the
/// record set is still the one read (or, for the undo, the one the update
/// wrote), read back.
async fn execute(plan: &Plan, client: &Client, ctx: &Ctx) -> Result<Value, StepError> {
    let saved_path = plan.saved_path(ctx);
    let current = client.rrset(&plan.name, plan.rtype).await.map_err(step_error)?;
    // What to write, what the server must still have for it to be written,
    // and what the result reports as replaced.
    let (desired, expected, previous) = match &plan.record {
        Some(r) => {
            let desired = vec![r.clone()];
            let saved = save(&saved_path, plan, &current, &desired).await?;
            (desired, current.clone(), saved.records)
        }
        None => {
            let (previous, written) = match &plan.journaled {
                Some(j) => j.clone(),
                None => {
                    let saved = load(&saved_path).await?;
                    (saved.records, saved.written)
                }
            };
            (sorted(previous), sorted(written), current.clone())
        }
    };
    let result = |changed: bool, before: Option<u32>, after: Option<u32>| {
        json!({
            "server": plan.server.to_string(),
            "zone": plan.zone.to_string(),
            "name": plan.name.to_string(),
            "type": plan.rtype.as_str(),
            "previous": previous,
            "records": desired,
            "changed": changed,
            "serial": {"before": before, "after": after},
        })
    };
    if current == desired {
        tracing::info!(step = %ctx.step, name = %plan.name, "dns.update: the record set is already as wanted");
        return Ok(result(false, None, None));
    }
    let before = client.soa_serial(&plan.zone).await.map_err(step_error)?;
    match client.replace(&plan.zone, &plan.name, plan.rtype, &expected, &desired).await {
        Ok(()) => {}
        Err(e @ DnsError::Changed { .. }) => return Err(changed_under(plan, client, &expected, e).await),
        Err(e) => return Err(step_error(e)),
    }
    let now = client.rrset(&plan.name, plan.rtype).await.map_err(step_error)?;
    if now != desired {
        return Err(StepError::Failed(format!(
            "{}: the update was accepted but {} {} now reads {} instead of {}",
            plan.server,
            plan.name,
            plan.rtype.as_str(),
            json!(now),
            json!(desired)
        )));
    }
    let after = client.soa_serial(&plan.zone).await.map_err(step_error)?;
    if after == before {
        return Err(StepError::Failed(format!(
            "{}: the update was accepted but the SOA serial of {} did not move ({before})",
            plan.server, plan.zone
        )));
    }
    tracing::info!(step = %ctx.step, name = %plan.name, before, after, "dns.update: record set replaced");
    Ok(result(true, Some(before), Some(after)))
}

/// The failure of an update whose prerequisite did not hold: someone else
/// changed the record set; it says what the server has now (read again)
/// and what the step expected. Not retried: a new attempt would read the
/// change and overwrite it.
async fn changed_under(plan: &Plan, client: &Client, expected: &[Rr], e: DnsError) -> StepError {
    let now = match client.rrset(&plan.name, plan.rtype).await {
        Ok(set) => json!(set).to_string(),
        Err(e) => format!("(cannot be read: {e})"),
    };
    let (whose, what) = match plan.record {
        Some(_) => ("the update", "the record set it read"),
        None => ("the undo", "the record set the update wrote"),
    };
    StepError::Refused(format!(
        "{e}: {} {} was changed by someone else and {whose} did not overwrite it: it now reads {now}, not {what} ({})",
        plan.name,
        plan.rtype.as_str(),
        json!(expected)
    ))
}

/// The key's secret from the variable or the file; errors name where it
/// was looked for, never what was there.
fn secret(params: &Params, ctx: &Ctx) -> Result<Vec<u8>, StepError> {
    let (field, text, place) = match param::opt_str(params, "tsig_secret_env")? {
        Some(var) => {
            ("tsig_secret_env", param::secret_from_env(ctx, "tsig_secret_env", var)?, format!("the value of {var}"))
        }
        None => {
            let path = param::req_str(params, "tsig_secret_file")?;
            let text = std::fs::read_to_string(path).map_err(|e| error("tsig_secret_file", format!("{path}: {e}")))?;
            ("tsig_secret_file", text, path.to_string())
        }
    };
    // A key clause (`key "name" { algorithm …; secret "…"; };`) or the
    // base64 text alone.
    let b64 = match text.split_once("secret") {
        Some((_, rest)) => rest.split('"').nth(1).unwrap_or_default().to_string(),
        None => text.trim().to_string(),
    };
    match base64::engine::general_purpose::STANDARD.decode(b64.as_bytes()) {
        Ok(secret) if !secret.is_empty() => Ok(secret),
        _ => Err(error(field, format!("{place} is not a base64 TSIG secret"))),
    }
}

/// Saves the record set that the update replaces and the one it writes.
/// When the server has what an earlier attempt of this update wrote (its
/// response was lost), the record set that attempt replaced is kept: it is
/// still the one to put back. Returns what is saved.
async fn save(path: &Path, plan: &Plan, current: &[Rr], desired: &[Rr]) -> Result<Saved, StepError> {
    let earlier = match tokio::fs::try_exists(path).await.unwrap_or(false) {
        true => Some(load(path).await?),
        false => None,
    };
    let records = match &earlier {
        Some(saved) if saved.written == current => saved.records.clone(),
        _ => current.to_vec(),
    };
    let saved = Saved {
        server: plan.server.to_string(),
        zone: plan.zone.to_string(),
        name: plan.name.to_string(),
        rtype: plan.rtype,
        records,
        written: desired.to_vec(),
    };
    if earlier.as_ref() == Some(&saved) {
        return Ok(saved);
    }
    let fail = |e: std::io::Error| StepError::Failed(format!("saving the record set to {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(fail)?;
    }
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_vec_pretty(&saved).expect("a record set serializes");
    tokio::fs::write(&tmp, text).await.map_err(fail)?;
    tokio::fs::rename(&tmp, path).await.map_err(fail)?;
    Ok(saved)
}

async fn load(path: &Path) -> Result<Saved, StepError> {
    let text = match tokio::fs::read(path).await {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StepError::Refused(format!(
                "no record set was saved by an update of this name in this incident ({}): nothing to restore",
                path.display()
            )));
        }
        Err(e) => return Err(StepError::Failed(format!("reading {}: {e}", path.display()))),
    };
    serde_json::from_slice(&text).map_err(|e| StepError::Refused(format!("{}: {e}", path.display())))
}

/// How a DNS failure ends the attempt: a server that refused (or a signature
/// that does not match) will refuse again; no answer or SERVFAIL may pass.
fn step_error(e: DnsError) -> StepError {
    match &e {
        DnsError::Rejected { rcode: Rcode::ServFail, .. } | DnsError::Transport { .. } | DnsError::Malformed { .. } => {
            StepError::Failed(e.to_string())
        }
        DnsError::Rejected { .. } | DnsError::Signature { .. } | DnsError::Changed { .. } => {
            StepError::Refused(e.to_string())
        }
    }
}

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_bind;
