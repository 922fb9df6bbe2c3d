#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::{Path, PathBuf};

use git2::{
    BranchType, IndexAddOption, Oid, Repository, Signature, StatusOptions, WorktreePruneOptions,
};

/// A failed git operation: what was being done, on what, and git's own message.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// Opening a repository.
    #[error("failed to open the git repository at {}", path.display())]
    Open {
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: git2::Error,
    },
    /// The target branch does not exist.
    #[error("target branch `{0}` does not exist")]
    NoTarget(String),
    /// A branch to merge or compare does not exist.
    #[error("branch `{0}` does not exist")]
    NoSuchBranch(String),
    /// The repository has no commit or no branch to work from.
    #[error("the repository has no branch to work from (make a first commit)")]
    NoBranch,
    /// Any other step.
    #[error("failed to {what}")]
    Op {
        /// The step.
        what: String,
        /// Why.
        #[source]
        source: git2::Error,
    },
    /// A file-system step.
    #[error("failed to {what}")]
    Io {
        /// The step.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A worktree whose creation was cut short; it is rebuilt by `ensure_worktree`.
    #[error(
        "the worktree at {} was left half-made by a killed checkout; it holds no work and is rebuilt on the next dispatch",
        .0.display()
    )]
    HalfMade(PathBuf),
    /// A branch (other than the target) does not exist.
    #[error("branch `{0}` does not exist")]
    MissingBranch(String),
    /// Deleting a branch was refused: some of its commits are reachable from nothing kept.
    #[error(
        "refusing to delete branch `{branch}`: {commits} of its commits are not reachable from the target or an archive ref"
    )]
    BranchNotReachable {
        /// The branch.
        branch: String,
        /// How many commits would be lost.
        commits: usize,
    },
    /// A `git` process works in the worktree: it is left alone for now.
    #[error("a git process is at work in {}; it is left for later", .0.display())]
    InUse(PathBuf),
    /// A directory where a worktree was expected that git does not know as one.
    #[error("{} is not a worktree git knows (no `.git` link to an admin folder)", .0.display())]
    NotAWorktree(PathBuf),
    /// An archive ref already points at commits the branch does not contain.
    #[error("{archive_ref} already points at {points_at}, which the branch does not contain")]
    ArchiveRefTaken {
        /// The archive ref.
        archive_ref: String,
        /// Where it points.
        points_at: String,
    },
    /// The repository has no remote of that name (or the name is not one git allows).
    #[error("no remote `{0}` in the repository's git configuration")]
    NoSuchRemote(String),
    /// The push failed: the remote could not be reached, the credentials were refused, or
    /// the update was not a fast-forward.
    #[error("failed to push branch `{branch}` to `{remote}`")]
    Push {
        /// The remote.
        remote: String,
        /// The branch.
        branch: String,
        /// What kind of failure it is.
        reason: push::PushReason,
        /// Why.
        #[source]
        source: git2::Error,
    },
    /// The remote refused the update (a hook, a protected branch).
    #[error("remote `{remote}` refused the update ({reason})")]
    PushRejected {
        /// The remote.
        remote: String,
        /// The ref and what the remote said.
        reason: String,
    },
}

trait Ctx<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, GitError>;
}

impl<T> Ctx<T> for Result<T, git2::Error> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, GitError> {
        self.map_err(|source| GitError::Op {
            what: what(),
            source,
        })
    }
}

fn open(path: &Path) -> Result<Repository, GitError> {
    Repository::open(path).map_err(|source| GitError::Open {
        path: path.to_owned(),
        source,
    })
}

/// The branch merges go to: `configured` if given (it must exist), else the branch checked
/// out in the main working tree, else `main` or `master`.
pub fn target_branch(repo_root: &Path, configured: Option<&str>) -> Result<String, GitError> {
    let repo = open(repo_root)?;
    if let Some(b) = configured {
        repo.find_branch(b, BranchType::Local)
            .map_err(|_| GitError::NoTarget(b.to_owned()))?;
        return Ok(b.to_owned());
    }
    if let Ok(head) = repo.head()
        && head.is_branch()
        && let Ok(name) = head.shorthand()
    {
        return Ok(name.to_owned());
    }
    for b in ["main", "master"] {
        if repo.find_branch(b, BranchType::Local).is_ok() {
            return Ok(b.to_owned());
        }
    }
    Err(GitError::NoBranch)
}

/// A task's worktree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worktree {
    /// Its directory.
    pub path: PathBuf,
    /// Its branch.
    pub branch: String,
    /// Whether this call created it (false: reused, e.g. after a handoff).
    pub created: bool,
    /// What this call found left by a killed operation and repaired first, one line each.
    pub repaired: Vec<String>,
}

/// Makes sure the worktree `name` exists at `path` on `branch`, creating the branch from the
/// tip of `target` if needed. An existing worktree (a handed-off task's) is reused as it is;
/// one whose creation was cut short (by a kill while adding it or checking its files out) is
/// removed and made again, never reused, since committing it would delete the files it lacks.
pub fn ensure_worktree(
    repo_root: &Path,
    name: &str,
    path: &Path,
    branch: &str,
    target: &str,
) -> Result<Worktree, GitError> {
    let repo = open(repo_root)?;
    // the admin folder the directory links to (a fix task works in its original task's
    // worktree, whose admin folder has the original's name), else the one of this name
    let linked = linked_admin(path);
    let admin = linked
        .clone()
        .unwrap_or_else(|| repo.commondir().join("worktrees").join(name));
    let mut repaired = Vec::new();
    if admin.symlink_metadata().is_ok() && worktree::is_half_made(&admin) {
        // nothing ran in it yet: the marker goes only once the checkout is complete
        remove_dir(path)?;
        remove_dir(&admin)?;
        repaired.push(format!(
            "removed the half-made worktree `{name}` at {} (its creation was cut short); made it again",
            path.display()
        ));
    }
    if linked.as_ref().is_some_and(|a| a.is_dir()) {
        let wt = open(path)?;
        let head = wt
            .head()
            .ctx(|| format!("read HEAD of {}", path.display()))?;
        let on = head.shorthand().unwrap_or_default().to_owned();
        if on == branch {
            return Ok(Worktree {
                path: path.to_owned(),
                branch: on,
                created: false,
                repaired,
            });
        }
        return Err(GitError::Op {
            what: format!(
                "reuse worktree {}: it is on `{on}`, not `{branch}`",
                path.display()
            ),
            source: git2::Error::from_str("unexpected branch"),
        });
    }
    if path.symlink_metadata().is_ok() {
        // a directory git does not know as this worktree: keep whatever is in it aside
        let aside = aside_name(path);
        std::fs::rename(path, &aside).map_err(|source| GitError::Io {
            what: format!("move {} aside", path.display()),
            source,
        })?;
        repaired.push(format!(
            "moved {} (not a worktree git knows) aside to {}",
            path.display(),
            aside.display()
        ));
    }
    // metadata of a worktree whose directory is gone: prune it so the name can be reused
    if let Ok(stale) = repo.find_worktree(name) {
        stale
            .prune(Some(
                WorktreePruneOptions::new().valid(true).working_tree(true),
            ))
            .ctx(|| format!("prune the stale worktree `{name}`"))?;
    }
    let new = repo.find_branch(branch, BranchType::Local).is_err();
    if new {
        let tip = repo
            .find_branch(target, BranchType::Local)
            .map_err(|_| GitError::NoTarget(target.to_owned()))?
            .get()
            .peel_to_commit()
            .ctx(|| format!("resolve the tip of `{target}`"))?;
        repo.branch(branch, &tip, false)
            .ctx(|| format!("create branch `{branch}`"))?;
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| GitError::Io {
            what: format!("create {}", parent.display()),
            source,
        })?;
    }
    let wt = worktree::add(
        &repo,
        name,
        path,
        worktree::Head::Branch { name: branch, new },
    )?;
    let mut co = git2::build::CheckoutBuilder::new();
    if faults::armed("worktree_checkout") {
        co.progress(|_, done, total| {
            if done * 2 >= total {
                faults::crash_now("worktree_checkout");
            }
        });
    }
    if let Err(e) = wt.checkout_head(Some(&mut co)) {
        // best effort: a half-checked-out worktree is rebuilt by the next call anyway
        let _ = remove_worktree(repo_root, name, path);
        return Err(GitError::Op {
            what: format!("check out `{branch}` in {}", path.display()),
            source: e,
        });
    }
    worktree::finish(&wt)?;
    Ok(Worktree {
        path: path.to_owned(),
        branch: branch.to_owned(),
        created: true,
        repaired,
    })
}

/// The admin folder named by `<path>/.git` (`gitdir: <admin>`), if it names one.
fn linked_admin(path: &Path) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt as _;
    let text = std::fs::read(path.join(".git")).ok()?;
    let rest = text.strip_prefix(b"gitdir: ")?;
    let rest = rest.strip_suffix(b"\n").unwrap_or(rest);
    let admin = PathBuf::from(std::ffi::OsStr::from_bytes(rest));
    Some(if admin.is_absolute() {
        admin
    } else {
        path.join(admin)
    })
}

fn remove_dir(path: &Path) -> Result<(), GitError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(GitError::Io {
            what: format!("remove {}", path.display()),
            source,
        }),
    }
}

/// `<path>.aside-<nanos>`, beside `path`.
fn aside_name(path: &Path) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(".aside-{nanos}"));
    path.with_file_name(name)
}

fn signature(repo: &Repository, who: &str) -> Result<Signature<'static>, GitError> {
    Signature::now(who, &format!("{who}@sf.invalid"))
        .or_else(|_| repo.signature())
        .ctx(|| "make a commit signature".to_owned())
}

/// Whether a worktree has changes (tracked or untracked, ignoring ignored files).
pub fn is_dirty(worktree: &Path) -> Result<bool, GitError> {
    let repo = open(worktree)?;
    let mut opts = StatusOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false);
    let statuses = repo
        .statuses(Some(&mut opts))
        .ctx(|| "read the worktree status".to_owned())?;
    Ok(!statuses.is_empty())
}

/// Commits everything left in a worktree (new, changed and deleted files) onto its branch.
/// Returns the new commit, or `None` if there was nothing to commit. A half-made worktree
/// (its checkout was cut short) is refused: its missing files are not deletions.
pub fn commit_all(worktree: &Path, message: &str, who: &str) -> Result<Option<String>, GitError> {
    let repo = open(worktree)?;
    if repo.is_worktree() && worktree::is_half_made(repo.path()) {
        return Err(GitError::HalfMade(worktree.to_owned()));
    }
    let mut index = repo.index().ctx(|| "open the index".to_owned())?;
    index
        .add_all(["*"], IndexAddOption::DEFAULT, None)
        .ctx(|| "stage new and changed files".to_owned())?;
    index
        .update_all(["*"], None)
        .ctx(|| "stage deleted files".to_owned())?;
    index.write().ctx(|| "write the index".to_owned())?;
    let tree_id = index.write_tree().ctx(|| "write the tree".to_owned())?;
    let head = repo
        .head()
        .ctx(|| "read HEAD".to_owned())?
        .peel_to_commit()
        .ctx(|| "read HEAD".to_owned())?;
    if head.tree_id() == tree_id {
        return Ok(None);
    }
    let tree = repo
        .find_tree(tree_id)
        .ctx(|| "find the new tree".to_owned())?;
    let sig = signature(&repo, who)?;
    let oid = repo
        .commit(Some("HEAD"), &sig, &sig, message, &tree, &[&head])
        .ctx(|| "commit the worktree".to_owned())?;
    Ok(Some(oid.to_string()))
}

/// Saves a worker's uncommitted work before its process is stopped or its worktree removed:
/// commits it onto the branch and points `refs/sf/wip/<task>/<epoch>` at the result (or at
/// the branch tip when nothing was uncommitted). Returns the commit saved.
pub fn wip_snapshot(
    worktree: &Path,
    task: &str,
    epoch: i64,
    who: &str,
) -> Result<String, GitError> {
    let repo = open(worktree)?;
    // a half-made worktree holds no work (no worker ran in it) and its missing files must
    // not be saved as deletions: the ref points at the branch as it is
    let committed = if repo.is_worktree() && worktree::is_half_made(repo.path()) {
        None
    } else {
        commit_all(
            worktree,
            &format!("WIP: uncommitted work of {task} (run {epoch})"),
            who,
        )?
    };
    let oid = match committed {
        Some(c) => Oid::from_str(&c).ctx(|| "parse the WIP commit id".to_owned())?,
        None => repo
            .head()
            .ctx(|| "read HEAD".to_owned())?
            .target()
            .ok_or(GitError::NoBranch)?,
    };
    let name = format!("refs/sf/wip/{task}/{epoch}");
    repo.reference(&name, oid, true, "sf: save work in progress")
        .ctx(|| format!("write {name}"))?;
    Ok(oid.to_string())
}

/// Commits on `branch` that `target` does not have.
pub fn commits_ahead(repo_root: &Path, branch: &str, target: &str) -> Result<usize, GitError> {
    let repo = open(repo_root)?;
    let (b, t) = (
        branch_tip(&repo, branch, GitError::NoSuchBranch)?,
        branch_tip(&repo, target, GitError::NoTarget)?,
    );
    let (ahead, _) = repo
        .graph_ahead_behind(b, t)
        .ctx(|| format!("compare `{branch}` with `{target}`"))?;
    Ok(ahead)
}

/// The paths under `prefix` (e.g. `.sf/`) that `branch` changes since it left `target`
/// (at most 20).
pub fn changes_under(
    repo_root: &Path,
    branch: &str,
    target: &str,
    prefix: &str,
) -> Result<Vec<String>, GitError> {
    let repo = open(repo_root)?;
    let (b, t) = (
        branch_tip(&repo, branch, GitError::NoSuchBranch)?,
        branch_tip(&repo, target, GitError::NoTarget)?,
    );
    let base = repo
        .merge_base(b, t)
        .ctx(|| format!("find where `{branch}` left `{target}`"))?;
    let tree = |oid| {
        repo.find_commit(oid)
            .and_then(|c| c.tree())
            .ctx(|| format!("read the tree of {oid}"))
    };
    let (old, new) = (tree(base)?, tree(b)?);
    let diff = repo
        .diff_tree_to_tree(Some(&old), Some(&new), None)
        .ctx(|| format!("diff `{branch}`"))?;
    Ok(diff
        .deltas()
        .flat_map(|d| [d.old_file().path(), d.new_file().path()])
        .flatten()
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| p.starts_with(prefix) || format!("{p}/") == prefix)
        .take(20)
        .collect())
}

/// The commit local `branch` points at, as a hex id.
pub fn branch_tip_id(repo_root: &Path, branch: &str) -> Result<String, GitError> {
    let repo = open(repo_root)?;
    Ok(branch_tip(&repo, branch, GitError::NoSuchBranch)?.to_string())
}

/// The commit a local branch points at; a missing one is `missing(name)`.
fn branch_tip(
    repo: &Repository,
    name: &str,
    missing: fn(String) -> GitError,
) -> Result<Oid, GitError> {
    repo.find_branch(name, BranchType::Local)
        .map_err(|_| missing(name.to_owned()))?
        .get()
        .target()
        .ok_or(GitError::NoBranch)
}

/// The full messages of the commits on `branch` that `target` does not have, oldest first
/// (at most `limit`, the newest ones if there are more).
pub fn messages_ahead(
    repo_root: &Path,
    branch: &str,
    target: &str,
    limit: usize,
) -> Result<Vec<String>, GitError> {
    messages_ahead_in(&open(repo_root)?, branch, target, limit)
}

pub(crate) fn messages_ahead_in(
    repo: &Repository,
    branch: &str,
    target: &str,
    limit: usize,
) -> Result<Vec<String>, GitError> {
    let mut walk = repo.revwalk().ctx(|| "walk history".to_owned())?;
    walk.push(branch_tip(repo, branch, GitError::NoSuchBranch)?)
        .ctx(|| format!("walk `{branch}`"))?;
    walk.hide(branch_tip(repo, target, GitError::NoTarget)?)
        .ctx(|| format!("walk `{target}`"))?;
    let mut out = Vec::new();
    for oid in walk.take(limit) {
        let oid = oid.ctx(|| format!("walk `{branch}`"))?;
        let commit = repo.find_commit(oid).ctx(|| format!("read commit {oid}"))?;
        out.push(String::from_utf8_lossy(commit.message_bytes()).into_owned());
    }
    out.reverse();
    Ok(out)
}

/// `refs/sf/archive/<task>`: where a task's branch is kept once it is retired.
pub fn archive_ref(task: &str) -> String {
    format!("refs/sf/archive/{task}")
}

/// Before a reopened task's worktree is made again: recreates its `branch`, retired when
/// the task was closed, from [`archive_ref`]`(task)`, so the task goes on from its work.
/// Returns whether it did (false: the branch exists, or nothing was archived).
pub fn restore_branch(repo_root: &Path, branch: &str, task: &str) -> Result<bool, GitError> {
    let repo = open(repo_root)?;
    if repo.find_branch(branch, BranchType::Local).is_ok() {
        return Ok(false);
    }
    let Ok(archived) = repo
        .find_reference(&archive_ref(task))
        .and_then(|r| r.peel_to_commit())
    else {
        return Ok(false);
    };
    repo.branch(branch, &archived, false)
        .ctx(|| format!("recreate branch `{branch}` from {}", archive_ref(task)))?;
    Ok(true)
}

/// What [`retire_worktree`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retired {
    /// The commit uncommitted work was saved as, if there was any.
    pub saved: Option<String>,
    /// The branch the worktree had checked out.
    pub branch: Option<String>,
}

/// Removes the worktree at `path` of work that is done (its task closed or merged), saving
/// its uncommitted work first: committed onto its branch, with `refs/sf/wip/<task>/<epoch>`
/// pointing at it (see [`wip_snapshot`]). The branch is kept ([`retire_branch`] is next).
/// A directory git does not know as a worktree is refused with [`GitError::NotAWorktree`],
/// one a `git` process works in with [`GitError::InUse`].
pub fn retire_worktree(
    repo_root: &Path,
    path: &Path,
    task: &str,
    epoch: i64,
) -> Result<Retired, GitError> {
    let Some(admin) = linked_admin(path).filter(|a| a.is_dir()) else {
        return Err(GitError::NotAWorktree(path.to_owned()));
    };
    if locks::git_running_under(&[locks::canonical(path), locks::canonical(&admin)], None) {
        return Err(GitError::InUse(path.to_owned()));
    }
    let name = admin
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut retired = Retired::default();
    if !worktree::is_half_made(&admin) {
        retired.branch = open(path)
            .ok()
            .and_then(|wt| wt.head().ok()?.shorthand().ok().map(str::to_owned));
        if is_dirty(path)? {
            retired.saved = Some(wip_snapshot(path, task, epoch, "sf")?);
        }
    }
    remove_worktree(repo_root, &name, path)?;
    Ok(retired)
}

/// What became of a branch given to [`retire_branch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BranchFate {
    /// Deleted: every commit of it is on the target.
    Deleted,
    /// Kept as [`archive_ref`], then deleted.
    Archived,
    /// There was no such branch.
    Missing,
}

/// Deletes `branch` of a task that is done: at once when every commit of it is on
/// `target`, else after pointing [`archive_ref`]`(task)` at it. Refused while a worktree has
/// it checked out.
pub fn retire_branch(
    repo_root: &Path,
    branch: &str,
    target: &str,
    task: &str,
) -> Result<BranchFate, GitError> {
    match merge::delete_branch_if_reachable(repo_root, branch, &[target]) {
        Ok(true) => Ok(BranchFate::Deleted),
        Ok(false) => Ok(BranchFate::Missing),
        Err(GitError::BranchNotReachable { .. }) => {
            merge::archive_and_delete_branch(repo_root, branch, target, &archive_ref(task)).map(
                |done| {
                    if done {
                        BranchFate::Archived
                    } else {
                        BranchFate::Missing
                    }
                },
            )
        }
        Err(e) => Err(e),
    }
}

/// The local branches under `prefix/` (short names, e.g. `agent/w/t1-fix`).
pub fn branches_under(repo_root: &Path, prefix: &str) -> Result<Vec<String>, GitError> {
    let repo = open(repo_root)?;
    let glob = format!("refs/heads/{prefix}/*");
    let refs = repo.references_glob(&glob).ctx(|| format!("list {glob}"))?;
    Ok(refs
        .flatten()
        .filter_map(|r| r.shorthand().ok().map(str::to_owned))
        .collect())
}

/// Removes a worktree directory and its metadata, keeping the branch. Callers save work
/// first with [`wip_snapshot`].
pub fn remove_worktree(repo_root: &Path, name: &str, path: &Path) -> Result<(), GitError> {
    if path.exists() {
        std::fs::remove_dir_all(path).map_err(|source| GitError::Io {
            what: format!("remove {}", path.display()),
            source,
        })?;
    }
    let repo = open(repo_root)?;
    if let Ok(wt) = repo.find_worktree(name) {
        wt.prune(Some(
            WorktreePruneOptions::new().valid(true).working_tree(true),
        ))
        .ctx(|| format!("prune worktree `{name}`"))?;
    }
    Ok(())
}

pub mod faults;
pub mod locks;
pub mod merge;
pub mod push;
mod worktree;

#[cfg(test)]
mod tests;

/// What a worktree changed against `target`, committed or not (untracked files count), for
/// a dry run's evidence: `(stat, patch)`, the patch cut at `cap` bytes and files over 1 MiB
/// shown as binary. libgit2 only: no hook, filter, fsmonitor or external diff a run could
/// have configured ever runs. The caller restores the worktree's links first.
pub fn worktree_diff(
    worktree: &Path,
    target: &str,
    cap: usize,
) -> Result<(String, String), GitError> {
    let repo = open(worktree)?;
    let tree = repo
        .revparse_single(target)
        .and_then(|o| o.peel_to_tree())
        .map_err(|e| GitError::Op {
            what: format!("resolve `{target}`"),
            source: e,
        })?;
    let mut opts = git2::DiffOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .show_untracked_content(true)
        .max_size(1 << 20);
    let diff = repo
        .diff_tree_to_workdir_with_index(Some(&tree), Some(&mut opts))
        .map_err(|e| GitError::Op {
            what: "diff the worktree".into(),
            source: e,
        })?;
    let stat = diff
        .stats()
        .and_then(|s| s.to_buf(git2::DiffStatsFormat::FULL, 80))
        .map_err(|e| GitError::Op {
            what: "diff stats".into(),
            source: e,
        })?;
    let mut stat = String::from_utf8_lossy(&stat).into_owned();
    if stat.len() > cap {
        let mut at = cap;
        while !stat.is_char_boundary(at) {
            at -= 1;
        }
        stat.truncate(at);
        stat.push_str("\n[cut]\n");
    }
    let mut patch = Vec::new();
    let mut cut = false;
    // the printer stops at the cap: a huge change is never held whole
    let printed = diff.print(git2::DiffFormat::Patch, |_, _, line| {
        if patch.len() >= cap {
            cut = true;
            return false;
        }
        if matches!(line.origin(), '+' | '-' | ' ') {
            patch.push(line.origin() as u8);
        }
        patch.extend_from_slice(line.content());
        true
    });
    if let Err(e) = printed
        && !cut
    {
        return Err(GitError::Op {
            what: "print the diff".into(),
            source: e,
        });
    }
    patch.truncate(cap);
    let mut patch = String::from_utf8_lossy(&patch).into_owned();
    if cut {
        patch.push_str("\n[diff cut]\n");
    }
    Ok((stat, patch))
}

/// Checks the links between the worktree at `path` and its admin folder
/// `<common>/worktrees/<name>`, as sf made them: the worktree's
/// `.git` file names the admin folder, whose `gitdir` names the `.git` file back and whose
/// `commondir` is `../..`. A run that rewrote them could make sf's own git work (saving its
/// work, committing at completion) act on another repository or branch: each changed link
/// is written back, and what was found is returned (empty: nothing was changed).
pub fn restore_worktree_links(
    repo_root: &Path,
    name: &str,
    path: &Path,
) -> Result<Vec<String>, GitError> {
    let repo = open(repo_root)?;
    let admin = repo.commondir().join("worktrees").join(name);
    if !admin.is_dir() {
        // not a worktree sf made under this name: nothing to compare it with
        return Ok(Vec::new());
    }
    let expected = [
        (path.join(".git"), format!("gitdir: {}\n", admin.display())),
        (
            admin.join("gitdir"),
            format!("{}\n", path.join(".git").display()),
        ),
        (admin.join("commondir"), "../..\n".to_owned()),
    ];
    let mut restored = Vec::new();
    for (file, want) in expected {
        let found = std::fs::read_to_string(&file).unwrap_or_default();
        let is_link = file
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink());
        if found.trim_end() == want.trim_end() && !is_link {
            continue;
        }
        if is_link {
            let _ = std::fs::remove_file(&file);
        }
        std::fs::write(&file, &want).map_err(|source| GitError::Io {
            what: format!("restore {}", file.display()),
            source,
        })?;
        restored.push(format!(
            "{} was changed (it said {:?}); restored",
            file.display(),
            found.trim_end()
        ));
    }
    Ok(restored)
}
