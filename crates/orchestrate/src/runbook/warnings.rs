//! Warnings about a runbook that loads but would fail or misbehave in an
//! outage: environment variables it names (`*_env` parameters) that are not
//! set, and values that are still placeholders (`ws-PLACEHOLDER`,
//! `changeme`, `TODO`, hosts under `example.com`). `cutover config check`,
//! `cutover runbook check` and `cutover runbook run --dry-run` print them;
//! they do not change the exit code.

use cutover_core::Problem;
use serde_json::Value;

use super::{Call, Runbook, redact};
use crate::actuators::Params;

/// The variable an actuator reads when its `*_env` parameter is not given.
const DEFAULT_ENV: &[(&str, &str, &str)] = &[("terraform_cloud.run", "token_env", "TFC_TOKEN")];

/// Every warning for `rb`, each with its step and field; `env` looks up an
/// environment variable.
pub fn warnings(rb: &Runbook, env: &dyn Fn(&str) -> Option<String>) -> Vec<Problem> {
    let mut out = Vec::new();
    for (i, step) in rb.steps.iter().enumerate() {
        let label = format!("steps[{i}] {:?}", step.name);
        call_warnings(&step.call, &format!("{label}.with"), env, &mut out);
        if let Some(undo) = &step.undo {
            call_warnings(undo, &format!("{label}.undo.with"), env, &mut out);
        }
    }
    out
}

fn call_warnings(call: &Call, at: &str, env: &dyn Fn(&str) -> Option<String>, out: &mut Vec<Problem>) {
    let mut unset = |path: String, var: &str, note: &str| {
        if !var.is_empty() && !var.contains("{{") && env(var).is_none_or(|v| v.is_empty()) {
            out.push(Problem::new(path, format!("environment variable {var}{note} is not set")));
        }
    };
    for (k, v) in &call.with {
        if !k.ends_with("_env") {
            continue;
        }
        match v {
            Value::String(var) => unset(format!("{at}.{k}"), var, ""),
            Value::Object(m) => {
                for (name, var) in m {
                    if let Some(var) = var.as_str() {
                        unset(format!("{at}.{k}.{name}"), var, "");
                    }
                }
            }
            _ => {}
        }
    }
    for (uses, key, var) in DEFAULT_ENV {
        if call.uses == *uses && !call.with.contains_key(*key) {
            unset(format!("{at}.{key}"), var, &format!(" (the default of {key})"));
        }
    }
    for (k, v) in &call.with {
        if !k.ends_with("_env") {
            placeholders(v, &format!("{at}.{k}"), out);
            literal_secrets(k, v, &format!("{at}.{k}"), out);
        }
    }
}

/// A secret written in the runbook (a value that redaction hides): it is
/// kept out of what cutover stores, but it is in Git.
fn literal_secrets(key: &str, v: &Value, path: &str, out: &mut Vec<Problem>) {
    if let (Value::Object(m), "headers" | "env") = (v, key) {
        for (name, x) in m {
            literal_secrets(name, x, &format!("{path}.{name}"), out);
        }
        return;
    }
    if v.as_str().is_some_and(|s| s.contains("{{")) {
        return;
    }
    let one = Params::from_iter([(key.to_string(), v.clone())]);
    if redact::redact(&one) != one {
        let instead = match key {
            "url" => "url_env",
            _ if path.contains(".headers.") => "headers_env",
            _ => "an *_env parameter",
        };
        out.push(Problem::new(
            path.to_string(),
            format!(
                "holds what looks like a secret, written in the runbook (redacted from what cutover stores, but it \
                 is in Git); read it from the environment with {instead}"
            ),
        ));
    }
}

fn placeholders(v: &Value, path: &str, out: &mut Vec<Problem>) {
    match v {
        Value::String(s) => {
            if let Some(why) = placeholder(s) {
                let shown = redact::redact_text(s);
                out.push(Problem::new(
                    path.to_string(),
                    format!("{shown:?} {why}; replace it before an outage needs it"),
                ));
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                placeholders(x, &format!("{path}[{i}]"), out);
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                placeholders(x, &format!("{path}.{k}"), out);
            }
        }
        _ => {}
    }
}

/// Why `s` looks like a placeholder, if it does.
pub fn placeholder(s: &str) -> Option<String> {
    let lower = s.to_ascii_lowercase();
    for word in ["placeholder", "changeme", "change-me", "change_me", "replace-me", "replace_me", "replaceme"] {
        if lower.contains(word) {
            return Some(format!("looks like a placeholder ({word})"));
        }
    }
    let words = || s.split(|c: char| !c.is_ascii_alphanumeric());
    for word in ["TODO", "FIXME", "XXX"] {
        if words().any(|w| w == word) {
            return Some(format!("looks like a placeholder ({word})"));
        }
    }
    if lower.contains("<your") || lower.contains("your-") || lower.contains("your_") {
        return Some("looks like a placeholder (your...)".into());
    }
    hosts(s).into_iter().find(|h| example_host(h)).map(|h| format!("uses the example host {h}"))
}

/// Reserved example domains (RFC 2606, RFC 6761).
fn example_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    ["example.com", "example.org", "example.net"].iter().any(|d| host == *d || host.ends_with(&format!(".{d}")))
        || host.ends_with(".example")
        || host.ends_with(".invalid")
}

/// The hosts of the URLs (`scheme://host`) and scp-like addresses
/// (`user@host:path`) in `s`.
fn hosts(s: &str) -> Vec<String> {
    let host_chars = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-';
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let after = &rest[i + 3..];
        let authority = &after[..after.find(['/', '?', '#', ' ', '"', '\'']).unwrap_or(after.len())];
        let host = authority.rsplit('@').next().unwrap_or_default();
        out.push(host.split(':').next().unwrap_or_default().to_string());
        rest = after;
    }
    if !s.contains("://")
        && let Some((_, after)) = s.split_once('@')
        && let Some((host, _)) = after.split_once(':')
        && !host.is_empty()
        && host.chars().all(host_chars)
    {
        out.push(host.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runbook::parse;

    #[test]
    fn placeholders_are_recognised() {
        for s in [
            "ws-PLACEHOLDER",
            "changeme",
            "TODO",
            "https://argocd.example.com/api/webhook",
            "git@git.example.org:acme/infra.git",
            "<your token>",
        ] {
            assert!(placeholder(s).is_some(), "{s}");
        }
        for s in ["ws-AbCdEf123", "https://argocd.acme.io/api", "todos", "{{ target }}", "git@github.com:acme/x.git"] {
            assert!(placeholder(s).is_none(), "{s}");
        }
    }

    #[test]
    fn unset_variables_and_placeholders_are_named_with_step_and_field() {
        let rb = parse(
            r#"
[[steps]]
name = "apply"
uses = "terraform_cloud.run"
with = { workspace_id = "ws-PLACEHOLDER" }
[[steps]]
name = "hook"
uses = "http"
with = { url_env = "HOOK_URL", headers_env = { Authorization = "HOOK_AUTH" } }
[[steps]]
name = "tell"
uses = "notify"
with = { url_env = "SET_ONE" }
"#,
            "rb.toml",
            &[],
        )
        .unwrap();
        let env = |k: &str| (k == "SET_ONE").then(|| "https://hooks.slack.com/services/x".to_string());
        let w: Vec<String> = warnings(&rb, &env).iter().map(|p| p.to_string()).collect();
        let all = w.join("\n");
        assert!(all.contains(r#"steps[0] "apply".with.token_env: environment variable TFC_TOKEN (the default of token_env) is not set"#), "{all}");
        assert!(
            all.contains(r#"steps[0] "apply".with.workspace_id: "ws-PLACEHOLDER" looks like a placeholder"#),
            "{all}"
        );
        assert!(all.contains(r#"steps[1] "hook".with.url_env: environment variable HOOK_URL is not set"#), "{all}");
        assert!(
            all.contains(
                r#"steps[1] "hook".with.headers_env.Authorization: environment variable HOOK_AUTH is not set"#
            ),
            "{all}"
        );
        assert!(!all.contains("SET_ONE"), "{all}");
        assert_eq!(w.len(), 4, "{all}");
    }

    #[test]
    fn secrets_written_in_the_runbook_are_warned_about_without_their_value() {
        let rb = parse(
            r#"
[[steps]]
name = "hook"
uses = "http"
with = { url = "http://127.0.0.1:9/h?token=LiteralT0ken", headers = { X-Api-Key = "LiteralKey1", X-Team = "storage" } }
[[steps]]
name = "run"
uses = "command"
with = { program = "deploy", args = ["--region", "{{ target }}"], env = { DEPLOY_PASSWORD = "LiteralPw2" } }
"#,
            "rb.toml",
            &[],
        )
        .unwrap();
        let all: Vec<String> = warnings(&rb, &|_| None).iter().map(|p| p.to_string()).collect();
        let all = all.join("\n");
        assert!(
            all.contains(r#"steps[0] "hook".with.url: holds what looks like a secret"#) && all.contains("url_env"),
            "{all}"
        );
        assert!(
            all.contains(r#"steps[0] "hook".with.headers.X-Api-Key: holds"#) && all.contains("headers_env"),
            "{all}"
        );
        assert!(all.contains(r#"steps[1] "run".with.env.DEPLOY_PASSWORD: holds"#), "{all}");
        assert!(!all.contains("X-Team") && !all.contains("args"), "{all}");
        assert!(!all.contains("Literal"), "a warning never shows the value: {all}");
    }
}
