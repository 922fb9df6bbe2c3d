//! The merge primitives of the merge queue: prepare a merge result in a temporary detached
//! worktree (conflicts found in memory, never written as markers), land it on the target with
//! a compare-and-swap, bring the user's own checkout of the target along, and delete a task
//! branch only when none of its commits would be lost.
//!
//! A typical request: [`prepare_squash`] → run the tests in [`Prepared::path`] →
//! [`check_checkout_ready`] → [`land_squash`] (or [`land_merge`]) → [`sync_checkout`] →
//! [`remove_scratch`] → [`archive_and_delete_branch`]. On startup, [`prune_scratch`] removes
//! what a crash left behind.
//!
//! Temporary worktrees are named `sf-merge-…` and live in a scratch directory chosen by the
//! caller (e.g. `<repo>/.sf/merge/`); they are added with HEAD detached at the target tip.
//! Earlier versions made them on a short-lived branch `sf-merging/<name>` (libgit2 only adds
//! a worktree on a branch); [`prune_scratch`] still deletes any such branch a crash left.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use git2::build::CheckoutBuilder;
use git2::{
    BranchType, Commit, DiffOptions, ErrorCode, Oid, Repository, Signature, Tree,
    WorktreePruneOptions,
};

use crate::{Ctx, GitError, open};

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
    let base = target_tip(&repo, target)?;
    let tip = branch_tip(&repo, branch)?;
    if tip == base
        || repo
            .graph_descendant_of(base, tip)
            .ctx(|| format!("compare `{branch}` with `{target}`"))?
    {
        return Ok(Prepare::NothingToMerge);
    }
    let (base_commit, tip_commit) = (commit(&repo, base)?, commit(&repo, tip)?);
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
        return Ok(Prepare::Conflict {
            paths: paths.into_iter().collect(),
        });
    }
    let tree = index
        .write_tree_to(&repo)
        .ctx(|| "write the merged tree".to_owned())?;
    if tree == base_commit.tree_id() {
        return Ok(Prepare::NothingToMerge);
    }
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
    let repo = open(repo_root)?;
    let base = oid(&prepared.base)?;
    let refname = format!("refs/heads/{target}");
    let moved = |actual: Oid| Land::TargetMoved {
        expected: prepared.base.clone(),
        actual: actual.to_string(),
    };
    let current = target_tip(&repo, target)?;
    if current != base {
        return Ok(moved(current));
    }
    let tree = repo
        .find_tree(oid(&prepared.tree)?)
        .ctx(|| format!("find the merged tree {}", prepared.tree))?;
    let base_commit = commit(&repo, base)?;
    let tip_commit;
    let mut parents = vec![&base_commit];
    if two_parents {
        tip_commit = commit(&repo, oid(&prepared.branch_tip)?)?;
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
    let journal = checks_out(&repo, target).then(|| Journal::at(&repo));
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
            Ok(moved(target_tip(&repo, target)?))
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

/// Whether the main working tree has `target` checked out.
fn checks_out(repo: &Repository, target: &str) -> bool {
    if repo.is_bare() {
        return false;
    }
    // HEAD may point at a branch that was just moved; read the symbolic ref, not its target
    repo.find_reference("HEAD")
        .ok()
        .and_then(|h| h.symbolic_target().ok().flatten().map(str::to_owned))
        .is_some_and(|t| t == format!("refs/heads/{target}"))
}

/// Tracked paths whose index or file differs from `tree` (staged or not, including staged
/// additions and deletions). Untracked files are not counted.
fn tracked_changes(repo: &Repository, tree: &Tree<'_>) -> Result<Vec<String>, GitError> {
    let mut opts = DiffOptions::new();
    opts.include_untracked(false)
        .ignore_submodules(true)
        .include_typechange(true);
    let diff = repo
        .diff_tree_to_workdir_with_index(Some(tree), Some(&mut opts))
        .ctx(|| "compare the working tree with its commit".to_owned())?;
    let paths: BTreeSet<String> = diff
        .deltas()
        .flat_map(|d| [d.old_file().path_bytes(), d.new_file().path_bytes()])
        .flatten()
        .map(path_string)
        .collect();
    Ok(paths.into_iter().collect())
}

/// Paths that differ between `old` and `new`, and the untracked files on disk in the way of
/// paths `new` brings (anything at an incoming path, or a non-directory at one of its parent
/// directories, that `old` does not track).
fn incoming(
    repo: &Repository,
    workdir: &Path,
    old: &Tree<'_>,
    new: &Tree<'_>,
) -> Result<(BTreeSet<PathBuf>, Vec<String>), GitError> {
    let diff = repo
        .diff_tree_to_tree(Some(old), Some(new), None)
        .ctx(|| "compare the old and new trees".to_owned())?;
    let mut changed = BTreeSet::new();
    let mut in_the_way = BTreeSet::new();
    for d in diff.deltas() {
        for p in [d.old_file().path(), d.new_file().path()]
            .into_iter()
            .flatten()
        {
            changed.insert(p.to_owned());
        }
        let Some(p) = d.new_file().path() else {
            continue;
        };
        if d.new_file().id().is_zero() || old.get_path(p).is_ok() {
            continue; // a deletion, or a path the old tree tracks
        }
        if workdir.join(p).symlink_metadata().is_ok() {
            in_the_way.insert(p.to_string_lossy().into_owned());
        }
        for a in p.ancestors().skip(1).filter(|a| !a.as_os_str().is_empty()) {
            if workdir
                .join(a)
                .symlink_metadata()
                .is_ok_and(|m| !m.is_dir())
                && old.get_path(a).is_err()
            {
                in_the_way.insert(a.to_string_lossy().into_owned());
            }
        }
    }
    Ok((changed, in_the_way.into_iter().collect()))
}

/// Before landing: if the user's own (main) working tree has `target` checked out and has
/// local changes to tracked files, the paths (so the request can wait instead of disturbing
/// them); `None` when it is clean or has something else checked out.
pub fn check_checkout_clean(
    repo_root: &Path,
    target: &str,
) -> Result<Option<Vec<String>>, GitError> {
    let repo = open(repo_root)?;
    if !checks_out(&repo, target) {
        return Ok(None);
    }
    let Ok(tree) = repo.head().and_then(|h| h.peel_to_tree()) else {
        return Ok(None);
    };
    let paths = tracked_changes(&repo, &tree)?;
    Ok((!paths.is_empty()).then_some(paths))
}

/// Before landing, with the merge at hand: like [`check_checkout_clean`], and also the
/// untracked files in the user's working tree that landing `prepared` would have to
/// overwrite. `None`: [`sync_checkout`] will be able to bring the tree along (or the target
/// is not checked out there).
pub fn check_checkout_ready(
    repo_root: &Path,
    target: &str,
    prepared: &Prepared,
) -> Result<Option<Vec<String>>, GitError> {
    if let Some(paths) = check_checkout_clean(repo_root, target)? {
        return Ok(Some(paths));
    }
    let repo = open(repo_root)?;
    if !checks_out(&repo, target) {
        return Ok(None);
    }
    let (Some(workdir), Ok(head)) = (repo.workdir(), repo.head().and_then(|h| h.peel_to_tree()))
    else {
        return Ok(None);
    };
    let new = repo
        .find_tree(oid(&prepared.tree)?)
        .ctx(|| format!("find the merged tree {}", prepared.tree))?;
    let (_, in_the_way) = incoming(&repo, workdir, &head, &new)?;
    Ok((!in_the_way.is_empty()).then_some(in_the_way))
}

/// After landing: brings the user's own (main) working tree along when it has `target`
/// checked out. `old_tip` is where the target was before (`Prepared::base`); the tree counts
/// as clean when its index and tracked files match `old_tip`. Clean: the index and the files
/// that changed between `old_tip` and the new tip are updated ([`CheckoutSync::Updated`]);
/// untracked files elsewhere are kept, and an untracked file in the way of an incoming one
/// makes it [`CheckoutSync::Dirty`]. Dirty: nothing is changed (HEAD already names the new
/// tip, so the user's `git status` then shows the merge reversed until they update).
pub fn sync_checkout(
    repo_root: &Path,
    target: &str,
    old_tip: &str,
) -> Result<CheckoutSync, GitError> {
    let repo = open(repo_root)?;
    let journal = Journal::at(&repo);
    let synced = sync(&repo, target, old_tip, &journal);
    // an error half-way (a full disk) leaves the journal for the repair to finish from
    if synced.is_ok() {
        journal.clear()?;
    }
    synced
}

fn sync(
    repo: &Repository,
    target: &str,
    old_tip: &str,
    journal: &Journal,
) -> Result<CheckoutSync, GitError> {
    if !checks_out(repo, target) {
        return Ok(CheckoutSync::NotCheckedOut);
    }
    let Some(workdir) = repo.workdir().map(Path::to_owned) else {
        return Ok(CheckoutSync::NotCheckedOut);
    };
    let new = target_tip(repo, target)?;
    let old = oid(old_tip)?;
    let old_tree = commit(repo, old)?
        .tree()
        .ctx(|| format!("read the tree of {old_tip}"))?;
    let new_tree = commit(repo, new)?
        .tree()
        .ctx(|| format!("read the tree of {new}"))?;
    let dirty = tracked_changes(repo, &old_tree)?;
    if !dirty.is_empty() {
        if new != old && tracked_changes(repo, &new_tree)?.is_empty() {
            return Ok(CheckoutSync::Updated); // already brought along (a repeated call)
        }
        return Ok(CheckoutSync::Dirty { paths: dirty });
    }
    if new == old {
        return Ok(CheckoutSync::Updated);
    }
    let (changed, in_the_way) = incoming(repo, &workdir, &old_tree, &new_tree)?;
    if !in_the_way.is_empty() {
        return Ok(CheckoutSync::Dirty { paths: in_the_way });
    }
    // a kill while files are written leaves some old, some new, one cut short: the journal
    // (written by `land`, or here for a repeated call) tells `repair_checkout` to finish
    journal.write(old, new)?;
    // HEAD already names the new tip, so libgit2's baseline (HEAD) cannot tell old from new:
    // force-check out exactly the paths that changed, the rest having been verified clean.
    let mut co = CheckoutBuilder::new();
    co.force().disable_pathspec_match(true);
    for p in &changed {
        co.path(p.as_path());
    }
    if crate::faults::armed("checkout_sync") {
        co.progress(|_, done, total| {
            if done * 2 >= total && total > 1 {
                crate::faults::crash_now("checkout_sync");
            }
        });
    }
    let object = new_tree.as_object();
    repo.checkout_tree(object, Some(&mut co))
        .ctx(|| format!("update {} to `{target}`", workdir.display()))?;
    Ok(CheckoutSync::Updated)
}

/// `<git dir>/sf-checkout-sync`: while [`sync_checkout`] writes the files of the user's
/// checkout, the old and new tips, so that a kill half-way is finished by
/// [`repair_checkout`] knowing that every file it touches was clean when it began.
struct Journal(PathBuf);

impl Journal {
    fn at(repo: &Repository) -> Self {
        Self(repo.commondir().join("sf-checkout-sync"))
    }

    fn write(&self, old: Oid, new: Oid) -> Result<(), GitError> {
        let tmp = self.0.with_extension("tmp");
        let io = |source| GitError::Io {
            what: format!("write {}", self.0.display()),
            source,
        };
        std::fs::write(&tmp, format!("{old} {new}\n")).map_err(io)?;
        std::fs::rename(&tmp, &self.0).map_err(io)
    }

    /// The old and new tips of a sync cut short.
    fn read(&self) -> Option<(Oid, Oid)> {
        let text = std::fs::read_to_string(&self.0).ok()?;
        let (a, b) = text.trim().split_once(' ')?;
        Some((Oid::from_str(a).ok()?, Oid::from_str(b).ok()?))
    }

    fn clear(&self) -> Result<(), GitError> {
        match std::fs::remove_file(&self.0) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(GitError::Io {
                what: format!("remove {}", self.0.display()),
                source,
            }),
        }
    }
}

/// What [`repair_checkout`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutRepair {
    /// The commit the checkout's index was left at.
    pub from: String,
    /// The target tip it was brought to.
    pub to: String,
    /// Files brought to the tip.
    pub updated: usize,
    /// Files changed by the user since (neither the old nor the new content): left as they
    /// are, so they show as the user's own changes against the tip.
    pub kept: Vec<String>,
}

/// Finishes bringing the user's checkout of `target` along after a kill cut it short: the
/// journal [`land`] writes before it moves the target (and [`sync_checkout`] clears once the
/// files are written) names the old and the new tip. Left so, HEAD names the new tip while
/// the index and some files still hold the old one (one file perhaps half written):
/// `git status` shows the merge reversed and `git commit` would undo it.
///
/// Only the paths the merge changed are touched, and of those only a file that holds its old
/// content, its new content, a beginning of its new content (the write a kill cut short) or
/// nothing: anything else is the user's edit since and is kept (it then shows as their own
/// change against the tip). The index entries of those paths are set to the tip's; the rest
/// of the index, the user's staged work, is left as it is. Without a journal nothing is
/// repaired: a checkout that merely looks like an older tip may be the user's own revert.
/// `None`: nothing to repair.
pub fn repair_checkout(repo_root: &Path, target: &str) -> Result<Option<CheckoutRepair>, GitError> {
    let repo = open(repo_root)?;
    let journal = Journal::at(&repo);
    let Some((old_id, new_id)) = journal.read() else {
        return Ok(None);
    };
    let tip = target_tip(&repo, target).ok();
    let workdir = repo.workdir().map(Path::to_owned);
    let (Some(workdir), true, true) = (workdir, checks_out(&repo, target), tip == Some(new_id))
    else {
        // the target moved on since (the user committed on it), or is not checked out: the
        // journal is of no use any more
        journal.clear()?;
        return Ok(None);
    };
    let mut index = repo.index().ctx(|| "open the index".to_owned())?;
    let (old, new) = (
        commit(&repo, old_id)?
            .tree()
            .ctx(|| format!("read the tree of {old_id}"))?,
        commit(&repo, new_id)?
            .tree()
            .ctx(|| format!("read the tree of {new_id}"))?,
    );
    let diff = repo
        .diff_tree_to_tree(Some(&old), Some(&new), None)
        .ctx(|| "compare the old and new trees".to_owned())?;
    let mut paths: Vec<PathBuf> = diff
        .deltas()
        .flat_map(|d| [d.old_file().path(), d.new_file().path()])
        .flatten()
        .map(Path::to_owned)
        .collect();
    paths.sort();
    paths.dedup();
    let mut bring = Vec::new();
    let mut remove = Vec::new();
    let mut kept = Vec::new();
    for path in &paths {
        let (was, will) = (
            old.get_path(path).ok().map(|e| e.id()),
            new.get_path(path).ok().map(|e| e.id()),
        );
        let on = workdir.join(path);
        let now = on_disk(&on);
        let ours = now.is_none()
            || now == was
            || now == will
            || will.is_some_and(|w| begins(&repo, w, &on));
        if !ours {
            kept.push(path.to_string_lossy().into_owned());
        } else if will.is_some() {
            bring.push(path.clone());
        } else if now.is_some() {
            remove.push(path.clone());
        }
    }
    for p in &remove {
        let _ = std::fs::remove_file(workdir.join(p));
    }
    if !bring.is_empty() {
        let mut co = CheckoutBuilder::new();
        co.force().disable_pathspec_match(true).update_index(false);
        for p in &bring {
            co.path(p.as_path());
        }
        repo.checkout_tree(new.as_object(), Some(&mut co))
            .ctx(|| format!("update {} to `{target}`", workdir.display()))?;
    }
    for path in &paths {
        let entry = new.get_path(path).ok();
        match entry {
            Some(e) => {
                index
                    .add(&git2::IndexEntry {
                        ctime: git2::IndexTime::new(0, 0),
                        mtime: git2::IndexTime::new(0, 0),
                        dev: 0,
                        ino: 0,
                        mode: e.filemode() as u32,
                        uid: 0,
                        gid: 0,
                        file_size: 0,
                        id: e.id(),
                        flags: 0,
                        flags_extended: 0,
                        path: path.to_string_lossy().into_owned().into_bytes(),
                    })
                    .ctx(|| format!("stage {}", path.display()))?;
            }
            None => {
                let _ = index.remove_path(path);
            }
        }
    }
    index.write().ctx(|| "write the index".to_owned())?;
    journal.clear()?;
    Ok(Some(CheckoutRepair {
        from: old_id.to_string(),
        to: new_id.to_string(),
        updated: bring.len() + remove.len(),
        kept,
    }))
}

/// Whether the file at `path` holds a beginning of blob `id` (a write cut short).
fn begins(repo: &Repository, id: Oid, path: &Path) -> bool {
    let (Ok(blob), Ok(disk)) = (repo.find_blob(id), std::fs::read(path)) else {
        return false;
    };
    blob.content().starts_with(&disk)
}

/// The blob id of what is on disk at `path` (a file's content, a symlink's target), `None`
/// when nothing (or a directory) is there.
fn on_disk(path: &Path) -> Option<Oid> {
    let meta = path.symlink_metadata().ok()?;
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path).ok()?;
        use std::os::unix::ffi::OsStrExt as _;
        return Oid::hash_object(git2::ObjectType::Blob, target.as_os_str().as_bytes()).ok();
    }
    if !meta.is_file() {
        return None;
    }
    Oid::hash_file(git2::ObjectType::Blob, path).ok()
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
    const MAX_WALK: usize = 500;
    let repo = open(repo_root)?;
    let mut c = commit(&repo, target_tip(&repo, target)?)?;
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
