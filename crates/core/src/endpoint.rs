//! S3 endpoints: `http(s)://host[:port]`, and [`HttpUrl`]: an endpoint with
//! a path, for the HTTP services cutover reads (Prometheus, status pages).

use std::fmt;

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
    /// trailing `/`. Returns a message that says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let not_url = || format!("{text:?} is not an http(s) URL (write e.g. \"https://s3.us-east-1.amazonaws.com\")");
        let (tls, rest) = if let Some(r) = text.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = text.strip_prefix("https://") {
            (true, r)
        } else {
            return Err(not_url());
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') || rest.contains('?') || rest.contains('#') {
            return Err(format!("{text:?}: an endpoint has no path or query; put the bucket in `bucket`"));
        }
        if rest.contains('@') {
            return Err(format!("{text:?}: credentials do not belong in the URL; use `credentials`"));
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

fn parse_port(text: &str, p: &str) -> Result<u16, String> {
    match p.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(format!("{text:?}: port {p:?} is not a number from 1 to 65535")),
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
    pub fn parse(text: &str) -> Result<Self, String> {
        let after_scheme = text.find("://").map(|i| i + 3).ok_or_else(|| {
            format!("{text:?} is not an http(s) URL (write e.g. \"https://status.example.com/api/v2/status.json\")")
        })?;
        if text.contains('#') {
            return Err(format!("{text:?}: a URL here has no #fragment"));
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
        assert!(Endpoint::parse("htp://x").unwrap_err().contains("not an http(s) URL"));
        assert!(Endpoint::parse("http://x:0").unwrap_err().contains("port"));
        assert!(Endpoint::parse("http://x:99999").unwrap_err().contains("port"));
        assert!(Endpoint::parse("http://x/bucket").unwrap_err().contains("no path"));
        assert!(Endpoint::parse("http://k:s@x").unwrap_err().contains("credentials"));
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
        assert!(HttpUrl::parse("status.example.com/x").unwrap_err().contains("not an http(s) URL"));
        assert!(HttpUrl::parse("http://h/x#top").unwrap_err().contains("fragment"));
        assert!(HttpUrl::parse("http://u:p@h/x").unwrap_err().contains("credentials"));
        assert!(HttpUrl::parse("ftp://h/x").is_err());
    }
}
