//! `git.set`: set one value in a file of a Git repository and commit it
//! (GitOps: Terraform variables, Argo CD or Flux values).
//!
//! Parameters:
//! - `repo` (required): a working copy (changed in place), or a bare
//!   repository path or remote URL. For the latter cutover keeps its own
//!   working copy in `work_dir/git/<first 16 hex digits of the SHA-256 of
//!   repo>`: cloned on first use, fetched and fast-forwarded afterwards.
//! - `file` (required): the path inside the repository, ending in `.json`
//!   or `.tfvars`; created when missing.
//! - `key` (required): for JSON a top-level key or a dotted path
//!   (`a.b.c`, intermediate objects are created); for `.tfvars` a variable
//!   name.
//! - `value` (required): the string to set.
//! - `branch`: default the working copy's current branch, or the remote's
//!   default branch (`main` when unknown).
//! - `message`: default `cutover: set {key} = {value} ({incident})`.
//! - `push`: default true for a bare repository or URL, false for a working
//!   copy (which then needs an upstream branch to push to).
//! - `author_name`, `author_email`: default `cutover`, `cutover@localhost`.
//! - `signing_key`: the path of an SSH private key (the commit is signed
//!   with `gpg.format=ssh`), or a GPG key id.
//! - `mode`: `commit` (default) pushes to `branch`; `branch` pushes to a new
//!   branch made from `branch` instead, for a repository that takes changes
//!   by reviewed pull request (cutover does not open the pull request).
//!   Only with a bare repository or URL.
//! - `branch_name`: the new branch in `branch` mode; default
//!   `cutover/<incident id>` (a failover and its undo in the same incident
//!   go to the same branch, one commit after the other).
//!
//! Result: `{"repo", "file", "key", "value", "previous": <old value or null>,
//! "changed": bool, "commit": <sha or null>, "pushed": bool}`; `repo` is shown
//! without any `user:password@`. `commit` is the commit made by this attempt;
//! `pushed` says whether this attempt pushed; in branch mode `branch` is the
//! new branch's name.
//!
//! # Guarantees
//! - Idempotent: when the file already has the value there is no commit
//!   (`"changed": false`), but a branch that is ahead of its remote (an
//!   earlier attempt committed, then failed to push) is still pushed.
//! - Never force-pushes, never rewrites commits that are on the remote.
//! - With `signing_key`, a commit that cannot be signed is not made (the
//!   step is refused with git's reason, and a working copy's file is put
//!   back), and nothing is pushed unless every commit to push is signed.
//! - Refuses (no retry) a working copy with uncommitted changes to tracked
//!   files (the message names the repository and the paths), one on another
//!   branch or a detached HEAD, and with `push`, a branch that has diverged
//!   from its upstream. A behind working copy is fast-forwarded.
//! - In its own copy, cutover discards what is not on the remote and not a
//!   commit (leftovers of an interrupted attempt). When its unpushed commits
//!   have diverged from the remote (someone pushed in between), they are
//!   dropped and the edit is redone on the remote's branch.
//! - git runs with `GIT_TERMINAL_PROMPT=0`, without the system config, with
//!   the identity given on its command line, and is killed when the step is
//!   dropped. Messages and results carry no URL credentials; git's error
//!   output is cut to 2 KiB.
//!
//! # Caveats
//! - See [`edit`] for how JSON and `.tfvars` files are rewritten (JSON keys
//!   come out sorted).
//! - Authentication to a remote is git's own (SSH agent or keys, credential
//!   helpers from the user's global config); nothing prompts, so a missing
//!   credential fails the push. The rest of the user's global config applies
//!   too (`commit.gpgsign`, hooks of a working copy), except the identity.
//! - The JSON result and messages name `repo` as given (credentials
//!   removed): a local path shows as written in the runbook.
//! - In its own copy cutover creates no branch: a `branch` that the remote
//!   does not have is refused, except in an empty repository.
//! - Two steps must not run against the same repository at the same time.
//! - Untracked files in a working copy are ignored (they are not committed).
//! - An attempt killed in the middle of a git command may leave
//!   `.git/index.lock` behind; cutover removes it in its own copy, not in a
//!   user's working copy.

mod cli;
pub mod edit;
mod sign;

use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use self::cli::Git;
use self::edit::Format;
use self::sign::Signing;
use super::param::{self, error};
use super::text::redact_url_credentials;
use super::{Ctx, Kind, ParamSpec, Params, StepError};

pub const PARAMS: &[ParamSpec] = &[
    ParamSpec::required("repo", Kind::String, "a working copy, or a bare repository path or remote URL"),
    ParamSpec::required("file", Kind::String, "the .json or .tfvars file inside the repository"),
    ParamSpec::required("key", Kind::String, "a JSON key (dotted path for nested keys) or a tfvars variable"),
    ParamSpec::required("value", Kind::String, "the value to set (a string)"),
    ParamSpec::optional("branch", Kind::String, "the branch (default: current, or the remote's default)"),
    ParamSpec::optional("message", Kind::String, "the commit message"),
    ParamSpec::optional("push", Kind::Bool, "push the commit (default: true for a bare repository or URL)"),
    ParamSpec::optional("author_name", Kind::String, "the commit author's name (default cutover)"),
    ParamSpec::optional("author_email", Kind::String, "the commit author's email (default cutover@localhost)"),
    ParamSpec::optional("signing_key", Kind::String, "an SSH private key path or a GPG key id to sign with"),
    ParamSpec::optional("mode", Kind::String, "commit (push to branch, the default) or branch (push to a new branch)"),
    ParamSpec::optional("branch_name", Kind::String, "the new branch in branch mode (default cutover/<incident id>)"),
];

/// Where the commit goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    /// To `branch` itself.
    Commit,
    /// To this new branch, made from `branch`.
    Branch(String),
}

/// The parameters, checked.
#[derive(Debug)]
struct Request {
    repo: String,
    /// `repo` without credentials, for messages and the result.
    shown: String,
    file: String,
    format: Format,
    key: String,
    value: String,
    branch: Option<String>,
    message: String,
    push: Option<bool>,
    author_name: String,
    author_email: String,
    signing: Option<Signing>,
    mode: Mode,
}

/// A working copy on the right branch, clean and up to date, ready for the
/// edit.
#[derive(Debug)]
struct Prepared {
    git: Git,
    branch: String,
    /// The remote-tracking ref to compare with (none in an empty remote).
    upstream: Option<String>,
    /// Where to push: the remote and the ref on it.
    push_to: Option<(String, String)>,
}

pub async fn run(params: &Params, ctx: &Ctx) -> Result<Value, StepError> {
    let req = Request::parse(params, ctx)?;
    let base = Git::new(".", &req.shown, &req.author_name, &req.author_email);
    let managed = is_managed(&req, &base).await?;
    let push = req.push.unwrap_or(managed);
    if let Mode::Branch(name) = &req.mode
        && !managed
    {
        return Err(StepError::Refused(format!(
            "{}: mode = \"branch\" (to {name}) needs a bare repository or URL, not a working copy",
            req.shown
        )));
    }
    let prepared = if managed {
        prepare_own_copy(&req, ctx, &base).await?
    } else {
        prepare_working_copy(&req, &base, push).await?
    };
    let git = &prepared.git;

    let path = inside(git.dir(), &req.file).map_err(|e| StepError::Refused(format!("{}: {e}", req.shown)))?;
    let old = match tokio::fs::read_to_string(&path).await {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(StepError::Failed(format!("{}: reading {}: {e}", req.shown, req.file))),
    };
    let edit = edit::set(req.format, old.as_deref(), &req.key, &req.value)
        .map_err(|e| StepError::Refused(format!("{}: {}: {e}", req.shown, req.file)))?;
    let mut commit = None;
    if let Some(text) = &edit.text {
        write_atomically(&path, text).await.map_err(|e| StepError::Failed(format!("{}: {e}", req.shown)))?;
        git.run(["add", "--", &req.file]).await?;
        if let Err(e) = sign::commit(git, &req.shown, &req.message, req.signing.as_ref()).await {
            // Put the file back as it was: the edit is not committed.
            let _ = match &old {
                Some(text) => write_atomically(&path, text).await.map_err(|e| e.to_string()),
                None => tokio::fs::remove_file(&path).await.map_err(|e| e.to_string()),
            };
            return Err(e);
        }
        commit = Some(git.run(["rev-parse", "HEAD"]).await?);
        tracing::info!(repo = %req.shown, file = %req.file, key = %req.key, commit = ?commit, "git.set committed");
    }

    let mut pushed = false;
    if let Some((remote, dest)) = prepared.push_to.as_ref().filter(|_| push) {
        let local = format!("refs/heads/{}", prepared.branch);
        let ahead = match &prepared.upstream {
            Some(upstream) => git.ahead_behind(&local, upstream).await?.0,
            None if git.has_commit(&local).await? => {
                git.run(["rev-list", "--count", &local]).await?.parse().unwrap_or(1)
            }
            None => 0,
        };
        if ahead > 0 && req.signing.is_some() {
            let range = match &prepared.upstream {
                Some(upstream) => vec![local.clone(), format!("^{upstream}")],
                None => vec![local.clone()],
            };
            let unsigned = sign::unsigned(git, &range).await?;
            if !unsigned.is_empty() {
                return Err(StepError::Refused(format!(
                    "{}: not pushing: {} of the commits to push are not signed ({})",
                    req.shown,
                    unsigned.len(),
                    unsigned.join(", ")
                )));
            }
        }
        if ahead > 0 {
            push_branch(git, &req.shown, remote, &format!("{local}:{dest}")).await?;
            pushed = true;
        }
    }

    let mut result = json!({
        "repo": req.shown,
        "file": req.file,
        "key": req.key,
        "value": req.value,
        "previous": edit.previous,
        "changed": edit.text.is_some(),
        "commit": commit,
        "pushed": pushed,
    });
    if let Mode::Branch(name) = &req.mode {
        result["branch"] = json!(name);
    }
    Ok(result)
}

impl Request {
    fn parse(params: &Params, ctx: &Ctx) -> Result<Self, StepError> {
        let repo = param::req_str(params, "repo")?.to_string();
        let file = param::req_str(params, "file")?.to_string();
        let inside = Path::new(&file).components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !inside {
            return Err(error("file", "must be a relative path inside the repository (no .. and not absolute)"));
        }
        let format = Format::of(&file).ok_or_else(|| error("file", "must be a .json or .tfvars file"))?;
        let key = param::req_str(params, "key")?.to_string();
        format.check_key(&key).map_err(|e| error("key", format!("must be {e}")))?;
        let value = match params.get("value") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            None | Some(Value::Null) => return Err(error("value", "is required")),
            Some(_) => return Err(error("value", "must be a string")),
        };
        let branch = param::opt_str(params, "branch")?.map(str::to_string);
        if let Some(b) = &branch
            && !valid_branch_name(b)
        {
            return Err(error("branch", "not a valid branch name"));
        }
        let message = match param::opt_str(params, "message")? {
            Some(m) => m.to_string(),
            None => format!("cutover: set {key} = {value} ({})", ctx.incident),
        };
        let signing = param::opt_str(params, "signing_key")?.map(signing).transpose()?;
        let mode = match (param::opt_str(params, "mode")?, param::opt_str(params, "branch_name")?) {
            (None | Some("commit"), None) => Mode::Commit,
            (None | Some("commit"), Some(_)) => return Err(error("branch_name", "is only for mode = \"branch\"")),
            (Some("branch"), name) => {
                let name = name.map_or_else(|| format!("cutover/{}", ctx.incident), str::to_string);
                if !valid_branch_name(&name) {
                    return Err(error("branch_name", format!("{name:?} is not a valid branch name")));
                }
                Mode::Branch(name)
            }
            (Some(other), _) => return Err(error("mode", format!("{other:?} is not commit or branch"))),
        };
        Ok(Self {
            shown: redact_url_credentials(&repo),
            repo,
            file,
            format,
            key,
            value,
            branch,
            message,
            push: param::opt_bool(params, "push")?,
            author_name: param::opt_str(params, "author_name")?.unwrap_or("cutover").to_string(),
            author_email: param::opt_str(params, "author_email")?.unwrap_or("cutover@localhost").to_string(),
            signing,
            mode,
        })
    }
}

fn signing(key: &str) -> Result<Signing, StepError> {
    let path = Path::new(key);
    if path.is_file() {
        Ok(Signing::Ssh(std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())))
    } else if key.contains('/') || key.ends_with(".pub") || key.starts_with('~') {
        Err(error("signing_key", format!("no SSH key file at {key}")))
    } else if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || "@.<>_-+ ".contains(c)) {
        Ok(Signing::Gpg(key.to_string()))
    } else {
        Err(error("signing_key", "must be an SSH key file or a GPG key id"))
    }
}

/// A conservative subset of `git check-ref-format --branch`.
fn valid_branch_name(b: &str) -> bool {
    !b.is_empty()
        && !b.starts_with(['-', '/', '.'])
        && !b.ends_with(['/', '.'])
        && !b.ends_with(".lock")
        && !b.contains("..")
        && !b.contains("//")
        && !b.contains("@{")
        && b.chars().all(|c| !c.is_ascii_control() && !" ~^:?*[\\".contains(c))
}

/// Whether cutover edits its own copy (a bare repository or a URL) rather
/// than `repo` itself (a working copy).
async fn is_managed(req: &Request, base: &Git) -> Result<bool, StepError> {
    let path = Path::new(&req.repo);
    if !path.is_dir() {
        return Ok(true);
    }
    match base.at(path).ask(["rev-parse", "--is-bare-repository"]).await? {
        Some(bare) => Ok(bare == "true"),
        None => Err(error("repo", format!("{} is not a git repository", req.shown))),
    }
}

/// Clones or updates cutover's own working copy of `repo` and checks out the
/// branch at the remote's tip (keeping unpushed commits that are ahead of it).
async fn prepare_own_copy(req: &Request, ctx: &Ctx, base: &Git) -> Result<Prepared, StepError> {
    let io = |what: &str, e: std::io::Error| StepError::Failed(format!("{}: {what}: {e}", req.shown));
    let root = ctx.work_dir.join("git");
    tokio::fs::create_dir_all(&root).await.map_err(|e| io(&format!("creating {}", root.display()), e))?;
    let hash = hex::encode(Sha256::digest(req.repo.as_bytes()));
    let name = &hash[..16];
    let dir = root.join(name);
    let git = base.at(&dir);
    if dir.join(".git").is_dir() {
        // Left by a git command killed with an earlier attempt; nothing else uses this copy.
        let _ = tokio::fs::remove_file(dir.join(".git/index.lock")).await;
        git.run(["fetch", "--quiet", "--prune", "origin"]).await?;
    } else {
        let partial = root.join(format!("{name}.partial"));
        for leftover in [&dir, &partial] {
            if leftover.exists() {
                tokio::fs::remove_dir_all(leftover).await.map_err(|e| io("removing an unfinished clone", e))?;
            }
        }
        let local = Path::new(&req.repo);
        let source = if local.exists() {
            std::fs::canonicalize(local).map_err(|e| io("resolving the path", e))?.into_os_string()
        } else {
            req.repo.clone().into()
        };
        let args: [&OsStr; 5] = ["clone".as_ref(), "--quiet".as_ref(), "--".as_ref(), &source, partial.as_os_str()];
        base.at(&root).run(args).await?;
        tokio::fs::rename(&partial, &dir).await.map_err(|e| io("moving the clone in place", e))?;
        tracing::info!(repo = %req.shown, dir = %dir.display(), "git.set cloned the repository");
    }

    let branch = match &req.branch {
        Some(b) => b.clone(),
        None => git
            .ask(["symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD"])
            .await?
            .and_then(|head| head.strip_prefix("origin/").map(str::to_string))
            .unwrap_or_else(|| "main".to_string()),
    };
    let (branch, remote_ref) = match &req.mode {
        Mode::Commit => (branch.clone(), format!("refs/remotes/origin/{branch}")),
        Mode::Branch(name) => {
            // The new branch continues from where an earlier attempt or step
            // of this incident pushed it, else starts at `branch`.
            let pushed = format!("refs/remotes/origin/{name}");
            let base = format!("refs/remotes/origin/{branch}");
            if git.has_commit(&pushed).await? {
                (name.clone(), pushed)
            } else if git.has_commit(&base).await? {
                (name.clone(), base)
            } else {
                return Err(StepError::Refused(format!(
                    "{}: branch {branch} does not exist on the remote, so there is nothing to make {name} from",
                    req.shown
                )));
            }
        }
    };
    let local_ref = format!("refs/heads/{branch}");
    let upstream = if git.has_commit(&remote_ref).await? {
        if git.has_commit(&local_ref).await? {
            git.run(["checkout", "--quiet", "--force", &branch, "--"]).await?;
            let (ahead, behind) = git.ahead_behind(&local_ref, &remote_ref).await?;
            if ahead > 0 && behind > 0 {
                tracing::warn!(repo = %req.shown, %branch, ahead, behind,
                    "unpushed commits of an earlier attempt diverged from the remote; dropping them and redoing the edit");
                git.run(["reset", "--quiet", "--hard", &remote_ref]).await?;
            } else if behind > 0 {
                git.run(["merge", "--quiet", "--ff-only", &remote_ref]).await?;
            }
        } else {
            git.run(["checkout", "--quiet", "--force", "-B", &branch, &remote_ref, "--"]).await?;
        }
        Some(remote_ref)
    } else {
        let refs = git.run(["for-each-ref", "--format=%(refname)", "refs/remotes/origin/"]).await?;
        if refs.lines().any(|r| r != "refs/remotes/origin/HEAD") {
            return Err(StepError::Refused(format!(
                "{}: branch {branch} does not exist on the remote (cutover does not create branches)",
                req.shown
            )));
        }
        // An empty repository: the first commit creates the branch.
        if git.has_commit(&local_ref).await? {
            git.run(["checkout", "--quiet", "--force", &branch, "--"]).await?;
        } else {
            git.run(["symbolic-ref", "HEAD", &local_ref]).await?;
            git.run(["read-tree", "--empty"]).await?;
        }
        None
    };
    git.run(["clean", "--quiet", "--force", "-d"]).await?;
    let push_to = Some(("origin".to_string(), format!("refs/heads/{branch}")));
    Ok(Prepared { git, branch, upstream, push_to })
}

/// Checks a user's working copy: on the branch, clean, and with `push`, not
/// diverged from its upstream (fast-forwarded when behind).
async fn prepare_working_copy(req: &Request, base: &Git, push: bool) -> Result<Prepared, StepError> {
    let git = base.at(&req.repo);
    let shown = &req.shown;
    let current = git
        .ask(["symbolic-ref", "--quiet", "--short", "HEAD"])
        .await?
        .ok_or_else(|| StepError::Refused(format!("{shown}: HEAD is detached; check out the branch to change")))?;
    let branch = req.branch.clone().unwrap_or_else(|| current.clone());
    if branch != current {
        return Err(StepError::Refused(format!("{shown}: the working copy is on branch {current}, not {branch}")));
    }
    let dirty = git.dirty_paths().await?;
    if !dirty.is_empty() {
        const SHOWN: usize = 20;
        let mut list = dirty.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
        if dirty.len() > SHOWN {
            list.push_str(&format!(" and {} more", dirty.len() - SHOWN));
        }
        return Err(StepError::Refused(format!("{shown}: uncommitted changes in {list}")));
    }
    if !push {
        return Ok(Prepared { git, branch, upstream: None, push_to: None });
    }
    let upstream = git.ask(["rev-parse", "--symbolic-full-name", "@{upstream}"]).await?.ok_or_else(|| {
        StepError::Refused(format!(
            "{shown}: branch {branch} has no upstream to push to (git branch --set-upstream-to=REMOTE/BRANCH, or push = false)"
        ))
    })?;
    let remote = git.run(["config", "--get", &format!("branch.{branch}.remote")]).await?;
    let merge = git.run(["config", "--get", &format!("branch.{branch}.merge")]).await?;
    git.run(["fetch", "--quiet", &remote]).await?;
    let (ahead, behind) = git.ahead_behind("HEAD", &upstream).await?;
    if ahead > 0 && behind > 0 {
        return Err(StepError::Refused(format!(
            "{shown}: branch {branch} has diverged from {upstream} ({ahead} commits only here, {behind} only there); reconcile it by hand"
        )));
    }
    if behind > 0 {
        git.run(["merge", "--quiet", "--ff-only", &upstream]).await?;
    }
    Ok(Prepared { git, branch, upstream: Some(upstream), push_to: Some((remote, merge)) })
}

async fn push_branch(git: &Git, shown: &str, remote: &str, refspec: &str) -> Result<(), StepError> {
    let out = git.output(["push", "--porcelain", remote, refspec]).await?;
    if out.success {
        tracing::info!(repo = %shown, %refspec, "git.set pushed");
        return Ok(());
    }
    let rejected: Vec<String> =
        out.stdout.lines().filter(|l| l.starts_with('!')).map(|l| redact_url_credentials(l.trim())).collect();
    let mut detail = out.stderr;
    if !rejected.is_empty() {
        detail.push_str(" | ");
        detail.push_str(&rejected.join(" | "));
    }
    Err(StepError::Failed(format!(
        "{shown}: git push to {} failed: {}",
        redact_url_credentials(remote),
        super::text::truncate_lossy(detail.as_bytes(), 2048)
    )))
}

/// Where `file` is in the working copy at `root`, refusing a path that
/// leaves it: `..` or absolute, anything under `.git`, a directory on the
/// way that is a symlink to outside the working copy (or to nowhere), and a
/// file that is itself a symlink (reading would follow it, and the edit
/// would replace the link). A directory symlink that stays inside is
/// refused too, naming the real path (git does not add a path beyond a
/// symlink). Directories that do not exist yet are fine (they are created
/// inside). The error names `file` and the symlink.
///
/// # Caveats
/// - Checked before the edit, not atomically with it: it guards against
///   what the repository contains, not against a concurrent local attacker.
pub fn inside(root: &Path, file: &str) -> Result<PathBuf, PathRefused> {
    let refuse = |problem: PathProblem| PathRefused { file: file.to_string(), problem };
    let root = std::fs::canonicalize(root).map_err(|e| refuse(PathProblem::Root(e)))?;
    let mut at = root.clone();
    let mut shown = PathBuf::new();
    let parts: Vec<Component<'_>> = Path::new(file).components().filter(|c| *c != Component::CurDir).collect();
    for (i, c) in parts.iter().enumerate() {
        let Component::Normal(name) = c else {
            return Err(refuse(PathProblem::NotRelative));
        };
        if *name == ".git" {
            return Err(refuse(PathProblem::InsideGit));
        }
        at.push(name);
        shown.push(name);
        let meta = match std::fs::symlink_metadata(&at) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(source) => return Err(refuse(PathProblem::Stat { path: shown.display().to_string(), source })),
            Ok(m) => m,
        };
        if !meta.file_type().is_symlink() {
            continue;
        }
        if i + 1 == parts.len() {
            return Err(refuse(PathProblem::Symlink));
        }
        match std::fs::canonicalize(&at) {
            // git does not add a path beyond a symlink: name the real one.
            Ok(target) if target.starts_with(&root) => {
                let real =
                    target.strip_prefix(&root).unwrap_or(&target).join(parts[i + 1..].iter().collect::<PathBuf>());
                return Err(refuse(PathProblem::ThroughSymlink {
                    link: shown.display().to_string(),
                    real: real.display().to_string(),
                }));
            }
            Ok(target) => {
                return Err(refuse(PathProblem::Escapes {
                    link: shown.display().to_string(),
                    target: target.display().to_string(),
                }));
            }
            Err(_) => {
                return Err(refuse(PathProblem::Dangling { link: shown.display().to_string() }));
            }
        }
    }
    Ok(root.join(file))
}

/// A `git.set` file refused by [`inside`].
#[derive(Debug, thiserror::Error)]
#[error("file {file}: {problem}")]
pub struct PathRefused {
    /// The file as the runbook names it.
    pub file: String,
    #[source]
    pub problem: PathProblem,
}

/// Why [`inside`] refuses a file.
#[derive(Debug, thiserror::Error)]
pub enum PathProblem {
    /// The working copy's own path does not resolve.
    #[error("resolving the working copy: {0}")]
    Root(#[source] std::io::Error),
    /// An absolute path, or one with `..`.
    #[error("must be a relative path inside the repository (no .. and not absolute)")]
    NotRelative,
    /// A path inside `.git`.
    #[error("is inside .git")]
    InsideGit,
    /// A component of the path (`path`, relative) could not be examined.
    #[error("{path}: {source}")]
    Stat {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The file itself is a symlink.
    #[error("is a symlink; give the path of the file it stands for")]
    Symlink,
    /// A directory on the way is a symlink that stays inside; `real` is the path to write instead.
    #[error("goes through the symlink {link} (git does not commit through it); write file = \"{real}\"")]
    ThroughSymlink { link: String, real: String },
    /// A directory on the way is a symlink that leaves the repository.
    #[error("escapes the repository through the symlink {link} (to {target})")]
    Escapes { link: String, target: String },
    /// A directory on the way is a symlink that points nowhere.
    #[error("goes through the symlink {link}, which points nowhere")]
    Dangling { link: String },
}

/// Why [`write_atomically`] failed.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    /// The path has no parent directory.
    #[error("the file has no directory")]
    NoDirectory,
    /// The path has no file name.
    #[error("the file has no name")]
    NoName,
    /// A file system operation failed: `what` says which (`creating /x`).
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// Replaces `path` with `text` through a temporary file in the same
/// directory, so that an interrupted write leaves the old file. The
/// temporary file is created new (a leftover is removed first, a symlink
/// in its place is never followed).
async fn write_atomically(path: &Path, text: &str) -> Result<(), WriteError> {
    use tokio::io::AsyncWriteExt;
    let io = |what: String| move |source| WriteError::Io { what, source };
    let dir = path.parent().ok_or(WriteError::NoDirectory)?;
    tokio::fs::create_dir_all(dir).await.map_err(io(format!("creating {}", dir.display())))?;
    let name = path.file_name().ok_or(WriteError::NoName)?.to_string_lossy();
    let temp = dir.join(format!(".{name}.cutover-tmp"));
    match tokio::fs::remove_file(&temp).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(io(format!("removing the leftover {}", temp.display()))(e));
        }
        _ => {}
    }
    let write = async {
        let mut f = tokio::fs::OpenOptions::new().write(true).create_new(true).open(&temp).await?;
        f.write_all(text.as_bytes()).await?;
        f.flush().await
    };
    write.await.map_err(io(format!("writing {}", temp.display())))?;
    tokio::fs::rename(&temp, path).await.map_err(io(format!("replacing {}", path.display())))
}
