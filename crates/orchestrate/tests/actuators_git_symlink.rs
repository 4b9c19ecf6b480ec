//! `git.set` never writes (or reads) outside the repository: a `file` path
//! through a symlink that leaves the working copy is refused at run time,
//! in a user's working copy and in cutover's own clone, and by
//! `runbook check` for a local working copy.

mod actuators_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use actuators_support::{ctx, params};
use cutover_orchestrate::actuators::{StepError, run_external};
use cutover_orchestrate::runbook;
use serde_json::{Value, json};

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

const OUTSIDE: &str = "{\"secret\": \"outside-value\"}\n";

/// A working copy whose `infra` is a committed symlink to a directory
/// outside it (holding `vars.json`), and whose `inner` links to its own
/// `real` directory; plus `link.json`, a symlink to a file outside.
fn tricky_working_copy(root: &Path) -> (PathBuf, PathBuf) {
    let outside = root.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("vars.json"), OUTSIDE).unwrap();
    let repo = root.join("repo");
    std::fs::create_dir_all(repo.join("real")).unwrap();
    git(&repo, &["init", "-q"]);
    std::fs::write(repo.join("real/vars.json"), "{\"active\": \"primary\"}\n").unwrap();
    std::os::unix::fs::symlink(&outside, repo.join("infra")).unwrap();
    std::os::unix::fs::symlink("real", repo.join("inner")).unwrap();
    std::os::unix::fs::symlink(outside.join("vars.json"), repo.join("link.json")).unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "initial"]);
    (repo, outside)
}

async fn set(work: &Path, with: Value) -> Result<Value, StepError> {
    run_external("git.set", &params(with), &ctx(work, &[])).await.unwrap()
}

#[tokio::test]
async fn git_set_file_through_symlink_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, outside) = tricky_working_copy(tmp.path());
    let work = tmp.path().join("work");

    let with = json!({"repo": repo, "file": "infra/vars.json", "key": "active", "value": "standby"});
    let err = set(&work, with).await.unwrap_err();
    let StepError::Refused(message) = &err else { panic!("{err:?}") };
    assert!(message.contains("file infra/vars.json: escapes the repository through the symlink infra"), "{message}");
    assert!(!message.contains("outside-value"), "{message}");
    assert_eq!(std::fs::read_to_string(outside.join("vars.json")).unwrap(), OUTSIDE);

    // A file that is itself a link to outside: refused before it is read.
    let with = json!({"repo": repo, "file": "link.json", "key": "active", "value": "standby"});
    let err = set(&work, with).await.unwrap_err();
    assert!(
        matches!(&err, StepError::Refused(m) if m.contains("link.json: is a symlink") && !m.contains("outside-value")),
        "{err:?}"
    );
    assert_eq!(std::fs::read_to_string(outside.join("vars.json")).unwrap(), OUTSIDE);

    // Nothing under .git.
    let with = json!({"repo": repo, "file": ".git/x.json", "key": "active", "value": "standby"});
    assert!(matches!(set(&work, with).await.unwrap_err(), StepError::Refused(m) if m.contains("is inside .git")));

    // A symlink that stays inside cannot be committed through (git refuses
    // it): refused before the edit, naming the real path, which works.
    let with = json!({"repo": repo, "file": "inner/vars.json", "key": "active", "value": "standby"});
    let err = set(&work, with).await.unwrap_err();
    assert!(
        matches!(&err, StepError::Refused(m) if m.contains("goes through the symlink inner") && m.contains("file = \"real/vars.json\"")),
        "{err:?}"
    );
    assert_eq!(git(&repo, &["status", "--porcelain"]), "", "nothing was written");
    let with = json!({"repo": repo, "file": "real/vars.json", "key": "active", "value": "standby"});
    let result = set(&work, with).await.unwrap();
    assert_eq!(result["previous"], json!("primary"));
}

#[tokio::test]
async fn git_set_file_through_symlink_in_a_cloned_repository_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, outside) = tricky_working_copy(tmp.path());
    let bare = tmp.path().join("infra.git");
    git(tmp.path(), &["clone", "-q", "--bare", repo.to_str().unwrap(), bare.to_str().unwrap()]);

    let with = json!({"repo": bare, "file": "infra/vars.json", "key": "active", "value": "standby"});
    let err = set(&tmp.path().join("work"), with).await.unwrap_err();
    assert!(
        matches!(&err, StepError::Refused(m) if m.contains("escapes the repository through the symlink infra")),
        "{err:?}"
    );
    assert_eq!(std::fs::read_to_string(outside.join("vars.json")).unwrap(), OUTSIDE);
    assert_eq!(git(&bare, &["rev-list", "--count", "main"]), "1", "nothing was pushed");
}

#[test]
fn runbook_check_refuses_git_set_file_through_symlink() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, _) = tricky_working_copy(tmp.path());
    let text = format!(
        "[[steps]]\nname = \"vars\"\nuses = \"git.set\"\n\
         with = {{ repo = {repo:?}, file = \"infra/vars.json\", key = \"active\", value = \"{{{{ target }}}}\" }}\n\
         undo = {{ uses = \"git.set\", with = {{ repo = {repo:?}, file = \"real/vars.json\", key = \"active\", value = \"{{{{ source }}}}\" }} }}\n",
        repo = repo.display().to_string()
    );
    let path = tmp.path().join("failover.toml");
    std::fs::write(&path, text).unwrap();
    let e = runbook::load(&path, &[]).unwrap_err();
    let problems: Vec<String> = e.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with(
            "steps[0] \"vars\".with.file: file infra/vars.json: escapes the repository through the symlink infra"
        ),
        "{problems:?}"
    );
}
