//! Setting one value in the text of a file, without I/O: a key of a JSON
//! document, or a variable of a Terraform `.tfvars` file.
//!
//! # Guarantees
//! - Setting a value the file already has changes nothing (`text` is
//!   `None`), so that `git.set` makes no commit.
//! - `.tfvars`: only the line that assigns the variable at the top level
//!   changes (its indentation, the spacing around `=` and a trailing comment
//!   are kept); every other line, comment and blank line stays as it was. An
//!   absent variable is appended as `name = "value"`.
//!
//! # Caveats
//! - JSON: the document is parsed and printed again (2-space indentation,
//!   trailing newline). serde_json is built without `preserve_order` in this
//!   workspace, so **keys come out in alphabetical order**: the first edit
//!   of a hand-ordered file reorders it (later edits then change one line).
//! - JSON: a key containing a dot cannot be addressed (dots separate path
//!   segments).
//! - `.tfvars`: only single-line values can be replaced (strings, numbers,
//!   booleans); a list, a map or a heredoc is refused. The value is always
//!   written as a string (`count = 3` set to `3` becomes `count = "3"`; the
//!   next run sees no change).

use serde_json::{Map, Value};

#[cfg(test)]
mod tests;

/// The kind of file, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `*.json` (including `*.tfvars.json`): `key` is a dotted path.
    Json,
    /// `*.tfvars`: `key` is a variable name.
    Tfvars,
}

impl Format {
    pub fn of(file: &str) -> Option<Self> {
        if file.ends_with(".json") {
            Some(Format::Json)
        } else if file.ends_with(".tfvars") {
            Some(Format::Tfvars)
        } else {
            None
        }
    }

    /// Checks `key` for this format; the problem otherwise (what the key
    /// must be).
    pub fn check_key(self, key: &str) -> Result<(), EditError> {
        match self {
            Format::Json if key.split('.').any(str::is_empty) => Err(EditError::JsonKey),
            Format::Tfvars if !is_identifier(key) => Err(EditError::TfvarsName),
            _ => Ok(()),
        }
    }
}

/// Why a file cannot be edited, or a key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// A JSON key with an empty segment (what it must be instead).
    #[error("a JSON key or dotted path (a.b.c) with no empty segment")]
    JsonKey,
    /// A `.tfvars` key that is not a Terraform identifier (what it must be instead).
    #[error("a Terraform variable name (letters, digits, _ and -, not starting with a digit)")]
    TfvarsName,
    /// The file is not valid JSON.
    #[error("not valid JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// The key is empty.
    #[error("empty key")]
    EmptyKey,
    /// The JSON document is not an object.
    #[error("the document is not a JSON object")]
    NotAnObjectDocument,
    /// A parent of the key (`path`) holds something other than an object.
    #[error("{path} is not an object")]
    NotAnObject { path: String },
    /// The edited document did not serialise.
    #[error("{0}")]
    Serialize(#[source] serde_json::Error),
    /// The value assigned to `.tfvars` variable `name` cannot be replaced.
    #[error("{name}: {problem}")]
    Variable {
        name: String,
        #[source]
        problem: Box<EditError>,
    },
    /// A string value does not end on its line.
    #[error("its string does not end on the same line")]
    UnterminatedString,
    /// A list, a map or a heredoc.
    #[error("not a single-line value (a list, a map or a heredoc); only those can be replaced")]
    NotSingleLine,
    /// An expression, or something else after the value.
    #[error("not a single value (an expression?); only a string, number or boolean can be replaced")]
    NotSingleValue,
}

/// What setting a value does to a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Edit {
    /// The value before (a JSON value; for `.tfvars`, the string, or the
    /// number or boolean written without quotes), or null when absent.
    pub previous: Value,
    /// The file's new text; `None` when it already has the value.
    pub text: Option<String>,
}

/// Sets `key` to the string `value` in `text` (`None`: the file does not
/// exist yet). The error says why the file cannot be edited.
pub fn set(format: Format, text: Option<&str>, key: &str, value: &str) -> Result<Edit, EditError> {
    match format {
        Format::Json => set_json(text, key, value),
        Format::Tfvars => set_tfvars(text.unwrap_or(""), key, value),
    }
}

fn set_json(text: Option<&str>, key: &str, value: &str) -> Result<Edit, EditError> {
    let mut doc = match text {
        Some(t) if !t.trim().is_empty() => serde_json::from_str(t).map_err(EditError::NotJson)?,
        _ => Value::Object(Map::new()),
    };
    let path: Vec<&str> = key.split('.').collect();
    let (last, parents) = path.split_last().ok_or(EditError::EmptyKey)?;
    let mut object = doc.as_object_mut().ok_or(EditError::NotAnObjectDocument)?;
    for (i, segment) in parents.iter().enumerate() {
        object = object
            .entry(segment.to_string())
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .ok_or_else(|| EditError::NotAnObject { path: path[..=i].join(".") })?;
    }
    let previous = object.get(*last).cloned().unwrap_or(Value::Null);
    if previous.as_str() == Some(value) {
        return Ok(Edit { previous, text: None });
    }
    object.insert(last.to_string(), Value::String(value.to_string()));
    let mut out = serde_json::to_string_pretty(&doc).map_err(EditError::Serialize)?;
    out.push('\n');
    Ok(Edit { previous, text: Some(out) })
}

fn set_tfvars(text: &str, name: &str, value: &str) -> Result<Edit, EditError> {
    let literal = format!("\"{}\"", hcl_escape(value));
    let mut out = String::with_capacity(text.len() + literal.len() + name.len() + 4);
    let mut scanner = Scanner::default();
    let mut previous = None;
    let mut changed = false;
    for line in text.split_inclusive('\n') {
        if previous.is_none()
            && scanner.at_top_level()
            && let Some((lhs, rhs)) = split_assignment(line, name)
        {
            let (old, rest) = parse_value(rhs)
                .map_err(|problem| EditError::Variable { name: name.to_string(), problem: Box::new(problem) })?;
            changed = old.as_str() != Some(value) || !rhs.starts_with('"');
            previous = Some(old);
            if changed {
                out.push_str(lhs);
                out.push_str(&literal);
                out.push_str(rest);
                scanner.feed(line);
                continue;
            }
        }
        out.push_str(line);
        scanner.feed(line);
    }
    match previous {
        Some(previous) => Ok(Edit { previous, text: changed.then_some(out) }),
        None => {
            let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
            if !out.is_empty() && !out.ends_with('\n') {
                out.push_str(newline);
            }
            out.push_str(&format!("{name} = {literal}{newline}"));
            Ok(Edit { previous: Value::Null, text: Some(out) })
        }
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Splits `  name = value # c` into `  name = ` and `value # c` when the
/// line assigns `name`.
fn split_assignment<'a>(line: &'a str, name: &str) -> Option<(&'a str, &'a str)> {
    let indent = line.len() - line.trim_start().len();
    let after_name = line[indent..].strip_prefix(name)?;
    if after_name.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return None;
    }
    let after_eq = after_name.trim_start_matches([' ', '\t']).strip_prefix('=')?;
    if after_eq.starts_with('=') {
        return None;
    }
    let rhs = after_eq.trim_start_matches([' ', '\t']);
    Some(line.split_at(line.len() - rhs.len()))
}

/// Reads the single-line value at the start of `rhs`: its JSON form and what
/// follows it (spaces, a comment, the line ending).
fn parse_value(rhs: &str) -> Result<(Value, &str), EditError> {
    let (old, rest) = if let Some(body) = rhs.strip_prefix('"') {
        let end = string_end(body).ok_or(EditError::UnterminatedString)?;
        (Value::String(hcl_unescape(&body[..end])), &body[end + 1..])
    } else {
        let end = rhs.find(|c: char| c.is_whitespace() || c == '#' || c == '/').unwrap_or(rhs.len());
        let token = &rhs[..end];
        if token.is_empty() || token.starts_with(['[', '{', '(', '<']) {
            return Err(EditError::NotSingleLine);
        }
        (serde_json::from_str(token).unwrap_or_else(|_| Value::String(token.to_string())), &rhs[end..])
    };
    let after = rest.trim_start_matches([' ', '\t']);
    let ends = after.trim_end_matches(['\r', '\n']).is_empty() || after.starts_with('#') || after.starts_with("//");
    if !ends {
        return Err(EditError::NotSingleValue);
    }
    Ok((old, rest))
}

/// The index of the closing quote of a string whose body starts `s`.
fn string_end(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            b'\n' => return None,
            _ => i += 1,
        }
    }
    None
}

/// `value` as the body of an HCL string literal.
fn hcl_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.replace("${", "$${").replace("%{", "%%{")
}

/// The value of the body of an HCL string literal.
fn hcl_unescape(body: &str) -> String {
    let chars: Vec<char> = body.chars().collect();
    let mut out = String::with_capacity(body.len());
    let mut i = 0;
    while i < chars.len() {
        let next = chars.get(i + 1).copied();
        match (chars[i], next) {
            ('\\', Some(e @ ('n' | 'r' | 't' | '"' | '\\'))) => {
                out.push(match e {
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    other => other,
                });
                i += 2;
            }
            ('\\', Some(u @ ('u' | 'U'))) => {
                let len = if u == 'u' { 4 } else { 8 };
                let hex: String = chars.iter().skip(i + 2).take(len).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(c) if hex.len() == len => {
                        out.push(c);
                        i += 2 + len;
                    }
                    _ => {
                        out.push('\\');
                        i += 1;
                    }
                }
            }
            (m @ ('$' | '%'), Some(n)) if n == m && chars.get(i + 2) == Some(&'{') => {
                out.push(m);
                out.push('{');
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Follows nesting, comments and heredocs line by line, to tell top-level
/// assignments from keys inside maps.
#[derive(Debug, Default)]
struct Scanner {
    depth: i64,
    block_comment: bool,
    heredoc_end: Option<String>,
}

impl Scanner {
    fn at_top_level(&self) -> bool {
        self.depth <= 0 && !self.block_comment && self.heredoc_end.is_none()
    }

    fn feed(&mut self, line: &str) {
        if let Some(end) = &self.heredoc_end {
            if line.trim() == end {
                self.heredoc_end = None;
            }
            return;
        }
        let bytes = line.as_bytes();
        let mut in_string = false;
        let mut i = 0;
        while i < bytes.len() {
            let next = bytes.get(i + 1).copied();
            if self.block_comment {
                if bytes[i] == b'*' && next == Some(b'/') {
                    self.block_comment = false;
                    i += 1;
                }
            } else if in_string {
                match bytes[i] {
                    b'\\' => i += 1,
                    b'"' => in_string = false,
                    _ => {}
                }
            } else {
                match (bytes[i], next) {
                    (b'"', _) => in_string = true,
                    (b'#', _) | (b'/', Some(b'/')) => return,
                    (b'/', Some(b'*')) => {
                        self.block_comment = true;
                        i += 1;
                    }
                    (b'{' | b'[' | b'(', _) => self.depth += 1,
                    (b'}' | b']' | b')', _) => self.depth -= 1,
                    (b'<', Some(b'<')) => {
                        let start = i + 2 + usize::from(bytes.get(i + 2) == Some(&b'-'));
                        let ident: String =
                            line[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                        if !ident.is_empty() {
                            self.heredoc_end = Some(ident);
                            return;
                        }
                    }
                    _ => {}
                }
            }
            i += 1;
        }
    }
}
