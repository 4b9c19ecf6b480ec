//! `runbook check` reads every literal `ca_file`: relative to the runbook's
//! directory, and a missing or broken file is a problem naming it.

use cutover_lab::tls::TestPki;
use cutover_orchestrate::runbook;
use serde_json::json;

fn runbook_with(dir: &std::path::Path, ca: &str) -> std::path::PathBuf {
    let text = format!(
        "[[steps]]\nname = \"hook\"\nuses = \"http\"\nwith = {{ url = \"https://hooks.internal/x\", ca_file = {ca:?} }}\n\n\
         [[steps]]\nname = \"tell\"\nuses = \"notify\"\nwith = {{ url = \"https://chat.internal/y\", ca_file = {ca:?} }}\n"
    );
    let path = dir.join("failover.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn runbook_ca_file_resolves_against_the_runbook_directory() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("tls")).unwrap();
    let pki = TestPki::generate(&tmp.path().join("tls"), "internal").unwrap();
    let rb = runbook::load(&runbook_with(tmp.path(), "tls/internal-ca.pem"), &[]).unwrap();
    for step in &rb.steps {
        assert_eq!(step.call.with["ca_file"], json!(pki.ca.to_str().unwrap()), "{}", step.name);
    }
}

#[test]
fn runbook_with_a_missing_or_broken_ca_file_is_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let e = runbook::load(&runbook_with(tmp.path(), "nope.pem"), &[]).unwrap_err();
    let problems: Vec<String> = e.problems.iter().map(|p| p.to_string()).collect();
    let missing = tmp.path().join("nope.pem").display().to_string();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].starts_with(&format!("steps[0] \"hook\".with.ca_file: {missing}: cannot be read")),
        "{problems:?}"
    );
    assert!(problems[1].starts_with("steps[1] \"tell\".with.ca_file: "), "{problems:?}");

    std::fs::write(tmp.path().join("text.pem"), "not a certificate\n").unwrap();
    let e = runbook::load(&runbook_with(tmp.path(), "text.pem"), &[]).unwrap_err();
    assert!(e.to_string().contains("text.pem: no certificate in it"), "{e}");

    let e = runbook::load(&runbook_with(tmp.path(), "{{ target }}.pem"), &[]).unwrap_err();
    assert!(e.to_string().contains("with.ca_file: must be a literal path (no templates)"), "{e}");
}
