//! Decisions by a Rego policy, evaluated in-process (regorus).
//!
//! The policy reads the input document of
//! [`crate::controller::Controller::policy_input`] and defines
//! `data.cutover.decision = {"action", "target", "reason"}`. An evaluation
//! error or a malformed result is an error here; the controller turns it into
//! "hold and alert", never a failover.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::health::Health;

/// The shipped default policy (`policies/failover.rego`).
pub const DEFAULT_POLICY: &str = include_str!("../../../policies/failover.rego");
/// The tests of the default policy (`policies/failover_test.rego`).
pub const DEFAULT_POLICY_TESTS: &str = include_str!("../../../policies/failover_test.rego");

/// Why a policy could not be loaded or evaluated.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A policy file could not be read.
    #[error("policy {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A policy does not compile; the message names file, line and column.
    #[error("policy does not compile: {message}")]
    Compile { message: String },
    /// Evaluation failed (a runtime error in the policy, or bad input).
    #[error("policy evaluation failed: {message}")]
    Eval { message: String },
    /// The policy's decision is not `{"action", "target", "reason"}` with a known action.
    #[error("policy returned an invalid decision: {message}")]
    BadDecision { message: String },
}

/// What the policy says to do (`failover`, `await_approval`, `hold`).
pub use cutover_core::domain::DecisionAction as Action;

/// A decision: action, target backend and the reason in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub action: Action,
    pub target: Option<String>,
    pub reason: String,
}

/// A loaded, compiled policy and the SHA-256 of its sources.
#[derive(Debug, Clone)]
pub struct Policy {
    engine: regorus::Engine,
    sha256: String,
    /// Whether the policy defines `data.cutover.fallback`.
    has_fallback: bool,
    /// Whether the policy defines `data.cutover.rollback`.
    has_rollback: bool,
    /// Where it came from: a path, or "built-in".
    pub origin: String,
}

impl Policy {
    /// The policy at `path`, or the built-in default.
    pub fn load(path: Option<&Path>) -> Result<Self, PolicyError> {
        match path {
            None => Self::from_sources(&[("built-in:failover.rego".into(), DEFAULT_POLICY.into())], "built-in"),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|source| PolicyError::Read { path: p.display().to_string(), source })?;
                Self::from_sources(&[(p.display().to_string(), text)], &p.display().to_string())
            }
        }
    }

    /// Compiles named sources into one policy.
    pub fn from_sources(sources: &[(String, String)], origin: &str) -> Result<Self, PolicyError> {
        let mut engine = regorus::Engine::new();
        let mut hash = Sha256::new();
        for (name, text) in sources {
            hash.update(text.as_bytes());
            engine
                .add_policy(name.clone(), text.clone())
                .map_err(|e| PolicyError::Compile { message: e.to_string() })?;
        }
        // Evaluate once on an empty input so that errors in rule bodies that
        // the parser accepts (unknown functions, conflicts) surface at load.
        engine.set_input(regorus::Value::new_object());
        engine
            .eval_rule("data.cutover.decision".into())
            .map_err(|e| PolicyError::Compile { message: e.to_string() })?;
        let mut defines = |rule: &str| match engine.eval_rule(format!("data.cutover.{rule}")) {
            Ok(_) => Ok(true),
            Err(e) if e.to_string().contains("not a valid rule path") => Ok(false),
            Err(e) => Err(PolicyError::Compile { message: e.to_string() }),
        };
        let has_fallback = defines("fallback")?;
        let has_rollback = defines("rollback")?;
        Ok(Self {
            engine,
            sha256: hex::encode(hash.finalize()),
            has_fallback,
            has_rollback,
            origin: origin.to_string(),
        })
    }

    /// Hex SHA-256 of the policy sources, recorded with every decision.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Evaluates `data.cutover.decision` on `input`.
    pub fn decide(&self, input: &Value) -> Result<Decision, PolicyError> {
        let mut engine = self.engine.clone();
        engine.set_input_json(&input.to_string()).map_err(|e| PolicyError::Eval { message: e.to_string() })?;
        let v = engine
            .eval_rule("data.cutover.decision".into())
            .map_err(|e| PolicyError::Eval { message: e.to_string() })?;
        if v == regorus::Value::Undefined {
            return Err(PolicyError::BadDecision {
                message: "data.cutover.decision is undefined for this input: no rule body matched \
                          (give it a default, e.g. `default decision := {\"action\": \"hold\", \"reason\": \"...\"}`)"
                    .into(),
            });
        }
        let json = v.to_json_str().map_err(|e| PolicyError::BadDecision { message: e.to_string() })?;
        let doc: Value =
            serde_json::from_str(&json).map_err(|e| PolicyError::BadDecision { message: format!("{e}: {json}") })?;
        parse_decision(&doc)
    }

    /// What `config check` asks of a policy: evaluated once on a sample
    /// input (the primary down from every vantage, the others healthy), its
    /// decision has a known action and, unless it holds, a target that is a
    /// configured backend. Errors are in the policy's terms
    /// (`data.cutover.decision.action is missing (the rule produced {...})`).
    pub fn check_sample(&self, config: &cutover_core::Config) -> Result<Decision, PolicyError> {
        let d = self.decide(&sample_input(config))?;
        if let Some(t) = &d.target
            && config.backend(t).is_none()
        {
            return Err(PolicyError::BadDecision {
                message: format!(
                    "data.cutover.decision.target is {t:?}, not a configured backend ({})",
                    config.backend_names().join(", ")
                ),
            });
        }
        Ok(d)
    }
}

/// A policy input (docs/policy.md, version 1) for an outage of the primary
/// confirmed by the local vantage, every other backend healthy: what
/// `config check` evaluates a policy on.
pub fn sample_input(config: &cutover_core::Config) -> Value {
    let primary = config.primary().name.clone();
    let backends: Vec<Value> = config
        .backends
        .iter()
        .map(|b| {
            serde_json::json!({
                "name": b.name,
                "role": b.role.as_str(),
                "health": if b.name == primary { Health::Down } else { Health::Healthy },
                "residency": b.residency,
                "active": b.name == primary,
            })
        })
        .collect();
    serde_json::json!({
        "version": 1,
        "time": cutover_core::time::rfc3339(std::time::SystemTime::now()),
        "active": primary,
        "incident": {"id": "inc-config-check", "backend": primary, "opened_at": cutover_core::time::rfc3339(std::time::SystemTime::now())},
        "backends": backends,
        "evidence": {
            "vantages": {"local": {"health": "down", "failures": 3, "error_rate": 1.0, "last_outcome": "Timeout", "age_ms": 0, "streak_ms": 3000}},
            "quorum": {"required": config.verify.quorum, "down": config.verify.quorum, "reporting": config.verify.quorum, "met": true},
            "verify": {"failed": true, "outcome": "Timeout"},
            "latency_only": false,
        },
        "signals": {},
        "replication": {"lags": [], "journal": null},
        "history": {"failovers_last_hour": 0},
        "limits": {"max_failovers_per_hour": config.policy.max_failovers_per_hour},
    })
}

impl Policy {
    /// Evaluates `data.cutover.fallback` = `{"allow", "reason"}` on `input`;
    /// `None` when the policy has no fallback rule (then the controller's own
    /// `stable_for` and `min_dwell` conditions decide alone).
    pub fn fallback(&self, input: &Value) -> Result<Option<(bool, String)>, PolicyError> {
        if !self.has_fallback {
            return Ok(None);
        }
        self.allow_rule("fallback", input)
    }

    /// Evaluates `data.cutover.rollback` = `{"allow", "reason"}` on `input`
    /// (with `input.rollback`): may a rollback move traffic back onto
    /// `input.rollback.onto`? `None` when the policy has no rollback rule
    /// (then the controller allows it only onto a healthy or recovering
    /// backend).
    pub fn rollback(&self, input: &Value) -> Result<Option<(bool, String)>, PolicyError> {
        if !self.has_rollback {
            return Ok(None);
        }
        self.allow_rule("rollback", input)
    }

    /// Evaluates an optional rule `data.cutover.<rule>` = `{"allow", "reason"}`.
    fn allow_rule(&self, rule: &str, input: &Value) -> Result<Option<(bool, String)>, PolicyError> {
        let mut engine = self.engine.clone();
        engine.set_input_json(&input.to_string()).map_err(|e| PolicyError::Eval { message: e.to_string() })?;
        let v = engine
            .eval_rule(format!("data.cutover.{rule}"))
            .map_err(|e| PolicyError::Eval { message: e.to_string() })?;
        if v == regorus::Value::Undefined {
            return Ok(None);
        }
        let json = v.to_json_str().map_err(|e| PolicyError::BadDecision { message: e.to_string() })?;
        let doc: Value =
            serde_json::from_str(&json).map_err(|e| PolicyError::BadDecision { message: format!("{e}: {json}") })?;
        let Some(allow) = doc.get("allow").and_then(Value::as_bool) else {
            return Err(PolicyError::BadDecision { message: format!("{rule} needs a boolean \"allow\": {doc}") });
        };
        Ok(Some((allow, doc.get("reason").and_then(Value::as_str).unwrap_or("").to_string())))
    }
}

fn parse_decision(doc: &Value) -> Result<Decision, PolicyError> {
    let bad = |m: String| PolicyError::BadDecision { message: m };
    const D: &str = "data.cutover.decision";
    if !doc.is_object() {
        return Err(bad(format!("{D} is {doc}, not an object {{\"action\", \"target\", \"reason\"}}")));
    }
    let action = match doc.get("action") {
        None | Some(Value::Null) => return Err(bad(format!("{D}.action is missing (the rule produced {doc})"))),
        Some(other) => match other.as_str().map(str::parse::<Action>) {
            Some(Ok(action)) => action,
            _ => {
                return Err(bad(format!(
                    "{D}.action is {other}, not \"failover\", \"await_approval\" or \"hold\" (the rule produced {doc})"
                )));
            }
        },
    };
    let target = match doc.get("target") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(bad(format!("{D}.target is {other}, not a backend name (the rule produced {doc})"))),
    };
    if action != Action::Hold && target.is_none() {
        return Err(bad(format!(
            "{D}.target is missing: action \"{}\" needs a target backend (the rule produced {doc})",
            action.as_str()
        )));
    }
    let reason = match doc.get("reason") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(r)) => r.clone(),
        Some(other) => return Err(bad(format!("{D}.reason is {other}, not a string (the rule produced {doc})"))),
    };
    Ok(Decision { action, target, reason })
}

/// The result of one `test_` rule.
#[derive(Debug, Clone, Serialize)]
pub struct TestResult {
    pub name: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The `.rego` files of a directory (or one file), sorted.
pub fn rego_files(path: &Path) -> Result<Vec<PathBuf>, PolicyError> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let read = |source| PolicyError::Read { path: path.display().to_string(), source };
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(read)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rego"))
        .collect();
    files.sort();
    Ok(files)
}

/// Runs every `test_*` rule in `sources`, as `opa test` does: a test passes
/// when its rule is true.
pub fn run_tests(sources: &[(String, String)]) -> Result<Vec<TestResult>, PolicyError> {
    let mut engine = regorus::Engine::new();
    for (name, text) in sources {
        engine.add_policy(name.clone(), text.clone()).map_err(|e| PolicyError::Compile { message: e.to_string() })?;
    }
    let mut results = Vec::new();
    for (_, text) in sources {
        let Some(package) = text.lines().find_map(|l| l.trim().strip_prefix("package ")) else { continue };
        let package = package.trim();
        let mut seen = std::collections::BTreeSet::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("test_") else { continue };
            let name: String = format!(
                "test_{}",
                rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>()
            );
            if !seen.insert(name.clone()) {
                continue;
            }
            let full = format!("data.{package}.{name}");
            let mut e = engine.clone();
            e.set_input(regorus::Value::new_object());
            let r = match e.eval_rule(full.clone()) {
                Ok(v) if v == regorus::Value::from(true) => TestResult { name: full, ok: true, error: None },
                Ok(regorus::Value::Undefined) => {
                    TestResult { name: full, ok: false, error: Some("undefined (a condition was false)".into()) }
                }
                Ok(v) => TestResult { name: full, ok: false, error: Some(format!("evaluated to {v}")) },
                Err(err) => TestResult { name: full, ok: false, error: Some(err.to_string()) },
            };
            results.push(r);
        }
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_policy_passes_its_own_tests() {
        let results = run_tests(&[
            ("failover.rego".into(), DEFAULT_POLICY.into()),
            ("failover_test.rego".into(), DEFAULT_POLICY_TESTS.into()),
        ])
        .unwrap();
        assert!(results.len() >= 10, "{results:?}");
        for r in &results {
            assert!(r.ok, "{r:?}");
        }
    }

    #[test]
    fn a_policy_that_does_not_compile_names_file_and_line() {
        let e = Policy::from_sources(&[("bad.rego".into(), "package cutover\n\ndecision := {\n".into())], "bad.rego")
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("bad.rego"), "{msg}");
        assert!(msg.contains(':'), "{msg}");
    }

    #[test]
    fn a_malformed_decision_is_an_error_not_a_failover() {
        let p = Policy::from_sources(
            &[("p.rego".into(), "package cutover\nimport rego.v1\ndecision := {\"action\": \"panic\"}\n".into())],
            "p",
        )
        .unwrap();
        assert!(matches!(p.decide(&serde_json::json!({})), Err(PolicyError::BadDecision { .. })));
    }

    #[test]
    fn a_policy_without_a_fallback_rule_leaves_it_to_the_controller() {
        let p = Policy::from_sources(
            &[("p.rego".into(), "package cutover\nimport rego.v1\ndecision := {\"action\": \"hold\"}\n".into())],
            "p",
        )
        .unwrap();
        assert_eq!(p.fallback(&serde_json::json!({})).unwrap(), None);
        let d = Policy::load(None).unwrap();
        let (allow, reason) =
            d.fallback(&serde_json::json!({"fallback": {"backend": "a", "health": "down"}})).unwrap().unwrap();
        assert!(!allow && reason.contains("a is down"), "{reason}");
    }

    #[test]
    fn a_rollback_rule_is_optional_and_says_allow_with_a_reason() {
        let p = Policy::load(None).unwrap();
        assert_eq!(p.rollback(&serde_json::json!({})).unwrap(), None, "the default policy has no rollback rule");
        let text = "package cutover\nimport rego.v1\ndecision := {\"action\": \"hold\"}\n\
                    rollback := {\"allow\": true, \"reason\": sprintf(\"%s is fine\", [input.rollback.onto])}\n";
        let p = Policy::from_sources(&[("p.rego".into(), text.into())], "p").unwrap();
        let got = p.rollback(&serde_json::json!({"rollback": {"onto": "alpha", "onto_health": "down"}})).unwrap();
        assert_eq!(got, Some((true, "alpha is fine".to_string())));
        let bad =
            "package cutover\nimport rego.v1\ndecision := {\"action\": \"hold\"}\nrollback := {\"reason\": \"x\"}\n";
        let p = Policy::from_sources(&[("p.rego".into(), bad.into())], "p").unwrap();
        let e = p.rollback(&serde_json::json!({})).unwrap_err();
        assert!(e.to_string().contains("rollback needs a boolean"), "{e}");
    }

    #[test]
    fn decisions_carry_the_policy_hash() {
        let p = Policy::load(None).unwrap();
        assert_eq!(p.sha256().len(), 64);
        let d = p.decide(&serde_json::json!({"active": "a", "incident": {"backend": "b"}, "backends": []})).unwrap();
        assert_eq!(d.action, Action::Hold);
    }
}
