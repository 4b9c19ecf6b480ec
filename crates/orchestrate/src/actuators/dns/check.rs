//! `runbook check` for `dns.update`: every parameter that is not a template
//! is checked as the step will check it, and every problem is reported.

use serde_json::Value;

use super::record::RrType;
use super::tsig::Algorithm;
use super::wire::Name;
use super::{MAX_TTL, parse_server};
use crate::actuators::param;
use crate::actuators::{Params, StepError};

/// Checks beyond names and types, for `runbook check`: every parameter that
/// is not a template is checked as the step will check it.
pub fn check(with: &Params) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let literal = |k: &str| with.get(k).and_then(Value::as_str).filter(|s| !s.contains("{{"));
    if let Some(Err(e)) = literal("server").map(parse_server) {
        out.push(("server".into(), e));
    }
    let mut names = Vec::new();
    for field in ["zone", "name"] {
        match literal(field).map(Name::parse) {
            Some(Ok(n)) => names.push(n),
            Some(Err(e)) => out.push((field.into(), e.to_string())),
            None => {}
        }
    }
    if let [zone, name] = &names[..]
        && !name.is_in(zone)
    {
        out.push(("name".into(), format!("{name} is not in zone {zone}")));
    }
    let rtype = literal("type").map(|t| (t, RrType::parse(t)));
    if let Some((t, None)) = rtype {
        out.push(("type".into(), format!("{t:?} is not A, AAAA or CNAME")));
    }
    let restore = param::opt_bool(with, "restore").unwrap_or(None).unwrap_or(false);
    match (with.get("value"), restore) {
        (Some(_), true) => out.push(("value".into(), "give value or restore = true, not both".into())),
        (None, false) => out.push(("value".into(), "missing required parameter (unless restore = true)".into())),
        _ => {}
    }
    match (with.contains_key("previous"), with.contains_key("written")) {
        (true, true) if !restore => out.push(("previous".into(), "is only given with restore = true".into())),
        (true, false) => out.push(("written".into(), "is required with previous".into())),
        (false, true) => out.push(("previous".into(), "is required with written".into())),
        _ => {}
    }
    if let (Some(v), Some((_, Some(t)))) = (literal("value"), rtype)
        && let Err(e) = t.data(v)
    {
        out.push(("value".into(), format!("{v:?} {e}")));
    }
    if !with.get("ttl").and_then(Value::as_str).is_some_and(|s| s.contains("{{")) {
        match param::opt_int(with, "ttl") {
            Ok(Some(t)) if !(0..=MAX_TTL).contains(&t) => {
                out.push(("ttl".into(), format!("must be between 0 and {MAX_TTL} seconds")));
            }
            Err(StepError::Param { problem, .. }) => out.push(("ttl".into(), problem)),
            _ => {}
        }
    }
    if let Some(a) = literal("tsig_algorithm")
        && Algorithm::parse(a).is_none()
    {
        out.push(("tsig_algorithm".into(), format!("{a:?} is not hmac-sha256 or hmac-sha512")));
    }
    match (with.contains_key("tsig_secret_env"), with.contains_key("tsig_secret_file")) {
        (true, true) => {
            out.push(("tsig_secret_env".into(), "give tsig_secret_env or tsig_secret_file, not both".into()))
        }
        (false, false) => out.push((
            "tsig_secret_env".into(),
            "missing required parameter (or tsig_secret_file): where the TSIG secret is".into(),
        )),
        _ => {}
    }
    out
}
