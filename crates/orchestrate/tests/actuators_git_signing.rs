//! Signed `git.set` commits, verified by `git verify-commit` (SSH keys made
//! by `ssh-keygen`, an allowed-signers file; GPG with a key made in a
//! throwaway GNUPGHOME when `gpg` is installed), and `mode = "branch"`.

mod actuators_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use actuators_support::{ctx, params};
use cutover_orchestrate::actuators::{Ctx, StepError, run_external};
use serde_json::{Value, json};

fn git_output(dir: &Path, config: &[String], args: &[&str]) -> Output {
    let mut command = Command::new("git");
    command.arg("-C").arg(dir).args(["-c", "user.name=tester", "-c", "user.email=tester@example.com"]);
    command.args(["-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false"]);
    for c in config {
        command.arg("-c").arg(c);
    }
    command.args(args).env("GIT_CONFIG_NOSYSTEM", "1").env("GIT_CONFIG_GLOBAL", "/dev/null").output().unwrap()
}

/// Runs git for the test's own setup, isolated from the machine's config.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_output(dir, &[], args);
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A bare repository whose `main` has `infra/vars.json`.
fn bare_repository(root: &Path) -> PathBuf {
    let seed = root.join("seed");
    std::fs::create_dir_all(seed.join("infra")).unwrap();
    git(&seed, &["init", "-q"]);
    std::fs::write(seed.join("infra/vars.json"), "{\"active_provider\": \"primary\"}\n").unwrap();
    git(&seed, &["add", "."]);
    git(&seed, &["commit", "-q", "-m", "initial"]);
    let bare = root.join("infra.git");
    git(root, &["clone", "-q", "--bare", seed.to_str().unwrap(), bare.to_str().unwrap()]);
    bare
}

/// An ed25519 key made by `ssh-keygen -N ''`, and an allowed-signers file
/// that trusts it for cutover's author address.
fn ssh_key(root: &Path) -> (PathBuf, PathBuf) {
    let key = root.join("id_ed25519");
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "cutover-test", "-f"])
        .arg(&key)
        .output()
        .expect("ssh-keygen runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let allowed = root.join("allowed_signers");
    std::fs::write(&allowed, format!("cutover@localhost namespaces=\"git\" {public}")).unwrap();
    (key, allowed)
}

async fn set(ctx: &Ctx, with: Value) -> Result<Value, StepError> {
    run_external("git.set", &params(with), ctx).await.expect("git.set is an external actuator")
}

/// `git verify-commit` of `rev` in `bare`, trusting `allowed`.
fn verify_ssh(bare: &Path, allowed: &Path, rev: &str) -> Output {
    let config = [format!("gpg.ssh.allowedSignersFile={}", allowed.display())];
    git_output(bare, &config, &["verify-commit", "-v", rev])
}

#[tokio::test]
async fn an_ssh_signed_commit_verifies_on_the_remote() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repository(tmp.path());
    let (key, allowed) = ssh_key(tmp.path());
    let ctx = ctx(&tmp.path().join("work"), &[]);
    let with = json!({"repo": bare, "file": "infra/vars.json", "key": "active_provider", "value": "standby",
                      "signing_key": key});

    let out = set(&ctx, with).await.unwrap();

    assert_eq!((&out["changed"], &out["pushed"]), (&json!(true), &json!(true)), "{out}");
    assert_eq!(git(&bare, &["rev-parse", "main"]), out["commit"].as_str().unwrap());
    let verified = verify_ssh(&bare, &allowed, "main");
    let said = String::from_utf8_lossy(&verified.stderr);
    assert!(verified.status.success(), "{said}");
    assert!(said.contains("Good \"git\" signature for cutover@localhost with ED25519 key"), "{said}");

    // The check is real: the initial, unsigned commit does not verify.
    assert!(!verify_ssh(&bare, &allowed, "main~1").status.success());
}

#[tokio::test]
async fn a_missing_or_unusable_key_fails_the_step_and_leaves_the_remote_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repository(tmp.path());
    let before = git(&bare, &["rev-parse", "main"]);
    let ctx = ctx(&tmp.path().join("work"), &[]);
    let missing = tmp.path().join("no-such-key");
    let with = json!({"repo": bare, "file": "infra/vars.json", "key": "active_provider", "value": "standby",
                      "signing_key": missing});

    let e = set(&ctx, with.clone()).await.unwrap_err();
    assert_eq!(e.to_string(), format!("with.signing_key: no SSH key file at {}", missing.display()));
    assert_eq!(git(&bare, &["rev-parse", "main"]), before);

    // A file that is not a key: git cannot sign, so nothing is committed or pushed.
    let garbage = tmp.path().join("not-a-key");
    std::fs::write(&garbage, "this is not an SSH key\n").unwrap();
    let mut with = with;
    with["signing_key"] = json!(garbage);
    let e = set(&ctx, with).await.unwrap_err();
    let StepError::Refused(message) = &e else { panic!("{e:?}") };
    assert!(message.contains(&format!("cannot sign the commit with SSH key {}", garbage.display())), "{message}");
    assert_eq!(git(&bare, &["rev-parse", "main"]), before);
}

#[tokio::test]
async fn a_working_copy_is_left_clean_when_its_commit_cannot_be_signed() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repository(tmp.path());
    let copy = tmp.path().join("copy");
    git(tmp.path(), &["clone", "-q", bare.to_str().unwrap(), copy.to_str().unwrap()]);
    let head = git(&copy, &["rev-parse", "HEAD"]);
    let garbage = tmp.path().join("not-a-key");
    std::fs::write(&garbage, "this is not an SSH key\n").unwrap();
    let ctx = ctx(&tmp.path().join("work"), &[]);
    let with = json!({"repo": copy, "file": "infra/vars.json", "key": "active_provider", "value": "standby",
                      "signing_key": garbage, "push": true});

    let e = set(&ctx, with).await.unwrap_err();

    assert!(e.to_string().contains("cannot sign the commit"), "{e}");
    assert_eq!(git(&copy, &["rev-parse", "HEAD"]), head);
    assert_eq!(git(&copy, &["status", "--porcelain"]), "", "the edit is put back and unstaged");
    assert_eq!(std::fs::read_to_string(copy.join("infra/vars.json")).unwrap(), "{\"active_provider\": \"primary\"}\n");
}

#[tokio::test]
async fn branch_mode_pushes_signed_commits_to_a_new_branch_and_leaves_main_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repository(tmp.path());
    let main = git(&bare, &["rev-parse", "main"]);
    let (key, allowed) = ssh_key(tmp.path());
    let ctx = ctx(&tmp.path().join("work"), &[]);
    let with = json!({"repo": bare, "file": "infra/vars.json", "key": "active_provider", "value": "standby",
                      "signing_key": key, "mode": "branch"});

    let out = set(&ctx, with.clone()).await.unwrap();

    assert_eq!(out["branch"], "cutover/inc-42", "{out}");
    assert_eq!(git(&bare, &["rev-parse", "main"]), main);
    assert_eq!(git(&bare, &["rev-parse", "cutover/inc-42"]), out["commit"].as_str().unwrap());
    assert_eq!(git(&bare, &["rev-parse", "cutover/inc-42~1"]), main);
    assert!(verify_ssh(&bare, &allowed, "cutover/inc-42").status.success());

    // The undo in the same incident goes onto the same branch.
    let mut undo = with;
    undo["value"] = json!("primary");
    let out = set(&ctx, undo).await.unwrap();
    assert_eq!(git(&bare, &["rev-list", "--count", "main..cutover/inc-42"]), "2");
    assert_eq!(git(&bare, &["rev-parse", "cutover/inc-42"]), out["commit"].as_str().unwrap());
    assert_eq!(git(&bare, &["rev-parse", "main"]), main);
    let named = json!({"repo": bare, "file": "infra/vars.json", "key": "k", "value": "v", "branch_name": "x"});
    let e = set(&ctx, named).await.unwrap_err();
    assert_eq!(e.to_string(), "with.branch_name: is only for mode = \"branch\"");
}

/// GPG: runs [`gpg_signed_commit_in_own_gnupghome`] in a child process of
/// this test binary with `GNUPGHOME` set to a throwaway keyring (this
/// process cannot change its own environment safely).
#[test]
fn a_gpg_signed_commit_verifies_on_the_remote() {
    if Command::new("gpg").arg("--version").output().is_err() {
        eprintln!("skipped: gpg is not installed");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let gen_key = Command::new("gpg")
        .args([
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            "cutover <cutover@localhost>",
            "ed25519",
            "sign",
            "never",
        ])
        .env("GNUPGHOME", home.path())
        .output()
        .unwrap();
    assert!(gen_key.status.success(), "{}", String::from_utf8_lossy(&gen_key.stderr));
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "gpg_signed_commit_in_own_gnupghome", "--ignored", "--nocapture"])
        .env("GNUPGHOME", home.path())
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.contains("1 passed"), "{said}");
}

#[tokio::test]
#[ignore = "run by a_gpg_signed_commit_verifies_on_the_remote with its own GNUPGHOME"]
async fn gpg_signed_commit_in_own_gnupghome() {
    assert!(std::env::var_os("GNUPGHOME").is_some(), "GNUPGHOME must be a throwaway keyring");
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repository(tmp.path());
    let ctx = ctx(&tmp.path().join("work"), &[]);
    let with = json!({"repo": bare, "file": "infra/vars.json", "key": "active_provider", "value": "standby",
                      "signing_key": "cutover@localhost"});
    let out = set(&ctx, with).await.unwrap();
    assert_eq!(out["pushed"], true, "{out}");
    let verified = git_output(&bare, &[], &["verify-commit", "-v", "main"]);
    let said = String::from_utf8_lossy(&verified.stderr);
    assert!(verified.status.success(), "{said}");
    assert!(said.contains("Good signature from \"cutover <cutover@localhost>\""), "{said}");
    let missing = json!({"repo": bare, "file": "infra/vars.json", "key": "active_provider", "value": "other",
                         "signing_key": "nobody@example.invalid"});
    let e = set(&ctx, missing).await.unwrap_err();
    assert!(e.to_string().contains("cannot sign the commit with GPG key nobody@example.invalid"), "{e}");
    assert_eq!(git(&bare, &["rev-parse", "main"]), out["commit"].as_str().unwrap());
}
