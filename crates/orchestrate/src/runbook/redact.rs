//! Redaction: what the journal, the timeline, the audit log, the logs and the
//! API may show of a step's parameters, undo call, result and error.
//!
//! # Guarantees
//! - **By name.** The value of a key whose normalised name (lowercase,
//!   `-`, `_`, `.` and spaces removed) looks secret is replaced by
//!   `[redacted]`: names containing `token`, `secret`, `password`, `passwd`,
//!   `passphrase`, `credential`, `signature`, `authorization`, `cookie`,
//!   `bearer`, `apikey`, `privatekey`, `accesskey`, `secretkey`,
//!   `signingkey`, `sessionid`, `jwt`; names ending in `key` (`x-api-key`,
//!   `dd-api-key`, `routing_key`, ... but not `dedup_key`, `idempotency_key`,
//!   `public_key`, `tsig_key`: the name of a TSIG key) or `auth`; and `auth`, `pass`, `pwd`, `sig`, `session`,
//!   `dsn`. Keys ending in `_env` name a variable, not a secret, and keep
//!   their values.
//! - **In URLs** (any string, anywhere in a text): user information,
//!   every query or fragment parameter whose name looks secret (the rule
//!   above, plus `key` and `code`), the whole path on known webhook hosts
//!   (Slack, Teams, Telegram, Zapier, IFTTT), every path segment after a
//!   `hook`/`hooks`/`webhook`/`webhooks`/`webhookb2` segment, and path
//!   segments that look like tokens (20 characters or more of letters and
//!   digits with at least 3 of each).
//! - **In free text** (response bodies, command output, errors, messages):
//!   the value after `NAME=`, `NAME:` or `"NAME": ` for a secret-looking
//!   NAME (an `Authorization` value to the end of its line), the credential
//!   after `Bearer ` or `Basic `, and tokens with a well-known prefix
//!   (`xoxb-`, `ghp_`, `github_pat_`, `glpat-`, `AKIA`, `sk_live_`, ...).
//! - **In argument lists**: the argument after a flag whose name looks
//!   secret (`--token abc`, `--password abc`) and the password of
//!   `--user name:password`.
//! - **Values read from the environment**: [`scrub`] replaces every
//!   occurrence of the given values (and of their words of 8 characters or
//!   more, such as the token of `Bearer <token>`).
//!
//! # Caveats
//! Redaction by pattern cannot know every format: a program that prints a
//! secret without a name next to it, in a form not listed here, is not
//! caught unless the value came from a variable the step read.

use serde_json::Value;

use crate::actuators::Params;

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[redacted]";

/// A key name without case and separators: `X-Api-Key` → `xapikey`.
fn normalise(name: &str) -> String {
    name.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// Whether the name of a key says that it holds a variable name (`*_env`).
fn names_a_variable(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with("_env") || lower.ends_with("-env")
}

/// Whether a key, header, flag or field named `name` holds a secret.
pub fn is_secret_name(name: &str) -> bool {
    if names_a_variable(name) {
        return false;
    }
    let n = normalise(name);
    const CONTAINS: &[&str] = &[
        "token",
        "secret",
        "password",
        "passwd",
        "passphrase",
        "credential",
        "signature",
        "authorization",
        "cookie",
        "bearer",
        "apikey",
        "privatekey",
        "accesskey",
        "secretkey",
        "signingkey",
        "sessionid",
        "jwt",
    ];
    const EXACT: &[&str] = &["pass", "pwd", "sig", "session", "dsn"];
    const NOT_SECRET_KEYS: &[&str] =
        &["key", "dedupkey", "idempotencykey", "publickey", "partitionkey", "sortkey", "tsigkey"];
    CONTAINS.iter().any(|s| n.contains(s))
        || EXACT.contains(&n.as_str())
        || (n.ends_with("key") && !NOT_SECRET_KEYS.contains(&n.as_str()))
        || n.ends_with("auth")
}

/// Whether a URL query (or `NAME=value`) parameter holds a secret: the names
/// of [`is_secret_name`], plus `key` and `code` (API keys, Azure Functions).
pub fn is_secret_query_name(name: &str) -> bool {
    let decoded = percent_decode(name);
    is_secret_name(&decoded) || matches!(normalise(&decoded).as_str(), "key" | "code")
}

fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push(h * 16 + l);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A copy of rendered parameters fit for the journal, the timeline and the
/// audit log (see the module's guarantees).
pub fn redact(params: &Params) -> Params {
    params.iter().map(|(k, v)| (k.clone(), redact_keyed(k, v))).collect()
}

/// A copy of any JSON value (a step's result) with secrets redacted.
pub fn redact_value(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(redact_text(s)),
        Value::Array(a) => redact_array(a),
        Value::Object(m) => Value::Object(m.iter().map(|(k, x)| (k.clone(), redact_keyed(k, x))).collect()),
        other => other.clone(),
    }
}

fn redact_keyed(key: &str, v: &Value) -> Value {
    if names_a_variable(key) {
        return v.clone();
    }
    let empty = match v {
        Value::Null | Value::Bool(_) => true,
        Value::String(s) => s.is_empty(),
        _ => false,
    };
    if is_secret_name(key) && !empty {
        return Value::String(REDACTED.into());
    }
    match v {
        // A body written as JSON text is redacted as JSON, then written back.
        Value::String(s) if s.trim_start().starts_with(['{', '[']) => match serde_json::from_str::<Value>(s) {
            Ok(j @ (Value::Object(_) | Value::Array(_))) => {
                let r = redact_value(&j);
                Value::String(if r == j { s.clone() } else { r.to_string() })
            }
            _ => Value::String(redact_text(s)),
        },
        other => redact_value(other),
    }
}

/// An array: the value after a secret-looking flag is redacted, and every
/// element on its own.
fn redact_array(a: &[Value]) -> Value {
    let mut out: Vec<Value> = a.iter().map(redact_value).collect();
    for i in 0..a.len().saturating_sub(1) {
        let Some(flag) = a[i].as_str() else { continue };
        if !flag.starts_with('-') || flag.contains('=') {
            continue;
        }
        let name = flag.trim_start_matches('-');
        if is_secret_name(name) && a[i + 1].is_string() {
            out[i + 1] = Value::String(REDACTED.into());
        } else if matches!(name, "u" | "user")
            && let Some(next) = a[i + 1].as_str()
            && let Some((user, _)) = next.split_once(':')
        {
            out[i + 1] = Value::String(format!("{user}:{REDACTED}"));
        }
    }
    Value::Array(out)
}

/// Free text with secrets redacted: URLs, `NAME=value` and `NAME: value`
/// pairs, `Bearer`/`Basic` credentials and well-known token formats.
pub fn redact_text(s: &str) -> String {
    // One pass can make a new secret visible to another: `token=?&/hooks/0`
    // in a URL is an assignment, and once its value is a marker the URL's
    // path starts at `/hooks/`. Passes repeat until nothing changes, so that
    // redacting again changes nothing (each pass only adds markers).
    let mut current = redact_pass(s);
    for _ in 0..4 {
        let next = redact_pass(&current);
        if next == current {
            break;
        }
        current = next;
    }
    current
}

fn redact_pass(s: &str) -> String {
    let s = redact_urls(s);
    let s = redact_schemes(&s);
    let s = redact_assignments(&s);
    redact_known_tokens(&s)
}

/// Characters of a URL, up to the first that ends one in running text.
fn url_end(s: &str) -> usize {
    s.find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`' | ')' | '\\')).unwrap_or(s.len())
}

/// Every `scheme://...` in `s`, redacted with [`redact_url`].
fn redact_urls(s: &str) -> String {
    map_urls(s, redact_url)
}

/// `text` with the user information of every URL in it removed:
/// `https://user:token@host/x` becomes `https://host/x` (for messages that
/// must still show where, such as a Git remote; [`redact_text`] replaces it
/// with a marker and redacts more).
pub fn redact_url_credentials(text: &str) -> String {
    map_urls(text, |url| match split_url(url) {
        Some(u) if u.userinfo => format!("{}://{}{}", u.scheme, u.host_port, u.tail),
        _ => url.to_string(),
    })
}

/// Every `scheme://...` URL in running text replaced by `f(url)`; the rest
/// of the text as is. One place finds URLs for every redactor.
fn map_urls(s: &str, mut f: impl FnMut(&str) -> String) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let scheme_start = rest[..i]
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |(p, c)| p + c.len_utf8());
        if scheme_start == i {
            out.push_str(&rest[..i + 3]);
            rest = &rest[i + 3..];
            continue;
        }
        out.push_str(&rest[..scheme_start]);
        let url_and_more = &rest[scheme_start..];
        let end = i - scheme_start + 3 + url_end(&url_and_more[i - scheme_start + 3..]);
        out.push_str(&f(&url_and_more[..end]));
        rest = &url_and_more[end..];
    }
    out.push_str(rest);
    out
}

/// A URL cut at its authority.
struct UrlParts<'a> {
    scheme: &'a str,
    /// The authority had user information (`user:password@`).
    userinfo: bool,
    host_port: &'a str,
    /// The path, query and fragment.
    tail: &'a str,
}

fn split_url(url: &str) -> Option<UrlParts<'_>> {
    let scheme_end = url.find("://")?;
    let (scheme, rest) = (&url[..scheme_end], &url[scheme_end + 3..]);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (userinfo, host_port) = match authority.rfind('@') {
        Some(at) => (true, &authority[at + 1..]),
        None => (false, authority),
    };
    Some(UrlParts { scheme, userinfo, host_port, tail })
}

/// Hosts whose webhook URLs carry the secret in the path.
fn webhook_host(host: &str) -> bool {
    matches!(
        host,
        "hooks.slack.com" | "hooks.slack-gov.com" | "api.telegram.org" | "hooks.zapier.com" | "maker.ifttt.com"
    ) || host.ends_with(".webhook.office.com")
}

/// One URL with its secrets redacted (see the module's guarantees).
pub fn redact_url(url: &str) -> String {
    let Some(UrlParts { scheme, userinfo, host_port, tail }) = split_url(url) else { return url.to_string() };
    let host =
        host_port.rsplit_once(':').filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit())).map_or(host_port, |(h, _)| h);
    let host = host.to_ascii_lowercase();
    let mut out = format!("{scheme}://");
    if userinfo {
        out.push_str(REDACTED);
        out.push('@');
    }
    out.push_str(host_port);
    let path_end = tail.find(['?', '#']).unwrap_or(tail.len());
    let (path, after) = tail.split_at(path_end);
    out.push_str(&redact_path(path, webhook_host(&host)));
    // The query and the fragment: `name=value` pairs.
    let mut rest = after;
    while let Some(sep) = rest.chars().next().filter(|c| matches!(c, '?' | '#')) {
        out.push(sep);
        let body = &rest[1..];
        let end = if sep == '?' { body.find('#').unwrap_or(body.len()) } else { body.len() };
        let pairs: Vec<String> = body[..end]
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, value)) if !value.is_empty() && is_secret_query_name(name) => format!("{name}={REDACTED}"),
                _ => pair.to_string(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
        rest = &body[end..];
    }
    out
}

fn redact_path(path: &str, whole: bool) -> String {
    if path.is_empty() || path == "/" {
        return path.to_string();
    }
    if whole {
        return format!("/{REDACTED}");
    }
    let mut after_hook = false;
    path.split('/')
        .map(|segment| {
            let lower = segment.to_ascii_lowercase();
            let secret = !segment.is_empty() && (after_hook || looks_like_a_token(segment));
            if matches!(lower.as_str(), "hook" | "hooks" | "webhook" | "webhooks" | "webhookb2") {
                after_hook = true;
            }
            if secret { REDACTED.to_string() } else { segment.to_string() }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// 20 characters or more of letters, digits, `-`, `_`, `~`, `+`, `=`, with at
/// least 3 letters and 3 digits: a token, a UUID, a hash. Terraform Cloud's
/// object ids (`run-...`, `ws-...`) are not secrets and stay readable.
fn looks_like_a_token(s: &str) -> bool {
    const IDS: &[&str] = &["run-", "ws-", "plan-", "apply-", "org-", "sv-", "cv-"];
    if IDS.iter().any(|p| s.starts_with(p)) {
        return false;
    }
    let letters = s.bytes().filter(u8::is_ascii_alphabetic).count();
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    s.len() >= 20
        && letters >= 3
        && digits >= 3
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_~+=".contains(&b))
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b)
}

/// `Bearer <credential>` and `Basic <credential>`: the credential.
fn redact_schemes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut last = 0;
    let mut i = 0;
    while i < b.len() {
        let word_start = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        let scheme = ["bearer", "basic"].into_iter().find(|w| {
            word_start
                && b.len() > i + w.len()
                && b[i..i + w.len()].eq_ignore_ascii_case(w.as_bytes())
                && b[i + w.len()] == b' '
        });
        if let Some(w) = scheme {
            let mut j = i + w.len();
            while j < b.len() && b[j] == b' ' {
                j += 1;
            }
            let mut k = j;
            while k < b.len() && is_token_byte(b[k]) {
                k += 1;
            }
            if k - j >= 8 && &s[j..k] != REDACTED {
                out.push_str(&s[last..j]);
                out.push_str(REDACTED);
                last = k;
            }
            i = k.max(i + 1);
            continue;
        }
        i += 1;
    }
    out.push_str(&s[last..]);
    out
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_-.".contains(&b)
}

/// `NAME=value`, `NAME: value`, `"NAME": "value"`, `NAME = 'value'` with a
/// secret-looking NAME: the value.
fn redact_assignments(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let (mut last, mut i) = (0, 0);
    while i < b.len() {
        let sep = b[i];
        if sep != b'=' && sep != b':' {
            i += 1;
            continue;
        }
        // The name before the separator, maybe quoted, maybe followed by spaces.
        let mut j = i;
        while j > 0 && b[j - 1] == b' ' {
            j -= 1;
        }
        if j > 0 && matches!(b[j - 1], b'"' | b'\'') {
            j -= 1;
        }
        let name_end = j;
        while j > 0 && is_name_byte(b[j - 1]) {
            j -= 1;
        }
        let name = &s[j..name_end];
        let url_scheme = sep == b':' && b.get(i + 1) == Some(&b'/');
        let secret = !name.is_empty()
            && !url_scheme
            && if sep == b'=' { is_secret_query_name(name) } else { is_secret_name(name) };
        if !secret {
            i += 1;
            continue;
        }
        let mut k = i + 1;
        while k < b.len() && matches!(b[k], b' ' | b'\t') {
            k += 1;
        }
        let (start, end) = if k < b.len() && matches!(b[k], b'"' | b'\'') {
            let q = b[k];
            let mut m = k + 1;
            while m < b.len() && b[m] != q {
                m += if b[m] == b'\\' { 2 } else { 1 };
            }
            (k + 1, m.min(b.len()))
        } else if normalise(name).contains("authorization") {
            (k, s[k..].find(['\n', '\r', '"', '\'']).map_or(b.len(), |e| k + e))
        } else {
            let e = s[k..].find(|c: char| c.is_whitespace() || "&,;\"'<>}])\\".contains(c)).map_or(b.len(), |e| k + e);
            (k, e)
        };
        if end > start && !s[start..].starts_with(REDACTED) {
            out.push_str(&s[last..start]);
            out.push_str(REDACTED);
            last = end;
            i = end;
        } else {
            i += 1;
        }
    }
    out.push_str(&s[last..]);
    out
}

/// Tokens whose prefix says what they are.
fn redact_known_tokens(s: &str) -> String {
    const PREFIXES: &[&str] = &[
        "xoxb-",
        "xoxp-",
        "xoxa-",
        "xoxr-",
        "xoxs-",
        "xapp-",
        "ghp_",
        "gho_",
        "ghu_",
        "ghs_",
        "ghr_",
        "github_pat_",
        "glpat-",
        "sk_live_",
        "rk_live_",
        "sk_test_",
        "AKIA",
        "ASIA",
        "AIza",
        "hvs.",
    ];
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let (mut last, mut i) = (0, 0);
    while i < b.len() {
        let word_start = i == 0 || !is_token_byte(b[i - 1]);
        if word_start && let Some(p) = PREFIXES.iter().find(|p| b[i..].starts_with(p.as_bytes())) {
            let mut k = i + p.len();
            while k < b.len() && (b[k].is_ascii_alphanumeric() || b"-_".contains(&b[k])) {
                k += 1;
            }
            if k - i - p.len() >= 10 {
                out.push_str(&s[last..i]);
                out.push_str(REDACTED);
                last = k;
            }
            i = k.max(i + 1);
            continue;
        }
        i += 1;
    }
    out.push_str(&s[last..]);
    out
}

/// The values to look for in what a step returned: each value, and each of
/// its words of 8 characters or more (the token of `Bearer <token>`), the
/// longest first. Empty values are ignored.
pub fn secret_needles<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut needles: Vec<String> = Vec::new();
    for v in values {
        if v.is_empty() {
            continue;
        }
        needles.push(v.to_string());
        needles.extend(v.split_whitespace().filter(|w| w.len() >= 8 && *w != v).map(String::from));
        // A URL's path and query without its origin.
        if let Some(i) = v.find("://")
            && let Some(p) = v[i + 3..].find('/')
            && v.len() - (i + 3 + p) > 8
        {
            needles.push(v[i + 3 + p..].to_string());
        }
    }
    needles.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    needles.dedup();
    needles
}

/// `text` with every occurrence of each needle replaced by `[redacted]`.
pub fn scrub_text(text: &str, needles: &[String]) -> String {
    let mut text = text.to_string();
    for n in needles {
        if text.contains(n.as_str()) {
            text = text.replace(n.as_str(), REDACTED);
        }
    }
    text
}

/// Every string in `v` (keys too) scrubbed with [`scrub_text`].
pub fn scrub(v: &Value, needles: &[String]) -> Value {
    if needles.is_empty() {
        return v.clone();
    }
    match v {
        Value::String(s) => Value::String(scrub_text(s, needles)),
        Value::Array(a) => Value::Array(a.iter().map(|x| scrub(x, needles)).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, x)| (scrub_text(k, needles), scrub(x, needles))).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests;
