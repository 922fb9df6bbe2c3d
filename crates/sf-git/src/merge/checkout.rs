//! The user's own checkout of the target: whether landing would disturb it, bringing it
//! along after a landing, and finishing that after a kill cut it short (the journal).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use git2::build::CheckoutBuilder;
use git2::{DiffOptions, Oid, Repository, Tree};

use super::{CheckoutSync, Prepared, commit, oid, path_string, target_tip};
use crate::{Ctx, GitError, open};

/// Whether the main working tree has `target` checked out.
pub(super) fn checks_out(repo: &Repository, target: &str) -> bool {
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
    checkout_clean_in(&open(repo_root)?, target)
}

pub(super) fn checkout_clean_in(
    repo: &Repository,
    target: &str,
) -> Result<Option<Vec<String>>, GitError> {
    if !checks_out(repo, target) {
        return Ok(None);
    }
    let Ok(tree) = repo.head().and_then(|h| h.peel_to_tree()) else {
        return Ok(None);
    };
    let paths = tracked_changes(repo, &tree)?;
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
    checkout_ready_in(&open(repo_root)?, target, prepared)
}

pub(super) fn checkout_ready_in(
    repo: &Repository,
    target: &str,
    prepared: &Prepared,
) -> Result<Option<Vec<String>>, GitError> {
    if let Some(paths) = checkout_clean_in(repo, target)? {
        return Ok(Some(paths));
    }
    if !checks_out(repo, target) {
        return Ok(None);
    }
    let (Some(workdir), Ok(head)) = (repo.workdir(), repo.head().and_then(|h| h.peel_to_tree()))
    else {
        return Ok(None);
    };
    let new = repo
        .find_tree(oid(&prepared.tree)?)
        .ctx(|| format!("find the merged tree {}", prepared.tree))?;
    let (_, in_the_way) = incoming(repo, workdir, &head, &new)?;
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
    sync_checkout_in(&open(repo_root)?, target, old_tip)
}

pub(super) fn sync_checkout_in(
    repo: &Repository,
    target: &str,
    old_tip: &str,
) -> Result<CheckoutSync, GitError> {
    let journal = Journal::at(repo);
    let synced = sync(repo, target, old_tip, &journal);
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
pub(super) struct Journal(PathBuf);

impl Journal {
    pub(super) fn at(repo: &Repository) -> Self {
        Self(repo.commondir().join("sf-checkout-sync"))
    }

    pub(super) fn write(&self, old: Oid, new: Oid) -> Result<(), GitError> {
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

    pub(super) fn clear(&self) -> Result<(), GitError> {
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
    repair_checkout_in(&open(repo_root)?, target)
}

pub(super) fn repair_checkout_in(
    repo: &Repository,
    target: &str,
) -> Result<Option<CheckoutRepair>, GitError> {
    let journal = Journal::at(repo);
    let Some((old_id, new_id)) = journal.read() else {
        return Ok(None);
    };
    let tip = target_tip(repo, target).ok();
    let workdir = repo.workdir().map(Path::to_owned);
    let (Some(workdir), true, true) = (workdir, checks_out(repo, target), tip == Some(new_id))
    else {
        // the target moved on since (the user committed on it), or is not checked out: the
        // journal is of no use any more
        journal.clear()?;
        return Ok(None);
    };
    let mut index = repo.index().ctx(|| "open the index".to_owned())?;
    let (old, new) = (
        commit(repo, old_id)?
            .tree()
            .ctx(|| format!("read the tree of {old_id}"))?,
        commit(repo, new_id)?
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
            || will.is_some_and(|w| begins(repo, w, &on));
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
