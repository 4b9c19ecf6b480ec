//! Reading a step's parameters (`with`) by name. Errors name the field and
//! the expected shape, never the value (a value may be a secret).
//!
//! Templating renders values into strings, so the readers of booleans,
//! integers and durations also accept their string forms (`"true"`, `"200"`,
//! `"5s"`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::{Params, StepError};

/// A [`StepError::Param`] for `field`.
pub fn error(field: impl Into<String>, problem: impl Into<String>) -> StepError {
    StepError::Param { field: field.into(), problem: problem.into() }
}

fn present<'a>(params: &'a Params, name: &str) -> Option<&'a Value> {
    params.get(name).filter(|v| !v.is_null())
}

/// An optional string.
pub fn opt_str<'a>(params: &'a Params, name: &str) -> Result<Option<&'a str>, StepError> {
    match present(params, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(error(name, "must be a string")),
    }
}

/// A required, non-empty string.
pub fn req_str<'a>(params: &'a Params, name: &str) -> Result<&'a str, StepError> {
    match opt_str(params, name)? {
        None => Err(error(name, "is required")),
        Some("") => Err(error(name, "must not be empty")),
        Some(s) => Ok(s),
    }
}

/// An optional boolean (`true`, `false`, or those words as strings).
pub fn opt_bool(params: &Params, name: &str) -> Result<Option<bool>, StepError> {
    match present(params, name) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s == "true" => Ok(Some(true)),
        Some(Value::String(s)) if s == "false" => Ok(Some(false)),
        Some(_) => Err(error(name, "must be true or false")),
    }
}

/// An optional integer (a number or a string of digits).
pub fn opt_int(params: &Params, name: &str) -> Result<Option<i64>, StepError> {
    match present(params, name) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| error(name, "must be an integer")),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| error(name, "must be an integer")),
        Some(_) => Err(error(name, "must be an integer")),
    }
}

/// An optional duration such as `"5s"`.
pub fn opt_duration(params: &Params, name: &str) -> Result<Option<Duration>, StepError> {
    match opt_str(params, name).map_err(|_| error(name, "must be a duration such as \"5s\""))? {
        None => Ok(None),
        Some(s) => cutover_core::parse_duration(s).map(Some).map_err(|e| error(name, e.to_string())),
    }
}

/// An optional table of strings; numbers and booleans are taken as their
/// text. Absent means empty.
pub fn string_map(params: &Params, name: &str) -> Result<BTreeMap<String, String>, StepError> {
    let Some(value) = present(params, name) else { return Ok(BTreeMap::new()) };
    let Value::Object(map) = value else { return Err(error(name, "must be a table of strings")) };
    map.iter()
        .map(|(k, v)| match scalar_text(v) {
            Some(text) => Ok((k.clone(), text)),
            None => Err(error(format!("{name}.{k}"), "must be a string")),
        })
        .collect()
}

/// An optional array of strings; numbers and booleans are taken as their
/// text. Absent means empty.
pub fn string_list(params: &Params, name: &str) -> Result<Vec<String>, StepError> {
    let Some(value) = present(params, name) else { return Ok(Vec::new()) };
    let Value::Array(items) = value else { return Err(error(name, "must be an array of strings")) };
    items
        .iter()
        .enumerate()
        .map(|(i, v)| scalar_text(v).ok_or_else(|| error(format!("{name}[{i}]"), "must be a string")))
        .collect()
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Reads the environment variable that `field` names, for a secret. The
/// error names the variable, never a value.
pub fn secret_from_env(ctx: &super::Ctx, field: impl Into<String>, var: &str) -> Result<String, StepError> {
    match (ctx.env)(var) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(error(field, format!("environment variable {var} is not set"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(v: Value) -> Params {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn reads_scalars_in_their_templated_string_forms_too() {
        let p = params(json!({"a": "true", "b": false, "n": "201", "m": 7, "d": "250ms", "s": "x", "z": null}));
        assert_eq!(opt_bool(&p, "a").unwrap(), Some(true));
        assert_eq!(opt_bool(&p, "b").unwrap(), Some(false));
        assert_eq!(opt_int(&p, "n").unwrap(), Some(201));
        assert_eq!(opt_int(&p, "m").unwrap(), Some(7));
        assert_eq!(opt_duration(&p, "d").unwrap(), Some(Duration::from_millis(250)));
        assert_eq!(opt_str(&p, "z").unwrap(), None);
        assert_eq!(req_str(&p, "s").unwrap(), "x");
        assert_eq!(req_str(&p, "missing").unwrap_err().to_string(), "with.missing: is required");
        assert_eq!(opt_bool(&p, "s").unwrap_err().to_string(), "with.s: must be true or false");
    }

    #[test]
    fn errors_name_the_field_and_never_the_value() {
        let p = params(json!({"headers": {"Authorization": ["s3cr3t"]}, "args": ["a", {"k": "s3cr3t"}]}));
        let e = string_map(&p, "headers").unwrap_err().to_string();
        assert_eq!(e, "with.headers.Authorization: must be a string");
        let e = string_list(&p, "args").unwrap_err().to_string();
        assert_eq!(e, "with.args[1]: must be a string");
    }
}
