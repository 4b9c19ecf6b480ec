//! Runbooks as written: a TOML file of ordered `[[steps]]`, parsed and
//! checked without side effects (`cutover runbook check`), every problem
//! reported at once with the step and field it is in.
//!
//! ```toml
//! [[steps]]
//! name = "switch the gateway"
//! uses = "state.switch"
//! with = { to = "{{ target }}" }
//! timeout = "10s"
//! retries = 1
//! on_failure = "rollback"        # or "continue"
//! undo = { uses = "state.switch", with = { to = "{{ source }}" } }
//! ```
//!
//! Strings in `with` may use `{{ incident.id }}`, `{{ incident.backend }}`,
//! `{{ source }}`, `{{ target }}`, `{{ reason }}` and `{{ kind }}`, escaped
//! for where they go ([`template`]); a literal `{{` is written `{{ '{{' }}`.
//! What the journal, the timeline and the audit log show of a step is
//! redacted ([`redact`]); [`warnings`] finds unset variables and
//! placeholders that do not stop a runbook from loading.

use std::time::Duration;

use cutover_core::Problem;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::actuators::{self, Kind, ParamSpec, Params};

pub mod redact;
pub mod template;
pub mod warnings;

pub use redact::redact;
pub use template::{ParamTemplateError, TemplateError, render, render_call, render_str};
pub use warnings::warnings;

/// The template variables a runbook may use.
pub const VARIABLES: &[&str] =
    &["incident.id", "incident.backend", "source", "target", "reason", "kind", "fencing.token"];

/// The actuators the engine itself provides (the others are in [`actuators`]).
pub const BUILT_IN: &[&str] = &["state.switch", "validate", "sync.resync", "approval"];

/// Default step timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

const SWITCH: &[ParamSpec] = &[ParamSpec::required("to", Kind::String, "the backend to make active")];
const VALIDATE: &[ParamSpec] = &[ParamSpec::required("backend", Kind::String, "the backend to smoke-test")];
const RESYNC: &[ParamSpec] =
    &[ParamSpec::optional("max_rounds", Kind::Integer, "passes over the journal until nothing is left (default 5)")];
const APPROVAL: &[ParamSpec] = &[
    ParamSpec::optional("timeout", Kind::Duration, "how long to wait for a verdict (default 15m)"),
    ParamSpec::optional("default", Kind::String, "the verdict on expiry: reject (default) or approve"),
    ParamSpec::optional("message", Kind::String, "what the approver is asked"),
];

/// The parameters of an actuator, built-in or external.
pub fn params(uses: &str) -> Option<&'static [ParamSpec]> {
    match uses {
        "state.switch" => Some(SWITCH),
        "validate" => Some(VALIDATE),
        "sync.resync" => Some(RESYNC),
        "approval" => Some(APPROVAL),
        other => actuators::params(other),
    }
}

/// What to do when a step fails for good (after its retries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Undo the completed steps in reverse order; the run is rolled back.
    Rollback,
    /// Record the failure and go on with the next step.
    Continue,
}

/// An actuator call: `uses` with parameters (templates not yet rendered).
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub uses: String,
    pub with: Params,
}

/// One step.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: String,
    pub call: Call,
    pub timeout: Duration,
    pub retries: u32,
    pub on_failure: OnFailure,
    pub undo: Option<Call>,
}

/// A checked runbook.
#[derive(Debug, Clone, PartialEq)]
pub struct Runbook {
    /// Where it came from: a path, or `built-in failover`.
    pub origin: String,
    /// SHA-256 of the text, recorded with every run.
    pub sha256: String,
    pub steps: Vec<Step>,
}

/// Every problem in a runbook.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.problems.iter().map(|p| format!("{}: {p}", self.origin)).collect::<Vec<_>>().join("\n"))]
pub struct RunbookError {
    pub origin: String,
    pub problems: Vec<Problem>,
}

/// The built-in failover runbook: switch to the target, then validate it.
pub const BUILT_IN_FAILOVER: &str = r#"
[[steps]]
name = "switch to the target"
uses = "state.switch"
with = { to = "{{ target }}" }
timeout = "10s"
undo = { uses = "state.switch", with = { to = "{{ source }}" } }

[[steps]]
name = "validate the target"
uses = "validate"
with = { backend = "{{ target }}" }
timeout = "60s"
"#;

/// The built-in fallback runbook: copy back what was written during the
/// outage (verified), switch back, validate.
pub const BUILT_IN_FALLBACK: &str = r#"
[[steps]]
name = "copy back what was written during the outage"
uses = "sync.resync"
timeout = "10m"

[[steps]]
name = "switch back"
uses = "state.switch"
with = { to = "{{ target }}" }
timeout = "10s"
undo = { uses = "state.switch", with = { to = "{{ source }}" } }

[[steps]]
name = "validate"
uses = "validate"
with = { backend = "{{ target }}" }
timeout = "60s"
"#;

/// The built-in runbook for `failover` or `fallback`.
pub fn built_in(kind: cutover_core::domain::RunKind) -> Runbook {
    let text = match kind {
        // An approved rollback undoes the steps of the run it belongs to;
        // it has no runbook of its own.
        cutover_core::domain::RunKind::Failover | cutover_core::domain::RunKind::Rollback => BUILT_IN_FAILOVER,
        cutover_core::domain::RunKind::Fallback => BUILT_IN_FALLBACK,
    };
    parse(text, &format!("built-in {kind}"), &[]).expect("built-in runbooks are valid")
}

/// Reads and checks a runbook file. `backends` are the configured backend
/// names (a literal `to`/`backend` must be one of them); empty skips that check.
pub fn load(path: &std::path::Path, backends: &[&str]) -> Result<Runbook, RunbookError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| RunbookError {
        origin: origin.clone(),
        problems: vec![Problem::new("file", format!("cannot read it: {e}"))],
    })?;
    let mut runbook = parse(&text, &origin, backends)?;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let problems = check_files(&mut runbook, &std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()));
    if !problems.is_empty() {
        return Err(RunbookError { origin, problems });
    }
    Ok(runbook)
}

/// The checks of a runbook file that read other files: a literal `ca_file`
/// is resolved against the runbook's directory `dir` and read (a PEM bundle
/// of CA certificates); so is the `tsig_secret_file` of a `dns.update` step
/// (it must be a file; its content is read only when the step runs); the
/// `file` of a `git.set` step on a local working copy must not leave it
/// through a symlink.
fn check_files(runbook: &mut Runbook, dir: &std::path::Path) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (i, step) in runbook.steps.iter_mut().enumerate() {
        let label = format!("steps[{i}] {:?}", step.name);
        let calls = std::iter::once((label.clone(), &mut step.call))
            .chain(step.undo.as_mut().map(|u| (format!("{label}.undo"), u)));
        for (at, call) in calls {
            if let Some(Value::String(ca)) = call.with.get_mut("ca_file") {
                let field = format!("{at}.with.ca_file");
                if ca.contains("{{") {
                    problems.push(Problem::new(field, "must be a literal path (no templates)"));
                    continue;
                }
                let path = dir.join(ca.as_str());
                match cutover_s3::tls::check_ca_file(&path) {
                    Ok(()) => *ca = path.to_string_lossy().into_owned(),
                    Err(e) => problems.push(Problem::new(field, e.to_string())),
                }
            }
            if call.uses == "dns.update"
                && let Some(Value::String(key_file)) = call.with.get_mut("tsig_secret_file")
                && !key_file.contains("{{")
            {
                let path = dir.join(key_file.as_str());
                match std::fs::metadata(&path) {
                    Ok(m) if m.is_file() => *key_file = path.to_string_lossy().into_owned(),
                    Ok(_) => problems.push(Problem::new(format!("{at}.with.tsig_secret_file"), "is not a file")),
                    Err(e) => problems
                        .push(Problem::new(format!("{at}.with.tsig_secret_file"), format!("{}: {e}", path.display()))),
                }
            }
            if call.uses == "git.set"
                && let (Some(Value::String(repo)), Some(Value::String(file))) =
                    (call.with.get("repo"), call.with.get("file"))
                && !repo.contains("{{")
                && !file.contains("{{")
                && std::path::Path::new(repo).join(".git").exists()
                && let Err(e) = actuators::git::inside(std::path::Path::new(repo), file)
            {
                problems.push(Problem::new(format!("{at}.with.file"), e.to_string()));
            }
        }
    }
    problems
}

/// Parses and checks a runbook text.
pub fn parse(text: &str, origin: &str, backends: &[&str]) -> Result<Runbook, RunbookError> {
    let fail = |problems| RunbookError { origin: origin.to_string(), problems };
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        let at = e.span().map(|s| line_col(text, s.start)).unwrap_or_default();
        fail(vec![Problem::new(at, e.message().to_string())])
    })?;
    let mut problems = Vec::new();
    for key in table.keys().filter(|k| *k != "steps") {
        problems.push(Problem::new(key.clone(), "unknown key (a runbook has only [[steps]])"));
    }
    let raw_steps = match table.get("steps") {
        Some(toml::Value::Array(a)) => a.clone(),
        Some(_) => {
            problems.push(Problem::new("steps", "must be an array of tables ([[steps]])"));
            Vec::new()
        }
        None => Vec::new(),
    };
    if raw_steps.is_empty() && problems.is_empty() {
        problems.push(Problem::new("steps", "a runbook needs at least one [[steps]]"));
    }
    let mut steps = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (i, raw) in raw_steps.iter().enumerate() {
        let label = match raw.get("name").and_then(|n| n.as_str()) {
            Some(n) => format!("steps[{i}] {n:?}"),
            None => format!("steps[{i}]"),
        };
        let Some(t) = raw.as_table() else {
            problems.push(Problem::new(label, "must be a table"));
            continue;
        };
        if let Some(step) = check_step(t, &label, backends, &mut problems) {
            if !names.insert(step.name.clone()) {
                problems.push(Problem::new(format!("{label}.name"), "another step has this name"));
            }
            steps.push(step);
        }
    }
    if !problems.is_empty() {
        return Err(fail(problems));
    }
    Ok(Runbook { origin: origin.to_string(), sha256: hex::encode(Sha256::digest(text.as_bytes())), steps })
}

fn line_col(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    format!("line {line}, column {col}")
}

fn check_step(t: &toml::Table, label: &str, backends: &[&str], problems: &mut Vec<Problem>) -> Option<Step> {
    const KEYS: &[&str] = &["name", "uses", "with", "timeout", "retries", "on_failure", "undo"];
    for k in t.keys().filter(|k| !KEYS.contains(&k.as_str())) {
        problems
            .push(Problem::new(format!("{label}.{k}"), format!("unknown key (expected one of {})", KEYS.join(", "))));
    }
    let before = problems.len();
    let name = match t.get("name") {
        Some(toml::Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(_) => {
            problems.push(Problem::new(format!("{label}.name"), "must be a non-empty string"));
            String::new()
        }
        None => {
            problems.push(Problem::new(format!("{label}.name"), "missing"));
            String::new()
        }
    };
    let call = check_call(t, label, backends, problems);
    let timeout = match t.get("timeout") {
        None => DEFAULT_TIMEOUT,
        Some(toml::Value::String(s)) => match cutover_core::parse_duration(s) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                problems.push(Problem::new(format!("{label}.timeout"), "must be more than zero"));
                DEFAULT_TIMEOUT
            }
            Err(e) => {
                problems.push(Problem::new(format!("{label}.timeout"), e.to_string()));
                DEFAULT_TIMEOUT
            }
        },
        Some(_) => {
            problems.push(Problem::new(format!("{label}.timeout"), "must be a duration string such as \"30s\""));
            DEFAULT_TIMEOUT
        }
    };
    let retries = match t.get("retries") {
        None => 0,
        Some(toml::Value::Integer(n)) if (0..=20).contains(n) => *n as u32,
        Some(_) => {
            problems.push(Problem::new(format!("{label}.retries"), "must be an integer from 0 to 20"));
            0
        }
    };
    // A notification is cosmetic: it never undoes a failover, whatever goes wrong with it.
    let notify = call.as_ref().is_some_and(|c| c.uses == "notify");
    let on_failure = match t.get("on_failure").map(|v| v.as_str()) {
        None if notify => OnFailure::Continue,
        Some(Some("rollback")) if notify => {
            problems.push(Problem::new(
                format!("{label}.on_failure"),
                "a notify step never rolls a run back (it always continues); remove on_failure",
            ));
            OnFailure::Continue
        }
        None | Some(Some("rollback")) => OnFailure::Rollback,
        Some(Some("continue")) => OnFailure::Continue,
        Some(_) => {
            problems.push(Problem::new(format!("{label}.on_failure"), "must be \"rollback\" or \"continue\""));
            OnFailure::Rollback
        }
    };
    let undo = match t.get("undo") {
        None => None,
        Some(toml::Value::Table(u)) => {
            let ulabel = format!("{label}.undo");
            for k in u.keys().filter(|k| !["uses", "with"].contains(&k.as_str())) {
                problems.push(Problem::new(format!("{ulabel}.{k}"), "unknown key (expected uses, with)"));
            }
            check_call(u, &ulabel, backends, problems)
        }
        Some(_) => {
            problems.push(Problem::new(format!("{label}.undo"), "must be a table { uses = ..., with = { ... } }"));
            None
        }
    };
    if problems.len() > before {
        return None;
    }
    Some(Step { name, call: call?, timeout, retries, on_failure, undo })
}

/// Checks `uses` and `with` of a step or an undo.
fn check_call(t: &toml::Table, label: &str, backends: &[&str], problems: &mut Vec<Problem>) -> Option<Call> {
    let uses = match t.get("uses") {
        Some(toml::Value::String(s)) => s.clone(),
        Some(_) => {
            problems.push(Problem::new(format!("{label}.uses"), "must be a string naming an actuator"));
            return None;
        }
        None => {
            problems.push(Problem::new(format!("{label}.uses"), "missing (which actuator runs this step?)"));
            return None;
        }
    };
    let Some(specs) = params(&uses) else {
        let mut known: Vec<&str> = BUILT_IN.to_vec();
        known.extend(actuators::NAMES);
        problems.push(Problem::new(
            format!("{label}.uses"),
            format!("unknown actuator {uses:?} (known: {})", known.join(", ")),
        ));
        return None;
    };
    let with: Params = match t.get("with") {
        None => Params::new(),
        Some(v @ toml::Value::Table(_)) => match toml_to_json(v) {
            Value::Object(m) => m,
            _ => unreachable!("a table converts to an object"),
        },
        Some(_) => {
            problems.push(Problem::new(format!("{label}.with"), "must be a table of parameters"));
            return None;
        }
    };
    let before = problems.len();
    for spec in specs {
        match with.get(spec.name) {
            None if spec.required => problems.push(Problem::new(
                format!("{label}.with.{}", spec.name),
                format!("missing required parameter ({})", spec.help),
            )),
            None => {}
            Some(v) => {
                if let Err(why) = check_kind(spec.kind, v) {
                    problems.push(Problem::new(format!("{label}.with.{}", spec.name), why.to_string()));
                }
            }
        }
    }
    for k in with.keys().filter(|k| !specs.iter().any(|s| s.name == k.as_str())) {
        let names: Vec<&str> = specs.iter().map(|s| s.name).collect();
        problems.push(Problem::new(
            format!("{label}.with.{k}"),
            format!("unknown parameter of {uses} (it takes: {})", names.join(", ")),
        ));
    }
    for (k, v) in &with {
        check_templates(&uses, &mut vec![k.clone()], v, &format!("{label}.with.{k}"), problems);
    }
    for (field, problem) in actuators::check(&uses, &with) {
        problems.push(Problem::new(format!("{label}.with.{field}"), problem));
    }
    // A literal backend name must be a configured backend.
    if !backends.is_empty() {
        let field = match uses.as_str() {
            "state.switch" => Some("to"),
            "validate" => Some("backend"),
            "kubernetes.patch" => Some("provider"),
            _ => None,
        };
        if let Some(f) = field
            && let Some(Value::String(s)) = with.get(f)
            && !s.contains("{{")
            && !backends.contains(&s.as_str())
        {
            problems.push(Problem::new(
                format!("{label}.with.{f}"),
                format!("no backend named {s:?} (configured: {})", backends.join(", ")),
            ));
        }
    }
    (problems.len() == before).then_some(Call { uses, with })
}

/// A parameter value of the wrong kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum KindError {
    /// A duration parameter that is not a string.
    #[error("must be a duration string such as \"30s\"")]
    NotADurationString,
    /// A duration string that does not parse.
    #[error(transparent)]
    Duration(#[from] cutover_core::DurationError),
    /// Any other kind: `expected` says what the value must be.
    #[error("must be {expected}")]
    Wrong { expected: &'static str },
}

fn check_kind(kind: Kind, v: &Value) -> Result<(), KindError> {
    let ok = match kind {
        Kind::String => v.is_string(),
        Kind::Integer => v.is_i64() || v.is_u64(),
        Kind::Bool => v.is_boolean(),
        Kind::Duration => {
            return match v.as_str() {
                Some(s) if s.contains("{{") => Ok(()),
                Some(s) => cutover_core::parse_duration(s).map(|_| ()).map_err(KindError::from),
                None => Err(KindError::NotADurationString),
            };
        }
        Kind::StringMap => v.as_object().is_some_and(|m| m.values().all(Value::is_string)),
        Kind::StringList => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        Kind::Any => true,
    };
    if ok {
        Ok(())
    } else {
        let expected = match kind {
            Kind::String => "a string",
            Kind::Integer => "an integer",
            Kind::Bool => "true or false",
            Kind::StringMap => "a table of strings",
            Kind::StringList => "an array of strings",
            Kind::Duration | Kind::Any => unreachable!("answered above"),
        };
        Err(KindError::Wrong { expected })
    }
}

/// Renders every template of a parameter with example values, for where it
/// goes, so that a bad template or one that cannot be escaped is found now.
fn check_templates(uses: &str, keys: &mut Vec<String>, v: &Value, path: &str, problems: &mut Vec<Problem>) {
    match v {
        Value::String(s) => {
            let k: Vec<&str> = keys.iter().map(String::as_str).collect();
            if let Err(e) = template::render_in(s, &Vars::placeholder(), template::context(uses, &k)) {
                problems.push(Problem::new(path.to_string(), e.to_string()));
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                check_templates(uses, keys, x, &format!("{path}[{i}]"), problems);
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                keys.push(k.clone());
                check_templates(uses, keys, x, &format!("{path}.{k}"), problems);
                keys.pop();
            }
        }
        _ => {}
    }
}

fn toml_to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map(Value::Number).unwrap_or(Value::Null),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(t.iter().map(|(k, v)| (k.clone(), toml_to_json(v))).collect()),
    }
}

/// The values of the template variables for one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vars {
    pub incident: String,
    pub backend: String,
    pub source: String,
    pub target: String,
    pub reason: String,
    pub kind: String,
    /// `{{ fencing.token }}`: the leader's fencing token in HA, `0` when
    /// cutover runs embedded (no election).
    pub fencing_token: String,
}

impl Vars {
    /// Example values, for checks.
    pub fn placeholder() -> Self {
        let x = String::from("x");
        Self {
            incident: x.clone(),
            backend: x.clone(),
            source: x.clone(),
            target: x.clone(),
            reason: x.clone(),
            kind: x.clone(),
            fencing_token: x,
        }
    }

    /// The value of a template variable.
    pub fn get(&self, name: &str) -> Option<&str> {
        Some(match name {
            "incident.id" => &self.incident,
            "incident.backend" => &self.backend,
            "source" => &self.source,
            "target" => &self.target,
            "reason" => &self.reason,
            "kind" => &self.kind,
            "fencing.token" => &self.fencing_token,
            _ => return None,
        })
    }
}

/// Removes `user:password@` from a URL-looking string.
pub fn strip_userinfo(s: &str) -> String {
    if let Some(scheme_end) = s.find("://") {
        let rest = &s[scheme_end + 3..];
        let host_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..host_end].rfind('@') {
            return format!("{}://[redacted]@{}", &s[..scheme_end], &rest[at + 1..]);
        }
    }
    s.to_string()
}

#[cfg(test)]
mod tests;
