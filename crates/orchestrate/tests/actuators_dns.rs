//! `dns.update` against a real BIND 9 (Debian's `bind9`) started on a free
//! loopback port with a zone and a TSIG key made by the test; `dig`
//! (`bind9-dnsutils`) reads the answers straight from the server.

mod actuators_support;
mod engine_support;

use actuators_support::{ctx, params};
use cutover_core::domain::{StepPhase, StepState};
use cutover_lab::bind::{self, Bind, KEY_NAME};
use cutover_orchestrate::actuators::{Ctx, StepError, run_external};
use cutover_orchestrate::engine::RunOutcome;
use engine_support::bench;
use serde_json::{Value, json};

const ZONE: &str = "example.test";

async fn update(ctx: &Ctx, with: Value) -> Result<Value, StepError> {
    run_external("dns.update", &params(with), ctx).await.expect("dns.update is an external actuator")
}

/// The step the runbook would have: move `s3.example.test` to `value`.
fn step(bind: &Bind, value: &str, ttl: u32) -> Value {
    json!({
        "server": bind.addr(), "zone": ZONE, "name": "s3.example.test", "type": "CNAME",
        "value": value, "ttl": ttl, "tsig_key": KEY_NAME, "tsig_algorithm": bind.algorithm,
        "tsig_secret_env": "TSIG_SECRET",
    })
}

fn restore(mut with: Value) -> Value {
    let m = with.as_object_mut().unwrap();
    m.remove("value");
    m.remove("ttl");
    m.insert("restore".into(), json!(true));
    with
}

fn start(records: &[&str], algorithm: &str) -> Option<Bind> {
    if !bind::available() {
        eprintln!("skipped: named or dig is not installed (apt-get install bind9 bind9-dnsutils)");
        return None;
    }
    Some(Bind::start(ZONE, records, algorithm).expect("named starts"))
}

#[tokio::test]
async fn moves_a_cname_to_the_secondary_and_the_undo_restores_it_exactly() {
    let Some(bind) = start(&["s3 300 IN CNAME primary.storage"], "hmac-sha256") else { return };
    let work = tempfile::tempdir().unwrap();
    let ctx = ctx(work.path(), &[("TSIG_SECRET", bind.secret())]);
    let before = bind.dig("s3.example.test", "CNAME").unwrap();
    assert_eq!(before, ["s3.example.test. 300 IN CNAME primary.storage.example.test."]);
    let serial = bind.serial().unwrap();

    let with = step(&bind, "secondary.storage.example.test.", 30);
    let out = update(&ctx, with.clone()).await.unwrap();
    assert_eq!(out["changed"], true, "{out}");
    assert_eq!(out["previous"], json!([{"ttl": 300, "value": "primary.storage.example.test."}]));
    assert_eq!(out["serial"]["before"], serial);
    assert_eq!(
        bind.dig("s3.example.test", "CNAME").unwrap(),
        ["s3.example.test. 30 IN CNAME secondary.storage.example.test."]
    );
    assert!(bind.serial().unwrap() > serial);

    // Again: the server already has it, nothing is sent.
    let serial_moved = bind.serial().unwrap();
    let again = update(&ctx, with.clone()).await.unwrap();
    assert_eq!(again["changed"], false, "{again}");
    // It finds its own earlier write: what that replaced is still what to put back.
    assert_eq!(again["previous"], out["previous"], "{again}");
    assert_eq!(bind.serial().unwrap(), serial_moved);

    // The undo puts back the record set from before the first update, TTL included.
    let undone = update(&ctx, restore(with)).await.unwrap();
    assert_eq!(undone["changed"], true, "{undone}");
    assert_eq!(bind.dig("s3.example.test", "CNAME").unwrap(), before);
    assert!(bind.serial().unwrap() > serial_moved);
}

#[tokio::test]
async fn restores_a_set_of_several_records_with_hmac_sha512_and_a_key_file() {
    let records = ["s3 120 IN A 10.0.0.1", "s3 120 IN A 10.0.0.2"];
    let Some(bind) = start(&records, "hmac-sha512") else { return };
    let work = tempfile::tempdir().unwrap();
    let ctx = ctx(work.path(), &[]);
    let key_file = bind.key_file().unwrap();
    let mut with = step(&bind, "10.0.1.9", 45);
    with["type"] = json!("A");
    let m = with.as_object_mut().unwrap();
    m.remove("tsig_secret_env");
    m.insert("tsig_secret_file".into(), json!(key_file.to_str().unwrap()));
    let before = bind.dig("s3.example.test", "A").unwrap();
    assert_eq!(before.len(), 2, "{before:?}");

    update(&ctx, with.clone()).await.unwrap();
    assert_eq!(bind.dig("s3.example.test", "A").unwrap(), ["s3.example.test. 45 IN A 10.0.1.9"]);
    update(&ctx, restore(with)).await.unwrap();
    // BIND rotates the order of a record set's answers: compare them as sets.
    assert_eq!(sorted(bind.dig("s3.example.test", "A").unwrap()), sorted(before));
}

fn sorted(mut lines: Vec<String>) -> Vec<String> {
    lines.sort();
    lines
}

#[tokio::test]
async fn a_name_that_did_not_exist_is_deleted_again_by_the_undo() {
    let Some(bind) = start(&[], "hmac-sha256") else { return };
    let work = tempfile::tempdir().unwrap();
    let ctx = ctx(work.path(), &[("TSIG_SECRET", bind.secret())]);
    let mut with = step(&bind, "2001:db8::5", 60);
    with["type"] = json!("AAAA");
    let out = update(&ctx, with.clone()).await.unwrap();
    assert_eq!(out["previous"], json!([]));
    assert_eq!(bind.dig("s3.example.test", "AAAA").unwrap(), ["s3.example.test. 60 IN AAAA 2001:db8::5"]);
    update(&ctx, restore(with)).await.unwrap();
    assert_eq!(bind.dig("s3.example.test", "AAAA").unwrap(), Vec::<String>::new());
}

#[tokio::test]
async fn a_wrong_tsig_secret_or_key_fails_naming_the_rcode_and_changes_nothing() {
    let Some(bind) = start(&["s3 300 IN CNAME primary.storage"], "hmac-sha256") else { return };
    let work = tempfile::tempdir().unwrap();
    let wrong = "c29tZSBvdGhlciBzZWNyZXQgb2YgMzIgYnl0ZXMgISE=";
    let ctx = ctx(work.path(), &[("TSIG_SECRET", wrong), ("RIGHT", bind.secret())]);
    let before = bind.dig("s3.example.test", "CNAME").unwrap();
    let serial = bind.serial().unwrap();

    let with = step(&bind, "secondary.storage.example.test.", 30);
    let e = update(&ctx, with.clone()).await.unwrap_err();
    assert!(matches!(e, StepError::Refused(_)), "{e:?}");
    assert!(e.to_string().contains("answered NOTAUTH (TSIG BADSIG)"), "{e}");
    assert!(!e.to_string().contains(wrong) && !e.to_string().contains(bind.secret()), "{e}");

    let mut other_key = with.clone();
    other_key["tsig_key"] = json!("not-a-key");
    other_key["tsig_secret_env"] = json!("RIGHT");
    let e = update(&ctx, other_key).await.unwrap_err();
    assert!(e.to_string().contains("answered NOTAUTH (TSIG BADKEY)"), "{e}");

    assert_eq!(bind.dig("s3.example.test", "CNAME").unwrap(), before);
    assert_eq!(bind.serial().unwrap(), serial);
}

#[tokio::test]
async fn an_update_the_policy_does_not_allow_is_refused_naming_the_rcode() {
    if !bind::available() {
        eprintln!("skipped: named or dig is not installed (apt-get install bind9 bind9-dnsutils)");
        return;
    }
    let records = ["s3 300 IN CNAME primary.storage", "www 300 IN CNAME primary.storage"];
    let policy = format!("grant {KEY_NAME} name s3.{ZONE}. CNAME;");
    let bind = Bind::start_with_policy(ZONE, &records, "hmac-sha256", &policy).expect("named starts");
    let work = tempfile::tempdir().unwrap();
    let ctx = ctx(work.path(), &[("TSIG_SECRET", bind.secret())]);
    let serial = bind.serial().unwrap();

    let mut www = step(&bind, "secondary.storage.example.test.", 30);
    www["name"] = json!("www.example.test");
    let e = update(&ctx, www).await.unwrap_err();
    assert!(matches!(e, StepError::Refused(_)), "{e:?}");
    assert!(e.to_string().contains("update of www.example.test. CNAME in zone example.test.: 127.0.0.1:"), "{e}");
    assert!(e.to_string().ends_with("answered REFUSED"), "{e}");
    assert_eq!(
        bind.dig("www.example.test", "CNAME").unwrap(),
        ["www.example.test. 300 IN CNAME primary.storage.example.test."]
    );
    assert_eq!(bind.serial().unwrap(), serial);
    // The name the policy grants still moves.
    update(&ctx, step(&bind, "secondary.storage.example.test.", 30)).await.unwrap();
}

/// A server that answers every request with the request itself, marked as
/// a response: its TSIG record carries the request's MAC, not one over the
/// response, so the answer must not be trusted.
#[tokio::test]
async fn an_answer_whose_signature_does_not_match_is_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut len = [0u8; 2];
            socket.read_exact(&mut len).await.unwrap();
            let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
            socket.read_exact(&mut msg).await.unwrap();
            msg[2] |= 0x80; // QR: a response
            socket.write_all(&len).await.unwrap();
            socket.write_all(&msg).await.unwrap();
        }
    });
    let work = tempfile::tempdir().unwrap();
    let ctx = ctx(work.path(), &[("TSIG_SECRET", "c2VjcmV0")]);
    let with = json!({
        "server": addr.to_string(), "zone": ZONE, "name": "s3.example.test", "type": "CNAME",
        "value": "b.example.test", "tsig_key": KEY_NAME, "tsig_secret_env": "TSIG_SECRET",
    });
    let e = update(&ctx, with).await.unwrap_err();
    server.abort();
    assert!(matches!(e, StepError::Refused(_)), "{e:?}");
    assert!(e.to_string().ends_with("the response's signature does not match"), "{e}");
}

#[tokio::test]
async fn a_server_that_does_not_answer_is_a_retryable_failure() {
    let work = tempfile::tempdir().unwrap();
    let ctx = ctx(work.path(), &[("TSIG_SECRET", "c2VjcmV0")]);
    let port = cutover_lab::free_port();
    let with = json!({
        "server": format!("127.0.0.1:{port}"), "zone": ZONE, "name": "s3.example.test", "type": "CNAME",
        "value": "b.example.test", "tsig_key": KEY_NAME, "tsig_secret_env": "TSIG_SECRET",
    });
    let e = update(&ctx, with).await.unwrap_err();
    assert!(e.retryable(), "{e:?}");
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
}

/// The undo carries the record set the update wrote as its prerequisite: a
/// human's later change is never clobbered, the undo fails naming it (with
/// the saved copy, and with the record sets the engine gives from the journal).
#[tokio::test]
async fn an_undo_after_a_human_changed_the_record_fails_naming_the_change_and_keeps_it() {
    let Some(bind) = start(&["s3 300 IN CNAME primary.storage"], "hmac-sha256") else { return };
    let work = tempfile::tempdir().unwrap();
    let ctx = ctx(work.path(), &[("TSIG_SECRET", bind.secret())]);
    let with = step(&bind, "secondary.storage.example.test.", 30);
    let out = update(&ctx, with.clone()).await.unwrap();
    assert_eq!(out["changed"], true, "{out}");

    bind.nsupdate("update delete s3.example.test CNAME\nupdate add s3.example.test 120 CNAME human.example.test.")
        .unwrap();
    let human = ["s3.example.test. 120 IN CNAME human.example.test."];
    assert_eq!(bind.dig("s3.example.test", "CNAME").unwrap(), human);
    let serial = bind.serial().unwrap();

    let e = update(&ctx, restore(with.clone())).await.unwrap_err();
    assert!(matches!(e, StepError::Refused(_)), "{e:?}");
    assert!(!e.retryable(), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("answered NXRRSET: the record set changed under it; nothing was changed"), "{text}");
    assert!(
        text.contains(
            r#"s3.example.test. CNAME was changed by someone else and the undo did not overwrite it: it now reads [{"ttl":120,"value":"human.example.test."}], not the record set the update wrote ([{"ttl":30,"value":"secondary.storage.example.test."}])"#
        ),
        "{text}"
    );
    assert_eq!(bind.dig("s3.example.test", "CNAME").unwrap(), human);
    assert_eq!(bind.serial().unwrap(), serial);

    // The same with the record sets from the journaled result, no saved copy.
    std::fs::remove_dir_all(work.path().join("dns")).unwrap();
    let mut journaled = restore(with);
    journaled["previous"] = out["previous"].clone();
    journaled["written"] = out["records"].clone();
    let e = update(&ctx, journaled).await.unwrap_err();
    assert!(e.to_string().contains("the undo did not overwrite it"), "{e}");
    assert_eq!(bind.dig("s3.example.test", "CNAME").unwrap(), human);
    assert_eq!(bind.serial().unwrap(), serial);
}

/// HA: the leader that rolls back may not be the one that ran the update,
/// and has no saved copy. The engine gives the undo the record set from the
/// update's journaled result. Here a later step deletes `work_dir/dns/` (as
/// if another node took over) and fails, and the rollback restores the name.
#[tokio::test]
async fn the_engine_undo_restores_from_the_journal_when_the_saved_copy_is_gone() {
    let Some(bind) = start(&["s3 300 IN CNAME primary.storage"], "hmac-sha256") else { return };
    let b = bench(&[("TSIG_SECRET", bind.secret())]);
    let job = b.job("secondary", "primary down");
    let before = bind.dig("s3.example.test", "CNAME").unwrap();
    let saved = b.dir.path().join("work").join("dns");
    let text = format!(
        r#"
[[steps]]
name = "move s3"
uses = "dns.update"
with = {{ server = "{addr}", zone = "{ZONE}", name = "s3.example.test", type = "CNAME", value = "secondary.storage.example.test.", ttl = 30, tsig_key = "{KEY_NAME}", tsig_secret_env = "TSIG_SECRET" }}
[[steps]]
name = "another leader takes over, then fails"
uses = "command"
with = {{ program = "sh", args = ["-c", "test -d \"$1\" && rm -r \"$1\" && exit 3", "sh", "{saved}"] }}
on_failure = "rollback"
"#,
        addr = bind.addr(),
        saved = saved.display(),
    );

    let outcome = b.run(&job, &text).await;

    assert!(matches!(outcome, RunOutcome::RolledBack { .. }), "{outcome:?}\n{}", b.dump());
    assert!(!saved.exists(), "the saved copy was deleted by the second step");
    assert_eq!(bind.dig("s3.example.test", "CNAME").unwrap(), before);
    // The undo's journaled call carries what it put back, and the update's result is its source.
    let runs = b.store.runs_for(&job.incident).unwrap();
    let steps = b.store.steps(runs[0].id).unwrap();
    let undo = steps.iter().find(|s| s.name == "move s3" && s.phase == StepPhase::Undo).unwrap();
    assert_eq!(undo.state, StepState::Ok, "{undo:?}");
    let previous = json!([{"ttl": 300, "value": "primary.storage.example.test."}]);
    assert_eq!(undo.intent["with"]["previous"], previous, "{undo:?}");
    assert_eq!(undo.intent["with"]["written"], json!([{"ttl": 30, "value": "secondary.storage.example.test."}]));
    assert_eq!(undo.result["records"], previous, "{undo:?}");
    b.assert_stored_without(&[bind.secret()]);
}
