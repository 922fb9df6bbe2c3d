//! The merge queue's desk: the repository opened once per merge, and one merge worktree
//! kept between merges and reset to each merge result (only the files that differ are
//! written), instead of a temporary worktree checked out and removed every time. A merge
//! is two steps: [`Desk::prepare`] (repairs, a landing a kill left unrecorded, the user's
//! checkout, the merge in memory, the result in the worktree), the tests, then
//! [`Desk::land`] (the checkout checked again, the compare-and-swap, the user's checkout
//! brought along).
//!
//! Between merges the worktree keeps the files the tests left that the repository ignores
//! (build caches such as `target/`), so that the next test run is incremental; everything
//! else is reset to the merge result: tracked files, the index, untracked files. A worktree
//! the tests left in a state the reset cannot vouch for is made again.

use std::path::{Path, PathBuf};

use git2::build::CheckoutBuilder;
use git2::{Oid, Repository, Status, StatusOptions};

use super::checkout::{checkout_clean_in, checkout_ready_in, repair_checkout_in, sync_checkout_in};
use super::{
    CheckoutRepair, CheckoutSync, InMemory, Land, Prepared, add_scratch, commit, find_landed_in,
    land_in, merge_in_memory, remove_one,
};
use crate::{Ctx, GitError, open};

/// The merge worktree's name (it starts with [`super::SCRATCH_PREFIX`], so that the start-up
/// prune of what a crash left removes it too).
const BENCH: &str = "sf-merge-queue";

/// The repository, opened for one merge.
pub struct Desk {
    repo: Repository,
    bench: PathBuf,
}

impl std::fmt::Debug for Desk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Desk").field("bench", &self.bench).finish()
    }
}

/// What [`Desk::prepare`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeskPrepare {
    /// The merge result is in the merge worktree, ready for the tests.
    Ready(Prepared),
    /// The three-way merge conflicts on these paths; nothing was written to any worktree.
    Conflict {
        /// The conflicting paths (sorted).
        paths: Vec<String>,
        /// The branch tip that conflicts.
        tip: String,
    },
    /// The branch brings nothing.
    NothingToMerge,
    /// The user's checkout of the target has local changes to tracked files.
    CheckoutDirty {
        /// The paths.
        paths: Vec<String>,
    },
}

/// What [`Desk::land`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Landing {
    /// The target now points at `commit`; the user's checkout was brought along as
    /// `checkout` says.
    Landed {
        /// The new commit.
        commit: String,
        /// What became of the user's checkout.
        checkout: CheckoutSync,
    },
    /// The target moved since the merge was prepared; nothing was changed.
    TargetMoved,
    /// The user's checkout of the target has local changes, or untracked files the merge
    /// would overwrite; nothing was changed.
    CheckoutDirty {
        /// The paths.
        paths: Vec<String>,
    },
}

impl Desk {
    /// Opens the repository at `repo_root`; the merge worktree lives in `scratch_dir`.
    pub fn open(repo_root: &Path, scratch_dir: &Path) -> Result<Self, GitError> {
        Ok(Self {
            repo: open(repo_root)?,
            bench: scratch_dir.join(BENCH),
        })
    }

    /// Repairs what a killed merge may have left: stale locks on the target (see
    /// [`crate::locks::repair_target`]), and the user's checkout half brought along (see
    /// [`super::repair_checkout`]).
    pub fn repair(&self, target: &str) -> Result<(Vec<String>, Option<CheckoutRepair>), GitError> {
        let locks = crate::locks::repair_target_in(&self.repo, target)?;
        Ok((locks, repair_checkout_in(&self.repo, target)?))
    }

    /// See [`super::find_landed`].
    pub fn find_landed(
        &self,
        target: &str,
        mr: i64,
        task: Option<&str>,
        since: i64,
    ) -> Result<Option<(String, String)>, GitError> {
        find_landed_in(&self.repo, target, mr, task, since)
    }

    /// See [`crate::messages_ahead`].
    pub fn messages_ahead(
        &self,
        branch: &str,
        target: &str,
        limit: usize,
    ) -> Result<Vec<String>, GitError> {
        crate::messages_ahead_in(&self.repo, branch, target, limit)
    }

    /// See [`super::sync_checkout`].
    pub fn sync_checkout(&self, target: &str, old_tip: &str) -> Result<CheckoutSync, GitError> {
        sync_checkout_in(&self.repo, target, old_tip)
    }

    /// Checks that the user's checkout of `target` is clean, merges `branch` into `target`
    /// in memory, and, when that is clean, resets the merge worktree to the result: HEAD
    /// detached at the target tip, the merged tree in the index and the files.
    pub fn prepare(&self, branch: &str, target: &str) -> Result<DeskPrepare, GitError> {
        if let Some(paths) = checkout_clean_in(&self.repo, target)? {
            return Ok(DeskPrepare::CheckoutDirty { paths });
        }
        let (base, tip, tree) = match merge_in_memory(&self.repo, branch, target)? {
            InMemory::Clean { base, tip, tree } => (base, tip, tree),
            InMemory::Conflict { paths, tip } => {
                return Ok(DeskPrepare::Conflict {
                    paths,
                    tip: tip.to_string(),
                });
            }
            InMemory::Nothing => return Ok(DeskPrepare::NothingToMerge),
        };
        self.reset_bench(base, tree)?;
        Ok(DeskPrepare::Ready(Prepared {
            path: self.bench.clone(),
            base: base.to_string(),
            tree: tree.to_string(),
            branch_tip: tip.to_string(),
            name: BENCH.to_owned(),
        }))
    }

    /// After the tests passed: checks the user's checkout again (the merge at hand), lands
    /// `prepared` on `target` with a compare-and-swap (a squash commit, or a merge commit
    /// with `two_parents`), and brings the user's checkout along.
    pub fn land(
        &self,
        prepared: &Prepared,
        target: &str,
        message: &str,
        author: (&str, &str),
        two_parents: bool,
    ) -> Result<Landing, GitError> {
        if let Some(paths) = checkout_ready_in(&self.repo, target, prepared)? {
            return Ok(Landing::CheckoutDirty { paths });
        }
        match land_in(&self.repo, prepared, target, message, author, two_parents)? {
            Land::TargetMoved { .. } => Ok(Landing::TargetMoved),
            Land::Landed { commit } => {
                let checkout = self.sync_checkout(target, &prepared.base)?;
                Ok(Landing::Landed { commit, checkout })
            }
        }
    }

    /// Resets the merge worktree to `tree` on `base`; makes it (again) when it is missing,
    /// half made, or left in a state the reset cannot vouch for.
    fn reset_bench(&self, base: Oid, tree: Oid) -> Result<(), GitError> {
        if let Some(wt) = self.open_bench()
            && reset(&wt, base, tree).is_ok_and(|clean| clean)
        {
            return Ok(());
        }
        let _ = remove_one(&self.repo, BENCH, Some(&self.bench));
        let base_commit = commit(&self.repo, base)?;
        if let Err(e) = add_scratch(&self.repo, BENCH, &self.bench, &base_commit, tree) {
            let _ = remove_one(&self.repo, BENCH, Some(&self.bench));
            return Err(e);
        }
        Ok(())
    }

    /// The merge worktree, when git knows it, it is where it should be and it is complete.
    fn open_bench(&self) -> Option<Repository> {
        let wt = self.repo.find_worktree(BENCH).ok()?;
        if wt.path() != self.bench || wt.validate().is_err() {
            return None;
        }
        let repo = Repository::open_from_worktree(&wt).ok()?;
        let complete = !repo.path().join(crate::worktree::INCOMPLETE).exists();
        complete.then_some(repo)
    }
}

/// Resets `wt` to `tree` on `base`: writes only the files that differ, removes untracked
/// files (keeping ignored ones). Returns whether the result is exactly `tree` (index and
/// files, nothing untracked).
fn reset(wt: &Repository, base: Oid, tree: Oid) -> Result<bool, GitError> {
    let object = wt
        .find_object(tree, None)
        .ctx(|| format!("find the merged tree {tree}"))?;
    wt.set_head_detached(base)
        .ctx(|| "detach the merge worktree's HEAD".to_owned())?;
    let mut co = CheckoutBuilder::new();
    co.force().remove_untracked(true);
    wt.checkout_tree(&object, Some(&mut co))
        .ctx(|| "reset the merge worktree".to_owned())?;
    let mut index = wt.index().ctx(|| "open the merge index".to_owned())?;
    if index.write_tree().ok() != Some(tree) {
        return Ok(false);
    }
    let mut opts = StatusOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(false)
        .include_ignored(false)
        .exclude_submodules(true);
    let statuses = wt
        .statuses(Some(&mut opts))
        .ctx(|| "look at the merge worktree".to_owned())?;
    let in_worktree = Status::WT_NEW
        | Status::WT_MODIFIED
        | Status::WT_DELETED
        | Status::WT_TYPECHANGE
        | Status::WT_RENAMED
        | Status::CONFLICTED;
    Ok(!statuses.iter().any(|s| s.status().intersects(in_worktree)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let st = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .status()
            .unwrap();
        assert!(st.success(), "git {args:?}");
    }

    /// A repository on `main` with `keep`, `change` and `drop`, `.gitignore` ignoring
    /// `cache/`; branch `b1` changes `change`; branch `b2` (off `b1`) drops `drop`, adds
    /// `new`.
    fn repo() -> tempfile::TempDir {
        let td = tempfile::tempdir().unwrap();
        let r = td.path();
        git(r, &["init", "-q", "-b", "main"]);
        for (f, c) in [
            ("keep", "k\n"),
            ("change", "1\n"),
            ("drop", "d\n"),
            (".gitignore", "cache/\n"),
        ] {
            std::fs::write(r.join(f), c).unwrap();
        }
        git(r, &["add", "-A"]);
        git(r, &["commit", "-q", "-m", "init"]);
        git(r, &["checkout", "-q", "-b", "b1"]);
        std::fs::write(r.join("change"), "2\n").unwrap();
        git(r, &["commit", "-q", "-am", "b1"]);
        git(r, &["checkout", "-q", "-b", "b2"]);
        git(r, &["rm", "-q", "drop"]);
        std::fs::write(r.join("new"), "n\n").unwrap();
        git(r, &["add", "-A"]);
        git(r, &["commit", "-q", "-m", "b2"]);
        git(r, &["checkout", "-q", "main"]);
        td
    }

    fn land(desk: &Desk, branch: &str) -> Prepared {
        let DeskPrepare::Ready(p) = desk.prepare(branch, "main").unwrap() else {
            panic!("not ready")
        };
        let landed = desk
            .land(
                &p,
                "main",
                &format!("merge {branch}\n"),
                ("sf", "sf@sf"),
                false,
            )
            .unwrap();
        assert!(matches!(landed, Landing::Landed { .. }), "{landed:?}");
        p
    }

    #[test]
    fn the_merge_worktree_is_reset_to_each_result_keeping_only_ignored_files() {
        let td = repo();
        let scratch = td.path().join(".sf-merge");
        let desk = Desk::open(td.path(), &scratch).unwrap();
        let first = land(&desk, "b1");
        let bench = first.path.clone();
        assert_eq!(
            std::fs::read_to_string(bench.join("change")).unwrap(),
            "2\n"
        );
        // what a test run leaves: a build cache, a stray file, an edit, a staged file
        std::fs::create_dir_all(bench.join("cache")).unwrap();
        std::fs::write(bench.join("cache/obj"), "o").unwrap();
        std::fs::write(bench.join("stray"), "s").unwrap();
        std::fs::write(bench.join("keep"), "edited by the tests\n").unwrap();
        let ino = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
        let change_ino = ino(&bench.join("change"));
        let second = land(&Desk::open(td.path(), &scratch).unwrap(), "b2");
        assert_eq!(second.path, bench, "the same worktree");
        assert_eq!(std::fs::read_to_string(bench.join("keep")).unwrap(), "k\n");
        assert_eq!(std::fs::read_to_string(bench.join("new")).unwrap(), "n\n");
        assert!(!bench.join("drop").exists());
        assert!(!bench.join("stray").exists(), "untracked files are removed");
        assert!(bench.join("cache/obj").exists(), "ignored files are kept");
        assert_eq!(
            ino(&bench.join("change")),
            change_ino,
            "a file that did not change is not written again"
        );
        // the main checkout was brought along both times
        assert!(td.path().join("new").exists());
        assert!(!td.path().join("drop").exists());
    }

    #[test]
    fn a_merge_worktree_the_tests_broke_is_made_again() {
        let td = repo();
        let scratch = td.path().join(".sf-merge");
        let desk = Desk::open(td.path(), &scratch).unwrap();
        let first = land(&desk, "b1");
        // the tests removed the worktree's link to the repository
        std::fs::remove_file(first.path.join(".git")).unwrap();
        let DeskPrepare::Ready(p) = desk.prepare("b2", "main").unwrap() else {
            panic!("not ready")
        };
        let wt = Repository::open(&p.path).unwrap();
        assert_eq!(wt.head().unwrap().target().unwrap().to_string(), p.base);
        assert_eq!(
            wt.index().unwrap().write_tree().unwrap().to_string(),
            p.tree
        );
        assert!(p.path.join("new").exists());
    }

    #[test]
    fn a_half_made_merge_worktree_left_by_a_kill_is_made_again() {
        let td = repo();
        let scratch = td.path().join(".sf-merge");
        // a kill right after git's admin folder was made, before anything was written in it
        let admin = td.path().join(".git/worktrees").join(BENCH);
        std::fs::create_dir_all(&admin).unwrap();
        let desk = Desk::open(td.path(), &scratch).unwrap();
        let p = land(&desk, "b1");
        assert!(p.path.join("change").exists());
        assert!(admin.join("gitdir").exists(), "made again");
        // and once more, with a stray admin folder and no worktree at all
        std::fs::remove_dir_all(&p.path).unwrap();
        std::fs::remove_file(admin.join("gitdir")).unwrap();
        let DeskPrepare::Ready(again) = desk.prepare("b2", "main").unwrap() else {
            panic!("not ready")
        };
        assert!(again.path.join("new").exists());
    }

    #[test]
    fn conflicts_and_a_dirty_checkout_write_nothing() {
        let td = repo();
        let r = td.path();
        git(r, &["checkout", "-q", "-b", "c", "main"]);
        std::fs::write(r.join("change"), "3\n").unwrap();
        git(r, &["commit", "-q", "-am", "c"]);
        git(r, &["checkout", "-q", "main"]);
        let scratch = r.join(".sf-merge");
        let desk = Desk::open(r, &scratch).unwrap();
        land(&desk, "b1");
        match desk.prepare("c", "main").unwrap() {
            DeskPrepare::Conflict { paths, .. } => assert_eq!(paths, vec!["change".to_owned()]),
            other => panic!("{other:?}"),
        }
        std::fs::write(r.join("keep"), "mine\n").unwrap();
        match desk.prepare("b2", "main").unwrap() {
            DeskPrepare::CheckoutDirty { paths } => assert_eq!(paths, vec!["keep".to_owned()]),
            other => panic!("{other:?}"),
        }
        assert_eq!(std::fs::read_to_string(r.join("keep")).unwrap(), "mine\n");
    }
}
