//! The console in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, over WebDriver), against the real `cutover run` with
//! two in-process s3s-fs backends and a policy that asks a human: sign in;
//! an outage appears on the open status page without a reload; a viewer
//! sees no Approve button; an approver approves with a comment and the
//! timeline and the audit view show it; a stale second approval from
//! another tab says "already decided"; the chart names its markers.
//! Screenshots go to `$CARGO_TARGET_TMPDIR/console-screens/` (the last
//! page on failure, and the incident page for the README).

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::console::{APPROVER, VIEWER, awaiting_incident, start};
use common::webdriver::Browser;
use common::{Backend, start_s3sfs};

/// Generous: the box is shared; the console pushes within a second.
const LIVE_BOUND: Duration = Duration::from_secs(5);

fn screens() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screens")
}

fn sign_in(b: &Browser, base: &str, token: &str) {
    b.goto(&format!("{base}/ui/login"));
    let field = b.wait_find("input[name=token]", Duration::from_secs(10));
    b.type_into(&field, token);
    b.click(&b.wait_find("form[action='/ui/login'] button", Duration::from_secs(5)));
    b.wait_find("#live", Duration::from_secs(10));
}

fn sign_out(b: &Browser) {
    b.click(&b.wait_find("form.signout button", Duration::from_secs(5)));
    b.wait_find("input[name=token]", Duration::from_secs(10));
}

#[test]
fn an_outage_is_seen_live_and_approved_in_a_browser() {
    let (a, s) = (start_s3sfs(), start_s3sfs());
    let (_setup, c) = start(Backend::s3sfs("primary", "primary", &a), Backend::s3sfs("secondary", "secondary", &s));
    c.wait_for("healthy", Duration::from_secs(20), |c| c.json("/v1/status")["backends"][0]["health"] == "healthy");
    let base = format!("http://127.0.0.1:{}", c.port());
    let b = Browser::start();
    let outcome = catch_unwind(AssertUnwindSafe(|| scenario(&b, &c, &a, &base)));
    if let Err(e) = outcome {
        let path = screens().join("failure.png");
        b.screenshot(&path);
        eprintln!("screenshot of the last page: {}\ncontroller log:\n{}", path.display(), c.log());
        a.resume();
        resume_unwind(e);
    }
    a.resume();
}

fn scenario(b: &Browser, c: &common::run_process::RunProcess, a: &cutover_lab::s3sfs::S3sFs, base: &str) {
    // A viewer signs in and keeps the status page open.
    sign_in(b, base, VIEWER);
    assert!(b.text_of("#health").contains("healthy"), "{}", b.source());
    assert!(b.find("#conn").is_some());
    a.hang();
    // The page changes without a reload, soon after the API says so.
    let start = Instant::now();
    let mut api_at = None;
    let page_at = loop {
        if api_at.is_none() && c.json("/v1/status")["backends"][0]["health"] != "healthy" {
            api_at = Some(start.elapsed());
        }
        let cell = b.text_of("td[data-backend=primary]");
        if !cell.is_empty() && cell != "healthy" {
            break start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the outage never appeared: {}", b.source());
        std::thread::sleep(Duration::from_millis(50));
    };
    let api_at = api_at.unwrap_or(page_at);
    let lag = page_at.saturating_sub(api_at);
    eprintln!("outage on the open page {lag:?} after the API reported it");
    assert!(lag <= LIVE_BOUND, "the page showed the outage {lag:?} after the API");
    assert!(b.url().ends_with("/ui"), "no navigation happened: {}", b.url());

    let id = awaiting_incident(c);
    let deadline = Instant::now() + LIVE_BOUND + Duration::from_secs(5);
    while !b.text_of("#incidents").contains(&id) {
        assert!(Instant::now() < deadline, "the incident never appeared on the open page: {}", b.source());
        std::thread::sleep(Duration::from_millis(50));
    }
    // The viewer sees the plan and no Approve button.
    let page = format!("{base}/ui/incidents/{id}");
    b.goto(&page);
    b.wait_find("#approval", Duration::from_secs(10));
    assert!(b.find("#approve").is_none(), "a viewer sees no Approve button");
    assert!(b.text_of("#viewer-note").contains("you may look, not decide"));
    sign_out(b);

    // The approver: two tabs on the same incident; approve in the first.
    sign_in(b, base, APPROVER);
    b.goto(&page);
    let first = b.current_tab();
    b.wait_find("#approve", Duration::from_secs(10));
    b.new_tab();
    b.goto(&page);
    let second = b.current_tab();
    b.wait_find("#approve", Duration::from_secs(10));
    b.switch_to(&first);
    b.type_into(&b.wait_find("textarea[name=comment]", Duration::from_secs(5)), "checked the smoke tests; go");
    b.click(&b.wait_find("#approve", Duration::from_secs(5)));
    let flash = b.wait_find("#flash", Duration::from_secs(10));
    assert!(b.text(&flash).contains("approved by oncall"), "{}", b.source());
    c.wait_for("the validated switch", Duration::from_secs(30), |_| b.source().contains("data-marker=\"validation\""));
    let timeline = b.text_of("#timeline");
    assert!(timeline.contains("checked the smoke tests; go") && timeline.contains(APPROVER), "{timeline}");
    let chart = b.source();
    for marker in ["onset", "decision", "switch", "validation"] {
        assert!(chart.contains(&format!("data-marker=\"{marker}\"")), "marker {marker} in the chart");
    }
    assert!(b.find("#chart svg").is_some(), "an inline SVG chart");
    b.screenshot(&screens().join("incident.png"));

    // The stale tab decides again.
    b.switch_to(&second);
    b.type_into(&b.wait_find("textarea[name=comment]", Duration::from_secs(5)), "me too");
    b.click(&b.wait_find("#approve", Duration::from_secs(5)));
    let flash = b.wait_find("#flash", Duration::from_secs(10));
    let said = b.text(&flash);
    assert!(said.contains("already decided") && said.contains("by oncall"), "{said}");

    // The audit view shows the console's verdict.
    b.goto(&format!("{base}/ui/audit?action=console."));
    let audit = b.text_of("#audit");
    assert!(audit.contains("console.approve") && audit.contains("console.login"), "{audit}");
    assert!(b.text_of("#verify").contains("chain intact"));
    b.screenshot(&screens().join("audit.png"));
}
