use std::path::Path;

use super::*;

fn repo() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let repo = Repository::init_opts(
        &root,
        git2::RepositoryInitOptions::new().initial_head("main"),
    )
    .unwrap();
    std::fs::write(root.join("README.md"), "hello\n").unwrap();
    let mut index = repo.index().unwrap();
    index.add_path(Path::new("README.md")).unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = Signature::now("t", "t@example.com").unwrap();
    repo.commit(Some("HEAD"), &sig, &sig, "init", &tree, &[])
        .unwrap();
    (dir, root)
}

#[test]
fn worktrees_are_created_from_the_target_and_reused() {
    let (_d, root) = repo();
    assert_eq!(target_branch(&root, None).unwrap(), "main");
    let path = root.join(".sf/worktrees/abc123-fix");
    let wt = ensure_worktree(&root, "abc123", &path, "agent/w1/abc123-fix", "main").unwrap();
    assert!(wt.created);
    assert!(path.join("README.md").exists());
    std::fs::write(path.join("new.txt"), "x").unwrap();
    let again = ensure_worktree(&root, "abc123", &path, "agent/w1/abc123-fix", "main").unwrap();
    assert!(!again.created);
    assert!(
        path.join("new.txt").exists(),
        "a reused worktree keeps its files"
    );
}

#[test]
fn uncommitted_work_is_saved_to_the_branch_and_a_wip_ref() {
    let (_d, root) = repo();
    let path = root.join(".sf/worktrees/t1");
    ensure_worktree(&root, "t1", &path, "agent/w/t1-x", "main").unwrap();
    assert_eq!(commits_ahead(&root, "agent/w/t1-x", "main").unwrap(), 0);
    std::fs::write(path.join("work.txt"), "progress").unwrap();
    std::fs::remove_file(path.join("README.md")).unwrap();
    assert!(is_dirty(&path).unwrap());
    let oid = wip_snapshot(&path, "t1", 2, "w").unwrap();
    assert!(!is_dirty(&path).unwrap());
    let repo = Repository::open(&root).unwrap();
    let wip = repo.find_reference("refs/sf/wip/t1/2").unwrap();
    assert_eq!(wip.target().unwrap().to_string(), oid);
    let tree = wip.peel_to_commit().unwrap().tree().unwrap();
    assert!(tree.get_name("work.txt").is_some());
    assert!(
        tree.get_name("README.md").is_none(),
        "deletions are saved too"
    );
    assert_eq!(commits_ahead(&root, "agent/w/t1-x", "main").unwrap(), 1);
    assert_eq!(commit_all(&path, "nothing", "w").unwrap(), None);
}

#[test]
fn a_removed_worktree_can_be_recreated_on_its_branch() {
    let (_d, root) = repo();
    let path = root.join(".sf/worktrees/t2");
    ensure_worktree(&root, "t2", &path, "b2", "main").unwrap();
    std::fs::write(path.join("f"), "1").unwrap();
    commit_all(&path, "work", "w").unwrap();
    remove_worktree(&root, "t2", &path).unwrap();
    assert!(!path.exists());
    let wt = ensure_worktree(&root, "t2", &path, "b2", "main").unwrap();
    assert!(wt.created);
    assert!(path.join("f").exists(), "the branch kept the commit");
}

#[test]
fn a_missing_target_is_named() {
    let (_d, root) = repo();
    let err = target_branch(&root, Some("develop")).unwrap_err();
    assert_eq!(err.to_string(), "target branch `develop` does not exist");
}

/// A hermetic git CLI command in `dir`: its stdout, or a panic with its stderr.
fn git_cli(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .args(args)
        .output()
        .expect("failed to run git");
    assert!(
        out.status.success(),
        "git {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_new_worktree_is_registered_like_git_worktree_add_does() {
    let (_d, root) = repo();
    let path = root.join(".sf/worktrees/t3-x");
    ensure_worktree(&root, "t3", &path, "agent/w/t3-x", "main").unwrap();
    let path = path.canonicalize().unwrap();

    let repo = Repository::open(&root).unwrap();
    let names: Vec<_> = repo
        .worktrees()
        .unwrap()
        .iter()
        .flatten()
        .flatten()
        .map(str::to_owned)
        .collect();
    assert_eq!(names, ["t3"]);
    let wt = repo.find_worktree("t3").unwrap();
    wt.validate().unwrap();
    assert_eq!(wt.path(), path);
    let opened = Repository::open_from_worktree(&wt).unwrap();
    assert_eq!(
        opened.head().unwrap().name().unwrap(),
        "refs/heads/agent/w/t3-x"
    );
    assert!(!is_dirty(&path).unwrap(), "the index matches the checkout");

    let list = git_cli(&root, &["worktree", "list", "--porcelain"]);
    assert!(
        list.contains(&format!("worktree {}\n", path.display()))
            && list.contains("branch refs/heads/agent/w/t3-x\n"),
        "git worktree list:\n{list}"
    );
    assert_eq!(git_cli(&path, &["status", "--porcelain"]), "");
    assert_eq!(
        git_cli(&path, &["rev-parse", "--show-toplevel"]).trim(),
        path.display().to_string()
    );

    std::fs::remove_dir_all(&path).unwrap();
    git_cli(&root, &["worktree", "prune"]);
    assert!(
        repo.worktrees().unwrap().is_empty(),
        "git worktree prune removed it"
    );
    let again = ensure_worktree(&root, "t3", &path, "agent/w/t3-x", "main").unwrap();
    assert!(again.created);
    remove_worktree(&root, "t3", &path).unwrap();
    assert!(!path.exists());
    assert!(repo.worktrees().unwrap().is_empty());
    assert_eq!(
        git_cli(&root, &["worktree", "list", "--porcelain"])
            .matches("worktree ")
            .count(),
        1
    );
}

#[test]
fn a_branch_checked_out_elsewhere_is_refused_and_nothing_is_left() {
    let (_d, root) = repo();
    let a = root.join(".sf/worktrees/a");
    ensure_worktree(&root, "a", &a, "agent/w/a", "main").unwrap();
    let b = root.join(".sf/worktrees/b");
    let err = ensure_worktree(&root, "b", &b, "agent/w/a", "main").unwrap_err();
    assert!(
        format!("{err:?}").contains("already checked out"),
        "{err:?}"
    );
    let err = ensure_worktree(&root, "b", &b, "main", "main").unwrap_err();
    assert!(
        format!("{err:?}").contains("already checked out"),
        "{err:?}"
    );
    assert!(!b.exists());
    let repo = Repository::open(&root).unwrap();
    assert_eq!(repo.worktrees().unwrap().len(), 1);

    // a worktree whose directory is gone does not hold its branch (as in git and libgit2)
    std::fs::remove_dir_all(&a).unwrap();
    let wt = ensure_worktree(&root, "b", &b, "agent/w/a", "main").unwrap();
    assert!(wt.created);
    assert!(b.join("README.md").exists());
}

#[test]
fn worktrees_added_from_many_threads_at_once_all_work() {
    let (_d, root) = repo();
    std::thread::scope(|s| {
        for i in 0..8 {
            let root = &root;
            s.spawn(move || {
                for j in 0..4 {
                    let name = format!("t{i}-{j}");
                    let path = root.join(".sf/worktrees").join(&name);
                    ensure_worktree(root, &name, &path, &format!("agent/w/{name}"), "main")
                        .unwrap();
                    assert!(path.join("README.md").exists());
                }
            });
        }
    });
    let repo = Repository::open(&root).unwrap();
    assert_eq!(repo.worktrees().unwrap().len(), 32);
}

#[test]
fn a_half_made_worktree_is_rebuilt_and_never_committed() {
    let (_d, root) = repo();
    let path = root.join(".sf/worktrees/t9");
    ensure_worktree(&root, "t9", &path, "agent/w/t9", "main").unwrap();
    // as a kill half-way through the checkout leaves it: the marker, a file missing
    let admin = root.join(".git/worktrees/t9");
    std::fs::write(admin.join(worktree::INCOMPLETE), "").unwrap();
    std::fs::remove_file(path.join("README.md")).unwrap();
    assert!(matches!(
        commit_all(&path, "would delete README.md", "w"),
        Err(GitError::HalfMade(_))
    ));
    let tip = wip_snapshot(&path, "t9", 1, "w").unwrap();
    let repo = Repository::open(&root).unwrap();
    let main = repo.find_branch("main", BranchType::Local).unwrap();
    assert_eq!(
        tip,
        main.get().target().unwrap().to_string(),
        "the WIP ref points at the branch; no deletion was committed"
    );
    let wt = ensure_worktree(&root, "t9", &path, "agent/w/t9", "main").unwrap();
    assert!(wt.created, "rebuilt, not reused");
    assert_eq!(wt.repaired.len(), 1, "{:?}", wt.repaired);
    assert!(path.join("README.md").exists());
    assert!(!admin.join(worktree::INCOMPLETE).exists());
    assert!(!is_dirty(&path).unwrap());
}

#[test]
fn empty_admin_folders_and_stray_directories_do_not_block_a_worktree() {
    let (_d, root) = repo();
    std::fs::create_dir_all(root.join(".git/worktrees/t1")).unwrap();
    let path = root.join(".sf/worktrees/t1");
    let wt = ensure_worktree(&root, "t1", &path, "agent/w/t1", "main").unwrap();
    assert!(wt.created && path.join("README.md").exists());
    // a directory where the worktree should be, that git does not know: kept aside
    let other = root.join(".sf/worktrees/t2");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("stray.txt"), "keep me").unwrap();
    let wt = ensure_worktree(&root, "t2", &other, "agent/w/t2", "main").unwrap();
    assert!(wt.created);
    let aside: Vec<_> = std::fs::read_dir(root.join(".sf/worktrees"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("t2.aside-"))
        .collect();
    assert_eq!(aside.len(), 1);
    assert_eq!(
        std::fs::read_to_string(aside[0].path().join("stray.txt")).unwrap(),
        "keep me"
    );
}

#[test]
fn a_lock_is_removed_only_when_nobody_holds_it_and_it_is_old_enough() {
    let (_d, root) = repo();
    let lock = root.join(".git/refs/heads/main.lock");
    std::fs::write(&lock, "").unwrap();
    // young (dated ahead, so that no pause of this test can age it): a git process may be
    // between closing and renaming it
    let ahead = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&lock)
        .unwrap()
        .set_modified(ahead)
        .unwrap();
    assert_eq!(
        locks::repair_target(&root, "main").unwrap(),
        Vec::<String>::new()
    );
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(&lock)
        .unwrap()
        .set_modified(old)
        .unwrap();
    // held open by a live process (this one)
    let held = std::fs::File::open(&lock).unwrap();
    assert!(locks::repair_target(&root, "main").unwrap().is_empty());
    assert!(lock.exists());
    drop(held);
    let repaired = locks::repair_target(&root, "main").unwrap();
    assert_eq!(repaired.len(), 1, "{repaired:?}");
    assert!(!lock.exists());
}

#[test]
fn startup_repair_removes_half_made_worktrees_and_stale_locks_in_sfs_own_places() {
    let (_d, root) = repo();
    let sf = root.join(".sf");
    let path = sf.join("worktrees/t1");
    ensure_worktree(&root, "t1", &path, "agent/w/t1", "main").unwrap();
    std::fs::write(root.join(".git/worktrees/t1/index.lock"), "").unwrap();
    let ref_lock = root.join(".git/refs/heads/agent/w/t1.lock");
    std::fs::write(&ref_lock, "").unwrap();
    // a ref lock of a branch whose worktree a git works in (a worker's `git commit`
    // between closing and renaming it) is kept...
    let mut git = waiting_git(&path);
    let young = locks::repair_workspace(&root, &root.join(".sf"), Some("main")).unwrap();
    assert!(ref_lock.exists(), "removed under a worker's git: {young:?}");
    drop(git.stdin.take());
    git.wait().unwrap();
    // ...and removed once no git works there
    std::fs::create_dir_all(root.join(".git/worktrees/t2")).unwrap();
    // the user's `git worktree add`, between writing `locked` and `gitdir`
    std::fs::create_dir_all(root.join(".git/worktrees/users")).unwrap();
    std::fs::write(root.join(".git/worktrees/users/locked"), "initializing").unwrap();
    let repaired = locks::repair_workspace(&root, &sf, Some("main")).unwrap();
    assert_eq!(young.len() + repaired.len(), 3, "{young:?} {repaired:?}");
    assert!(!ref_lock.exists());
    assert!(!root.join(".git/worktrees/t2").exists());
    assert!(root.join(".git/worktrees/users/locked").exists());
    assert!(!root.join(".git/worktrees/t1/index.lock").exists());
    // the complete worktree is untouched and still usable
    std::fs::write(path.join("x.txt"), "x").unwrap();
    assert!(commit_all(&path, "x", "w").unwrap().is_some());
}

#[test]
fn a_worktree_is_reused_under_another_name_as_a_fix_task_does() {
    let (_d, root) = repo();
    let path = root.join(".sf/worktrees/t1-orig");
    ensure_worktree(&root, "t1", &path, "agent/w/t1", "main").unwrap();
    std::fs::write(path.join("left.txt"), "uncommitted").unwrap();
    // the fix task t2 works on the same branch in the same directory
    let wt = ensure_worktree(&root, "t2", &path, "agent/w/t1", "main").unwrap();
    assert!(!wt.created, "reused");
    assert!(wt.repaired.is_empty(), "{:?}", wt.repaired);
    assert_eq!(
        std::fs::read_to_string(path.join("left.txt")).unwrap(),
        "uncommitted"
    );
    let stray: Vec<_> = std::fs::read_dir(root.join(".sf/worktrees"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".aside-"))
        .collect();
    assert!(stray.is_empty(), "nothing moved aside");
}

#[test]
fn shared_locks_are_left_alone_while_a_git_of_the_user_runs_in_the_repository() {
    let (_d, root) = repo();
    let lock = root.join(".git/index.lock");
    std::fs::write(&lock, "").unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(600);
    std::fs::File::options()
        .write(true)
        .open(&lock)
        .unwrap()
        .set_modified(old)
        .unwrap();
    // a git waiting on its input in the repository (as `git commit` waits on its editor)
    let mut git = waiting_git(&root);
    assert!(locks::repair_target(&root, "main").unwrap().is_empty());
    assert!(lock.exists(), "removed under a running git");
    drop(git.stdin.take());
    git.wait().unwrap();
    assert_eq!(locks::repair_target(&root, "main").unwrap().len(), 1);
    assert!(!lock.exists());
}

/// A `git` waiting on its input in `dir`, as `git commit` waits on its editor or its hooks.
fn waiting_git(dir: &Path) -> std::process::Child {
    let git = std::process::Command::new("git")
        .args(["hash-object", "--stdin"])
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // it is git (exec'd) once /proc names it so
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_to_string(format!("/proc/{}/comm", git.id()))
        .map_or(true, |c| c.trim() != "git")
    {
        assert!(std::time::Instant::now() < deadline, "git did not start");
        std::thread::yield_now();
    }
    git
}

#[test]
fn a_worktrees_lock_is_left_alone_while_a_git_runs_in_it() {
    let (_d, root) = repo();
    let path = root.join(".sf/worktrees/t1");
    ensure_worktree(&root, "t1", &path, "agent/w/t1", "main").unwrap();
    let lock = root.join(".git/worktrees/t1/index.lock");
    std::fs::write(&lock, "").unwrap();
    // the worker's `git commit` runs a hook: git keeps the lock, closed, and waits
    let mut git = waiting_git(&path);
    assert!(locks::repair_worktree(&path).unwrap().is_empty());
    assert!(lock.exists(), "removed under a running git");
    drop(git.stdin.take());
    git.wait().unwrap();
    assert_eq!(locks::repair_worktree(&path).unwrap().len(), 1);
    assert!(!lock.exists());
}

/// A run that points its worktree's `.git` at the main repository (so that sf's commit of
/// its leftovers would land on `main`) or cuts the admin folder's way back is found out and
/// undone; an untouched worktree is left alone.
#[test]
fn rewritten_worktree_links_are_found_and_restored() {
    let (_d, root) = repo();
    let path = root.join(".sf/worktrees/t9-x");
    ensure_worktree(&root, "t9-x", &path, "agent/w/t9-x", "main").unwrap();
    assert_eq!(
        restore_worktree_links(&root, "t9-x", &path).unwrap(),
        Vec::<String>::new(),
        "as made by ensure_worktree"
    );
    let gitfile = path.join(".git");
    let made = std::fs::read_to_string(&gitfile).unwrap();
    std::fs::write(
        &gitfile,
        format!("gitdir: {}\n", root.join(".git").display()),
    )
    .unwrap();
    let admin = root.join(".git/worktrees/t9-x");
    std::fs::write(admin.join("commondir"), "/tmp/elsewhere\n").unwrap();
    let restored = restore_worktree_links(&root, "t9-x", &path).unwrap();
    assert_eq!(restored.len(), 2, "{restored:?}");
    assert_eq!(std::fs::read_to_string(&gitfile).unwrap(), made);
    assert_eq!(
        std::fs::read_to_string(admin.join("commondir")).unwrap(),
        "../..\n"
    );
    assert!(
        restore_worktree_links(&root, "t9-x", &path)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_branch_is_pushed_to_a_bare_remote_and_a_non_fast_forward_is_refused() {
    let (d, root) = repo();
    let bare = d.path().join("remote.git");
    Repository::init_bare(&bare).unwrap();
    let repo = Repository::open(&root).unwrap();
    repo.remote("origin", bare.to_str().unwrap()).unwrap();
    let path = root.join(".sf/worktrees/p1");
    ensure_worktree(&root, "p1", &path, "agent/w/p1-x", "main").unwrap();
    std::fs::write(path.join("work.txt"), "v1").unwrap();
    commit_all(&path, "v1", "w").unwrap();

    let pushed = push::push_branch(&root, "origin", "agent/w/p1-x").unwrap();
    let remote = Repository::open_bare(&bare).unwrap();
    let tip = |r: &Repository| {
        r.find_reference("refs/heads/agent/w/p1-x")
            .unwrap()
            .target()
            .unwrap()
            .to_string()
    };
    assert_eq!(tip(&remote), pushed.commit);
    assert_eq!(pushed.commit, branch_tip_id(&root, "agent/w/p1-x").unwrap());

    // the remote moved on; rewriting the local branch must not overwrite it
    let head = repo
        .find_commit(Oid::from_str(&pushed.commit).unwrap())
        .unwrap();
    let sig = Signature::now("t", "t@example.com").unwrap();
    let parent = head.parent(0).unwrap();
    let other = repo
        .commit(
            None,
            &sig,
            &sig,
            "rewritten",
            &parent.tree().unwrap(),
            &[&parent],
        )
        .unwrap();
    repo.reference("refs/heads/agent/w/p1-x", other, true, "rewrite")
        .unwrap();
    let err = push::push_branch(&root, "origin", "agent/w/p1-x").unwrap_err();
    assert!(
        matches!(
            err,
            GitError::Push {
                reason: push::PushReason::NotFastForward,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        tip(&remote),
        pushed.commit,
        "the remote branch did not move"
    );

    let err = push::push_branch(&root, "upstream", "agent/w/p1-x").unwrap_err();
    assert!(
        matches!(err, GitError::NoSuchRemote(ref r) if r == "upstream"),
        "{err:?}"
    );
    let err = push::push_branch(&root, "-x", "agent/w/p1-x").unwrap_err();
    assert!(matches!(err, GitError::NoSuchRemote(_)), "{err:?}");
}
