//! The console over plain HTTP, as a browser without script (or a forger)
//! sends it: sign-in, cookie attributes, CSP, CSRF and `Origin` checks,
//! role gating, approval by form POST, the "already decided" answer, the
//! audit entries with `channel: console`, and the live event stream with
//! its `Last-Event-ID` catch-up. Against the real `cutover run` with two
//! in-process s3s-fs backends.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::console::{AGENT, APPROVER, Client, VIEWER, awaiting_incident, start};
use common::{Backend, start_s3sfs};

#[test]
fn sign_in_sets_a_strict_cookie_every_page_forbids_framing_and_forged_posts_are_refused() {
    let (a, b) = (start_s3sfs(), start_s3sfs());
    let (_setup, mut c) = start(Backend::s3sfs("primary", "primary", &a), Backend::s3sfs("secondary", "secondary", &b));
    let anonymous = Client::new(c.port());

    let r = anonymous.get("/ui");
    assert_eq!((r.status, r.header("location")), (303, Some("/ui/login")), "{r:?}");
    let form = anonymous.get("/ui/login");
    assert_eq!(form.status, 200);
    let csp = form.header("content-security-policy").expect("a CSP").to_string();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(form.header("x-frame-options"), Some("DENY"));
    // Regression (found by the browser test): `no-referrer` made Chromium
    // send `Origin: null` with the console's own forms, so sign-in failed.
    assert_eq!(form.header("referrer-policy"), Some("same-origin"));
    assert!(!form.body.contains("<script>"), "no inline script");
    let nonce = form.cookie_value("cutover_login").unwrap();
    assert_eq!(form.hidden("csrf").as_deref(), Some(nonce.as_str()), "the form carries its cookie's value");

    // Sign-in posts: the Origin and the form's token must match.
    let mut forger = anonymous.clone();
    forger.cookies.push(("cutover_login".into(), nonce.clone()));
    let fields = [("token", VIEWER), ("csrf", nonce.as_str())];
    let r = forger.post_form_from("/ui/login", &fields, Some("http://evil.example"));
    assert_eq!(r.status, 403, "another origin: {r:?}");
    assert!(r.cookie_value("cutover_session").is_none());
    assert_eq!(forger.post_form_from("/ui/login", &fields, None).status, 403, "no Origin");
    let r = forger.post_form("/ui/login", &[("token", VIEWER), ("csrf", "0000")]);
    assert_eq!(r.status, 403, "a wrong form token: {r:?}");
    let r = forger.post_form("/ui/login", &[("token", "not-a-token"), ("csrf", &nonce)]);
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.body.contains("unknown token") && !r.body.contains("not-a-token"), "the token is not echoed");

    let mut agent = Client::new(c.port());
    let r = agent.sign_in(AGENT);
    assert_eq!(r.status, 401, "agents cannot sign in: {r:?}");
    assert!(r.body.contains("agent tokens cannot sign in"));

    let mut viewer = Client::new(c.port());
    let r = viewer.sign_in(VIEWER);
    assert_eq!((r.status, r.header("location")), (303, Some("/ui")), "{r:?}");
    let cookie = r.set_cookie("cutover_session").unwrap();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=28800"] {
        assert!(cookie.split("; ").any(|a| a == attr), "{attr} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP without an https public_url: {cookie}");
    let page = viewer.get("/ui");
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body.contains("Active backend") && page.body.contains("primary"), "{}", page.body);
    assert!(page.body.contains("cutover status"), "the CLI equivalent is offered");
    c.wait_for("the signal on the status page", Duration::from_secs(20), |_| {
        let body = viewer.get("/ui").body;
        let row = body.split("<tr><td>").skip(1).find(|r| r.starts_with("statuspage</td>")).unwrap_or("").to_string();
        row.contains("unavailable")
    });
    assert!(page.header("content-security-policy").is_some_and(|v| v.contains("frame-ancestors 'none'")));

    let drills = viewer.get("/ui/drills");
    assert_eq!(drills.status, 200);
    assert!(drills.body.contains("No drill reports yet."), "{}", drills.body);

    // The API stays bearer-only: a session cookie opens nothing under /v1.
    assert_eq!(viewer.get("/v1/status").status, 401);

    // A POST of the session without its CSRF token, or from elsewhere, is 403.
    let csrf = viewer.csrf();
    assert_eq!(viewer.post_form("/ui/logout", &[]).status, 403);
    assert_eq!(viewer.post_form_from("/ui/logout", &[("csrf", &csrf)], Some("http://evil.example")).status, 403);
    assert_eq!(viewer.get("/ui").status, 200, "still signed in");

    let audit = viewer.get("/ui/audit?action=console.login");
    assert_eq!(audit.status, 200);
    assert!(audit.body.contains("chain intact"), "{}", audit.body);
    let row = audit.body.split("<tr><td>").skip(1).find(|r| r.contains(VIEWER) && r.contains("console.login"));
    assert!(
        row.is_some_and(|r| r.contains("console")),
        "console.login by {VIEWER} with channel console: {}",
        audit.body
    );

    c.wait_for("the refused sign-ins in the audit log", Duration::from_secs(20), |_| {
        let denied = viewer.get("/ui/audit?action=api.denied&text=%2Fui%2Flogin").body;
        denied.contains("unknown-token") && denied.contains(AGENT)
    });
    let denied = viewer.get("/ui/audit?action=api.denied").body;
    assert!(!denied.contains("not-a-token"), "the token itself is never recorded");

    let r = viewer.post_form("/ui/logout", &[("csrf", &csrf)]);
    assert_eq!((r.status, r.header("location")), (303, Some("/ui/login")));
    assert_eq!(viewer.get("/ui").status, 303, "signed out");
    let refresh = viewer.send("GET", "/ui", &[("X-Console-Fragment", "live")], "");
    assert_eq!(refresh.status, 403, "the page's refresh is refused, not answered with the sign-in form");

    // An open event stream does not hold up the graceful stop (the API
    // waits up to 10 s for requests in progress; a stream never ends by itself).
    let mut watcher = Client::new(c.port());
    watcher.sign_in(VIEWER);
    let mut stream = open_events(c.port(), &watcher, None);
    assert!(read_until(&mut stream, "retry: 1000", Duration::from_secs(10)).contains("retry: 1000"));
    let stop = Instant::now();
    c.terminate();
    while c.try_wait().is_none() {
        assert!(
            stop.elapsed() < Duration::from_secs(8),
            "cutover run still running {:?} after SIGTERM",
            stop.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("stopped {:?} after SIGTERM with an open event stream", stop.elapsed());
}

#[test]
fn an_approver_approves_by_form_a_viewer_cannot_and_a_second_verdict_is_already_decided() {
    let (a, b) = (start_s3sfs(), start_s3sfs());
    let (setup, c) = start(Backend::s3sfs("primary", "primary", &a), Backend::s3sfs("secondary", "secondary", &b));
    c.wait_for("healthy", Duration::from_secs(20), |c| c.json("/v1/status")["backends"][0]["health"] == "healthy");
    let mut viewer = Client::new(c.port());
    viewer.sign_in(VIEWER);
    let mut approver = Client::new(c.port());
    approver.sign_in(APPROVER);

    // The live stream: opened before the outage, it reports it.
    let mut events = open_events(c.port(), &viewer, None);
    a.hang();
    let seen = read_until(&mut events, "event: change", Duration::from_secs(60));
    assert!(seen.contains("\"kind\":\"health\"") || seen.contains("\"kind\":\"incident\""), "{seen}");
    let first_id = seen.split("id: ").nth(1).and_then(|s| s.split('\n').next()).unwrap_or("").to_string();

    let id = awaiting_incident(&c);
    let page_path = format!("/ui/incidents/{id}");
    let as_viewer = viewer.get(&page_path);
    assert_eq!(as_viewer.status, 200);
    assert!(as_viewer.body.contains("Awaiting a verdict") && as_viewer.body.contains("plan of"), "{}", as_viewer.body);
    assert!(!as_viewer.body.contains("id=\"approve\""), "a viewer sees no Approve button");
    // No gateway in this controller: the client impact is said to be unrecorded, not "none".
    assert!(as_viewer.body.contains("Client impact: not recorded on this node"), "{}", as_viewer.body);
    assert!(as_viewer.body.contains("May decide: ") && as_viewer.body.contains(APPROVER));
    assert!(
        as_viewer.body.contains("id=\"decision-evidence\"") && as_viewer.body.contains("At the decision: 1 of 1"),
        "the evidence per vantage the decision was made on"
    );
    let forged = viewer.post_form(&format!("{page_path}/approve"), &[("csrf", &viewer.csrf()), ("comment", "me")]);
    assert_eq!(forged.status, 403, "a viewer's POST: {forged:?}");

    let as_approver = approver.get(&page_path);
    assert!(as_approver.body.contains("id=\"approve\"") && as_approver.body.contains("id=\"reject\""));
    let csrf = as_approver.hidden("csrf").unwrap();
    let approve = format!("{page_path}/approve");
    assert_eq!(approver.post_form(&approve, &[("comment", "go")]).status, 403, "no CSRF token");
    let elsewhere =
        approver.post_form_from(&approve, &[("csrf", &csrf), ("comment", "go")], Some("http://evil.example"));
    assert_eq!(elsewhere.status, 403, "another origin");
    let empty = approver.post_form(&approve, &[("csrf", &csrf), ("comment", "  ")]);
    assert_eq!(empty.status, 303);
    assert!(approver.get(&page_path).body.contains("a comment is required"));
    assert_eq!(c.json(&format!("/v1/incidents/{id}"))["state"], "awaiting_approval", "nothing was decided yet");

    let r = approver.post_form(&approve, &[("csrf", &csrf), ("comment", "verified the tests, go")]);
    assert_eq!((r.status, r.header("location")), (303, Some(page_path.as_str())), "{r:?}");
    let after = approver.get(&page_path);
    assert!(after.body.contains("approved by oncall"), "{}", after.body);
    c.wait_for("the approved failover", Duration::from_secs(30), |c| c.json("/v1/status")["active"] == "secondary");

    // A stale second verdict (the page was open before the first).
    let again = approver.post_form(&approve, &[("csrf", &csrf), ("comment", "me too")]);
    assert_eq!(again.status, 303);
    let shown = approver.get(&page_path).body;
    assert!(shown.contains("already decided") && shown.contains("by oncall"), "{shown}");
    let runs = c.json(&format!("/v1/incidents/{id}"))["runs"].as_array().map(Vec::len);
    assert_eq!(runs, Some(1), "one failover run, not two");

    // The timeline and the audit log say who decided, and through which channel.
    c.wait_for("the validated switch on the page", Duration::from_secs(30), |_| {
        approver.get(&page_path).body.contains("data-marker=\"validation\"")
    });
    let page = approver.get(&page_path).body;
    assert!(page.contains("verified the tests, go"), "the comment is in the timeline");
    let approval_row = page.split("<tr><td>").skip(1).find(|r| r.contains("verified the tests, go")).unwrap_or("");
    assert!(approval_row.contains("<td class=\"via\">console</td>"), "through which channel: {approval_row}");
    for marker in ["decision", "switch", "validation"] {
        assert!(page.contains(&format!("data-marker=\"{marker}\"")), "marker {marker}: {page}");
    }
    let refused = approver.get("/ui/audit?action=console.verdict_refused").body;
    assert!(refused.contains("already decided"), "the refused second verdict and why: {refused}");
    let audit = approver.get("/ui/audit?action=console.approve").body;
    let row =
        audit.split("<tr><td>").skip(1).find(|r| r.contains("console.approve") && r.contains(APPROVER)).unwrap_or("");
    assert!(row.contains("console") && row.contains(&id), "{audit}");

    // A reconnecting page catches up from Last-Event-ID; an unknown id gets a reset.
    let mut again = open_events(c.port(), &viewer, Some(&first_id));
    let caught_up = read_until(&mut again, "\"kind\":\"step\"", Duration::from_secs(20));
    assert!(!caught_up.contains("event: reset"), "{caught_up}");
    let mut stale = open_events(c.port(), &viewer, Some("1"));
    let reset = read_until(&mut stale, "event: reset", Duration::from_secs(20));
    assert!(reset.contains("event: reset"), "{reset}");
    // A hung probe becomes a failed sample only when its timeout fires: wait
    // until the live chart has one, then for the sample writer's batch
    // window, before the controller stops (a flake when the run was quick).
    let start = Instant::now();
    loop {
        let svg = viewer.get(&format!("{page_path}/chart.svg"));
        if series_of(&svg.body, "primary").1 >= 1 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no failed probe of the hung primary: {}", svg.body);
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(1500));
    a.resume();
    drop(c);
    let verify = setup.run(&["audit", "verify"]);
    assert_eq!(verify.code, 0, "{verify:?}");

    // The post-incident report, from the state file once the controller is gone.
    let md = setup.run(&["incidents", "report", &id]);
    assert_eq!(md.code, 0, "{md:?}");
    for part in
        ["## Summary", "RTO (incident opened → validated switch): ", "approve by oncall", "verified the tests, go"]
    {
        assert!(md.stdout.contains(part), "{part:?} in:\n{}", md.stdout);
    }
    let html = setup.run(&["incidents", "report", &id, "--format", "html"]);
    assert_eq!(html.code, 0, "{html:?}");
    assert!(html.stdout.starts_with("<!DOCTYPE html>") && html.stdout.contains("data-marker=\"validation\""));
    // The suspect marker, from the stored health history.
    assert!(html.stdout.contains("data-marker=\"suspect\""), "{}", html.stdout);
    assert!(md.stdout.contains("- suspect: "), "{}", md.stdout);
    assert!(!html.stdout.contains("<script"), "self-contained, no script");
    // The probe lines, read from the node-local store by this separate process.
    for backend in ["primary", "secondary"] {
        let (points, _) = series_of(&html.stdout, backend);
        assert!(points >= 1, "{backend}'s latency line has points:\n{}", html.stdout);
    }
    assert!(series_of(&html.stdout, "primary").1 >= 1, "the hung backend's failed probes");
    assert!(!html.stdout.contains("no probe samples stored"));
    let reported = series_of(&html.stdout, "secondary").0;

    // A restarted controller draws the incident's probe lines from the store
    // (the primary is healthy again: its failures can only come from there).
    let c = common::run_process::RunProcess::start(&setup);
    let mut after_restart = Client::new(c.port());
    after_restart.sign_in(VIEWER);
    let svg = after_restart.get(&format!("{page_path}/chart.svg"));
    assert_eq!(svg.status, 200, "{svg:?}");
    let (primary, secondary) = (series_of(&svg.body, "primary"), series_of(&svg.body, "secondary"));
    assert!(primary.1 >= 1 && primary.0 >= 1, "the primary's stored line and failures: {}", svg.body);
    assert!(secondary.0 >= reported, "the secondary's stored line: {}", svg.body);
    assert!(svg.body.contains("data-marker=\"suspect\""), "the suspect marker after a restart: {}", svg.body);
    drop(c);
    let bad = setup.run(&["incidents", "report", &id, "--format", "pdf"]);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("md or html"), "{bad:?}");
}

/// The points of `backend`'s probe line in a chart, and its failure marks.
fn series_of(svg: &str, backend: &str) -> (usize, usize) {
    let start = format!("<g class=\"series\" data-backend=\"{backend}\">");
    let Some(g) = svg.split(&start).nth(1).and_then(|rest| rest.split("</g>").next()) else { return (0, 0) };
    let points = g.split("points=\"").nth(1).and_then(|p| p.split('"').next()).unwrap_or("");
    (points.split_whitespace().count(), g.matches("class=\"failure\"").count())
}

/// Opens `GET /ui/events` with the client's cookies.
fn open_events(port: u16, client: &Client, last_event_id: Option<&str>) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let cookies: Vec<String> = client.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let last = last_event_id.map(|id| format!("Last-Event-ID: {id}\r\n")).unwrap_or_default();
    let req = format!(
        "GET /ui/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\nCookie: {}\r\n{last}\r\n",
        cookies.join("; ")
    );
    s.write_all(req.as_bytes()).unwrap();
    s
}

/// Reads the stream until `needle` appears (or `limit` passes); returns what was read.
fn read_until(s: &mut TcpStream, needle: &str, limit: Duration) -> String {
    let start = Instant::now();
    let mut seen = String::new();
    let mut buf = [0u8; 8192];
    while start.elapsed() < limit && !seen.contains(needle) {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(_) => {}
        }
    }
    seen
}
