//! The frame every page shares, the security headers every console response
//! carries, and the two static files (the script and the stylesheet, served
//! from the binary: no inline script or style, so the CSP can forbid both).

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, SET_COOKIE};
use http::{HeaderValue, StatusCode};
use maud::{DOCTYPE, Markup, html};

use super::session::Session;

/// Scripts and styles from this console only, nothing inline; no framing,
/// no plugins, forms post back here only.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const SCRIPT: &str = include_str!("console.js");
const STYLESHEET: &str = include_str!("console.css");

/// An HTML page with the console's headers.
pub fn page(status: StatusCode, title: &str, who: Option<&Session>, body: Markup) -> Response {
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · cutover" }
                link rel="stylesheet" href="/ui/static/console.css";
                script src="/ui/static/console.js" defer {}
            }
            body {
                header {
                    nav {
                        a href="/ui" { "cutover" }
                        " · " a href="/ui/audit" { "audit" }
                        " · " a href="/ui/drills" { "drills" }
                    }
                    @if let Some(s) = who {
                        form.signout method="post" action="/ui/logout" {
                            span { (s.name) " (" (role_name(s)) ")" }
                            input type="hidden" name="csrf" value=(s.csrf);
                            button type="submit" { "sign out" }
                        }
                    }
                }
                p #conn hidden {}
                (body)
            }
        }
    };
    with_headers(status, "text/html; charset=utf-8", doc.into_string())
}

/// A piece of HTML (the live part of a page, for the script to swap in).
pub fn fragment(body: Markup) -> Response {
    with_headers(StatusCode::OK, "text/html; charset=utf-8", body.into_string())
}

/// A `303 See Other` to `to`, optionally setting a cookie.
pub fn redirect(to: &str, cookie: Option<String>) -> Response {
    let mut resp = with_headers(StatusCode::SEE_OTHER, "text/plain; charset=utf-8", String::new());
    if let Ok(v) = HeaderValue::from_str(to) {
        resp.headers_mut().insert(LOCATION, v);
    }
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().append(SET_COOKIE, c);
    }
    resp
}

/// A refusal page (403, 404, ...), with a link back.
pub fn refusal(status: StatusCode, message: &str, who: Option<&Session>) -> Response {
    let body = html! {
        main {
            h1 { (status.canonical_reason().unwrap_or("refused")) }
            p.error { (message) }
            p { a href="/ui" { "back to the status page" } }
        }
    };
    page(status, "refused", who, body)
}

/// A body with the console's security headers.
pub fn with_headers(status: StatusCode, content_type: &'static str, body: impl Into<Body>) -> Response {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    // Not `no-referrer`: under it Chromium sends `Origin: null` with the
    // console's own form posts, which the Origin check must refuse.
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

pub async fn script() -> Response {
    with_headers(StatusCode::OK, "text/javascript; charset=utf-8", SCRIPT)
}

pub async fn stylesheet() -> Response {
    with_headers(StatusCode::OK, "text/css; charset=utf-8", STYLESHEET)
}

pub fn role_name(s: &Session) -> &'static str {
    match s.role {
        cutover_core::config::TokenRole::Viewer => "viewer",
        cutover_core::config::TokenRole::Agent => "agent",
        cutover_core::config::TokenRole::Approver => "approver",
        cutover_core::config::TokenRole::Admin => "admin",
    }
}

impl IntoResponse for super::session::Forged {
    fn into_response(self) -> Response {
        refusal(StatusCode::FORBIDDEN, &format!("refused: {self}"), None)
    }
}
