//! Signed commits for `git.set`: committing with an SSH key (`gpg.format =
//! ssh`) or a GPG key id, and checking that every commit about to be pushed
//! carries a signature.

use std::path::PathBuf;

use super::cli::Git;
use crate::actuators::StepError;

/// How a commit is signed.
#[derive(Debug, Clone)]
pub enum Signing {
    /// The path of an SSH private key.
    Ssh(PathBuf),
    /// A GPG key id (or user id) in the user's keyring.
    Gpg(String),
}

impl Signing {
    /// For messages: which key, never its contents.
    pub fn shown(&self) -> String {
        match self {
            Signing::Ssh(path) => format!("SSH key {}", path.display()),
            Signing::Gpg(id) => format!("GPG key {id}"),
        }
    }
}

/// `git commit -m message`, signed when `signing` says so. A commit that
/// cannot be signed is not made: the step is refused (retrying will not find
/// the key), with git's reason, and the index is put back as it was.
pub async fn commit(git: &Git, shown: &str, message: &str, signing: Option<&Signing>) -> Result<(), StepError> {
    let mut args = vec!["commit".to_string(), "--quiet".into(), "-m".into(), message.to_string()];
    let Some(signing) = signing else {
        git.run(&args).await?;
        return Ok(());
    };
    let signer = match signing {
        Signing::Ssh(key) => {
            args.push("-S".into());
            git.clone().with_config("gpg.format=ssh".into()).with_config(format!("user.signingkey={}", key.display()))
        }
        Signing::Gpg(id) => {
            args.push(format!("-S{id}"));
            git.clone().with_config("gpg.format=openpgp".into())
        }
    };
    let out = signer.output(&args).await?;
    if out.success {
        return Ok(());
    }
    // Unstage the edit, so that a working copy is left as it was before.
    let _ = git.output(["reset", "--quiet"]).await;
    Err(StepError::Refused(format!(
        "{shown}: cannot sign the commit with {}, so nothing is committed or pushed: {}",
        signing.shown(),
        out.stderr
    )))
}

/// The commits in `range` (`git rev-list` arguments) without a signature
/// header (`gpgsig`, the header both SSH and OpenPGP signatures use).
pub async fn unsigned(git: &Git, range: &[String]) -> Result<Vec<String>, StepError> {
    let mut args = vec!["rev-list".to_string()];
    args.extend(range.iter().cloned());
    let list = git.run(&args).await?;
    let mut missing = Vec::new();
    for sha in list.lines().filter(|l| !l.is_empty()) {
        let raw = git.run(["cat-file", "commit", sha]).await?;
        let headers = raw.split("\n\n").next().unwrap_or_default();
        if !headers.lines().any(|l| l.starts_with("gpgsig ") || l.starts_with("gpgsig-sha256 ")) {
            missing.push(sha.to_string());
        }
    }
    Ok(missing)
}
