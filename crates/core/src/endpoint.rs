//! S3 endpoints: `http(s)://host[:port]`, and [`HttpUrl`]: an endpoint with
//! a path, for the HTTP services cutover reads (Prometheus, status pages).

use std::fmt;
use std::num::ParseIntError;

/// Why a text is not an [`Endpoint`] or an [`HttpUrl`]. Every message
/// quotes the text as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// Not `http(s)://host[:port]` (an endpoint).
    #[error("{text:?} is not an http(s) URL (write e.g. \"https://s3.us-east-1.amazonaws.com\")")]
    NotEndpoint { text: String },
    /// No `scheme://` at all (a URL).
    #[error("{text:?} is not an http(s) URL (write e.g. \"https://status.example.com/api/v2/status.json\")")]
    NotUrl { text: String },
    /// An endpoint with a path, a query or a fragment.
    #[error("{text:?}: an endpoint has no path or query; put the bucket in `bucket`")]
    HasPath { text: String },
    /// `user:password@` in the URL.
    #[error("{text:?}: credentials do not belong in the URL; use `credentials`")]
    Credentials { text: String },
    /// A port that is not a number from 1 to 65535.
    #[error("{text:?}: port {port:?} is not a number from 1 to 65535")]
    BadPort {
        text: String,
        port: String,
        /// Absent for port 0 (a number, but not a port).
        #[source]
        source: Option<ParseIntError>,
    },
    /// A URL with a `#fragment`.
    #[error("{text:?}: a URL here has no #fragment")]
    Fragment { text: String },
}

/// A parsed backend endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub tls: bool,
    /// Host name or IP address; IPv6 addresses without brackets.
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// Parses `http://host[:port]` or `https://host[:port]`, with an optional
    /// trailing `/`. The error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, EndpointError> {
        let not_url = || EndpointError::NotEndpoint { text: text.to_string() };
        let (tls, rest) = if let Some(r) = text.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = text.strip_prefix("https://") {
            (true, r)
        } else {
            return Err(not_url());
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') || rest.contains('?') || rest.contains('#') {
            return Err(EndpointError::HasPath { text: text.to_string() });
        }
        if rest.contains('@') {
            return Err(EndpointError::Credentials { text: text.to_string() });
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(not_url)?;
            let port = match after.strip_prefix(':') {
                Some(p) => parse_port(text, p)?,
                None if after.is_empty() => default_port,
                None => return Err(not_url()),
            };
            (h.to_string(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), parse_port(text, p)?),
                None => (rest.to_string(), default_port),
            }
        };
        let valid_host =
            !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'));
        if !valid_host {
            return Err(not_url());
        }
        Ok(Self { tls, host, port })
    }

    pub fn scheme(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }

    /// The `Host` header value for this endpoint (port omitted when default).
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let default = if self.tls { 443 } else { 80 };
        if self.port == default { host } else { format!("{host}:{}", self.port) }
    }
}

fn parse_port(text: &str, p: &str) -> Result<u16, EndpointError> {
    let bad = |source| EndpointError::BadPort { text: text.to_string(), port: p.to_string(), source };
    match p.parse::<u16>() {
        Ok(0) => Err(bad(None)),
        Ok(port) => Ok(port),
        Err(e) => Err(bad(Some(e))),
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme(), self.authority())
    }
}

/// An `http(s)://host[:port][/path][?query]` URL: the [`Endpoint`] to connect
/// to and the request target (path and query, at least `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    pub endpoint: Endpoint,
    /// The path and query, starting with `/`.
    pub target: String,
}

impl HttpUrl {
    /// Parses an http(s) URL. Fragments and credentials are refused.
    pub fn parse(text: &str) -> Result<Self, EndpointError> {
        let after_scheme =
            text.find("://").map(|i| i + 3).ok_or_else(|| EndpointError::NotUrl { text: text.to_string() })?;
        if text.contains('#') {
            return Err(EndpointError::Fragment { text: text.to_string() });
        }
        let split = text[after_scheme..].find(['/', '?']).map_or(text.len(), |i| after_scheme + i);
        let endpoint = Endpoint::parse(&text[..split])?;
        let rest = &text[split..];
        let target = if rest.starts_with('/') { rest.to_string() } else { format!("/{rest}") };
        Ok(Self { endpoint, target })
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("/")
    }

    /// True when the URL has a `?query`.
    pub fn has_query(&self) -> bool {
        self.target.contains('?')
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.endpoint, self.target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_ports_and_schemes() {
        let e = Endpoint::parse("http://127.0.0.1:3900").unwrap();
        assert_eq!((e.tls, e.host.as_str(), e.port), (false, "127.0.0.1", 3900));
        assert_eq!(e.authority(), "127.0.0.1:3900");
        let e = Endpoint::parse("https://s3.eu-west-1.amazonaws.com/").unwrap();
        assert_eq!((e.tls, e.port), (true, 443));
        assert_eq!(e.authority(), "s3.eu-west-1.amazonaws.com");
        let e = Endpoint::parse("http://[::1]:9000").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 9000));
        assert_eq!(e.authority(), "[::1]:9000");
    }

    #[test]
    fn rejects_what_is_not_an_endpoint() {
        let err = |text: &str| Endpoint::parse(text).unwrap_err().to_string();
        assert!(err("htp://x").contains("not an http(s) URL"));
        assert!(err("http://x:0").contains("port"));
        assert!(err("http://x:99999").contains("port"));
        assert!(err("http://x/bucket").contains("no path"));
        assert!(err("http://k:s@x").contains("credentials"));
        assert_eq!(err("http://x:0"), r#""http://x:0": port "0" is not a number from 1 to 65535"#);
        let e = Endpoint::parse("http://x:99999").unwrap_err();
        assert!(std::error::Error::source(&e).is_some(), "the integer error is kept: {e:?}");
        assert!(Endpoint::parse("http://").is_err());
    }

    #[test]
    fn http_urls_keep_their_path_and_query() {
        let u = HttpUrl::parse("https://status.example.com/api/v2/status.json").unwrap();
        assert_eq!((u.endpoint.port, u.target.as_str()), (443, "/api/v2/status.json"));
        assert_eq!(u.to_string(), "https://status.example.com/api/v2/status.json");
        let u = HttpUrl::parse("http://127.0.0.1:9090").unwrap();
        assert_eq!((u.endpoint.port, u.target.as_str(), u.has_query()), (9090, "/", false));
        let u = HttpUrl::parse("http://[::1]:9090/prom?x=1").unwrap();
        assert_eq!((u.endpoint.host.as_str(), u.path(), u.has_query()), ("::1", "/prom", true));
        let u = HttpUrl::parse("http://h?x=1").unwrap();
        assert_eq!(u.target, "/?x=1");
        let err = |text: &str| HttpUrl::parse(text).unwrap_err().to_string();
        assert!(err("status.example.com/x").contains("not an http(s) URL"));
        assert!(err("http://h/x#top").contains("fragment"));
        assert!(err("http://u:p@h/x").contains("credentials"));
        assert!(HttpUrl::parse("ftp://h/x").is_err());
    }
}
