//! `BACKEND[:PREFIX]` locations and include/exclude globs.

use std::fmt;

/// A place to sync from or to: a configured backend and a key prefix in its bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub backend: String,
    pub prefix: String,
}

/// A location without a backend name: not `BACKEND[:PREFIX]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?}: expected BACKEND[:PREFIX]")]
pub struct LocationError {
    /// The text as given.
    pub input: String,
}

impl Location {
    /// Parses `BACKEND[:PREFIX]`. The prefix is used as given (`photos/`
    /// and `photos` differ, as in S3).
    pub fn parse(s: &str) -> Result<Self, LocationError> {
        let (backend, prefix) = s.split_once(':').unwrap_or((s, ""));
        if backend.is_empty() {
            return Err(LocationError { input: s.to_string() });
        }
        Ok(Self { backend: backend.to_string(), prefix: prefix.to_string() })
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() { f.write_str(&self.backend) } else { write!(f, "{}:{}", self.backend, self.prefix) }
    }
}

/// Include and exclude globs on keys relative to the location's prefix.
/// `*` matches within one path segment, `**` across segments, `?` one
/// character. A key is selected when it matches an include (or there are
/// none) and no exclude.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    include: Vec<String>,
    exclude: Vec<String>,
}

impl Filter {
    pub fn new(include: Vec<String>, exclude: Vec<String>) -> Self {
        Self { include, exclude }
    }

    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    pub fn selects(&self, key: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|g| glob_match(g, key)))
            && !self.exclude.iter().any(|g| glob_match(g, key))
    }
}

/// Matches `text` against `pattern` (`*`, `**`, `?`; everything else literal).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matcher with memo over (pattern index, text index).
    let mut memo = vec![None; (p.len() + 1) * (t.len() + 1)];
    matches(&p, &t, 0, 0, &mut memo)
}

fn matches(p: &[char], t: &[char], pi: usize, ti: usize, memo: &mut Vec<Option<bool>>) -> bool {
    let idx = pi * (t.len() + 1) + ti;
    if let Some(r) = memo[idx] {
        return r;
    }
    let r = if pi == p.len() {
        ti == t.len()
    } else if p[pi] == '*' {
        let double = p.get(pi + 1) == Some(&'*');
        let next = if double { pi + 2 } else { pi + 1 };
        // Zero characters, or one more character (not `/` for a single star).
        matches(p, t, next, ti, memo) || (ti < t.len() && (double || t[ti] != '/') && matches(p, t, pi, ti + 1, memo))
    } else if ti < t.len() && (p[pi] == '?' && t[ti] != '/' || p[pi] == t[ti]) {
        matches(p, t, pi + 1, ti + 1, memo)
    } else {
        false
    };
    memo[idx] = Some(r);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations() {
        assert_eq!(Location::parse("a").unwrap(), Location { backend: "a".into(), prefix: String::new() });
        assert_eq!(Location::parse("a:p/q/").unwrap().prefix, "p/q/");
        assert_eq!(Location::parse("a:p/q/").unwrap().to_string(), "a:p/q/");
        let e = Location::parse(":x").unwrap_err();
        assert_eq!(e.to_string(), r#"":x": expected BACKEND[:PREFIX]"#);
    }

    #[test]
    fn globs_match_segments() {
        assert!(glob_match("*.txt", "a.txt"));
        assert!(!glob_match("*.txt", "d/a.txt"));
        assert!(glob_match("**.txt", "d/a.txt"));
        assert!(glob_match("d/**", "d/e/f"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "a/c"));
        assert!(!glob_match("abc", "abcd"));
    }

    #[test]
    fn filters_include_then_exclude() {
        let f = Filter::new(vec!["logs/**".into()], vec!["**.tmp".into()]);
        assert!(f.selects("logs/a/b.gz"));
        assert!(!f.selects("logs/a/b.tmp"));
        assert!(!f.selects("data/x"));
        assert!(Filter::default().selects("anything"));
    }
}
