//! `git.set` against real repositories made with the git CLI: working copies,
//! local bare repositories that cutover clones, and a remote that rejects.

mod actuators_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use actuators_support::{ctx, params};
use cutover_orchestrate::actuators::{Ctx, StepError, run_external};
use serde_json::{Value, json};

/// Runs git for the test's own setup, isolated from the machine's config.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=tester", "-c", "user.email=tester@example.com"])
        .args(["-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false"])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn count(dir: &Path, rev: &str) -> u64 {
    git(dir, &["rev-list", "--count", rev]).parse().unwrap()
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A working copy on `main` with `infra/vars.json`, `prod.tfvars` and a README.
fn working_copy(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    git(&dir, &["init", "-q"]);
    write(&dir.join("infra/vars.json"), "{\n  \"region\": \"eu-west-1\",\n  \"s3\": {\"active\": \"primary\"}\n}\n");
    write(&dir.join("prod.tfvars"), TFVARS);
    write(&dir.join("README"), "infra\n");
    git(&dir, &["add", "."]);
    git(&dir, &["commit", "-q", "-m", "initial"]);
    dir
}

/// A bare repository holding the commits of `working_copy`.
fn bare_repository(root: &Path) -> PathBuf {
    let seed = working_copy(root, "seed");
    let bare = root.join("infra.git");
    git(root, &["clone", "-q", "--bare", seed.to_str().unwrap(), bare.to_str().unwrap()]);
    bare
}

/// A commit by someone else, pushed to `bare`.
fn push_other_commit(root: &Path, bare: &Path, name: &str) {
    let other = root.join(name);
    git(root, &["clone", "-q", bare.to_str().unwrap(), other.to_str().unwrap()]);
    write(&other.join("README"), &format!("changed by {name}\n"));
    git(&other, &["commit", "-q", "-am", &format!("{name} was here")]);
    git(&other, &["push", "-q", "origin", "main"]);
}

const TFVARS: &str = "# The S3 provider the app uses.\n\
region          = \"eu-west-1\"\n\
active_provider = \"primary\" # flipped by cutover\n\
\n\
tags = {\n  active_provider = \"do-not-touch\"\n}\n";

async fn set(ctx: &Ctx, with: Value) -> Result<Value, StepError> {
    run_external("git.set", &params(with), ctx).await.expect("git.set is an external actuator")
}

#[tokio::test]
async fn sets_a_nested_json_key_in_a_working_copy_once() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = working_copy(tmp.path(), "infra");
    let ctx = ctx(&tmp.path().join("work"), &[]);
    let with = json!({"repo": repo, "file": "infra/vars.json", "key": "s3.active", "value": "standby"});

    let first = set(&ctx, with.clone()).await.unwrap();

    let head = git(&repo, &["rev-parse", "HEAD"]);
    assert_eq!(
        first,
        json!({
            "repo": repo, "file": "infra/vars.json", "key": "s3.active", "value": "standby",
            "previous": "primary", "changed": true, "commit": head, "pushed": false
        })
    );
    let vars: Value = serde_json::from_str(&std::fs::read_to_string(repo.join("infra/vars.json")).unwrap()).unwrap();
    assert_eq!(vars, json!({"region": "eu-west-1", "s3": {"active": "standby"}}));
    assert_eq!(
        git(&repo, &["log", "-1", "--format=%an <%ae>|%s"]),
        "cutover <cutover@localhost>|cutover: set s3.active = standby (inc-42)"
    );
    assert_eq!(count(&repo, "HEAD"), 2);
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");

    let second = set(&ctx, with).await.unwrap();

    assert_eq!(
        (&second["changed"], &second["commit"], &second["previous"]),
        (&json!(false), &Value::Null, &json!("standby"))
    );
    assert_eq!(count(&repo, "HEAD"), 2);
}

#[tokio::test]
async fn replaces_a_tfvars_variable_keeping_comments_and_maps() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = working_copy(tmp.path(), "infra");
    let ctx = ctx(&tmp.path().join("work"), &[]);
    let with = json!({"repo": repo, "file": "prod.tfvars", "key": "active_provider", "value": "standby", "message": "fail over"});

    let result = set(&ctx, with).await.unwrap();

    assert_eq!(result["previous"], json!("primary"));
    let expected = TFVARS.replace("\"primary\" # flipped", "\"standby\" # flipped");
    assert_eq!(std::fs::read_to_string(repo.join("prod.tfvars")).unwrap(), expected);
    assert_eq!(git(&repo, &["log", "-1", "--format=%s"]), "fail over");
    assert_eq!(git(&repo, &["show", "--stat", "--format=", "HEAD"]).lines().count(), 2, "one file changed");
}

#[tokio::test]
async fn refuses_a_working_copy_with_uncommitted_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = working_copy(tmp.path(), "infra");
    write(&repo.join("README"), "edited by hand\n");
    let ctx = ctx(&tmp.path().join("work"), &[]);
    let with = json!({"repo": repo, "file": "prod.tfvars", "key": "active_provider", "value": "standby"});

    let err = set(&ctx, with).await.unwrap_err();

    let StepError::Refused(message) = &err else { panic!("{err:?}") };
    assert_eq!(message, &format!("{}: uncommitted changes in README", repo.display()));
    assert!(!err.retryable());
    assert_eq!(count(&repo, "HEAD"), 1);
}

#[tokio::test]
async fn clones_a_bare_repository_commits_and_pushes_once() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repository(tmp.path());
    let work = tmp.path().join("work");
    let ctx = ctx(&work, &[]);
    let with = json!({"repo": bare, "file": "infra/vars.json", "key": "active_provider", "value": "standby"});

    let result = set(&ctx, with.clone()).await.unwrap();

    assert_eq!((&result["changed"], &result["pushed"]), (&json!(true), &json!(true)));
    assert_eq!(count(&bare, "main"), 2, "exactly one new commit");
    assert_eq!(result["commit"], json!(git(&bare, &["rev-parse", "main"])));
    assert!(git(&bare, &["log", "-1", "--format=%B", "main"]).contains("inc-42"));
    let vars: Value = serde_json::from_str(&git(&bare, &["show", "main:infra/vars.json"])).unwrap();
    assert_eq!(vars["active_provider"], "standby");
    assert_eq!(vars["s3"]["active"], "primary");
    let clones: Vec<_> = std::fs::read_dir(work.join("git")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(clones.len(), 1);
    assert_eq!(clones[0].len(), 16);

    // Someone else pushes; the next run fast-forwards, and a repeat changes nothing.
    push_other_commit(tmp.path(), &bare, "alice");
    let again = set(&ctx, with).await.unwrap();
    assert_eq!((&again["changed"], &again["pushed"]), (&json!(false), &json!(false)));
    assert_eq!(count(&bare, "main"), 3);
    let undo = json!({"repo": bare, "file": "infra/vars.json", "key": "active_provider", "value": "primary"});
    assert_eq!(set(&ctx, undo).await.unwrap()["pushed"], json!(true));
    assert_eq!(count(&bare, "main"), 4);
    assert_eq!(git(&bare, &["log", "-1", "--format=%s", "main~1"]), "alice was here");
}

#[tokio::test]
async fn pushes_a_commit_that_an_earlier_attempt_could_not_push() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repository(tmp.path());
    let hook = bare.join("hooks/pre-receive");
    write(&hook, "#!/bin/sh\necho 'denied by policy' >&2\nexit 1\n");
    make_executable(&hook);
    let ctx = ctx(&tmp.path().join("work"), &[]);
    let with = json!({"repo": bare, "file": "prod.tfvars", "key": "active_provider", "value": "standby"});

    let err = set(&ctx, with.clone()).await.unwrap_err();

    let StepError::Failed(message) = &err else { panic!("{err:?}") };
    assert!(message.starts_with(&format!("{}: git push to origin failed: ", bare.display())), "{message}");
    assert!(message.contains("denied by policy"), "{message}");
    assert_eq!(count(&bare, "main"), 1);

    std::fs::remove_file(&hook).unwrap();
    let retry = set(&ctx, with).await.unwrap();

    assert_eq!((&retry["changed"], &retry["commit"], &retry["pushed"]), (&json!(false), &Value::Null, &json!(true)));
    assert_eq!(count(&bare, "main"), 2);
    assert!(git(&bare, &["show", "main:prod.tfvars"]).contains("active_provider = \"standby\" # flipped by cutover"));
}

#[tokio::test]
async fn redoes_the_edit_when_its_unpushed_commit_diverged_from_the_remote() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repository(tmp.path());
    let hook = bare.join("hooks/pre-receive");
    write(&hook, "#!/bin/sh\nexit 1\n");
    make_executable(&hook);
    let ctx = ctx(&tmp.path().join("work"), &[]);
    let with = json!({"repo": bare, "file": "prod.tfvars", "key": "active_provider", "value": "standby"});
    set(&ctx, with.clone()).await.unwrap_err();
    std::fs::remove_file(&hook).unwrap();
    push_other_commit(tmp.path(), &bare, "bob");

    let result = set(&ctx, with).await.unwrap();

    assert_eq!((&result["changed"], &result["pushed"]), (&json!(true), &json!(true)));
    assert_eq!(count(&bare, "main"), 3);
    assert_eq!(git(&bare, &["log", "-1", "--format=%s", "main~1"]), "bob was here");
}

#[tokio::test]
async fn refuses_a_working_copy_that_diverged_from_its_upstream() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repository(tmp.path());
    let mine = tmp.path().join("mine");
    git(tmp.path(), &["clone", "-q", bare.to_str().unwrap(), mine.to_str().unwrap()]);
    write(&mine.join("notes"), "local work\n");
    git(&mine, &["add", "notes"]);
    git(&mine, &["commit", "-q", "-m", "local work"]);
    push_other_commit(tmp.path(), &bare, "carol");
    let ctx = ctx(&tmp.path().join("work"), &[]);
    let with = json!({"repo": mine, "file": "prod.tfvars", "key": "active_provider", "value": "standby", "push": true});

    let err = set(&ctx, with).await.unwrap_err();

    let StepError::Refused(message) = &err else { panic!("{err:?}") };
    assert!(message.contains("branch main has diverged from refs/remotes/origin/main"), "{message}");
    assert_eq!(count(&bare, "main"), 2);
    assert_eq!(count(&mine, "main"), 2);
}

#[tokio::test]
async fn signs_the_commit_with_an_ssh_key() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("signing_key");
    let keygen =
        Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "cutover", "-f"]).arg(&key).output();
    if !keygen.is_ok_and(|o| o.status.success()) {
        println!("SKIPPED: ssh-keygen is not available");
        return;
    }
    let repo = working_copy(tmp.path(), "infra");
    let ctx = ctx(&tmp.path().join("work"), &[]);
    let with =
        json!({"repo": repo, "file": "prod.tfvars", "key": "active_provider", "value": "standby", "signing_key": key});

    set(&ctx, with).await.unwrap();

    let commit = git(&repo, &["cat-file", "-p", "HEAD"]);
    assert!(commit.contains("gpgsig -----BEGIN SSH SIGNATURE-----"), "{commit}");
}

#[tokio::test]
async fn rejects_bad_parameters_before_touching_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = working_copy(tmp.path(), "infra");
    let ctx = ctx(&tmp.path().join("work"), &[]);
    for (with, field) in [
        (json!({"repo": repo, "file": "../x.json", "key": "a", "value": "b"}), "file"),
        (json!({"repo": repo, "file": "values.yaml", "key": "a", "value": "b"}), "file"),
        (json!({"repo": repo, "file": "prod.tfvars", "key": "not a name", "value": "b"}), "key"),
        (json!({"repo": repo, "file": "x.json", "key": "a", "value": "b", "branch": "bad..name"}), "branch"),
        (
            json!({"repo": tmp.path().join("work-missing/k"), "file": "x.json", "key": "a", "value": "b",
                "signing_key": "/no/such/key"}),
            "signing_key",
        ),
    ] {
        let err = set(&ctx, with).await.unwrap_err();
        assert!(matches!(&err, StepError::Param { field: f, .. } if f == field), "{err:?}");
    }
    assert_eq!(count(&repo, "HEAD"), 1);
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}
