//! `runbook check` resolves a literal `tsig_secret_file` of `dns.update`
//! against the runbook's directory (and its undo's), and names a missing one.

use cutover_orchestrate::runbook;
use serde_json::json;

fn runbook_with(dir: &std::path::Path, key_file: &str) -> std::path::PathBuf {
    let text = format!(
        "[[steps]]\nname = \"dns\"\nuses = \"dns.update\"\n\
         with = {{ server = \"127.0.0.1:53\", zone = \"example.test\", name = \"s3.example.test\", type = \"A\", \
         value = \"10.0.0.1\", tsig_key = \"cutover\", tsig_secret_file = {key_file:?} }}\n\
         undo = {{ uses = \"dns.update\", with = {{ server = \"127.0.0.1:53\", zone = \"example.test\", \
         name = \"s3.example.test\", type = \"A\", restore = true, tsig_key = \"cutover\", tsig_secret_file = {key_file:?} }} }}\n"
    );
    let path = dir.join("failover.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_relative_key_file_resolves_against_the_runbook_directory() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("keys")).unwrap();
    let key = tmp.path().join("keys/cutover.key");
    std::fs::write(&key, "c2VjcmV0\n").unwrap();
    let rb = runbook::load(&runbook_with(tmp.path(), "keys/cutover.key"), &[]).unwrap();
    assert_eq!(rb.steps[0].call.with["tsig_secret_file"], json!(key.to_str().unwrap()));
    assert_eq!(rb.steps[0].undo.as_ref().unwrap().with["tsig_secret_file"], json!(key.to_str().unwrap()));
}

#[test]
fn a_missing_key_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let e = runbook::load(&runbook_with(tmp.path(), "nope.key"), &[]).unwrap_err();
    let missing = tmp.path().join("nope.key").display().to_string();
    let problems: Vec<String> = e.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].starts_with(&format!("steps[0] \"dns\".with.tsig_secret_file: {missing}: ")), "{problems:?}");
    assert!(problems[1].starts_with("steps[0] \"dns\".undo.with.tsig_secret_file: "), "{problems:?}");
}
