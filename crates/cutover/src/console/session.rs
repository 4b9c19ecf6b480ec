//! Console sessions: a random id in an `HttpOnly; SameSite=Strict;
//! Path=/ui` cookie (`Secure` when `api.public_url` is `https`), expiring
//! after [`SESSION_TTL`]; each session has its own CSRF token, which every
//! POST must carry along with an `Origin` that is this console's.
//!
//! # Guarantees
//! - The token a person signed in with is never kept: a session holds the
//!   token's name and role only.
//! - Tokens and ids are compared in constant time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cutover_core::config::TokenRole;
use http::HeaderMap;
use http::header::{COOKIE, HOST, ORIGIN};

/// A session lasts this long after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// At most this many live sessions; the oldest goes first.
const MAX_SESSIONS: usize = 4096;
/// The session cookie's name.
pub const COOKIE_NAME: &str = "cutover_session";
/// The sign-in form's double-submit cookie.
pub const LOGIN_COOKIE: &str = "cutover_login";

/// One signed-in person.
#[derive(Debug, Clone)]
pub struct Session {
    /// The token's name: the actor in the audit log.
    pub name: String,
    pub role: TokenRole,
    /// The CSRF token every POST of this session must carry.
    pub csrf: String,
    expires: Instant,
    /// A message for the next page (the outcome of the last POST).
    pub flash: Option<String>,
}

impl Session {
    /// Whether this session may approve and reject.
    pub fn may_decide(&self) -> bool {
        matches!(self.role, TokenRole::Approver | TokenRole::Admin)
    }
}

/// The id of the request's session among `live`, compared in constant time.
fn key_of(live: &HashMap<String, Session>, headers: &HeaderMap) -> Option<String> {
    let id = cookie(headers, COOKIE_NAME)?;
    live.keys().find(|k| cutover_s3::sigv4::signatures_equal(k, &id)).cloned()
}

/// The live sessions, by id.
#[derive(Debug, Default)]
pub struct Sessions {
    live: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Opens a session; returns its id.
    pub fn open(&self, name: &str, role: TokenRole) -> String {
        let id = random_token();
        let now = Instant::now();
        let session =
            Session { name: name.to_string(), role, csrf: random_token(), expires: now + SESSION_TTL, flash: None };
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.retain(|_, s| s.expires > now);
        if live.len() >= MAX_SESSIONS
            && let Some(oldest) = live.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| k.clone())
        {
            live.remove(&oldest);
        }
        live.insert(id.clone(), session);
        id
    }

    /// The session of a request (its cookie), if it is live, without its
    /// flash message: a live refresh, the event stream or the chart of the
    /// same session must not take the message meant for the next page
    /// ([`Self::take_flash`]).
    pub fn of(&self, headers: &HeaderMap) -> Option<Session> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let key = key_of(&live, headers)?;
        let s = live.get(&key)?;
        if s.expires <= Instant::now() {
            live.remove(&key);
            return None;
        }
        Some(Session { flash: None, ..s.clone() })
    }

    /// Takes the session's flash message, for the whole page that shows it.
    pub fn take_flash(&self, headers: &HeaderMap) -> Option<String> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let key = key_of(&live, headers)?;
        live.get_mut(&key)?.flash.take()
    }

    /// Leaves a message for the session's next page.
    pub fn flash(&self, headers: &HeaderMap, message: String) {
        let Some(id) = cookie(headers, COOKIE_NAME) else { return };
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = live.get_mut(&id) {
            s.flash = Some(message);
        }
    }

    /// Ends the session of a request.
    pub fn close(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, COOKIE_NAME) {
            self.live.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        }
    }
}

/// 32 random bytes, hex.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).expect("the operating system's random source");
    hex::encode(b)
}

/// The value of cookie `name` in a request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A `Set-Cookie` value for the console's path.
pub fn set_cookie(name: &str, value: &str, max_age: Duration, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{secure}", max_age.as_secs())
}

/// Why a POST was refused before it was looked at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Forged {
    #[error("the request has no Origin header")]
    NoOrigin,
    #[error("the request comes from another origin ({0})")]
    OtherOrigin(String),
    #[error("the form's CSRF token is missing or wrong")]
    Csrf,
}

/// Checks a POST's `Origin` against this console's: the `Host` it was sent
/// to (plain HTTP: the API serves no TLS itself), or `public_url`'s origin.
pub fn check_origin(headers: &HeaderMap, public_url: Option<&str>) -> Result<(), Forged> {
    let origin = headers.get(ORIGIN).and_then(|v| v.to_str().ok()).ok_or(Forged::NoOrigin)?;
    let host = headers.get(HOST).and_then(|v| v.to_str().ok());
    let own = host.is_some_and(|h| origin == format!("http://{h}"));
    let public = public_url.map(origin_of).is_some_and(|p| p == origin);
    if own || public { Ok(()) } else { Err(Forged::OtherOrigin(origin.chars().take(100).collect())) }
}

/// Checks a form's CSRF token against the session's.
pub fn check_csrf(sent: Option<&str>, expected: &str) -> Result<(), Forged> {
    match sent {
        Some(s) if cutover_s3::sigv4::signatures_equal(s, expected) => Ok(()),
        _ => Err(Forged::Csrf),
    }
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map(|i| i + 3).unwrap_or(0);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_origin_must_be_the_host_or_the_public_url() {
        let ok = headers(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")]);
        assert_eq!(check_origin(&ok, None), Ok(()));
        let proxied = headers(&[("host", "10.0.0.1:8080"), ("origin", "https://cutover.example")]);
        assert_eq!(check_origin(&proxied, Some("https://cutover.example/ops")), Ok(()));
        assert!(matches!(check_origin(&proxied, None), Err(Forged::OtherOrigin(_))));
        let evil = headers(&[("host", "127.0.0.1:8080"), ("origin", "http://evil.example")]);
        assert!(matches!(check_origin(&evil, Some("https://cutover.example")), Err(Forged::OtherOrigin(_))));
        assert_eq!(check_origin(&headers(&[("host", "127.0.0.1:8080")]), None), Err(Forged::NoOrigin));
    }

    #[test]
    fn regression_a_live_refresh_of_the_same_session_took_the_flash_meant_for_the_page() {
        // The browser test failed once in CI: after an approval the page had
        // no "approved by" message, because the other tab's live refresh
        // (or the event stream, or the chart) looked the session up first.
        let s = Sessions::default();
        let id = s.open("oncall", TokenRole::Approver);
        let h = headers(&[("cookie", &format!("{COOKIE_NAME}={id}"))]);
        s.flash(&h, "approved by oncall".into());
        for _ in 0..3 {
            assert_eq!(s.of(&h).unwrap().flash, None, "a lookup neither shows nor takes it");
        }
        assert_eq!(s.take_flash(&h).as_deref(), Some("approved by oncall"));
    }

    #[test]
    fn a_session_is_found_by_its_cookie_and_carries_its_flash_once() {
        let s = Sessions::default();
        let id = s.open("oncall", TokenRole::Approver);
        let h = headers(&[("cookie", &format!("other=1; {COOKIE_NAME}={id}"))]);
        s.flash(&h, "done".into());
        assert_eq!(s.of(&h).unwrap().name, "oncall");
        assert_eq!(s.take_flash(&h).as_deref(), Some("done"));
        assert_eq!(s.take_flash(&h), None, "once");
        assert!(s.of(&headers(&[("cookie", &format!("{COOKIE_NAME}=nope"))])).is_none());
        s.close(&h);
        assert!(s.of(&h).is_none());
    }

    #[test]
    fn csrf_tokens_must_match() {
        assert_eq!(check_csrf(Some("abc"), "abc"), Ok(()));
        assert_eq!(check_csrf(Some("abd"), "abc"), Err(Forged::Csrf));
        assert_eq!(check_csrf(None, "abc"), Err(Forged::Csrf));
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_scoped_to_the_console() {
        let c = set_cookie(COOKIE_NAME, "x", SESSION_TTL, true);
        assert_eq!(c, "cutover_session=x; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=28800; Secure");
        assert!(!set_cookie(COOKIE_NAME, "x", SESSION_TTL, false).contains("Secure"));
    }
}
