//! Unit tests of the merge primitives on real repositories. Size: one scenario per test,
//! kept together with the repository builders they share.

use std::path::{Path, PathBuf};

use git2::build::TreeUpdateBuilder;
use git2::{BranchType, FileMode, Oid, Repository, Signature, StatusOptions};

use super::*;

/// A repository on `main` with README.md = "hello\n" committed and checked out, `/.sf/`
/// excluded like `sfctl init` does.
fn repo() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let repo = Repository::init_opts(
        &root,
        git2::RepositoryInitOptions::new().initial_head("main"),
    )
    .unwrap();
    std::fs::write(root.join(".git/info/exclude"), "/.sf/\n").unwrap();
    std::fs::write(root.join("README.md"), "hello\n").unwrap();
    let mut index = repo.index().unwrap();
    index.add_path(Path::new("README.md")).unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = Signature::now("t", "t@example.com").unwrap();
    repo.commit(Some("HEAD"), &sig, &sig, "init", &tree, &[])
        .unwrap();
    let scratch = root.join(".sf/merge");
    (dir, root, scratch)
}

fn tip(root: &Path, branch: &str) -> Oid {
    Repository::open(root)
        .unwrap()
        .find_branch(branch, BranchType::Local)
        .unwrap()
        .get()
        .target()
        .unwrap()
}

fn branch(root: &Path, name: &str, from: &str) {
    let repo = Repository::open(root).unwrap();
    let c = repo.find_commit(tip(root, from)).unwrap();
    repo.branch(name, &c, false).unwrap();
}

/// Commits `files` (path, Some(content) or None to delete) onto `branch` without touching
/// any worktree.
fn commit_on(root: &Path, branch: &str, files: &[(&str, Option<&str>)], msg: &str) -> Oid {
    let repo = Repository::open(root).unwrap();
    let parent = repo.find_commit(tip(root, branch)).unwrap();
    let mut b = TreeUpdateBuilder::new();
    for (path, content) in files {
        match content {
            Some(c) => {
                let blob = repo.blob(c.as_bytes()).unwrap();
                b.upsert(*path, blob, FileMode::Blob);
            }
            None => {
                b.remove(*path);
            }
        }
    }
    let tree = b.create_updated(&repo, &parent.tree().unwrap()).unwrap();
    let tree = repo.find_tree(tree).unwrap();
    let sig = Signature::now("w", "w@example.com").unwrap();
    repo.commit(
        Some(&format!("refs/heads/{branch}")),
        &sig,
        &sig,
        msg,
        &tree,
        &[&parent],
    )
    .unwrap()
}

fn ready(p: Prepare) -> Prepared {
    match p {
        Prepare::Ready(p) => p,
        other => panic!("expected a clean merge, got {other:?}"),
    }
}

fn landed(l: Land) -> Oid {
    match l {
        Land::Landed { commit } => Oid::from_str(&commit).unwrap(),
        other => panic!("expected a landed merge, got {other:?}"),
    }
}

fn is_clean(root: &Path) -> bool {
    let repo = Repository::open(root).unwrap();
    let mut opts = StatusOptions::new();
    opts.include_untracked(true).include_ignored(false);
    let st = repo.statuses(Some(&mut opts)).unwrap();
    st.is_empty()
}

fn temp_branches(root: &Path) -> usize {
    Repository::open(root)
        .unwrap()
        .references_glob("refs/heads/sf-merging/*")
        .unwrap()
        .count()
}

fn worktree_count(root: &Path) -> usize {
    Repository::open(root).unwrap().worktrees().unwrap().len()
}

const MSG: &str = "Add a (t-1)\n\nAdds a.\n\nSf-Task: t-1\nSf-Agent: w1\n";

#[test]
fn a_clean_squash_lands_one_commit_with_one_parent() {
    let (_d, root, scratch) = repo();
    branch(&root, "agent/w1/t-1", "main");
    commit_on(&root, "agent/w1/t-1", &[("a.txt", Some("a\n"))], "wip 1");
    let branch_tip = commit_on(
        &root,
        "agent/w1/t-1",
        &[("README.md", Some("hello\nworld\n"))],
        "wip 2",
    );
    let base = tip(&root, "main");

    let p = ready(prepare_squash(&root, &scratch, "agent/w1/t-1", "main").unwrap());
    assert_eq!(p.base, base.to_string());
    assert_eq!(p.branch_tip, branch_tip.to_string());
    assert!(p.path.starts_with(&scratch));
    assert!(p.name.starts_with(SCRATCH_PREFIX));
    assert_eq!(
        std::fs::read_to_string(p.path.join("a.txt")).unwrap(),
        "a\n"
    );
    assert_eq!(
        std::fs::read_to_string(p.path.join("README.md")).unwrap(),
        "hello\nworld\n"
    );
    let wt = Repository::open(&p.path).unwrap();
    assert!(
        wt.head_detached().unwrap(),
        "the merge worktree is detached"
    );
    assert_eq!(wt.head().unwrap().target().unwrap(), base);
    assert_eq!(
        wt.index().unwrap().write_tree().unwrap().to_string(),
        p.tree,
        "its index holds the merged tree"
    );
    assert_eq!(temp_branches(&root), 0, "no temporary branch is left");
    assert_eq!(tip(&root, "main"), base, "preparing never moves the target");
    assert_eq!(check_checkout_clean(&root, "main").unwrap(), None);
    assert_eq!(check_checkout_ready(&root, "main", &p).unwrap(), None);

    let commit =
        landed(land_squash(&root, &p, "main", MSG, "sf-merge", "merge@sf.invalid").unwrap());
    assert_eq!(tip(&root, "main"), commit);
    let repo = Repository::open(&root).unwrap();
    let c = repo.find_commit(commit).unwrap();
    assert_eq!(c.parent_count(), 1);
    assert_eq!(c.parent_id(0).unwrap(), base);
    assert_eq!(c.tree_id().to_string(), p.tree);
    assert_eq!(c.message().unwrap(), MSG);
    assert_eq!(c.author().name().unwrap(), "sf-merge");
    assert_eq!(c.author().email().unwrap(), "merge@sf.invalid");
    let tree = c.tree().unwrap();
    assert!(tree.get_name("a.txt").is_some());
    assert_eq!(
        repo.graph_ahead_behind(commit, base).unwrap(),
        (1, 0),
        "exactly one commit lands"
    );

    // the user's checkout of main is brought along; until then a journal says it is due
    assert!(root.join(".git/sf-checkout-sync").exists(), "no journal");
    assert_eq!(
        sync_checkout(&root, "main", &p.base).unwrap(),
        CheckoutSync::Updated
    );
    assert!(!root.join(".git/sf-checkout-sync").exists(), "journal left");
    assert_eq!(std::fs::read_to_string(root.join("a.txt")).unwrap(), "a\n");
    assert_eq!(
        std::fs::read_to_string(root.join("README.md")).unwrap(),
        "hello\nworld\n"
    );
    assert!(is_clean(&root), "index and files match the new tip");
    assert_eq!(
        sync_checkout(&root, "main", &p.base).unwrap(),
        CheckoutSync::Updated,
        "a repeated call is a no-op"
    );

    remove_scratch(&root, &p).unwrap();
    assert!(!p.path.exists());
    assert_eq!(worktree_count(&root), 0);
}

#[test]
fn a_merge_commit_has_the_base_and_the_branch_tip_as_parents() {
    let (_d, root, scratch) = repo();
    branch(&root, "b", "main");
    let btip = commit_on(&root, "b", &[("b.txt", Some("b\n"))], "b");
    let p = ready(prepare_squash(&root, &scratch, "b", "main").unwrap());
    let commit = landed(land_merge(&root, &p, "main", "Merge b", "sf", "sf@sf.invalid").unwrap());
    let repo = Repository::open(&root).unwrap();
    let c = repo.find_commit(commit).unwrap();
    assert_eq!(
        c.parent_ids().collect::<Vec<_>>(),
        vec![Oid::from_str(&p.base).unwrap(), btip]
    );
    assert_eq!(c.tree_id().to_string(), p.tree);
    // the branch is now reachable from the target: deleting it needs no archive
    remove_scratch(&root, &p).unwrap();
    assert!(delete_branch_if_reachable(&root, "b", &["main"]).unwrap());
    assert!(repo.find_branch("b", BranchType::Local).is_err());
}

#[test]
fn a_conflict_is_reported_with_its_paths_and_writes_nothing() {
    let (_d, root, scratch) = repo();
    branch(&root, "one", "main");
    branch(&root, "two", "main");
    commit_on(
        &root,
        "one",
        &[("README.md", Some("hello from one\n"))],
        "one",
    );
    commit_on(
        &root,
        "two",
        &[
            ("README.md", Some("hello from two\n")),
            ("ok.txt", Some("fine\n")),
        ],
        "two",
    );
    let p = ready(prepare_squash(&root, &scratch, "one", "main").unwrap());
    landed(land_squash(&root, &p, "main", "one", "sf", "sf@sf.invalid").unwrap());
    remove_scratch(&root, &p).unwrap();
    let before = tip(&root, "main");

    let out = prepare_squash(&root, &scratch, "two", "main").unwrap();
    assert_eq!(
        out,
        Prepare::Conflict {
            paths: vec!["README.md".to_owned()]
        }
    );
    assert_eq!(tip(&root, "main"), before, "the target is untouched");
    assert_eq!(worktree_count(&root), 0, "no worktree was made");
    assert_eq!(temp_branches(&root), 0);
    let leftovers = std::fs::read_dir(&scratch)
        .map(|d| d.count())
        .unwrap_or_default();
    assert_eq!(leftovers, 0, "nothing in the scratch dir");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(!readme.contains("<<<<<<<"), "no conflict markers: {readme}");
    let repo = Repository::open(&root).unwrap();
    assert!(!repo.index().unwrap().has_conflicts());
    assert_eq!(repo.state(), git2::RepositoryState::Clean);
}

#[test]
fn a_target_moved_after_prepare_is_reported_and_left_alone() {
    let (_d, root, scratch) = repo();
    branch(&root, "b", "main");
    commit_on(&root, "b", &[("b.txt", Some("b\n"))], "b");
    let p = ready(prepare_squash(&root, &scratch, "b", "main").unwrap());
    let moved = commit_on(&root, "main", &[("other.txt", Some("o\n"))], "someone else");

    let out = land_squash(&root, &p, "main", MSG, "sf", "sf@sf.invalid").unwrap();
    assert_eq!(
        out,
        Land::TargetMoved {
            expected: p.base.clone(),
            actual: moved.to_string()
        }
    );
    assert_eq!(tip(&root, "main"), moved, "the target is unchanged");
    remove_scratch(&root, &p).unwrap();

    // starting again from the new tip works and keeps both changes
    let p = ready(prepare_squash(&root, &scratch, "b", "main").unwrap());
    assert_eq!(p.base, moved.to_string());
    let c = landed(land_squash(&root, &p, "main", MSG, "sf", "sf@sf.invalid").unwrap());
    let repo = Repository::open(&root).unwrap();
    let tree = repo.find_commit(c).unwrap().tree().unwrap();
    assert!(tree.get_name("b.txt").is_some() && tree.get_name("other.txt").is_some());
    remove_scratch(&root, &p).unwrap();
}

#[test]
fn the_compare_and_swap_refuses_a_stale_base_even_after_the_precheck() {
    // the ref check inside land races with other writers; the CAS itself must refuse too
    let (_d, root, _scratch) = repo();
    let repo = Repository::open(&root).unwrap();
    let base = tip(&root, "main");
    let moved = commit_on(&root, "main", &[("x", Some("x\n"))], "x");
    let Err(err) = repo.reference_matching("refs/heads/main", base, true, base, "test") else {
        panic!("the compare-and-swap accepted a stale base");
    };
    assert_eq!(err.code(), git2::ErrorCode::Modified);
    assert_eq!(tip(&root, "main"), moved);
}

#[test]
fn nothing_to_merge_is_detected() {
    let (_d, root, scratch) = repo();
    branch(&root, "same", "main");
    assert_eq!(
        prepare_squash(&root, &scratch, "same", "main").unwrap(),
        Prepare::NothingToMerge,
        "no commits ahead"
    );
    branch(&root, "behind", "main");
    commit_on(&root, "main", &[("m.txt", Some("m\n"))], "main moves");
    assert_eq!(
        prepare_squash(&root, &scratch, "behind", "main").unwrap(),
        Prepare::NothingToMerge,
        "contained in the target"
    );
    branch(&root, "dup", "behind");
    commit_on(&root, "dup", &[("m.txt", Some("m\n"))], "the same change");
    assert_eq!(
        prepare_squash(&root, &scratch, "dup", "main").unwrap(),
        Prepare::NothingToMerge,
        "its changes are already in the target"
    );
    branch(&root, "undo", "main");
    commit_on(&root, "undo", &[("u.txt", Some("u\n"))], "add");
    commit_on(&root, "undo", &[("u.txt", None)], "remove again");
    assert_eq!(
        prepare_squash(&root, &scratch, "undo", "main").unwrap(),
        Prepare::NothingToMerge,
        "commits that cancel out"
    );
    assert_eq!(worktree_count(&root), 0);
    assert!(matches!(
        prepare_squash(&root, &scratch, "nope", "main"),
        Err(GitError::MissingBranch(b)) if b == "nope"
    ));
    assert!(matches!(
        prepare_squash(&root, &scratch, "same", "develop"),
        Err(GitError::NoTarget(b)) if b == "develop"
    ));
}

#[test]
fn a_dirty_checkout_is_reported_and_left_alone() {
    let (_d, root, scratch) = repo();
    branch(&root, "b", "main");
    commit_on(&root, "b", &[("b.txt", Some("b\n"))], "b");
    std::fs::write(root.join("README.md"), "my local edit\n").unwrap();
    assert_eq!(
        check_checkout_clean(&root, "main").unwrap(),
        Some(vec!["README.md".to_owned()])
    );

    let p = ready(prepare_squash(&root, &scratch, "b", "main").unwrap());
    landed(land_squash(&root, &p, "main", MSG, "sf", "sf@sf.invalid").unwrap());
    assert_eq!(
        sync_checkout(&root, "main", &p.base).unwrap(),
        CheckoutSync::Dirty {
            paths: vec!["README.md".to_owned()]
        }
    );
    assert_eq!(
        std::fs::read_to_string(root.join("README.md")).unwrap(),
        "my local edit\n"
    );
    assert!(!root.join("b.txt").exists(), "nothing was checked out");
    remove_scratch(&root, &p).unwrap();
}

#[test]
fn a_staged_change_counts_as_dirty() {
    let (_d, root, _scratch) = repo();
    std::fs::write(root.join("new.txt"), "n\n").unwrap();
    assert_eq!(
        check_checkout_clean(&root, "main").unwrap(),
        None,
        "untracked is fine"
    );
    let repo = Repository::open(&root).unwrap();
    let mut index = repo.index().unwrap();
    index.add_path(Path::new("new.txt")).unwrap();
    index.write().unwrap();
    assert_eq!(
        check_checkout_clean(&root, "main").unwrap(),
        Some(vec!["new.txt".to_owned()])
    );
}

#[test]
fn an_untracked_file_in_the_way_keeps_the_checkout_as_it_is() {
    let (_d, root, scratch) = repo();
    branch(&root, "b", "main");
    commit_on(
        &root,
        "b",
        &[
            ("b.txt", Some("from the branch\n")),
            ("README.md", Some("changed\n")),
        ],
        "b",
    );
    std::fs::write(root.join("b.txt"), "the user's own\n").unwrap();
    std::fs::write(root.join("notes.txt"), "unrelated\n").unwrap();
    assert_eq!(check_checkout_clean(&root, "main").unwrap(), None);
    let p = ready(prepare_squash(&root, &scratch, "b", "main").unwrap());
    assert_eq!(
        check_checkout_ready(&root, "main", &p).unwrap(),
        Some(vec!["b.txt".to_owned()]),
        "the check before landing sees the file in the way"
    );
    landed(land_squash(&root, &p, "main", MSG, "sf", "sf@sf.invalid").unwrap());
    assert_eq!(
        sync_checkout(&root, "main", &p.base).unwrap(),
        CheckoutSync::Dirty {
            paths: vec!["b.txt".to_owned()]
        }
    );
    assert_eq!(
        std::fs::read_to_string(root.join("b.txt")).unwrap(),
        "the user's own\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("README.md")).unwrap(),
        "hello\n"
    );

    // once the user moves it away, the sync goes through and keeps unrelated untracked files
    std::fs::remove_file(root.join("b.txt")).unwrap();
    assert_eq!(
        sync_checkout(&root, "main", &p.base).unwrap(),
        CheckoutSync::Updated
    );
    assert_eq!(
        std::fs::read_to_string(root.join("b.txt")).unwrap(),
        "from the branch\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("README.md")).unwrap(),
        "changed\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("notes.txt")).unwrap(),
        "unrelated\n"
    );
    remove_scratch(&root, &p).unwrap();
}

#[test]
fn deletions_reach_the_checkout_too() {
    let (_d, root, scratch) = repo();
    branch(&root, "b", "main");
    commit_on(
        &root,
        "b",
        &[("README.md", None), ("docs/x.md", Some("x\n"))],
        "b",
    );
    let p = ready(prepare_squash(&root, &scratch, "b", "main").unwrap());
    landed(land_squash(&root, &p, "main", MSG, "sf", "sf@sf.invalid").unwrap());
    assert_eq!(
        sync_checkout(&root, "main", &p.base).unwrap(),
        CheckoutSync::Updated
    );
    assert!(!root.join("README.md").exists());
    assert!(root.join("docs/x.md").exists());
    remove_scratch(&root, &p).unwrap();
    assert!(is_clean(&root));
}

#[test]
fn another_branch_checked_out_is_not_touched() {
    let (_d, root, scratch) = repo();
    branch(&root, "mine", "main");
    let repo = Repository::open(&root).unwrap();
    repo.set_head("refs/heads/mine").unwrap();
    assert_eq!(check_checkout_clean(&root, "main").unwrap(), None);
    branch(&root, "b", "main");
    commit_on(&root, "b", &[("b.txt", Some("b\n"))], "b");
    let p = ready(prepare_squash(&root, &scratch, "b", "main").unwrap());
    landed(land_squash(&root, &p, "main", MSG, "sf", "sf@sf.invalid").unwrap());
    assert_eq!(
        sync_checkout(&root, "main", &p.base).unwrap(),
        CheckoutSync::NotCheckedOut
    );
    assert!(!root.join("b.txt").exists());
    remove_scratch(&root, &p).unwrap();
}

#[test]
fn a_branch_is_deleted_only_when_its_commits_are_kept() {
    let (_d, root, scratch) = repo();
    branch(&root, "b", "main");
    commit_on(&root, "b", &[("1", Some("1"))], "1");
    let btip = commit_on(&root, "b", &[("2", Some("2"))], "2");
    let p = ready(prepare_squash(&root, &scratch, "b", "main").unwrap());
    landed(land_squash(&root, &p, "main", MSG, "sf", "sf@sf.invalid").unwrap());
    remove_scratch(&root, &p).unwrap();

    // a squash leaves the branch's own commits unreachable from the target
    let err = delete_branch_if_reachable(&root, "b", &["main"]).unwrap_err();
    assert!(
        matches!(&err, GitError::BranchNotReachable { branch, commits: 2 } if branch == "b"),
        "{err:?}"
    );
    assert!(err.to_string().contains("refusing to delete branch `b`"));
    assert_eq!(tip(&root, "b"), btip, "the branch is kept");
    let err = delete_branch_if_reachable(&root, "b", &["main", "refs/sf/archive/missing"]);
    assert!(matches!(err, Err(GitError::BranchNotReachable { .. })));

    assert!(archive_and_delete_branch(&root, "b", "main", "refs/sf/archive/t-1").unwrap());
    let repo = Repository::open(&root).unwrap();
    assert!(repo.find_branch("b", BranchType::Local).is_err());
    assert_eq!(
        repo.find_reference("refs/sf/archive/t-1")
            .unwrap()
            .target()
            .unwrap(),
        btip
    );
    assert!(
        !archive_and_delete_branch(&root, "b", "main", "refs/sf/archive/t-1").unwrap(),
        "again: nothing to do"
    );
    assert!(!delete_branch_if_reachable(&root, "b", &["main"]).unwrap());
}

#[test]
fn an_archive_ref_is_only_moved_forward() {
    let (_d, root, _scratch) = repo();
    branch(&root, "b", "main");
    let first = commit_on(&root, "b", &[("1", Some("1"))], "1");
    branch(&root, "other", "main");
    let unrelated = commit_on(&root, "other", &[("o", Some("o"))], "o");
    let repo = Repository::open(&root).unwrap();
    repo.reference("refs/sf/archive/t", first, false, "t")
        .unwrap();
    let second = commit_on(&root, "b", &[("2", Some("2"))], "2");
    branch(&root, "b2", "b");
    assert!(archive_and_delete_branch(&root, "b", "main", "refs/sf/archive/t").unwrap());
    assert_eq!(
        repo.find_reference("refs/sf/archive/t")
            .unwrap()
            .target()
            .unwrap(),
        second
    );
    repo.reference("refs/sf/archive/u", unrelated, false, "u")
        .unwrap();
    let err = archive_and_delete_branch(&root, "b2", "main", "refs/sf/archive/u").unwrap_err();
    assert!(matches!(err, GitError::ArchiveRefTaken { .. }), "{err:?}");
    assert_eq!(tip(&root, "b2"), second, "the branch is kept");
}

#[test]
fn a_branch_checked_out_in_a_worktree_is_not_deleted() {
    let (_d, root, _scratch) = repo();
    let path = root.join(".sf/worktrees/t");
    crate::ensure_worktree(&root, "t", &path, "agent/t", "main").unwrap();
    assert!(delete_branch_if_reachable(&root, "agent/t", &["main"]).is_err());
    crate::remove_worktree(&root, "t", &path).unwrap();
    assert!(delete_branch_if_reachable(&root, "agent/t", &["main"]).unwrap());
}

#[test]
fn prune_removes_leftover_merge_worktrees() {
    let (_d, root, scratch) = repo();
    branch(&root, "a", "main");
    commit_on(&root, "a", &[("a", Some("a"))], "a");
    branch(&root, "b", "main");
    commit_on(&root, "b", &[("b", Some("b"))], "b");
    let pa = ready(prepare_squash(&root, &scratch, "a", "main").unwrap());
    let pb = ready(prepare_squash(&root, &scratch, "b", "main").unwrap());
    assert_ne!(pa.name, pb.name);
    // a worktree whose directory is already gone, a directory without metadata, and a
    // temporary branch a crash left between creating the worktree and detaching it
    std::fs::remove_dir_all(&pb.path).unwrap();
    std::fs::create_dir_all(scratch.join(format!("{SCRATCH_PREFIX}stale/target"))).unwrap();
    let repo = Repository::open(&root).unwrap();
    let c = repo.find_commit(tip(&root, "main")).unwrap();
    repo.branch("sf-merging/sf-merge-x", &c, false).unwrap();
    // a task worktree is not ours to remove
    let task = root.join(".sf/worktrees/t");
    crate::ensure_worktree(&root, "t", &task, "agent/t", "main").unwrap();

    assert_eq!(prune_scratch(&root, &scratch).unwrap(), 3);
    assert!(!pa.path.exists());
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0);
    let names: Vec<String> = repo
        .worktrees()
        .unwrap()
        .iter()
        .filter_map(|n| n.ok().flatten())
        .map(str::to_owned)
        .collect();
    assert_eq!(names, vec!["t".to_owned()]);
    assert_eq!(temp_branches(&root), 0);
    assert!(task.join("README.md").exists());
    assert_eq!(prune_scratch(&root, &scratch).unwrap(), 0, "idempotent");
    assert_eq!(
        prune_scratch(&root, &root.join("no/such/dir")).unwrap(),
        0,
        "a missing scratch dir is fine"
    );
    // and a new merge can be prepared afterwards
    let again = ready(prepare_squash(&root, &scratch, "a", "main").unwrap());
    remove_scratch(&root, &again).unwrap();
}

/// An sf merge commit on `main` (with the trailers the merge queue writes) that moves the
/// ref only, as a kill right after the compare-and-swap leaves it: the index and files of
/// the user's checkout still hold the old tip.
fn land_by_ref_only(root: &Path, files: &[(&str, Option<&str>)], mr: i64) -> Oid {
    commit_on(
        root,
        "main",
        files,
        &format!("Task (t1)\n\nSf-Task: t1\nSf-Merge-Request: {mr}\n"),
    )
}

/// The journal `land` writes before it moves the target.
fn journal(root: &Path, old: Oid, new: Oid) {
    std::fs::write(root.join(".git/sf-checkout-sync"), format!("{old} {new}\n")).unwrap();
}

fn status_lines(root: &Path) -> Vec<String> {
    let repo = Repository::open(root).unwrap();
    let mut opts = StatusOptions::new();
    opts.include_untracked(true);
    repo.statuses(Some(&mut opts))
        .unwrap()
        .iter()
        .map(|s| format!("{:?} {}", s.status(), s.path().unwrap_or_default()))
        .collect()
}

#[test]
fn a_checkout_left_at_the_old_tip_by_a_kill_is_brought_to_the_new_one() {
    let (_d, root, _) = repo();
    std::fs::write(root.join("keep.txt"), "old\n").unwrap();
    std::fs::write(root.join("mine.txt"), "old\n").unwrap();
    {
        let repo = Repository::open(&root).unwrap();
        let mut index = repo.index().unwrap();
        index.add_path(Path::new("keep.txt")).unwrap();
        index.add_path(Path::new("mine.txt")).unwrap();
        index.write().unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let head = repo.head().unwrap().peel_to_commit().unwrap();
        let sig = Signature::now("t", "t@example.com").unwrap();
        repo.commit(Some("HEAD"), &sig, &sig, "two files", &tree, &[&head])
            .unwrap();
    }
    let old = tip(&root, "main");
    let new = land_by_ref_only(
        &root,
        &[
            ("keep.txt", Some("new\n")),
            ("mine.txt", Some("new\n")),
            ("added.txt", Some("added\n")),
            ("README.md", None),
        ],
        7,
    );
    journal(&root, old, new);
    // half brought along: one file already new, and the user edited another meanwhile
    std::fs::write(root.join("keep.txt"), "new\n").unwrap();
    std::fs::write(root.join("mine.txt"), "the user's edit\n").unwrap();
    assert!(check_checkout_clean(&root, "main").unwrap().is_some());

    let r = repair_checkout(&root, "main").unwrap().expect("a repair");
    assert_eq!((r.from, r.to), (old.to_string(), new.to_string()));
    assert_eq!(r.kept, ["mine.txt"]);
    assert_eq!(
        std::fs::read_to_string(root.join("added.txt")).unwrap(),
        "added\n"
    );
    assert!(
        !root.join("README.md").exists(),
        "a file the merge deleted is gone"
    );
    assert_eq!(
        status_lines(&root),
        ["Status(WT_MODIFIED) mine.txt"],
        "only the user's own edit is left, against the new tip"
    );
    assert_eq!(repair_checkout(&root, "main").unwrap(), None, "idempotent");
}

#[test]
fn staged_work_of_the_user_is_never_taken_for_a_half_updated_checkout() {
    let (_d, root, _) = repo();
    // the user stages a change; nothing of sf's moved
    std::fs::write(root.join("README.md"), "staged\n").unwrap();
    let repo = Repository::open(&root).unwrap();
    let mut index = repo.index().unwrap();
    index.add_path(Path::new("README.md")).unwrap();
    index.write().unwrap();
    assert_eq!(repair_checkout(&root, "main").unwrap(), None);
    // and a commit that is not sf's moved the ref: not recognised either
    commit_on(
        &root,
        "main",
        &[("x.txt", Some("x\n"))],
        "someone else's commit",
    );
    assert_eq!(repair_checkout(&root, "main").unwrap(), None);
    assert_eq!(
        std::fs::read_to_string(root.join("README.md")).unwrap(),
        "staged\n"
    );
}

#[test]
fn a_landed_request_is_found_by_its_trailers_and_only_since_it_was_made() {
    let (_d, root, _) = repo();
    let landed = land_by_ref_only(&root, &[("a.txt", Some("a\n"))], 3);
    commit_on(&root, "main", &[("b.txt", Some("b\n"))], "later work");
    let parent = Repository::open(&root)
        .unwrap()
        .find_commit(landed)
        .unwrap()
        .parent_id(0)
        .unwrap();
    assert_eq!(
        find_landed(&root, "main", 3, Some("t1"), 0).unwrap(),
        Some((landed.to_string(), parent.to_string()))
    );
    assert_eq!(find_landed(&root, "main", 3, Some("t2"), 0).unwrap(), None);
    assert_eq!(find_landed(&root, "main", 30, None, 0).unwrap(), None);
    // a commit that quotes the trailers in its body is not a landing
    commit_on(
        &root,
        "main",
        &[("c.txt", Some("c\n"))],
        "Explain\n\nSf-Merge-Request: 8\nSf-Task: t1\n\nSigned-off-by: u <u@x>\n",
    );
    assert_eq!(find_landed(&root, "main", 8, Some("t1"), 0).unwrap(), None);
    // a request made after that commit (a new workspace reusing the number) is not it
    let future = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 3600;
    assert_eq!(
        find_landed(&root, "main", 3, Some("t1"), future).unwrap(),
        None
    );
}

#[test]
fn a_sync_cut_short_mid_file_is_finished_from_its_journal() {
    let (_d, root, _) = repo();
    let old = tip(&root, "main");
    let new = land_by_ref_only(
        &root,
        &[
            ("a.txt", Some("the whole new content\n")),
            ("README.md", Some("new\n")),
        ],
        9,
    );
    // the kill came while a.txt was being written: a few bytes of it, README.md untouched
    std::fs::write(root.join("a.txt"), "the wh").unwrap();
    journal(&root, old, new);
    let r = repair_checkout(&root, "main").unwrap().expect("a repair");
    assert!(r.kept.is_empty(), "{r:?}");
    assert_eq!(
        std::fs::read_to_string(root.join("a.txt")).unwrap(),
        "the whole new content\n"
    );
    assert!(status_lines(&root).is_empty(), "{:?}", status_lines(&root));
    assert!(!root.join(".git/sf-checkout-sync").exists());
}

#[test]
fn the_users_staged_revert_of_a_merge_is_never_undone() {
    let (_d, root, _) = repo();
    let before = std::fs::read_to_string(root.join("README.md")).unwrap();
    land_by_ref_only(&root, &[("README.md", Some("merged\n"))], 4);
    // no sync cut short (no journal): the user reverts the merge and stages the revert
    std::fs::write(root.join("README.md"), &before).unwrap();
    let repo = Repository::open(&root).unwrap();
    let mut index = repo.index().unwrap();
    index.add_path(Path::new("README.md")).unwrap();
    index.write().unwrap();
    assert_eq!(repair_checkout(&root, "main").unwrap(), None);
    assert_eq!(
        std::fs::read_to_string(root.join("README.md")).unwrap(),
        before
    );
    assert_eq!(status_lines(&root), ["Status(INDEX_MODIFIED) README.md"]);
}

#[test]
fn a_repair_keeps_later_edits_and_the_users_other_staged_work() {
    let (_d, root, _) = repo();
    let old = tip(&root, "main");
    let new = land_by_ref_only(
        &root,
        &[("a.txt", Some("merged a\n")), ("b.txt", Some("merged b\n"))],
        5,
    );
    journal(&root, old, new);
    // after the kill and before the restart, the user wrote a.txt (not a beginning of the
    // merged content) and staged a file of their own
    std::fs::write(root.join("a.txt"), "the user's a\n").unwrap();
    std::fs::write(root.join("own.txt"), "own\n").unwrap();
    let repo = Repository::open(&root).unwrap();
    let mut index = repo.index().unwrap();
    index.add_path(Path::new("own.txt")).unwrap();
    index.write().unwrap();
    let r = repair_checkout(&root, "main").unwrap().expect("a repair");
    assert_eq!(r.kept, ["a.txt"]);
    assert_eq!(
        std::fs::read_to_string(root.join("a.txt")).unwrap(),
        "the user's a\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("b.txt")).unwrap(),
        "merged b\n"
    );
    assert_eq!(
        status_lines(&root),
        ["Status(WT_MODIFIED) a.txt", "Status(INDEX_NEW) own.txt"]
    );
}
