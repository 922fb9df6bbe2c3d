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
