//! The merge primitives of the merge queue: prepare a merge result in a temporary detached
//! worktree (conflicts found in memory, never written as markers), land it on the target with
//! a compare-and-swap, bring the user's own checkout of the target along, and delete a task
//! branch only when none of its commits would be lost.
//!
//! The merge queue uses [`Desk`]: [`Desk::prepare`] → run the tests in [`Prepared::path`] →
//! [`Desk::land`], the repository opened once and the merge worktree reused. The same steps
//! as free functions, each opening the repository and with a temporary worktree per merge:
//! [`prepare_squash`] → tests → [`check_checkout_ready`] → [`land_squash`] (or
//! [`land_merge`]) → [`sync_checkout`] → [`remove_scratch`]. On startup, [`prune_scratch`]
//! removes what a crash left behind (the merge worktree included).
//!
//! Temporary worktrees are named `sf-merge-…` and live in a scratch directory chosen by the
//! caller (e.g. `<repo>/.sf/merge/`); they are added with HEAD detached at the target tip.
//! Earlier versions made them on a short-lived branch `sf-merging/<name>` (libgit2 only adds
//! a worktree on a branch); [`prune_scratch`] still deletes any such branch a crash left.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use git2::build::CheckoutBuilder;
use git2::{BranchType, Commit, ErrorCode, Oid, Repository, Signature, WorktreePruneOptions};

use crate::{Ctx, GitError, open};

mod checkout;
mod desk;

pub use checkout::{
    CheckoutRepair, check_checkout_clean, check_checkout_ready, repair_checkout, sync_checkout,
};
use checkout::{Journal, checks_out};
pub use desk::{Desk, DeskPrepare, Landing};

/// Prefix of every temporary merge worktree's name (and directory name).
pub const SCRATCH_PREFIX: &str = "sf-merge-";
/// Namespace of the short-lived branches earlier versions made temporary worktrees on; a
/// crash may have left some.
const TEMP_BRANCH_PREFIX: &str = "sf-merging/";

/// A merge result checked out in a temporary worktree, ready for the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The temporary worktree: HEAD detached at `base`, index and files = `tree`.
    pub path: PathBuf,
    /// The target tip the merge was made on (the compare-and-swap's expected value).
    pub base: String,
    /// The merged tree: what the tests see and what lands.
    pub tree: String,
    /// The branch tip that was merged.
    pub branch_tip: String,
    /// The worktree's name in git's metadata (starts with [`SCRATCH_PREFIX`]).
    pub name: String,
}

/// What [`prepare_squash`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepare {
    /// The merge is clean and checked out in a temporary worktree.
    Ready(Prepared),
    /// The three-way merge conflicts on these paths (sorted, repository-relative). Nothing
    /// was written to any worktree.
    Conflict {
        /// The conflicting paths.
        paths: Vec<String>,
    },
    /// The branch brings nothing: it is contained in the target, or merging it changes no file.
    NothingToMerge,
}

/// What [`land_squash`] / [`land_merge`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Land {
    /// The target now points at `commit`.
    Landed {
        /// The new commit.
        commit: String,
    },
    /// The target is no longer at the prepared base; it was left untouched. Prepare again
    /// from the new tip.
    TargetMoved {
        /// The base the merge was prepared on.
        expected: String,
        /// Where the target is now.
        actual: String,
    },
}

/// What [`sync_checkout`] did to the user's own working tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckoutSync {
    /// The target is checked out there and its index and files now match the new tip.
    Updated,
    /// The target is checked out there but the tree has local changes to tracked files (or
    /// untracked files the new tip would overwrite): nothing was changed.
    Dirty {
        /// The paths in the way (sorted).
        paths: Vec<String>,
    },
    /// The main working tree has another branch (or a detached HEAD) checked out, or the
    /// repository is bare.
    NotCheckedOut,
}

fn oid(s: &str) -> Result<Oid, GitError> {
    Oid::from_str(s).ctx(|| format!("parse the object id `{s}`"))
}

fn branch_tip(repo: &Repository, branch: &str) -> Result<Oid, GitError> {
    repo.find_branch(branch, BranchType::Local)
        .map_err(|_| GitError::MissingBranch(branch.to_owned()))?
        .get()
        .target()
        .ok_or_else(|| GitError::MissingBranch(branch.to_owned()))
}

fn target_tip(repo: &Repository, target: &str) -> Result<Oid, GitError> {
    repo.find_reference(&format!("refs/heads/{target}"))
        .ok()
        .and_then(|r| r.target())
        .ok_or_else(|| GitError::NoTarget(target.to_owned()))
}

fn commit<'r>(repo: &'r Repository, id: Oid) -> Result<Commit<'r>, GitError> {
    repo.find_commit(id).ctx(|| format!("find commit {id}"))
}

fn path_string(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A worktree name unique in this process and across restarts.
fn scratch_name(branch: &str) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let mut slug: String = branch
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    slug.truncate(40);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    format!(
        "{SCRATCH_PREFIX}{slug}-{:x}-{nanos:x}-{seq}",
        std::process::id()
    )
}

/// Three-way merges `branch` into the tip of `target` (from their merge base) in memory, and,
/// when it is clean, checks the result out in a new temporary worktree under `scratch_dir`
/// with HEAD detached at the target tip and the merged tree in the index and files (so
/// `git diff --cached` there shows the squashed change). A conflict is reported with its
/// paths and writes nothing anywhere. Nothing to merge: the branch is already contained in
/// the target, or the merge leaves the target's tree unchanged.
///
/// The same [`Prepared`] serves [`land_squash`] and [`land_merge`]; remove its worktree
/// with [`remove_scratch`] when done.
pub fn prepare_squash(
    repo_root: &Path,
    scratch_dir: &Path,
    branch: &str,
    target: &str,
) -> Result<Prepare, GitError> {
    let repo = open(repo_root)?;
    let (base, tip, tree) = match merge_in_memory(&repo, branch, target)? {
        InMemory::Clean { base, tip, tree } => (base, tip, tree),
        InMemory::Conflict { paths, .. } => return Ok(Prepare::Conflict { paths }),
        InMemory::Nothing => return Ok(Prepare::NothingToMerge),
    };
    let base_commit = commit(&repo, base)?;
    let name = scratch_name(branch);
    let path = scratch_dir.join(&name);
    if let Err(e) = add_scratch(&repo, &name, &path, &base_commit, tree) {
        // best effort: leave nothing behind; the first error is the one worth reporting
        let _ = remove_one(&repo, &name, Some(&path));
        return Err(e);
    }
    Ok(Prepare::Ready(Prepared {
        path,
        base: base.to_string(),
        tree: tree.to_string(),
        branch_tip: tip.to_string(),
        name,
    }))
}

/// The result of a three-way merge made in memory.
enum InMemory {
    /// Clean: the merged tree, on the target tip `base`, of the branch tip `tip`.
    Clean { base: Oid, tip: Oid, tree: Oid },
    /// Conflicting paths (sorted), with the branch tip that conflicts.
    Conflict { paths: Vec<String>, tip: Oid },
    /// The branch brings nothing.
    Nothing,
}

/// Three-way merges `branch` into the tip of `target` in memory; writes only the merged
/// tree's objects.
fn merge_in_memory(repo: &Repository, branch: &str, target: &str) -> Result<InMemory, GitError> {
    let base = target_tip(repo, target)?;
    let tip = branch_tip(repo, branch)?;
    if tip == base
        || repo
            .graph_descendant_of(base, tip)
            .ctx(|| format!("compare `{branch}` with `{target}`"))?
    {
        return Ok(InMemory::Nothing);
    }
    let (base_commit, tip_commit) = (commit(repo, base)?, commit(repo, tip)?);
    let mut index = repo
        .merge_commits(&base_commit, &tip_commit, None)
        .ctx(|| format!("merge `{branch}` into `{target}` in memory"))?;
    if index.has_conflicts() {
        let mut paths = BTreeSet::new();
        for c in index
            .conflicts()
            .ctx(|| "list merge conflicts".to_owned())?
        {
            let c = c.ctx(|| "read a merge conflict".to_owned())?;
            for e in [c.ancestor, c.our, c.their].into_iter().flatten() {
                paths.insert(path_string(&e.path));
            }
        }
        return Ok(InMemory::Conflict {
            paths: paths.into_iter().collect(),
            tip,
        });
    }
    let tree = index
        .write_tree_to(repo)
        .ctx(|| "write the merged tree".to_owned())?;
    if tree == base_commit.tree_id() {
        return Ok(InMemory::Nothing);
    }
    Ok(InMemory::Clean { base, tip, tree })
}

fn add_scratch(
    repo: &Repository,
    name: &str,
    path: &Path,
    base: &Commit<'_>,
    tree: Oid,
) -> Result<(), GitError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| GitError::Io {
            what: format!("create {}", parent.display()),
            source,
        })?;
    }
    let wt = crate::worktree::add(repo, name, path, crate::worktree::Head::Detached(base.id()))?;
    let tree = wt
        .find_object(tree, None)
        .ctx(|| format!("find the merged tree {tree}"))?;
    wt.checkout_tree(&tree, Some(CheckoutBuilder::new().force()))
        .ctx(|| format!("check the merge result out in {}", path.display()))?;
    crate::worktree::finish(&wt)
}

/// Lands a prepared merge as one squash commit: tree `prepared.tree`, single parent
/// `prepared.base`, `message` verbatim (the caller includes its trailers), author and
/// committer `author_name <author_email>`. `refs/heads/<target>` is moved with a
/// compare-and-swap against `prepared.base`; if the target moved meanwhile it is left
/// untouched and [`Land::TargetMoved`] is returned. The temporary worktree is not touched.
pub fn land_squash(
    repo_root: &Path,
    prepared: &Prepared,
    target: &str,
    message: &str,
    author_name: &str,
    author_email: &str,
) -> Result<Land, GitError> {
    land(
        repo_root,
        prepared,
        target,
        message,
        (author_name, author_email),
        false,
    )
}

/// Like [`land_squash`], for `strategy = merge`: a true merge commit with two parents,
/// `prepared.base` then `prepared.branch_tip` (always a merge commit, even when a
/// fast-forward would do), so the branch's commits become reachable from the target.
pub fn land_merge(
    repo_root: &Path,
    prepared: &Prepared,
    target: &str,
    message: &str,
    author_name: &str,
    author_email: &str,
) -> Result<Land, GitError> {
    land(
        repo_root,
        prepared,
        target,
        message,
        (author_name, author_email),
        true,
    )
}

fn land(
    repo_root: &Path,
    prepared: &Prepared,
    target: &str,
    message: &str,
    (name, email): (&str, &str),
    two_parents: bool,
) -> Result<Land, GitError> {
    land_in(
        &open(repo_root)?,
        prepared,
        target,
        message,
        (name, email),
        two_parents,
    )
}

fn land_in(
    repo: &Repository,
    prepared: &Prepared,
    target: &str,
    message: &str,
    (name, email): (&str, &str),
    two_parents: bool,
) -> Result<Land, GitError> {
    let base = oid(&prepared.base)?;
    let refname = format!("refs/heads/{target}");
    let moved = |actual: Oid| Land::TargetMoved {
        expected: prepared.base.clone(),
        actual: actual.to_string(),
    };
    let current = target_tip(repo, target)?;
    if current != base {
        return Ok(moved(current));
    }
    let tree = repo
        .find_tree(oid(&prepared.tree)?)
        .ctx(|| format!("find the merged tree {}", prepared.tree))?;
    let base_commit = commit(repo, base)?;
    let tip_commit;
    let mut parents = vec![&base_commit];
    if two_parents {
        tip_commit = commit(repo, oid(&prepared.branch_tip)?)?;
        parents.push(&tip_commit);
    }
    let sig = Signature::now(name, email).ctx(|| format!("make the signature of {name}"))?;
    let new = repo
        .commit(None, &sig, &sig, message, &tree, &parents)
        .ctx(|| "create the merge commit".to_owned())?;
    let title = message.lines().next().unwrap_or_default();
    // the user's checkout of `target` is brought along after the move: a kill between the
    // move and the end of that sync leaves the journal, so the repair knows it is sf's to
    // finish (and never mistakes the user's own staged work for a sync cut short)
    let journal = checks_out(repo, target).then(|| Journal::at(repo));
    if let Some(j) = &journal {
        j.write(base, new)?;
    }
    match repo.reference_matching(&refname, new, true, base, &format!("sf merge: {title}")) {
        Ok(_) => {
            crate::faults::crash_point("target_moved");
            Ok(Land::Landed {
                commit: new.to_string(),
            })
        }
        Err(e) if e.code() == ErrorCode::Modified => {
            if let Some(j) = &journal {
                j.clear()?;
            }
            Ok(moved(target_tip(repo, target)?))
        }
        Err(source) => {
            if let Some(j) = &journal {
                j.clear()?;
            }
            Err(GitError::Op {
                what: format!("move `{target}` to {new}"),
                source,
            })
        }
    }
}

/// The commit on `target`'s first-parent line that landed merge request `mr` (its
/// `Sf-Merge-Request: <mr>` trailer, and `Sf-Task: <task>` when given, in the message's final
/// trailer block), made at or after `since` (Unix seconds: the request's creation, so a
/// request of an earlier workspace with the same number is never taken for it); the walk
/// looks at the last 500 commits whatever their dates. Returns the commit and its first parent. This is
/// how a merge whose record a kill prevented is recognised as done.
pub fn find_landed(
    repo_root: &Path,
    target: &str,
    mr: i64,
    task: Option<&str>,
    since: i64,
) -> Result<Option<(String, String)>, GitError> {
    find_landed_in(&open(repo_root)?, target, mr, task, since)
}

fn find_landed_in(
    repo: &Repository,
    target: &str,
    mr: i64,
    task: Option<&str>,
    since: i64,
) -> Result<Option<(String, String)>, GitError> {
    const MAX_WALK: usize = 500;
    let mut c = commit(repo, target_tip(repo, target)?)?;
    let (want_mr, want_task) = (
        format!("Sf-Merge-Request: {mr}"),
        task.map(|t| format!("Sf-Task: {t}")),
    );
    for _ in 0..MAX_WALK {
        let msg = String::from_utf8_lossy(c.message_bytes()).into_owned();
        let trailers = trailer_block(&msg);
        let has = |want: &str| trailers.iter().any(|l| l.trim_end() == want);
        // a commit older than the request is never it, but the walk goes on past it: a
        // commit of the user's made with a clock behind may sit above the landing
        if c.time().seconds() >= since && has(&want_mr) && want_task.as_deref().is_none_or(has) {
            let parent = c.parent_id(0).map(|p| p.to_string()).unwrap_or_default();
            return Ok(Some((c.id().to_string(), parent)));
        }
        let Ok(parent) = c.parent(0) else { break };
        c = parent;
    }
    Ok(None)
}

/// The lines of a commit message's trailer block: its last paragraph, when it is not the
/// subject. A line quoted in the body is not a trailer.
fn trailer_block(msg: &str) -> Vec<&str> {
    let paragraphs: Vec<&str> = msg
        .trim_end()
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .collect();
    match paragraphs.as_slice() {
        [_, .., last] => last.lines().collect(),
        _ => Vec::new(),
    }
}

/// Resolves `name` (a short name like `main` or a full ref like `refs/sf/archive/x`) to a
/// commit; `None` if it does not exist.
fn resolve(repo: &Repository, name: &str) -> Option<Oid> {
    repo.resolve_reference_from_short_name(name)
        .ok()
        .and_then(|r| r.peel_to_commit().ok())
        .map(|c| c.id())
}

/// Deletes local `branch` only if every one of its commits is reachable from one of `from`
/// (short names like `main` or full refs like `refs/sf/archive/<task>`; missing ones count
/// for nothing). `Ok(false)`: there was no such branch. Refused with
/// [`GitError::BranchNotReachable`] when commits would be lost. The delete is itself a
/// compare-and-swap against the tip that was checked, and git refuses it while the branch
/// is checked out in some worktree (remove the task's worktree first).
pub fn delete_branch_if_reachable(
    repo_root: &Path,
    branch: &str,
    from: &[&str],
) -> Result<bool, GitError> {
    let repo = open(repo_root)?;
    delete_if_reachable(&repo, branch, from)
}

fn delete_if_reachable(repo: &Repository, branch: &str, from: &[&str]) -> Result<bool, GitError> {
    let Ok(mut b) = repo.find_branch(branch, BranchType::Local) else {
        return Ok(false);
    };
    let tip = b
        .get()
        .target()
        .ok_or_else(|| GitError::MissingBranch(branch.to_owned()))?;
    let mut walk = repo.revwalk().ctx(|| "start a revision walk".to_owned())?;
    walk.push(tip)
        .ctx(|| format!("walk the commits of `{branch}`"))?;
    for f in from {
        if let Some(id) = resolve(repo, f) {
            walk.hide(id).ctx(|| format!("walk the commits of `{f}`"))?;
        }
    }
    let mut unreachable = 0;
    for c in walk {
        c.ctx(|| format!("walk the commits of `{branch}`"))?;
        unreachable += 1;
    }
    if unreachable > 0 {
        return Err(GitError::BranchNotReachable {
            branch: branch.to_owned(),
            commits: unreachable,
        });
    }
    b.delete().ctx(|| format!("delete branch `{branch}`"))?;
    Ok(true)
}

/// Points `archive_ref` (e.g. `refs/sf/archive/<task-id>`) at the tip of `branch`, then
/// deletes the branch if every commit of it is reachable from `target` or the archive ref
/// (see [`delete_branch_if_reachable`]). An existing archive ref is only moved forward (to a
/// descendant); one pointing elsewhere is refused with [`GitError::ArchiveRefTaken`].
/// `Ok(false)`: there was no such branch (nothing archived).
pub fn archive_and_delete_branch(
    repo_root: &Path,
    branch: &str,
    target: &str,
    archive_ref: &str,
) -> Result<bool, GitError> {
    let repo = open(repo_root)?;
    let Ok(tip) = branch_tip(&repo, branch) else {
        return Ok(false);
    };
    let log = format!("sf: archive `{branch}`");
    match repo
        .find_reference(archive_ref)
        .ok()
        .and_then(|r| r.target())
    {
        Some(old) if old == tip => {}
        Some(old) => {
            if !repo
                .graph_descendant_of(tip, old)
                .ctx(|| format!("compare `{branch}` with {archive_ref}"))?
            {
                return Err(GitError::ArchiveRefTaken {
                    archive_ref: archive_ref.to_owned(),
                    points_at: old.to_string(),
                });
            }
            repo.reference_matching(archive_ref, tip, true, old, &log)
                .ctx(|| format!("move {archive_ref}"))?;
        }
        None => {
            repo.reference(archive_ref, tip, false, &log)
                .ctx(|| format!("write {archive_ref}"))?;
        }
    }
    delete_if_reachable(&repo, branch, &[target, archive_ref])
}

/// Removes the temporary worktree of a prepared merge: its directory and git's metadata
/// for it.
pub fn remove_scratch(repo_root: &Path, prepared: &Prepared) -> Result<(), GitError> {
    let repo = open(repo_root)?;
    remove_one(&repo, &prepared.name, Some(&prepared.path))
}

fn remove_one(repo: &Repository, name: &str, path: Option<&Path>) -> Result<(), GitError> {
    let wt = repo.find_worktree(name).ok();
    let path = path
        .map(Path::to_owned)
        .or_else(|| wt.as_ref().map(|w| w.path().to_owned()));
    if let Some(path) = path
        && path.symlink_metadata().is_ok()
    {
        std::fs::remove_dir_all(&path).map_err(|source| GitError::Io {
            what: format!("remove {}", path.display()),
            source,
        })?;
    }
    if let Some(wt) = wt {
        wt.prune(Some(
            WorktreePruneOptions::new()
                .valid(true)
                .locked(true)
                .working_tree(true),
        ))
        .ctx(|| format!("prune the merge worktree `{name}`"))?;
    }
    // an admin folder git cannot open (a kill while it was being made leaves it without
    // its `gitdir`) is not pruned by git: it is ours (the name is), and would block the
    // merge worktree from being made again under the same name
    let admin = repo.commondir().join("worktrees").join(name);
    if admin.symlink_metadata().is_ok() {
        std::fs::remove_dir_all(&admin).map_err(|source| GitError::Io {
            what: format!("remove {}", admin.display()),
            source,
        })?;
    }
    Ok(())
}

/// Crash recovery, for startup (not while merges run): removes every temporary merge
/// worktree git knows of (name starting with [`SCRATCH_PREFIX`]), every such directory left
/// in `scratch_dir`, their metadata and any temporary branch. Returns how many worktrees were
/// removed.
pub fn prune_scratch(repo_root: &Path, scratch_dir: &Path) -> Result<usize, GitError> {
    let repo = open(repo_root)?;
    let mut names = BTreeSet::new();
    let known = repo.worktrees().ctx(|| "list worktrees".to_owned())?;
    for name in known.iter().filter_map(|n| n.ok().flatten()) {
        if name.starts_with(SCRATCH_PREFIX) {
            names.insert(name.to_owned());
        }
    }
    let mut removed = 0;
    for name in &names {
        remove_one(&repo, name, None)?;
        removed += 1;
    }
    match std::fs::read_dir(scratch_dir) {
        Ok(entries) => {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(SCRATCH_PREFIX) && !names.contains(&name) {
                    remove_one(&repo, &name, Some(&entry.path()))?;
                    removed += 1;
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(GitError::Io {
                what: format!("list {}", scratch_dir.display()),
                source,
            });
        }
    }
    let glob = format!("refs/heads/{TEMP_BRANCH_PREFIX}*");
    let leftovers: Vec<String> = repo
        .references_glob(&glob)
        .ctx(|| format!("list {glob}"))?
        .flatten()
        .filter_map(|r| r.name().ok().map(str::to_owned))
        .collect();
    for refname in leftovers {
        if let Ok(mut r) = repo.find_reference(&refname) {
            r.delete().ctx(|| format!("delete {refname}"))?;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests;
