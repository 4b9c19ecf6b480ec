//! The console as a browser without script sees it: raw HTTP/1.1 requests
//! with headers, cookies and form bodies, against a real `cutover run`
//! with two backends whose policy asks a human to approve.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::run_process::RunProcess;
use super::{Backend, Setup, sha256_hex};

/// The tokens of the console tests: their names are their values.
pub const APPROVER: &str = "oncall";
pub const VIEWER: &str = "watcher";
pub const AGENT: &str = "eu-agent";

/// A policy that asks a human for every failover to `secondary`.
pub const ASK_A_HUMAN: &str = "package cutover\n\nimport rego.v1\n\ndecision := {\"action\": \"await_approval\", \
                               \"target\": \"secondary\", \"reason\": \"console test: a human decides\"}\n";

/// A controller with backends `primary` and `secondary`, the console's
/// tokens, the policy that asks a human, and a status-page signal that
/// cannot be read (nothing listens on port 1).
pub fn start(primary: Backend, secondary: Backend) -> (Setup, RunProcess) {
    let t = |name: &str, role: &str, extra: &str| {
        format!("[[api.tokens]]\nname = \"{name}\"\nrole = \"{role}\"\n{extra}sha256 = \"{}\"\n", sha256_hex(name))
    };
    let toml = format!(
        "[policy]\npath = \"ask.rego\"\n\n[signals.statuspage]\nurl = \"http://127.0.0.1:1/api/v2/status.json\"\n\
         interval = \"1s\"\ntimeout = \"500ms\"\n\n[api]\nlisten = \"127.0.0.1:1\"\n{}{}{}",
        t(APPROVER, "approver", ""),
        t(VIEWER, "viewer", ""),
        t(AGENT, "agent", "vantage = \"eu\"\n"),
    );
    let setup = Setup::new(&[primary, secondary], &toml);
    std::fs::write(setup.dir.path().join("ask.rego"), ASK_A_HUMAN).unwrap();
    let c = RunProcess::start(&setup);
    (setup, c)
}

/// One response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    /// The first header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Every `Set-Cookie` for cookie `name`.
    pub fn set_cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == "set-cookie")
            .map(|(_, v)| v.as_str())
            .find(|v| v.starts_with(&format!("{name}=")))
    }

    /// The value a cookie is set to.
    pub fn cookie_value(&self, name: &str) -> Option<String> {
        let c = self.set_cookie(name)?;
        Some(c[name.len() + 1..].split(';').next().unwrap_or("").to_string())
    }

    /// The `value` of the hidden input `name` in the body.
    pub fn hidden(&self, name: &str) -> Option<String> {
        let at = self.body.find(&format!("name=\"{name}\" value=\""))?;
        let rest = &self.body[at + name.len() + 15..];
        Some(rest[..rest.find('"')?].to_string())
    }
}

/// A client of one console: its origin and its cookies.
#[derive(Debug, Clone)]
pub struct Client {
    pub port: u16,
    pub cookies: Vec<(String, String)>,
}

impl Client {
    pub fn new(port: u16) -> Self {
        Self { port, cookies: Vec::new() }
    }

    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A GET with this client's cookies.
    pub fn get(&self, path: &str) -> Resp {
        self.send("GET", path, &[], "")
    }

    /// A form POST from this console's own page (its `Origin`).
    pub fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Resp {
        let origin = self.origin();
        self.post_form_from(path, form, Some(&origin))
    }

    /// A form POST with the given `Origin` (or none).
    pub fn post_form_from(&self, path: &str, form: &[(&str, &str)], origin: Option<&str>) -> Resp {
        let body: Vec<String> = form.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
        let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded".to_string())];
        if let Some(o) = origin {
            headers.push(("Origin", o.to_string()));
        }
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.send("POST", path, &h, &body.join("&"))
    }

    /// Signs in with `token` through the form; keeps the session cookie.
    pub fn sign_in(&mut self, token: &str) -> Resp {
        let form = self.get("/ui/login");
        assert_eq!(form.status, 200, "{form:?}");
        let nonce = form.cookie_value("cutover_login").expect("the sign-in form sets its cookie");
        self.cookies.push(("cutover_login".into(), nonce.clone()));
        let r = self.post_form("/ui/login", &[("token", token), ("csrf", &nonce)]);
        if let Some(id) = r.cookie_value("cutover_session") {
            self.cookies.retain(|(k, _)| k != "cutover_session");
            self.cookies.push(("cutover_session".into(), id));
        }
        r
    }

    /// The CSRF token of the signed-in session (from a page's forms).
    pub fn csrf(&self) -> String {
        self.get("/ui").hidden("csrf").expect("a signed-in page carries the CSRF token")
    }

    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n", self.port);
        if !self.cookies.is_empty() {
            let c: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req.push_str(&format!("Cookie: {}\r\n", c.join("; ")));
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        s.write_all(req.as_bytes()).unwrap();
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        parse(&String::from_utf8_lossy(&raw))
    }
}

fn parse(raw: &str) -> Resp {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Resp { status, headers, body: body.to_string() }
}

/// `application/x-www-form-urlencoded` encoding of a value.
pub fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => (b as char).to_string(),
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The id of the open incident, once there is one awaiting approval.
pub fn awaiting_incident(c: &RunProcess) -> String {
    let id = std::cell::RefCell::new(String::new());
    c.wait_for("an incident awaiting approval", Duration::from_secs(60), |c| {
        let list = c.json("/v1/incidents");
        match list.as_array().and_then(|l| l.iter().find(|i| i["state"] == "awaiting_approval")) {
            Some(i) => {
                *id.borrow_mut() = i["id"].as_str().unwrap_or_default().to_string();
                true
            }
            None => false,
        }
    });
    id.into_inner()
}
