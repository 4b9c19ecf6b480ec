//! Templates in step parameters: `{{ target }}` and the other
//! [`VARIABLES`](super::VARIABLES), rendered for the place the value goes.
//!
//! # Guarantees
//! - A value rendered into a URL (`http.url`, `notify.url`,
//!   `terraform_cloud.run.address`) is percent-encoded for its position: a
//!   path segment (`/` is `%2F`, so a value cannot add segments), or a query
//!   or fragment component (`&`, `=` and `#` are encoded). In the scheme or
//!   host, a value may hold only letters, digits, `-`, `_` and `.`; anything
//!   else is an error, never a different host.
//! - A value rendered into a JSON body (`http.body` written as a string that
//!   is JSON) is JSON-escaped and must stand inside a string literal: the
//!   rendered body stays valid JSON and the value stays the content of that
//!   string, whatever it holds (quotes, backslashes, newlines, `{{`, `}}`).
//! - A value rendered into a header (`http.headers`) has its control
//!   characters (CR, LF, ...) replaced by spaces: it cannot end the header or
//!   add another one.
//! - NUL characters are removed from every rendered value (they cannot be
//!   passed to a program, a header or a file name anyway).
//! - Anywhere else (command `args`, `git.set` values, `notify` text, tables
//!   of a body) the value is inserted as it is; those places never reach a
//!   shell or a parser that could read it as syntax (arguments are separate
//!   argv entries, tables are serialised as JSON).
//!
//! A literal `{{` is written `{{ '{{' }}` (any quoted text inside `{{ }}` is
//! inserted as written, so `{{ "}}" }}` works too). A `}}` outside a template
//! is just text.

use serde_json::Value;

use super::{VARIABLES, Vars};
use crate::actuators::Params;

/// Where a rendered value goes, which decides how it is escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// As it is (command arguments, commit messages, tables).
    Plain,
    /// A URL: escaping depends on the position in it.
    Url,
    /// An HTTP header value.
    Header,
    /// A string body: JSON-escaped when the body is JSON, else as it is.
    Body,
}

/// Why a template string cannot be rendered. Messages quote the template
/// and name the variable; a value appears only where it is the problem (a
/// host that is not a host name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{{` without `}}` (or a quoted literal without its closing quote).
    #[error("unclosed template: {template:?} has {{{{ without }}}} (write {{{{ '{{{{' }}}} for a literal {{{{)")]
    Unclosed { template: String },
    /// A quoted literal inside `{{ }}` followed by something other than `}}`.
    #[error("in {template:?}: a quoted literal inside {{{{ }}}} must be followed by }}}}")]
    LiteralNotClosed { template: String },
    /// A name that is not one of [`VARIABLES`].
    #[error("unknown template variable {name:?} (known: {known}; write {{{{ '{{{{' }}}} for a literal {{{{)", known = VARIABLES.join(", "))]
    UnknownVariable { name: String },
    /// A value in the scheme or host of a URL that is not a host name part.
    #[error(
        "{{{{ {name} }}}} is {value:?}, which cannot be put in the host of a URL (only letters, digits, '-', '_' and '.')"
    )]
    NotAHost { name: String, value: String },
    /// A variable of a JSON body outside a string literal.
    #[error("{{{{ {name} }}}} in a JSON body must be inside a string (write \"{{{{ {name} }}}}\")")]
    OutsideJsonString { name: String },
}

/// A template of one parameter of a call (`headers.X-Reason`) that cannot
/// be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{param}: {source}")]
pub struct ParamTemplateError {
    /// The parameter's keys joined by `.`.
    pub param: String,
    #[source]
    pub source: TemplateError,
}

/// One part of a parsed template string.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Text written in the runbook (including quoted literals such as `{{ '{{' }}`).
    Text(String),
    /// A variable.
    Var(String),
}

/// Splits a template string into text and variables.
fn parse(s: &str) -> Result<Vec<Piece>, TemplateError> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        text.push_str(&rest[..start]);
        let inner = rest[start + 2..].trim_start();
        let unclosed = || TemplateError::Unclosed { template: s.to_string() };
        if let Some(q @ ('\'' | '"')) = inner.chars().next() {
            let body = &inner[1..];
            let Some(end) = body.find(q) else { return Err(unclosed()) };
            text.push_str(&body[..end]);
            let after = body[end + 1..].trim_start();
            let Some(after) = after.strip_prefix("}}") else {
                return Err(TemplateError::LiteralNotClosed { template: s.to_string() });
            };
            rest = after;
            continue;
        }
        let Some(end) = inner.find("}}") else { return Err(unclosed()) };
        let name = inner[..end].trim();
        if !VARIABLES.contains(&name) {
            return Err(TemplateError::UnknownVariable { name: name.to_string() });
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut text)));
        }
        pieces.push(Piece::Var(name.to_string()));
        rest = &inner[end + 2..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// The context of the parameter at `path` (its key, then nested keys) of actuator `uses`.
pub fn context(uses: &str, path: &[&str]) -> Context {
    match (uses, path) {
        ("http" | "notify", ["url"]) | ("terraform_cloud.run", ["address"]) => Context::Url,
        ("http", ["headers", _]) => Context::Header,
        ("http", ["body"]) => Context::Body,
        _ => Context::Plain,
    }
}

/// Renders `{{ var }}` in one string, inserting values as they are (NUL removed).
pub fn render_str(s: &str, vars: &Vars) -> Result<String, TemplateError> {
    render_in(s, vars, Context::Plain)
}

/// Renders one string for `context`.
pub fn render_in(s: &str, vars: &Vars, context: Context) -> Result<String, TemplateError> {
    let pieces = parse(s)?;
    if !pieces.iter().any(|p| matches!(p, Piece::Var(_))) {
        return Ok(pieces.into_iter().map(|p| if let Piece::Text(t) = p { t } else { String::new() }).collect());
    }
    let value = |name: &str| vars.get(name).unwrap_or_default().replace('\0', "");
    match context {
        Context::Plain => Ok(concat(&pieces, |_, v| value(v))),
        Context::Header => Ok(concat(&pieces, |_, v| {
            value(v).chars().map(|c| if c.is_control() && c != '\t' { ' ' } else { c }).collect()
        })),
        Context::Url => {
            let positions = url_positions(&pieces);
            let mut out = String::new();
            for (i, p) in pieces.iter().enumerate() {
                match p {
                    Piece::Text(t) => out.push_str(t),
                    Piece::Var(name) => {
                        let v = value(name);
                        match positions[i] {
                            UrlPart::Scheme | UrlPart::Authority => {
                                if v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                                    return Err(TemplateError::NotAHost { name: name.clone(), value: v });
                                }
                                out.push_str(&v);
                            }
                            UrlPart::Path => out.push_str(&encode_path_segment(&v)),
                            UrlPart::Query => out.push_str(&encode_component(&v)),
                        }
                    }
                }
            }
            Ok(out)
        }
        Context::Body => match json_slots(&pieces) {
            Some(slots) => {
                if let Some(name) = slots.iter().find_map(|(name, in_string)| (!in_string).then_some(name)) {
                    return Err(TemplateError::OutsideJsonString { name: name.clone() });
                }
                let rendered = concat(&pieces, |_, v| json_escape(&value(v)));
                debug_assert!(serde_json::from_str::<Value>(&rendered).is_ok());
                Ok(rendered)
            }
            None => Ok(concat(&pieces, |_, v| value(v))),
        },
    }
}

fn concat(pieces: &[Piece], mut var: impl FnMut(usize, &str) -> String) -> String {
    let mut out = String::new();
    for (i, p) in pieces.iter().enumerate() {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Var(v) => out.push_str(&var(i, v)),
        }
    }
    out
}

/// Where in a URL a piece stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UrlPart {
    Scheme,
    Authority,
    Path,
    Query,
}

/// The part of the URL each piece starts in, from the written text only
/// (a value never moves the position).
fn url_positions(pieces: &[Piece]) -> Vec<UrlPart> {
    let mut part = UrlPart::Scheme;
    let mut seen = String::new();
    pieces
        .iter()
        .map(|p| {
            let here = part;
            if let Piece::Text(t) = p {
                for c in t.chars() {
                    seen.push(c);
                    part = match part {
                        UrlPart::Scheme if seen.ends_with("://") => UrlPart::Authority,
                        UrlPart::Authority if c == '/' => UrlPart::Path,
                        UrlPart::Authority | UrlPart::Path if c == '?' || c == '#' => UrlPart::Query,
                        p => p,
                    };
                }
            } else {
                seen.push('x');
            }
            here
        })
        .collect()
}

/// Percent-encodes everything but RFC 3986 unreserved characters; `.` and
/// `..` are encoded too, so a value is never a relative path segment.
pub fn encode_path_segment(v: &str) -> String {
    match v {
        "." => "%2E".into(),
        ".." => "%2E%2E".into(),
        _ => encode_component(v),
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn encode_component(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The content of a JSON string literal holding `v`.
fn json_escape(v: &str) -> String {
    let quoted = Value::String(v.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

/// When the written text around the variables is JSON (an object or an
/// array), each variable with whether it stands inside a string literal;
/// `None` for a body that is not JSON.
fn json_slots(pieces: &[Piece]) -> Option<Vec<(String, bool)>> {
    let mut probe = String::new();
    let mut slots = Vec::new();
    let (mut in_string, mut escaped) = (false, false);
    for p in pieces {
        match p {
            Piece::Text(t) => {
                for c in t.chars() {
                    match (in_string, escaped, c) {
                        (true, true, _) => escaped = false,
                        (true, false, '\\') => escaped = true,
                        (_, _, '"') => in_string = !in_string,
                        _ => {}
                    }
                }
                probe.push_str(t);
            }
            Piece::Var(name) => {
                slots.push((name.clone(), in_string));
                probe.push_str(if in_string { "x" } else { "0" });
            }
        }
    }
    matches!(serde_json::from_str::<Value>(&probe), Ok(Value::Object(_) | Value::Array(_))).then_some(slots)
}

/// Renders every string in a parameter table, inserting values as they are.
pub fn render(with: &Params, vars: &Vars) -> Result<Params, ParamTemplateError> {
    render_call("", with, vars)
}

/// Renders every string in the parameters of a call of `uses`, each escaped
/// for where it goes (see [`context`]). An error names the parameter.
pub fn render_call(uses: &str, with: &Params, vars: &Vars) -> Result<Params, ParamTemplateError> {
    fn walk(uses: &str, path: &mut Vec<String>, v: &Value, vars: &Vars) -> Result<Value, ParamTemplateError> {
        Ok(match v {
            Value::String(s) => {
                let keys: Vec<&str> = path.iter().map(String::as_str).collect();
                Value::String(
                    render_in(s, vars, context(uses, &keys))
                        .map_err(|source| ParamTemplateError { param: keys.join("."), source })?,
                )
            }
            Value::Array(a) => Value::Array(a.iter().map(|x| walk(uses, path, x, vars)).collect::<Result<_, _>>()?),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, x)| {
                        path.push(k.clone());
                        let r = walk(uses, path, x, vars);
                        path.pop();
                        Ok((k.clone(), r?))
                    })
                    .collect::<Result<_, ParamTemplateError>>()?,
            ),
            other => other.clone(),
        })
    }
    let mut path = Vec::new();
    walk(uses, &mut path, &Value::Object(with.clone()), vars).map(|v| match v {
        Value::Object(m) => m,
        _ => unreachable!("an object renders to an object"),
    })
}

#[cfg(test)]
mod tests;
